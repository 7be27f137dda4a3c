import { Type, type TSchema } from '@sinclair/typebox'
import { desc, sql, type SQL } from 'drizzle-orm'
import type { AnyPgColumn } from 'drizzle-orm/pg-core'
import { BadRequest } from './errors.js'

// The one paging helper: a bounded `limit` and an opaque keyset `cursor`, answered as
// { items, nextCursor }. The cursor is the sort key of the last item, base64url-encoded JSON.

export const PAGE_LIMIT_DEFAULT = 20
export const PAGE_LIMIT_MAX = 100

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE_LIMIT_MAX, default: PAGE_LIMIT_DEFAULT, description: `page size, at most ${PAGE_LIMIT_MAX}` })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'nextCursor of the previous page' })),
}

export const pageOf = (item: TSchema, $id: string) => Type.Object({
  items: Type.Array(item),
  nextCursor: Type.Union([Type.Null(), Type.String()], { description: 'pass as `cursor` for the next page; null on the last page' }),
}, { $id, additionalProperties: false })

export function encodeCursor(key: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

// What each position of a cursor may hold; checked before any value reaches SQL.
const CURSOR_PARTS = {
  number: (v: unknown) => typeof v === 'number' && Number.isFinite(v),
  // Integer columns (prices in minor units): 1.5 would reach SQL as text it cannot cast.
  integer: (v: unknown) => Number.isSafeInteger(v),
  string: (v: unknown) => typeof v === 'string' && v.length <= 1000,
  uuid: (v: unknown) => typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
  // Exactly what toISOString wrote, years 0001-9999: JavaScript reads 2021-02-30 as March 1st and
  // year 0 as a date, which PostgreSQL refuses and MongoDB would page from silently.
  date: (v: unknown) => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(v) && !v.startsWith('0000')
    && !Number.isNaN(Date.parse(v)) && new Date(v).toISOString() === v,
  decimal: (v: unknown) => typeof v === 'string' && /^-?\d{1,12}(\.\d{1,6})?$/.test(v),
}
export type CursorPart = keyof typeof CURSOR_PARTS

/** Decodes a cursor made by encodeCursor with the given parts, or answers 400. */
export function decodeCursor<const K extends readonly CursorPart[]>(cursor: string, parts: K): { [I in keyof K]: K[I] extends 'number' | 'integer' ? number : string } {
  let key: unknown
  try { key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) } catch { key = undefined }
  if (!Array.isArray(key) || key.length !== parts.length || key.some((v, i) => !CURSOR_PARTS[parts[i]!](v))) {
    throw new BadRequest('The cursor is not valid for this listing', 'invalid-cursor')
  }
  return key as never
}

/** Trims a page fetched with limit + 1 rows and computes nextCursor from the last kept row. */
export function toPage<T>(rows: T[], limit: number, keyOf: (row: T) => readonly (string | number)[]) {
  const items = rows.slice(0, limit)
  const last = items[items.length - 1]
  return { items, nextCursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null }
}

/** Newest-first keyset paging on (created_at, id), the order most listings use. */
export function newestFirst(createdAt: AnyPgColumn, id: AnyPgColumn) {
  return {
    orderBy: [desc(createdAt), desc(id)],
    /** The filter for "after the cursor's row", or undefined on the first page. */
    after(cursor: string | undefined): SQL | undefined {
      if (!cursor) return undefined
      const [at, rowId] = decodeCursor(cursor, ['date', 'uuid'])
      return sql`(${createdAt}, ${id}) < (${at}::timestamptz, ${rowId}::uuid)`
    },
    page<T extends { createdAt: Date; id: string }>(rows: T[], limit: number) {
      return toPage(rows, limit, (r) => [r.createdAt.toISOString(), r.id])
    },
  }
}

/** A page query with its limit filled in (the schema's default), as services take it. */
export function paged<T extends { limit?: number }>(query: T): T & { limit: number } {
  return { ...query, limit: query.limit ?? PAGE_LIMIT_DEFAULT }
}
