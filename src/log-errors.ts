import { stdSerializers } from 'pino'
import { pgError } from '../db/client.js'

// Errors as the logs show them: pino's serializer (type, message and stack with their causes',
// own fields) with the values that database errors quote taken out. drizzle's DrizzleQueryError
// puts the statement's parameters in its message and `params` (addresses, password and token
// hashes); PostgreSQL's `detail` quotes the key or the whole failing row. The statement, with its
// $1 placeholders, and the error code stay: they are what an operator needs.

const MAX_CAUSES = 10

type Serialized = ReturnType<typeof stdSerializers.err> & Record<string, unknown>

/** The errors of a chain, outermost first. */
function chainOf(err: unknown): Error[] {
  const chain: Error[] = []
  for (let e = err; e instanceof Error && chain.length < MAX_CAUSES; e = e.cause) chain.push(e)
  return chain
}

/** What the errors of a chain quote, each with what stands in its place. */
function quotedIn(chain: Error[]): [string, string][] {
  const quoted: [string, string][] = []
  for (const e of chain) {
    const { params, detail } = e as { params?: unknown; detail?: unknown }
    if (Array.isArray(params) && params.length) quoted.push([`params: ${String(params)}`, `params: [${params.length} redacted]`])
    if (typeof detail === 'string' && detail) quoted.push([detail, '[redacted]'])
  }
  return quoted
}

function scrub(text: string, quoted: [string, string][]): string {
  for (const [value, replacement] of quoted) text = text.replaceAll(value, replacement)
  return text
}

/** The pino `err` serializer of the API and the worker. */
export function serializeError(err: Error): Serialized {
  const out = stdSerializers.err(err) as Serialized
  if (!(err instanceof Error)) return out
  const quoted = quotedIn(chainOf(err))
  if (Array.isArray(out.params)) out.params = `[${out.params.length} redacted]`
  if (typeof out.detail === 'string') out.detail = '[redacted]'
  if (quoted.length) {
    for (const [key, value] of Object.entries(out)) if (typeof value === 'string') out[key] = scrub(value, quoted)
  }
  // The database's own error is a cause, whose fields pino leaves out: its code and constraint say what failed.
  const db = pgError(err)
  if (db && out.code === undefined) out.dbError = db
  return out
}

/**
 * Why a background run failed, as its row's `last_error` keeps it: the messages of the error and
 * its causes (drizzle's "Failed query" says which statement, its cause what PostgreSQL answered),
 * with what they quote taken out as in the logs, at most 1,000 characters.
 */
export function failureText(err: unknown): string {
  const chain = chainOf(err)
  if (!chain.length) return String(err).slice(0, 1000)
  const quoted = quotedIn(chain)
  return chain.map((e) => scrub(e.message, quoted)).join('; cause: ').slice(0, 1000)
}
