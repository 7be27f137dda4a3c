import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'

// Writes openapi/openapi.json from the app itself, without listening and without any service:
// PGlite in memory, the in-process Redis stand-in, no MongoDB. `--check` fails when the
// committed file differs from what the code generates.
export const OPENAPI_FILE = fileURLToPath(new URL('./openapi.json', import.meta.url))
// The typed client SDK's types (openapi-typescript), used with openapi-fetch; see docs/contract.md.
export const SDK_TYPES_FILE = fileURLToPath(new URL('./schema.d.ts', import.meta.url))

export async function generateSdkTypes(document: string): Promise<string> {
  const ast = await openapiTS(JSON.parse(document))
  return `// Generated from openapi/openapi.json by \`npm run openapi\`; do not edit.\n${astToString(ast)}`
}

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
  const document = await generateOpenApi()
  const outputs: [string, string][] = [[OPENAPI_FILE, document], [SDK_TYPES_FILE, await generateSdkTypes(document)]]
  if (process.argv.includes('--check')) {
    const stale = outputs.filter(([file, generated]) => {
      try { return readFileSync(file, 'utf8') !== generated } catch { return true }
    })
    if (stale.length) {
      console.error(`stale: ${stale.map(([f]) => f).join(', ')}: run \`npm run openapi\` and commit the result`)
      process.exit(1)
    }
    console.log('openapi/openapi.json and openapi/schema.d.ts are current')
  } else {
    for (const [file, generated] of outputs) writeFileSync(file, generated)
    console.log(`wrote ${outputs.map(([f]) => f).join(', ')}`)
  }
}
