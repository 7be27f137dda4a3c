import t from 'tap'
import { buildTestApp, upgradeFixture } from './helpers.js'
import { registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// A listing shows a product in a currency only when its page does: when one of its active
// variants is sold in that currency. Otherwise the shopper follows the item to a 404.
for (const cache of ['on', 'off'] as const) t.test(`a product none of whose active variants is sold in a currency is not listed in it (CACHE=${cache})`, async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: cache })
  const admin = (await registerAdmin(app)).headers
  const send = async (method: 'PUT' | 'PATCH', url: string, payload: object) => {
    const res = await app.inject({ method, url, headers: admin, payload })
    t.equal(res.statusCode, 200, `${method} ${url}: ${res.body}`)
  }
  const kept = await createProduct(app, admin, { name: 'Kept', variants: [{ sku: 'K1', priceMinor: 1000, stock: 5 }] })
  const retired = await createProduct(app, admin, { name: 'Retired', variants: [{ sku: 'R1', priceMinor: 2000, stock: 5 }] })
  const partly = await createProduct(app, admin, { name: 'Partly', variants: [{ sku: 'P1', priceMinor: 3000, stock: 5 }, { sku: 'P2', priceMinor: 3500, stock: 5 }] })
  await send('PUT', `/products/${kept.id}/variants/${kept.variants[0].id}/prices/USD`, { amountMinor: 1100 })
  await send('PUT', `/products/${retired.id}/variants/${retired.variants[0].id}/prices/USD`, { amountMinor: 2200 })
  // Partly: only its first variant is sold in USD, and that one is retired.
  await send('PUT', `/products/${partly.id}/variants/${partly.variants[0].id}/prices/USD`, { amountMinor: 3300 })
  await send('PATCH', `/products/${partly.id}/variants/${partly.variants[0].id}`, { isActive: false })
  await send('PATCH', `/products/${retired.id}/variants/${retired.variants[0].id}`, { isActive: false })

  for (const currency of ['EUR', 'USD']) {
    for (const query of ['', '&sort=price_asc', '&sort=name', '&maxPrice=100000']) {
      const res = await app.inject({ url: `/products?currency=${currency}${query}` })
      t.equal(res.statusCode, 200)
      const items: { id: string; name: string }[] = res.json().items
      for (const item of items) t.equal((await app.inject({ url: `/products/${item.id}?currency=${currency}` })).statusCode, 200, `${currency}${query}: ${item.name}'s page is there`)
      t.same(items.map((i) => i.name).sort(), currency === 'EUR' ? ['Kept', 'Partly'] : ['Kept'], `${currency}${query}: the products sold in it`)
    }
  }
})

t.test('the upgrade marks which products have an active variant and keeps ranges of active variants only', async (t) => {
  const { client, upgrade } = await upgradeFixture(t, 'listed_products_have_active_variants')
  const product = async (slug: string, variants: [string, number, boolean, Record<string, number>][]) => {
    const { rows: [p] } = await client.query(`insert into products (name, slug, status) values ($1, $1, 'active') returning id`, [slug])
    for (const [sku, price, active, prices] of variants) {
      const { rows: [v] } = await client.query(`insert into product_variants (product_id, sku, price_minor, stock, is_active) values ($1, $2, $3, 1, $4) returning id`, [p.id, sku, price, active])
      for (const [currency, amount] of Object.entries(prices)) await client.query(`insert into variant_prices (variant_id, currency, amount_minor) values ($1, $2, $3)`, [v.id, currency, amount])
    }
    // The ranges as the code before kept them: active variants', else all.
    await client.query(`insert into product_price_ranges (product_id, currency, min_minor, max_minor)
      select $1, vp.currency, coalesce(min(vp.amount_minor) filter (where v.is_active), min(vp.amount_minor)), coalesce(max(vp.amount_minor) filter (where v.is_active), max(vp.amount_minor))
      from variant_prices vp join product_variants v on v.id = vp.variant_id where v.product_id = $1 group by vp.currency`, [p.id])
  }
  await product('kept', [['K1', 1000, true, { EUR: 1000, USD: 1100 }], ['K2', 500, false, { EUR: 500, USD: 550 }]])
  await product('retired', [['R1', 2000, false, { EUR: 2000, USD: 2200 }]])
  await product('partly', [['P1', 3000, false, { EUR: 3000, USD: 3300 }], ['P2', 3500, true, { EUR: 3500 }]])
  await upgrade()
  t.same((await client.query(`select slug, has_active_variant from products order by slug`)).rows,
    [{ slug: 'kept', has_active_variant: true }, { slug: 'partly', has_active_variant: true }, { slug: 'retired', has_active_variant: false }])
  t.same((await client.query(`select p.slug, r.currency, r.min_minor, r.max_minor from product_price_ranges r join products p on p.id = r.product_id order by p.slug, r.currency`)).rows, [
    { slug: 'kept', currency: 'EUR', min_minor: 1000, max_minor: 1000 },
    { slug: 'kept', currency: 'USD', min_minor: 1100, max_minor: 1100 },
    { slug: 'partly', currency: 'EUR', min_minor: 3500, max_minor: 3500 },
  ], 'only active variants\' prices; a currency only a retired variant was sold in is gone')
})
