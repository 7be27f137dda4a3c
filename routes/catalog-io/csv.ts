import { Readable, Transform } from 'node:stream'
import { parse, type Parser } from 'csv-parse'
import { currencyDigits } from '../../src/prices.js'

// The CSV format of catalog imports and exports (docs/import-export.md), as pure functions: the
// columns, money in major units, the spreadsheet-formula guard, and the streamed parser.

/** Fixed columns, in the order an export writes them; option_*, price_* and stock_* follow, then LATER_COLUMNS. */
export const FIXED_COLUMNS = ['handle', 'name', 'description', 'status', 'category', 'sku', 'weight_grams'] as const
/** Columns added after the first format, written after stock_* (so files of the first format read as before); compare_at_* and attribute_* follow. */
export const LATER_COLUMNS = ['active', 'images'] as const
const KNOWN_COLUMNS: readonly string[] = [...FIXED_COLUMNS, ...LATER_COLUMNS]
export type FixedColumn = (typeof FIXED_COLUMNS)[number] | (typeof LATER_COLUMNS)[number]
/** Product images in the images cell: upload ids, separated by | (in display order). */
export const IMAGE_SEPARATOR = '|'

export interface Header {
  /** Column index of each fixed column the file has. */
  fixed: Partial<Record<FixedColumn, number>>
  /** option_<name>: the option name and its column. */
  options: { name: string; index: number; column: string }[]
  /** price_<ISO 4217>. */
  prices: { currency: string; index: number; column: string }[]
  /** stock_<location name>, the name as written. */
  stocks: { location: string; index: number; column: string }[]
  /** compare_at_<ISO 4217>: the variant's "was" price (the store currency only). */
  compareAt?: { currency: string; index: number; column: string }
  /** attribute_<name>: a product attribute. */
  attributes: { name: string; index: number; column: string }[]
  width: number
  names: string[]
}

/** Reads the header row; unknown or repeated columns and missing required ones are errors (the file is refused). */
export function readHeader(cells: string[]): { header: Header; problems: { column: string; reason: string }[] } {
  const header: Header = { fixed: {}, options: [], prices: [], stocks: [], attributes: [], width: cells.length, names: cells.map((c) => c.trim()) }
  const problems: { column: string; reason: string }[] = []
  const seen = new Set<string>()
  header.names.forEach((name, index) => {
    const lower = name.toLowerCase()
    if (seen.has(lower)) { problems.push({ column: name, reason: 'column appears twice' }); return }
    seen.add(lower)
    if (KNOWN_COLUMNS.includes(lower)) header.fixed[lower as FixedColumn] = index
    else if (lower.startsWith('option_') && name.length > 7) header.options.push({ name: name.slice(7), index, column: name })
    else if (/^price_[a-z]{3}$/i.test(name)) {
      const currency = name.slice(6).toUpperCase()
      if (currencyDigits(currency) === undefined) problems.push({ column: name, reason: `${currency} is not an ISO 4217 currency` })
      else header.prices.push({ currency, index, column: name })
    } else if (/^compare_at_[a-z]{3}$/i.test(name)) {
      const currency = name.slice(11).toUpperCase()
      if (currencyDigits(currency) === undefined) problems.push({ column: name, reason: `${currency} is not an ISO 4217 currency` })
      else if (header.compareAt) problems.push({ column: name, reason: `one compare_at column only (${header.compareAt.column} is there)` })
      else header.compareAt = { currency, index, column: name }
    } else if (lower.startsWith('attribute_') && name.length > 10) header.attributes.push({ name: name.slice(10), index, column: name })
    else if (lower.startsWith('stock_') && name.length > 6) header.stocks.push({ location: name.slice(6), index, column: name })
    else problems.push({ column: name || `#${index + 1}`, reason: 'unknown column (expected handle, name, description, status, category, sku, weight_grams, active, images, option_<name>, price_<currency>, compare_at_<currency>, stock_<location>, attribute_<name>)' })
  })
  for (const required of ['handle', 'name', 'sku'] as const) {
    if (header.fixed[required] === undefined) problems.push({ column: required, reason: 'required column is missing' })
  }
  return { header, problems }
}

/** "12.99" in a currency with 2 digits -> 1299; null when it is not a non-negative amount with at most that many decimals. */
export function parseMoney(text: string, currency: string): number | null {
  const digits = currencyDigits(currency) ?? 2
  const m = /^(\d{1,12})(?:\.(\d+))?$/.exec(text.trim())
  if (!m) return null
  const fraction = m[2] ?? ''
  if (fraction.length > digits) return null
  const minor = Number(m[1]) * 10 ** digits + Number(fraction.padEnd(digits, '0') || '0')
  return Number.isSafeInteger(minor) ? minor : null
}

/** 1299 in a currency with 2 digits -> "12.99" (exact: integer arithmetic on the text). */
export function formatMoney(minor: number, currency: string): string {
  const digits = currencyDigits(currency) ?? 2
  if (digits === 0) return String(minor)
  const text = String(minor).padStart(digits + 1, '0')
  return `${text.slice(0, -digits)}.${text.slice(-digits)}`
}

// A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
const FORMULA_START = /^[=+\-@\t\r]/

/** A cell holding exactly this clears the value on import (an empty cell leaves it as it is). */
export const CLEAR_CELL = '[clear]'

/**
 * An exported cell that a spreadsheet shows as text: a leading apostrophe before a formula start;
 * also before a value that is exactly CLEAR_CELL, so it imports back as that text, not as a clear.
 */
export const safeCell = (value: string) => (FORMULA_START.test(value) || value === CLEAR_CELL ? `'${value}` : value)
/** The inverse on import, so an exported file imports back to the same text. */
export const unsafeCell = (value: string) => (value.startsWith("'") && (FORMULA_START.test(value.slice(1)) || value.slice(1) === CLEAR_CELL) ? value.slice(1) : value)

/** Comma or semicolon: whichever the header line has more of outside quotes (comma on a tie). */
export function sniffDelimiter(firstLine: string): ',' | ';' {
  let commas = 0
  let semicolons = 0
  let quoted = false
  for (const ch of firstLine) {
    if (ch === '"') quoted = !quoted
    else if (!quoted && ch === ',') commas++
    else if (!quoted && ch === ';') semicolons++
  }
  return semicolons > commas ? ';' : ','
}

/** Reads the start of a stream (up to the first line break or 64 KiB) without consuming it: the head and a stream of everything. */
export async function peekFirstLine(source: Readable): Promise<{ firstLine: string; stream: Readable }> {
  const chunks: Buffer[] = []
  let size = 0
  // One iterator for the head and the rest: leaving a for-await early would destroy the source.
  const it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
  for (;;) {
    const { value, done } = await it.next()
    if (done) break
    chunks.push(value)
    size += value.length
    if (value.includes(0x0a) || size >= 65_536) break
  }
  const head = Buffer.concat(chunks)
  const text = head.toString('utf8').replace(/^\ufeff/, '')
  const firstLine = text.split(/\r?\n/)[0] ?? ''
  async function* rest() {
    yield head
    for (;;) {
      const { value, done } = await it.next()
      if (done) return
      yield value
    }
  }
  return { firstLine, stream: Readable.from(rest(), { objectMode: false }) }
}

export interface CsvRecord { line: number; cells: string[] }

/**
 * The records of a CSV stream, one at a time (memory stays bounded): UTF-8 with or without BOM,
 * the delimiter given, quoted fields with line breaks, CRLF or LF. `line` is the line the record
 * starts on (1 is the header). `onBytes` sees the bytes read so far, for progress.
 */
export async function* readRecords(source: Readable, delimiter: string, onBytes?: (bytes: number) => void): AsyncGenerator<CsvRecord> {
  let bytes = 0
  const counter = new Transform({
    transform(chunk: Buffer, _enc, done) { bytes += chunk.length; onBytes?.(bytes); done(null, chunk) },
  })
  const parser: Parser = parse({
    bom: true, delimiter, info: true, relax_column_count: true, skip_empty_lines: true,
    record_delimiter: ['\r\n', '\n', '\r'], max_record_size: 1_000_000,
  })
  source.on('error', (err) => parser.destroy(err))
  source.pipe(counter).pipe(parser)
  // info.lines is the line a record ends on, as the parser counts: a CRLF inside quotes counts
  // as two there, one here (what an editor shows). The record's own line breaks say where it started.
  let crlfInQuotes = 0
  for await (const item of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
    let breaks = 0
    for (const cell of item.record) {
      if (!cell.includes('\n') && !cell.includes('\r')) continue
      breaks += cell.match(/\r\n|\n|\r/g)?.length ?? 0
      crlfInQuotes += cell.match(/\r\n/g)?.length ?? 0
    }
    yield { line: item.info.lines - crlfInQuotes - breaks, cells: item.record }
  }
}
