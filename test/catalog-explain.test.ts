import t from 'tap'
import pg from 'pg'
import { fillPlaceholders } from 'drizzle-orm'
import { buildProductListQuery, decidedByPrice, type ListQuery } from '../routes/products/service.js'
import { buildTestApp, createTestDatabase } from './helpers.js'
import { refreshListLowestPrices } from '../src/prices.js'

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: PlanNode[] }
const walk = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(walk)]

// A 100k-product catalog made in SQL, then EXPLAIN of exactly the queries the listing runs.
t.test('listing a 100k-product catalog uses the indexes, never a sequential scan of products', async (t) => {
  const db = await createTestDatabase(t)
  const app = await buildTestApp(t, { DATABASE_URL: db.url })
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(() => client.end())

  await client.query(`insert into categories (name, slug) select 'Category ' || g, 'category-' || g from generate_series(1, 50) g`)
  await client.query(`
    with c as (select array_agg(id order by slug) ids from categories)
    insert into products (slug, name, description, status, category_id, min_price_minor, max_price_minor, rating_count, rating_sum, created_at)
    select 'product-' || g,
           'Product ' || g || ' ' || (array['wool','cotton','linen','silk','denim'])[1 + g % 5],
           'A ' || (array['warm','cool','soft','light','sturdy'])[1 + g % 7 % 5] || ' piece' || case when g % 1000 = 0 then ' of cashmere' else '' end,
           case when g % 10 = 0 then 'draft'::product_status else 'active'::product_status end,
           c.ids[1 + g % 50], 100 + (g * 7919) % 50000, 100 + (g * 7919) % 50000 + 500, g % 20, (g % 20) * (1 + g % 5),
           now() - (g || ' seconds')::interval
    from generate_series(1, 100000) g, c`)
  await client.query(`
    insert into product_variants (product_id, sku, price_minor, stock, is_active)
    select id, 'SKU-' || slug, min_price_minor, case when min_price_minor % 3 = 0 then 0 else 5 end, true from products`)
  await client.query(`update products p set in_stock = exists (select 1 from product_variants v where v.product_id = p.id and v.stock > 0), has_active_variant = true`)
  await client.query('analyze')
  const { rows: counted } = await client.query<{ count: string }>('select count(*) from products')
  t.equal(Number(counted[0]?.count), 100_000)
  const { rows: [category] } = await client.query<{ id: string }>(`select id from categories where slug = 'category-7'`)

  async function plan(query: Partial<ListQuery>, lists: string[] = [], salesOnly = false) {
    const listing = buildProductListQuery(app.db, { limit: 20, ...query }, { isAdmin: false }, 'EUR', lists, salesOnly)
    const { sql, params: placeholders } = listing.select.toSQL()
    const params = fillPlaceholders(placeholders, listing.params)
    const { rows } = await client.query(`explain (format json) ${sql}`, params)
    if (process.env.SHOW_PLANS) console.error(JSON.stringify(query), sql, params, JSON.stringify(rows[0]['QUERY PLAN'][0].Plan, null, 1))
    return walk(rows[0]['QUERY PLAN'][0].Plan as PlanNode)
  }
  async function firstPageCursor(query: Partial<ListQuery>) {
    const res = await app.inject({ method: 'GET', url: `/products?limit=20&${new URLSearchParams(query as Record<string, string>)}` })
    return res.json().nextCursor as string
  }

  // Each case names the index (or indexes) a good plan reads. A search matching a large share of
  // this small-row table may rightly be a sequential scan; the selective one must use the GIN index.
  const cases: [string, Partial<ListQuery>, RegExp][] = [
    ['newest', { sort: 'newest' }, /^products_active_newest_idx$/],
    ['newest, second page', { sort: 'newest', cursor: await firstPageCursor({ sort: 'newest' }) }, /^products_active_newest_idx$/],
    ['price ascending', { sort: 'price_asc' }, /^products_active_price_idx$/],
    ['price descending, second page', { sort: 'price_desc', cursor: await firstPageCursor({ sort: 'price_desc' }) }, /^products_active_price_idx$/],
    ['name', { sort: 'name' }, /^products_active_name_idx$/],
    ['rating', { sort: 'rating' }, /^products_active_rating_idx$/],
    ['selective full text', { q: 'cashmere' }, /^products_search_idx$/],
    ['selective full text by price', { q: 'cashmere', sort: 'price_asc' }, /^products_search_idx$|^products_active_price_idx$/],
    ['broad full text by price', { q: 'linen', sort: 'price_asc' }, /^products_search_idx$|^products_active_price_idx$/],
    ['in stock by price', { inStock: true, sort: 'price_asc' }, /^products_active_price_idx$/],
    ['category with descendants', { category: category!.id }, /^products_category_idx$|^products_active_newest_idx$/],
  ]
  for (const [name, query, index] of cases) {
    const nodes = await plan(query)
    const seqScans = nodes.filter((n) => n['Node Type'] === 'Seq Scan' && (n['Relation Name'] === 'products' || n['Relation Name'] === 'product_variants'))
    t.same(seqScans, [], `${name}: no sequential scan of products or variants`)
    t.ok(nodes.some((n) => index.test(n['Index Name'] ?? '')), `${name}: uses ${index} (${nodes.map((n) => n['Index Name'] ?? n['Node Type']).join(', ')})`)
  }

  // The plan PostgreSQL keeps: a listing whose plan depends on no value is planned once per
  // connection, not on every execution (its limit a parameter, it was planned every time: 0.15 ms
  // of a 0.49 ms page). Run as the API runs it without a cache (finding the lists that apply, unless
  // the price decides: those know their lists first), in the currency the API always names.
  // And the plan it keeps reads the same indexes: PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN), but
  // a statement prepared under plan_cache_mode = force_generic_plan explains its generic plan.
  // A parameter as the literal EXECUTE takes (an array of ids, the lists, in PostgreSQL's array text).
  const literal = (v: unknown) => (v === null || v === undefined ? 'null' : typeof v === 'number' ? String(v)
    : client.escapeLiteral(v instanceof Date ? v.toISOString() : Array.isArray(v) ? `{${v.join(',')}}` : String(v)))
  let prepared = 0
  async function keptPlan(label: string, query: Partial<ListQuery>, listing: ReturnType<typeof buildProductListQuery>) {
    const name = `kept_${prepared++}`
    const { sql, params: placeholders } = listing.select.toSQL()
    const params = fillPlaceholders(placeholders, { at: new Date(), userId: null, ...listing.params })
    // A price bound's selectivity depends on its value, so PostgreSQL may rightly plan such a
    // listing on every run (seen for a newest-first page under a cap with a sale applying); the
    // plan it would keep is still checked below.
    if (query.minPrice === undefined && query.maxPrice === undefined) {
      for (let run = 0; run < 8; run++) await client.query({ name, text: sql, values: params })
      const { rows: [kept] } = await client.query<{ generic_plans: string }>('select generic_plans from pg_prepared_statements where name = $1', [name])
      t.ok(Number(kept?.generic_plans) > 0, `${label}: PostgreSQL keeps its plan (${kept?.generic_plans} of 8 runs on it)`)
    }
    await client.query(`prepare generic_${name} as ${sql}`)
    await client.query('set plan_cache_mode = force_generic_plan')
    const { rows: [explained] } = await client.query(`explain (format json) execute generic_${name}(${params.map(literal).join(', ')})`)
    await client.query('reset plan_cache_mode')
    if (process.env.SHOW_PLANS) console.error(label, JSON.stringify(explained['QUERY PLAN'][0].Plan, null, 1))
    return walk(explained['QUERY PLAN'][0].Plan as PlanNode)
  }
  for (const [name, query, index] of cases) {
    if (query.q) continue
    const nodes = await keptPlan(name, query, buildProductListQuery(app.db, { limit: 20, currency: 'EUR', ...query }, { isAdmin: false }, 'EUR', decidedByPrice(query) ? [] : 'find'))
    t.same(nodes.filter((n) => n['Node Type'] === 'Seq Scan' && (n['Relation Name'] === 'products' || n['Relation Name'] === 'product_variants')), [], `${name}: its kept plan scans no table whole`)
    t.ok(nodes.some((n) => index.test(n['Index Name'] ?? '')), `${name}: its kept plan uses ${index} (${nodes.map((n) => n['Index Name'] ?? n['Node Type']).join(', ')})`)
  }

  // With a price list applying (a sale on 1,000 of the 100,000 variants, in EUR and JPY), the
  // listing prices as the shopper pays: the base half still reads its index in order, and the
  // listed products are found from the list's prices, not by scanning the catalog.
  await client.query(`insert into variant_prices (variant_id, currency, amount_minor) select id, 'EUR', price_minor from product_variants union all select id, 'JPY', price_minor * 3 from product_variants`)
  await client.query(`insert into product_price_ranges (product_id, currency, min_minor, max_minor) select product_id, currency, min(amount_minor), max(amount_minor) from variant_prices vp join product_variants v on v.id = vp.variant_id group by product_id, currency`)
  const { rows: [sale] } = await client.query<{ id: string }>(`insert into price_lists (name, kind, status) values ('Sale', 'sale', 'active') returning id`)
  await client.query(`insert into price_list_prices (price_list_id, variant_id, currency, amount_minor) select $1, variant_id, currency, amount_minor / 2 from variant_prices where variant_id in (select id from product_variants order by sku limit 1000)`, [sale!.id])
  const { rows: sold } = await client.query<{ product_id: string }>(`select distinct product_id from product_variants where id in (select variant_id from price_list_prices)`)
  await app.db.transaction((tx) => refreshListLowestPrices(tx, sold.map((r) => r.product_id)))
  await client.query('analyze')
  const lists = [sale!.id]
  const priced: [string, Partial<ListQuery>, RegExp][] = [
    ['priced: price ascending', { sort: 'price_asc', currency: 'EUR' }, /^products_active_price_idx$/],
    ['priced: price descending in JPY', { sort: 'price_desc', currency: 'JPY' }, /^product_price_ranges_listing_idx$/],
    ['priced: newest under a price cap', { sort: 'newest', currency: 'EUR', maxPrice: 20000 }, /^products_active_newest_idx$/],
    ['priced: JPY price range', { sort: 'price_asc', currency: 'JPY', minPrice: 3000, maxPrice: 60000 }, /^product_price_ranges_listing_idx$/],
  ]
  // Only sales applying, each product's lowest price comes from price_list_lowest_prices: the same.
  for (const [name, query, index] of priced) for (const salesOnly of [false, true]) {
    const nodes = await plan(query, lists, salesOnly)
    // (price_list_prices and price_list_lowest_prices are read whole here, rightly: every row of them is the sale's.)
    const seqScans = nodes.filter((n) => n['Node Type'] === 'Seq Scan' && ['products', 'product_variants', 'variant_prices', 'product_price_ranges'].includes(n['Relation Name'] ?? ''))
    const label = `${name}${salesOnly ? ', sales only' : ''}`
    t.same(seqScans, [], `${label}: no sequential scan of the catalog or its prices`)
    t.ok(nodes.some((n) => index.test(n['Index Name'] ?? '')), `${label}: uses ${index} (${nodes.map((n) => n['Index Name'] ?? n['Node Type']).join(', ')})`)
    t.equal(nodes.some((n) => n['Relation Name'] === 'price_list_lowest_prices'), salesOnly, `${label}: ${salesOnly ? 'reads' : 'does not read'} the lists' lowest prices`)
    // The plan kept for it as well: a generic plan of the other-currency shape once scanned every
    // product to skip the listed ones (the custom plans above did not show it).
    const kept = await keptPlan(label, query, buildProductListQuery(app.db, { limit: 20, ...query }, { isAdmin: false }, 'EUR', lists, salesOnly))
    t.same(kept.filter((n) => n['Node Type'] === 'Seq Scan' && ['products', 'product_variants', 'variant_prices', 'product_price_ranges'].includes(n['Relation Name'] ?? '')), [], `${label}: its kept plan scans no table of the catalog whole`)
    t.ok(kept.some((n) => index.test(n['Index Name'] ?? '')), `${label}: its kept plan uses ${index} (${kept.map((n) => n['Index Name'] ?? n['Node Type']).join(', ')})`)
  }

  // And the API answers from it.
  const res = await app.inject({ method: 'GET', url: '/products?q=wool&inStock=true&sort=price_asc&limit=5' })
  t.ok(res.json().items.every((p: { inStock: boolean }) => p.inStock))
  t.equal(res.statusCode, 200)
  t.equal(res.json().items.length, 5)
})
