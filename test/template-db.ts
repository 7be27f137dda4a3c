// Rebuilds the template database every test database is cloned from, so each test file starts
// from the current migrations. Run by test/setup.ts before the suite.
import { openDb } from '../db/client.js'
import { TEMPLATE_DB, adminQuery, databaseUrl } from './helpers.js'

await adminQuery(`drop database if exists ${TEMPLATE_DB} with (force)`)
await adminQuery(`create database ${TEMPLATE_DB}`)
const handle = await openDb({ url: databaseUrl(TEMPLATE_DB), pgliteDataDir: 'memory://', poolMax: 1 })
try {
  await handle.migrate()
} finally {
  await handle.close()
}
