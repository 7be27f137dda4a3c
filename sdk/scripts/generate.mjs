// Generates src/generated/ from the committed contract (../openapi/openapi.json): the types
// (openapi-typescript) and the few facts the runtime reads from the contract (which operations
// take an Idempotency-Key). Fails when this package's version is not the contract's.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'

const here = (path) => fileURLToPath(new URL(path, import.meta.url))
const contract = JSON.parse(readFileSync(here('../../openapi/openapi.json'), 'utf8'))
const pkg = JSON.parse(readFileSync(here('../package.json'), 'utf8'))
if (pkg.version !== contract.info.version) {
  console.error(`sdk/package.json version ${pkg.version} is not the contract's info.version ${contract.info.version}; they move together`)
  process.exit(1)
}

const idempotent = []
for (const [path, item] of Object.entries(contract.paths)) {
  for (const [method, operation] of Object.entries(item)) {
    if ((operation.parameters ?? []).some((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key')) {
      idempotent.push(`${method.toUpperCase()} ${path}`)
    }
  }
}

const banner = '// Generated from openapi/openapi.json by sdk/scripts/generate.mjs; do not edit.\n'
mkdirSync(here('../src/generated'), { recursive: true })
writeFileSync(here('../src/generated/schema.ts'), banner + astToString(await openapiTS(contract)))
writeFileSync(here('../src/generated/contract.ts'), `${banner}export const CONTRACT_VERSION = ${JSON.stringify(contract.info.version)}
/** Operations ("METHOD /path") that accept an Idempotency-Key: the SDK sends one and may retry them. */
export const IDEMPOTENT_OPERATIONS: ReadonlySet<string> = new Set(${JSON.stringify(idempotent.sort(), null, 2)})
`)
