import t from 'tap'
import { drizzle } from 'drizzle-orm/node-postgres'
import * as schema from '../../db/schema/index.js'
import { encodeCursor } from '../../src/pagination.js'
import { buildProductListQuery, type ListQuery } from '../../routes/products/service.js'

// The product listing query as routes/products builds it, before anything runs: which sort, which
// prepared-statement shape, which parameters, and which cursors each sort accepts. A drizzle
// database without a connection renders the statement.

const db = drizzle.mock({ schema })
const customer = { isAdmin: false }
const admin = { isAdmin: true }
const UUID = '0b7c6f0e-2d4a-4c1b-9a7e-3f2d1c0b9a8e'
const build = (query: Partial<ListQuery>, viewer = customer) => buildProductListQuery(db, { limit: 20, ...query }, viewer)

t.test('the sort: newest by default, relevance with a search, relevance only with one', async (t) => {
  t.equal(build({}).sort, 'newest')
  t.equal(build({ q: 'mug' }).sort, 'relevance')
  t.equal(build({ q: 'mug', sort: 'price_asc' }).sort, 'price_asc', 'a search may sort otherwise')
  t.throws(() => build({ sort: 'relevance' }), { name: 'AppError', statusCode: 400, slug: 'invalid-sort' })
})

t.test('the price range: min above max is a 400, equal is a single price', async (t) => {
  t.throws(() => build({ minPrice: 1001, maxPrice: 1000 }), { statusCode: 400, message: /minPrice is above maxPrice/ })
  t.match(build({ minPrice: 1000, maxPrice: 1000 }).params, { minPrice: 1000, maxPrice: 1000 })
  t.match(build({ minPrice: 0 }).params, { minPrice: 0 }, 'a minimum of 0 is a filter')
  t.equal(build({ minPrice: 0 }).shape, build({ minPrice: 500 }).shape, '... with the same shape as any other minimum')
})

t.test('customers see active products whatever they ask; admins choose', async (t) => {
  t.equal(build({ status: 'draft' }).params.status, 'active')
  t.equal(build({ status: 'draft' }, admin).params.status, 'draft')
  t.equal(build({}, admin).params.status, 'active', 'admins too, unless they ask')
})

t.test('one prepared statement per shape: values are parameters, never statement text', async (t) => {
  const hostile = "x'); drop table products; --"
  const query = build({ q: hostile, minPrice: 10, limit: 5 })
  t.equal(query.shape, 'product_list_relevance_101000', 'sort, then q, category, minPrice, maxPrice, inStock, cursor')
  t.equal(query.params.limit, 6, 'one row more than the page, to know whether there is a next one')
  t.equal(query.params.q, hostile)
  const { sql } = query.select.toSQL()
  t.notMatch(sql, /drop table/)
  t.match(sql, /"min_price_minor" >= \$\d+/)
  t.equal(build({ q: 'other words', minPrice: 99_999, limit: 50 }).shape, query.shape, 'other values, the same statement')
  t.equal(build({ category: UUID, inStock: true, maxPrice: 1 }).shape, 'product_list_newest_010110', 'category, maxPrice and inStock')
  t.not(build({ inStock: false }).shape, build({ inStock: true }).shape, 'inStock=false is no filter')
})

t.test('each sort takes only its own cursors', async (t) => {
  t.match(build({ sort: 'price_asc', cursor: encodeCursor([1999, UUID]) }).params, { after0: 1999, after1: UUID }, 'a price and an id')
  t.equal(build({ sort: 'price_asc', cursor: encodeCursor([1999, UUID]) }).shape, 'product_list_price_asc_000001', 'a cursor is part of the shape')
  t.throws(() => build({ sort: 'price_asc', cursor: encodeCursor([19.99, UUID]) }), { name: 'AppError', statusCode: 400, slug: 'invalid-cursor' }, 'a price is a whole number of minor units')
  t.throws(() => build({ sort: 'price_desc', cursor: encodeCursor(['2030-01-01T00:00:00.000Z', UUID]) }), { name: 'AppError', slug: 'invalid-cursor' }, 'a newest cursor on a price sort')
  t.throws(() => build({ cursor: encodeCursor([1999, UUID]) }), { name: 'AppError', slug: 'invalid-cursor' }, 'a price cursor on the default (newest) sort')
  t.match(build({ cursor: encodeCursor(['2030-01-01T00:00:00.000Z', UUID]) }).params, { after0: '2030-01-01T00:00:00.000Z' })
  t.match(build({ sort: 'rating', cursor: encodeCursor(['4.50', UUID]) }).params, { after0: '4.50' })
  t.throws(() => build({ sort: 'rating', cursor: encodeCursor([4.5, UUID]) }), { name: 'AppError', slug: 'invalid-cursor' }, 'a rating is the decimal text PostgreSQL gave')
  t.match(build({ sort: 'name', cursor: encodeCursor(['Mug', UUID]) }).params, { after0: 'Mug' })
  t.match(build({ q: 'mug', cursor: encodeCursor([0.0607927, UUID]) }).params, { after0: 0.0607927 }, 'a relevance rank')
})
