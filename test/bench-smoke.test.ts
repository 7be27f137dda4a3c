import t from 'tap'
import { drizzle } from 'drizzle-orm/node-postgres'
import { eq, asc, sql } from 'drizzle-orm'
import * as schema from '../db/schema/index.js'
import { buildProductListQuery, productColumns } from '../routes/products/service.js'
import { BASELINE_SQL } from '../bench/baseline.js'
import { runBench, toMarkdown } from '../bench/bench.js'

// The benchmark is not a test: this proves its machinery still runs end to end on a tiny
// catalog (40 answers per scenario and server) and that the API and the baseline answer the same bytes.
// It asserts nothing about speed.

t.test('the baseline runs the SQL the API sends', async (t) => {
  const db = drizzle.mock({ schema }) as never as Parameters<typeof buildProductListQuery>[0]
  const { products, productVariants } = schema
  const id = '00000000-0000-4000-8000-000000000000'
  const listSql = (query: object) => buildProductListQuery(db, { limit: 20, ...query }, { isAdmin: false }).select.toSQL().sql
  t.equal(db.select(productColumns).from(products).where(eq(products.id, sql.placeholder('id'))).limit(1).toSQL().sql, BASELINE_SQL.productById)
  t.equal(db.select().from(productVariants).where(eq(productVariants.productId, sql.placeholder('productId')))
    .orderBy(asc(productVariants.position), asc(productVariants.createdAt)).toSQL().sql, BASELINE_SQL.variantsOf)
  // A listing finds the same rows in the same order; what it selects differs on purpose: the API
  // has PostgreSQL write each item's JSON (#29), the baseline maps columns and serialises in Node.
  const rowsPart = (text: string) => text.slice(text.indexOf(' from "products"')).replace(/\$\d+/g, '$')
  t.equal(rowsPart(listSql({})), rowsPart(BASELINE_SQL.newest))
  t.equal(rowsPart(listSql({ q: 'shirt' })), rowsPart(BASELINE_SQL.search))
  t.equal(rowsPart(listSql({ category: id })), rowsPart(BASELINE_SQL.category))
})

t.test('npm run bench runs every scenario against both servers, with identical bodies', { timeout: 300_000 }, async (t) => {
  const result = await runBench({ products: 40, seconds: 1, answersPerRound: 40, rounds: 1, connections: 4, checkoutRate: 4, flashBuyers: 30 })
  t.same(result.bodiesMatch, { 'product by id': true, 'list page': true, search: true, 'category filter': true })
  const names = result.scenarios.map((s) => s.name)
  for (const expected of ['GET /health', 'product by id', 'list page (20)', 'list page (20), 2 currencies + price list', 'text search', 'category filter', 'cart read', 'add to cart (+ remove)', 'login', 'checkout at 4/s', 'checkout burst (10 at once)', 'mixed: browse 90%, cart 8%, checkout 2%']) {
    t.ok(names.includes(expected), `ran ${expected}`)
  }
  for (const scenario of result.scenarios) {
    for (const [variant, m] of Object.entries(scenario.variants)) {
      t.equal(m.errors, 0, `${scenario.name} / ${variant}: no connection errors`)
      t.equal(m.non2xx, 0, `${scenario.name} / ${variant}: every answer 2xx`)
    }
  }
  // The cached variant of a read answers from the cache after the warm-up.
  t.ok(result.scenarios.find((s) => s.name === 'product by id')!.variants.api!.hitRate! > 0, 'cache hits seen via X-Cache')
  t.match(toMarkdown(result), /\| product by id \| baseline \|/)
  // The flash sale never oversells: 30 buyers of a variant with 10 units, all at once.
  const flash = result.flashSale!
  t.same({ orders: flash.hot.orders, refused: flash.hot.refused, other: flash.hot.other }, { orders: 10, refused: 20, other: 0 }, 'the hot variant sold exactly its 10 units, the rest refused with 409')
  t.same({ orders: flash.spread.orders, other: flash.spread.other }, { orders: 30, other: 0 }, 'every spread buyer got an order')
})
