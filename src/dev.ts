import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { openDb } from '../db/client.js'
import { catalogIsEmpty, seedCatalog } from '../db/seed.js'
import { loadConfigOrExit } from './config.js'
import { buildFerretDb, FerretDbUnavailable, startEmbeddedFerretDb } from './embedded-ferretdb.js'

// `npm run dev`: the embedded stores start once, here, and stay warm; the API runs as a child
// under `tsx watch`, restarted on every save, and reaches them by URL like any server. A restart
// then costs loading the code, not opening PGlite, migrating and starting FerretDB again.
// Stores given by the environment (DATABASE_URL, MONGODB_URL) are passed through untouched.
// Redis without REDIS_URL stays the in-process stand-in, so sign-ins end at each restart.

const say = (message: string) => process.stderr.write(`dev: ${message}\n`)
const config = loadConfigOrExit({ report: say })
const env: NodeJS.ProcessEnv = { ...process.env }
const closers: (() => Promise<void>)[] = []

if (!config.postgres.url && !config.postgres.pgliteDataDir.startsWith('memory://')) {
  const handle = await openDb({ ...config.postgres, serveEmbeddedOn: config.postgres.pglitePort, command: 'npm run dev' })
  closers.push(() => handle.close())
  await handle.migrate()
  if (await catalogIsEmpty(handle.db)) say(`seeded the demo catalog: ${JSON.stringify(await seedCatalog(handle.db, undefined, config.currency))}`)
  env.DATABASE_URL = handle.servedUrl
  say(`PGlite ${config.postgres.pgliteDataDir} served at ${handle.servedUrl}`)
}
if (!config.mongo.url && config.mongo.embedded === 'ferretdb') {
  try {
    const ferret = await startEmbeddedFerretDb({ binary: config.mongo.ferretdbBin, dataDir: config.mongo.ferretdbDataDir, build: buildFerretDb, log: say })
    closers.push(ferret.stop)
    env.MONGODB_URL = `${ferret.url}shop`
    say(`FerretDB (SQLite under ${config.mongo.ferretdbDataDir}) at ${ferret.url}`)
  } catch (err) {
    if (!(err instanceof FerretDbUnavailable)) throw err
    say(`MongoDB unavailable: ${err.message}`)
  }
}

const tsx = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url))
const api = spawn(process.execPath, [tsx, 'watch', '--clear-screen=false', 'src/server.ts'], { env, stdio: 'inherit' })
let stopping = false
const stop = async (code: number) => {
  if (stopping) return
  stopping = true
  api.kill('SIGTERM')
  await new Promise((r) => (api.exitCode !== null ? r(undefined) : api.once('exit', r)))
  for (const close of closers.reverse()) await close().catch(() => {})
  process.exit(code)
}
api.once('exit', (code) => { void stop(code ?? 0) })
process.on('SIGINT', () => { void stop(0) })
process.on('SIGTERM', () => { void stop(0) })
