import t from 'tap'
import { PgDialect } from 'drizzle-orm/pg-core'
import { orders } from '../../db/schema/index.js'
import { AppError } from '../../src/errors.js'
import { PAGE_LIMIT_DEFAULT, decodeCursor, encodeCursor, newestFirst, paged, toPage, type CursorPart } from '../../src/pagination.js'

// Keyset cursors (src/pagination.ts): opaque base64url JSON of the last row's sort key, checked
// part by part before any value reaches SQL.

const UUID = '0b7c6f0e-2d4a-4c1b-9a7e-3f2d1c0b9a8e'
const raw = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
const invalid = { name: 'AppError', statusCode: 400, slug: 'invalid-cursor' }

t.test('a cursor round-trips its key, and is URL-safe', async (t) => {
  const key = ['2024-02-29T23:59:59.999Z', UUID] as const
  const cursor = encodeCursor(key)
  t.match(cursor, /^[A-Za-z0-9_-]+$/, 'base64url, no padding')
  t.same(decodeCursor(cursor, ['date', 'uuid']), key)
  t.same(decodeCursor(encodeCursor([-3, 0, 2.5, 'Ünïcødé ✓', '12.5']), ['integer', 'integer', 'number', 'string', 'decimal']), [-3, 0, 2.5, 'Ünïcødé ✓', '12.5'])
  t.same(decodeCursor(encodeCursor([UUID.toUpperCase()]), ['uuid']), [UUID.toUpperCase()], 'uuids in either case')
})

t.test('what is not a cursor of this listing is a 400, never passed on', async (t) => {
  const cases: [string, string, readonly CursorPart[]][] = [
    ['empty', '', ['uuid']],
    ['not base64 of JSON', 'definitely not a cursor!', ['uuid']],
    ['JSON but not an array', raw({ id: UUID }), ['uuid']],
    ['too few parts', raw([UUID]), ['date', 'uuid']],
    ['too many parts', raw(['2024-01-01T00:00:00.000Z', UUID, 1]), ['date', 'uuid']],
    ['a number for a uuid', raw([1]), ['uuid']],
    ['a uuid one digit short', raw([UUID.slice(1)]), ['uuid']],
    ['a uuid with SQL after it', raw([`${UUID}' or 1=1 --`]), ['uuid']],
    ['a fraction for an integer (a price)', raw([1.5, UUID]), ['integer', 'uuid']],
    ['an integer beyond 2^53', raw([2 ** 53, UUID]), ['integer', 'uuid']],
    ['a numeric string for a number', raw(['1', UUID]), ['number', 'uuid']],
    ['Infinity (JSON writes null)', encodeCursor([Infinity, UUID]), ['number', 'uuid']],
    ['null', raw([null]), ['string']],
    ['a string of 1001 characters', raw(['x'.repeat(1001)]), ['string']],
    ['a decimal as a number', raw([4.5]), ['decimal']],
    ['a decimal with 13 integer digits', raw(['1234567890123']), ['decimal']],
    ['a decimal with 7 decimals', raw(['1.1234567']), ['decimal']],
    ['a decimal in exponent form', raw(['1e5']), ['decimal']],
    ['a date without milliseconds', raw(['2024-01-01T00:00:00Z']), ['date']],
    ['a date with an offset', raw(['2024-01-01T00:00:00.000+01:00']), ['date']],
    ['February 30th (JavaScript would read March 1st)', raw(['2021-02-30T00:00:00.000Z']), ['date']],
    ['year 0', raw(['0000-01-01T00:00:00.000Z']), ['date']],
    ['hour 24', raw(['2024-01-01T24:00:00.000Z']), ['date']],
    ['a date as epoch milliseconds', raw([1_700_000_000_000]), ['date']],
  ]
  for (const [what, cursor, parts] of cases) t.throws(() => decodeCursor(cursor, parts), invalid, what)
  t.type(t.throws(() => decodeCursor('', ['uuid'])), AppError)
})

t.test('the edges each part accepts', async (t) => {
  t.same(decodeCursor(raw(['x'.repeat(1000)]), ['string']), ['x'.repeat(1000)], '1000 characters')
  t.same(decodeCursor(raw(['']), ['string']), [''], 'an empty string')
  t.same(decodeCursor(raw([Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER]), ['integer', 'integer']), [Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER])
  t.same(decodeCursor(raw(['-123456789012.123456', '0']), ['decimal', 'decimal']), ['-123456789012.123456', '0'])
  t.same(decodeCursor(raw(['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']), ['date', 'date']), ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z'], 'years 1 to 9999')
  t.same(decodeCursor(raw(['2024-02-29T12:00:00.000Z']), ['date']), ['2024-02-29T12:00:00.000Z'], 'a leap day')
})

t.test('toPage: one row more than the page says there is a next page', async (t) => {
  const rows = [{ id: 'a', n: 1 }, { id: 'b', n: 2 }, { id: 'c', n: 3 }]
  const page = toPage(rows, 2, (r) => [r.n, r.id])
  t.same(page.items.map((r) => r.id), ['a', 'b'])
  t.same(decodeCursor(page.nextCursor!, ['integer', 'string']), [2, 'b'], 'the cursor is the last row kept, not the extra one')
  t.same(toPage(rows, 3, (r) => [r.n]), { items: rows, nextCursor: null }, 'exactly a page: the last page')
  t.same(toPage(rows.slice(0, 1), 5, (r) => [r.n]), { items: rows.slice(0, 1), nextCursor: null })
  t.same(toPage([], 5, (r: { n: number }) => [r.n]), { items: [], nextCursor: null })
})

t.test('paged fills in the default limit and keeps one given', async (t) => {
  const query: { limit?: number; cursor?: string } = { cursor: 'c' }
  t.same(paged(query), { cursor: 'c', limit: PAGE_LIMIT_DEFAULT })
  t.equal(PAGE_LIMIT_DEFAULT, 20)
  t.same(paged({ limit: 1 }), { limit: 1 })
})

t.test('newestFirst: the cursor of the last row, and a filter with its values bound', async (t) => {
  const keyset = newestFirst(orders.createdAt, orders.id)
  t.equal(keyset.after(undefined), undefined, 'the first page has no filter')
  const createdAt = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 6))
  const page = keyset.page([{ id: UUID, createdAt }, { id: 'next', createdAt }], 1)
  t.same(decodeCursor(page.nextCursor!, ['date', 'uuid']), ['2030-01-02T03:04:05.006Z', UUID])
  const { sql, params } = new PgDialect().sqlToQuery(keyset.after(page.nextCursor!)!)
  t.same(params, ['2030-01-02T03:04:05.006Z', UUID], 'the values go as parameters')
  t.match(sql, /\("orders"\."created_at", "orders"\."id"\) < \(\$1::timestamptz, \$2::uuid\)/)
  t.throws(() => keyset.after(encodeCursor([1, 2])), invalid, 'a cursor of another listing')
})
