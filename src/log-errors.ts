import { stdSerializers } from 'pino'
import { pgError } from '../db/client.js'

// Errors as the logs show them: pino's serializer (type, message and stack with their causes',
// own fields) with the values that database errors quote taken out. drizzle's DrizzleQueryError
// puts the statement's parameters in its message and `params` (addresses, password and token
// hashes); PostgreSQL's `detail` quotes the key or the whole failing row. The statement, with its
// $1 placeholders, and the error code stay: they are what an operator needs.

const MAX_CAUSES = 10

type Serialized = ReturnType<typeof stdSerializers.err> & Record<string, unknown>

/** The pino `err` serializer of the API and the worker. */
export function serializeError(err: Error): Serialized {
  const out = stdSerializers.err(err) as Serialized
  if (!(err instanceof Error)) return out
  // What each error in the chain quotes, and what stands in its place.
  const quoted: [string, string][] = []
  let e: unknown = err
  for (let depth = 0; e instanceof Error && depth < MAX_CAUSES; depth++, e = e.cause) {
    const { params, detail } = e as { params?: unknown; detail?: unknown }
    if (Array.isArray(params) && params.length) quoted.push([`params: ${String(params)}`, `params: [${params.length} redacted]`])
    if (typeof detail === 'string' && detail) quoted.push([detail, '[redacted]'])
  }
  if (Array.isArray(out.params)) out.params = `[${out.params.length} redacted]`
  if (typeof out.detail === 'string') out.detail = '[redacted]'
  if (quoted.length) {
    for (const [key, value] of Object.entries(out)) {
      if (typeof value !== 'string') continue
      let scrubbed = value
      for (const [text, replacement] of quoted) scrubbed = scrubbed.replaceAll(text, replacement)
      out[key] = scrubbed
    }
  }
  // The database's own error is a cause, whose fields pino leaves out: its code and constraint say what failed.
  const db = pgError(err)
  if (db && out.code === undefined) out.dbError = db
  return out
}
