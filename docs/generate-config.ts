import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { TSchema } from '@sinclair/typebox'
import { allowedValues, ConfigSchema, DEVELOPMENT_SECRETS, OIDC_PROVIDER_VARIABLES } from '../src/config.js'

// Writes docs/configuration.md from ConfigSchema (src/config.ts): the schema's defaults, bounds
// and descriptions are the only source, so the table cannot drift from what the process reads.
// `--check` fails when the committed file differs from what the schema generates (CI runs it,
// as it runs `npm run openapi:check`).
export const CONFIG_DOC_FILE = fileURLToPath(new URL('./configuration.md', import.meta.url))

const names = Object.keys(ConfigSchema.properties)
// What a description names: its own `spans`, links to these docs (docs/<file>.md#<section>),
// settings (with a value: NAME=value), and files of the repository.
const TOKEN = new RegExp(`(${[
  '`[^`]+`',
  'docs/[\\w-]+\\.md(?:#[\\w-]+)?',
  'OIDC_<NAME>_\\*',
  `\\b(?:${names.join('|')})(?:=[\\w.-]+)?\\b`,
  '\\b(?:src|test|db|routes|plugins)/[\\w./-]+\\.(?:ts|sh)\\b',
].join('|')})`, 'g')

/** A description as a table cell: names and files in code, links to docs as links, and nothing
 * that markdown would read as a tag or a cell break. */
function cell(text: string): string {
  return text.split(TOKEN).map((part, i) => {
    if (i % 2 === 0) return part.replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
    if (part.startsWith('`')) return part
    if (part.startsWith('docs/')) return `[${part.slice('docs/'.length)}](${part.slice('docs/'.length)})`
    return `\`${part}\``
  }).join('')
}

const code = (value: string) => `\`${value.replaceAll('|', '\\|')}\``

function mebibytes(bytes: number): string {
  const mib = bytes / 1024 / 1024
  return mib >= 1024 ? `${mib / 1024} GiB` : mib >= 1 ? `${mib} MiB` : `${bytes / 1024} KiB`
}

function defaultOf(name: string, schema: TSchema & { default?: unknown }): string {
  if (schema.default === undefined) return 'unset'
  if (DEVELOPMENT_SECRETS.has(schema.default)) return 'a development value'
  const value = code(String(schema.default))
  return name.endsWith('_BYTES') && typeof schema.default === 'number' ? `${value} (${mebibytes(schema.default)})` : value
}

export function generateConfigDoc(): string {
  const rows = Object.entries(ConfigSchema.properties as Record<string, TSchema & { default?: unknown }>).map(([name, schema]) =>
    `| ${code(name)} | ${defaultOf(name, schema)} | ${allowedValues(schema) ?? ''} | ${cell(schema.description ?? '')} |`)
  const oidcRows = Object.entries(OIDC_PROVIDER_VARIABLES).map(([key, variable]) =>
    `| ${code(`OIDC_<NAME>_${key}`)} | ${'default' in variable ? code(variable.default) : 'required'} | ${cell(variable.description)} |`)
  return `# Configuration

<!-- Generated from ConfigSchema in src/config.ts by \`npm run docs:config\`; do not edit by hand.
     \`npm run docs:check\` (in CI) fails when this file is stale. -->

Every setting is read from the environment and validated at start-up; a bad value stops the
process with one line naming the variable, what it accepts and what it means. Empty counts as
unset. With none set, \`npm start\` runs on embedded stores and development secrets; production
(\`NODE_ENV=production\`) refuses both. To change a setting's text, default or bounds, edit
\`ConfigSchema\` in \`src/config.ts\` and run \`npm run docs:config\`.

| variable | default | accepts | meaning |
| --- | --- | --- | --- |
${rows.join('\n')}

## OpenID Connect providers

Each name in \`OIDC_PROVIDERS\` reads these variables, with \`<NAME>\` its name upper-cased
(\`OIDC_PROVIDERS=keycloak\` reads \`OIDC_KEYCLOAK_ISSUER\`, ...). How sign-in with them works:
[accounts.md](accounts.md#sign-in-with-openid-connect-providers).

| variable | default | meaning |
| --- | --- | --- |
${oidcRows.join('\n')}

## Tracing

OpenTelemetry tracing is configured by the standard \`OTEL_*\` variables, read by the SDK itself
(off unless \`OTEL_TRACES_EXPORTER\` or \`OTEL_EXPORTER_OTLP_ENDPOINT\` asks for it): see
[operations.md](operations.md#tracing).
`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const generated = generateConfigDoc()
  if (process.argv.includes('--check')) {
    let committed = ''
    try { committed = readFileSync(CONFIG_DOC_FILE, 'utf8') } catch { /* missing counts as stale */ }
    if (committed !== generated) {
      console.error(`stale: ${CONFIG_DOC_FILE}: run \`npm run docs:config\` and commit the result`)
      process.exit(1)
    }
    console.log('docs/configuration.md is current')
  } else {
    writeFileSync(CONFIG_DOC_FILE, generated)
    console.log(`wrote ${CONFIG_DOC_FILE}`)
  }
}
