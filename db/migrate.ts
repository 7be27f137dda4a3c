// Applies the committed migrations to DATABASE_URL (or the PGlite directory) and exits.
import { openDb } from './client.js'
import { loadConfig } from '../src/config.js'

const { postgres } = loadConfig()
const handle = await openDb(postgres)
try {
  await handle.migrate()
  console.log(`migrations applied to ${handle.kind} at ${handle.location}`)
} finally {
  await handle.close()
}
