import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

// Writes openapi/openapi.json from the app itself, without listening and without any service:
// PGlite in memory, the in-process Redis stand-in, no MongoDB. `--check` fails when the
// committed file differs from what the code generates.
export const OPENAPI_FILE = fileURLToPath(new URL('./openapi.json', import.meta.url))

export async function generateOpenApi(): Promise<string> {
  const config = loadConfig({ PGLITE_DATA_DIR: 'memory://', DB_MIGRATE: 'false', EMBEDDED_MONGO: 'off', LOG_LEVEL: 'silent' })
  const app = await buildApp(config, { logger: false })
  try {
    await app.ready()
    return `${JSON.stringify(app.swagger(), null, 2)}\n`
  } finally {
    await app.close()
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const generated = await generateOpenApi()
  if (process.argv.includes('--check')) {
    let committed = ''
    try { committed = readFileSync(OPENAPI_FILE, 'utf8') } catch { /* missing counts as stale */ }
    if (committed !== generated) {
      console.error('openapi/openapi.json is stale: run `npm run openapi` and commit the result')
      process.exit(1)
    }
    console.log('openapi/openapi.json is current')
  } else {
    writeFileSync(OPENAPI_FILE, generated)
    console.log(`wrote ${OPENAPI_FILE}`)
  }
}
