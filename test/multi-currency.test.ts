import t from 'tap'
import pg from 'pg'
import { and, eq, sql } from 'drizzle-orm'
import { orders, productVariants } from '../db/schema/index.js'
import { buildTestApp, upgradeFixture, waitUntil } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Regions, prices per currency, price lists and customer groups, through HTTP on real stores.

type Headers = Record<string, string>
const JP = { recipientName: 'B', line1: '1-1 Chiyoda', city: 'Tokyo', postalCode: '100-0001', country: 'JP' }
const DE = { recipientName: 'A', line1: '1 Strasse', city: 'Berlin', postalCode: '10115', country: 'DE' }
const iso = (at: number) => new Date(at).toISOString()

const get = (app: App, url: string, headers: Headers = {}) => app.inject({ method: 'GET', url, headers })
const add = (app: App, headers: Headers, variantId: string, quantity = 1) => app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
const checkout = (app: App, headers: Headers, payload: object) => app.inject({ method: 'POST', url: '/orders', headers, payload })
async function pay(app: App, headers: Headers, orderId: string) {
  const payment = (await app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  const confirmed = await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } })
  return { payment, confirmed: confirmed.json() }
}
const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock

async function setPrice(app: App, admin: Headers, product: { id: string; variants: { id: string }[] }, currency: string, amountMinor: number) {
  const res = await app.inject({ method: 'PUT', url: `/products/${product.id}/variants/${product.variants[0]!.id}/prices/${currency}`, headers: admin, payload: { amountMinor } })
  if (res.statusCode !== 200) throw new Error(`setPrice: ${res.statusCode} ${res.body}`)
}

t.test('regions: each shopper sees and pays in the currency of their region; another currency is refused and charges nothing', async (t) => {
  const started = Date.now()
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR' })
  const admin = (await registerAdmin(app)).headers
  const kettle = await createProduct(app, admin, { name: 'Kettle', variants: [{ sku: 'KETTLE', priceMinor: 1999, stock: 20 }] })
  const euOnly = await createProduct(app, admin, { name: 'Plug adapter', variants: [{ sku: 'PLUG-EU', priceMinor: 500, stock: 20 }] })
  await setPrice(app, admin, kettle, 'JPY', 2500)

  const japan = await app.inject({ method: 'POST', url: '/regions', headers: admin, payload: { name: 'Japan', currency: 'JPY', countries: ['JP'] } })
  t.equal(japan.statusCode, 201, japan.body)
  t.equal((await app.inject({ method: 'POST', url: '/regions', headers: admin, payload: { name: 'Japan again', currency: 'JPY', countries: ['JP'] } })).statusCode, 409, 'a country is in one region only')
  t.equal((await app.inject({ method: 'POST', url: '/regions', headers: admin, payload: { name: 'Gold', currency: 'XAU' } })).statusCode, 400, 'not a currency a shop takes')
  t.equal((await app.inject({ method: 'GET', url: '/regions', headers: (await quickCustomers(app, 1))[0]!.headers })).statusCode, 403, 'regions are admin operations')

  // The catalog in each currency: the JPY listing has only what is sold in JPY, at its JPY price.
  t.match((await get(app, `/products/${kettle.id}?currency=JPY`)).json(), { priceRange: { minMinor: 2500, maxMinor: 2500, currency: 'JPY' }, variants: [{ priceMinor: 2500, currency: 'JPY' }] })
  t.match((await get(app, `/products/${kettle.id}?region=${japan.json().id}`)).json(), { variants: [{ priceMinor: 2500, currency: 'JPY' }] })
  t.match((await get(app, `/products/${kettle.id}`)).json(), { variants: [{ priceMinor: 1999, currency: 'EUR' }] })
  const jpyList = (await get(app, '/products?currency=JPY')).json()
  t.same(jpyList.items.map((i: { name: string; priceRange: unknown }) => [i.name, i.priceRange]), [['Kettle', { minMinor: 2500, maxMinor: 2500, currency: 'JPY' }]])
  t.equal((await get(app, '/products?currency=EUR')).json().items.length, 2)
  t.equal((await get(app, `/products/${euOnly.id}?currency=JPY`)).statusCode, 404, 'not sold in JPY')
  t.equal((await get(app, '/products?currency=ABC')).statusCode, 400)

  const [a, b, c] = await quickCustomers(app, 3)
  // B ships to Japan: the cart is in JPY.
  const region = await app.inject({ method: 'PUT', url: '/cart/region', headers: b!.headers, payload: { country: 'JP' } })
  t.match(region.json(), { currency: 'JPY', regionId: japan.json().id })
  t.match((await add(app, b!.headers, kettle.variants[0].id, 2)).json(), { currency: 'JPY', subtotalMinor: 5000, lines: [{ unitPriceMinor: 2500 }] })
  const unpriced = await add(app, b!.headers, euOnly.variants[0].id)
  t.equal(unpriced.statusCode, 409)
  t.match(unpriced.json(), { type: /not-sold-in-currency/, detail: /JPY/ })

  // A client that sends another currency than its cart's: refused, no order, no stock taken.
  const stockBefore = await stockOf(app, kettle.variants[0].id)
  const mismatch = await checkout(app, b!.headers, { shippingAddress: JP, currency: 'EUR' })
  t.equal(mismatch.statusCode, 409)
  t.match(mismatch.json(), { type: /currency-mismatch/ })
  t.equal((await app.db.select().from(orders).where(eq(orders.userId, b!.id))).length, 0, 'no order was written')
  t.equal(await stockOf(app, kettle.variants[0].id), stockBefore, 'no stock was taken')

  // Shipping is priced per currency too: the store's EUR option is not offered to a JPY cart (its
  // 4.99 would be charged as 4 yen or 499 yen), so the cart cannot check out until the shop prices one in JPY.
  const zones = (await get(app, '/shipping/zones', admin)).json()
  const fallback = zones.items.find((z: { countries: string[] }) => z.countries.length === 0)
  t.match(fallback.options, [{ currency: 'EUR' }], 'the default option is in the store currency')
  t.same((await get(app, '/cart/shipping-options?country=JP', b!.headers)).json().options, [], 'no EUR option for a JPY cart')
  const noShipping = await checkout(app, b!.headers, { shippingAddress: JP, currency: 'JPY' })
  t.equal(noShipping.statusCode, 409)
  t.match(noShipping.json(), { type: /no-shipping-option/ })
  t.equal((await app.db.select().from(orders).where(eq(orders.userId, b!.id))).length, 0, 'no order without a shipping option in JPY')
  const badCurrency = await app.inject({ method: 'POST', url: `/shipping/zones/${fallback.id}/options`, headers: admin, payload: { name: 'Japan Post', currency: 'XYZ', priceMinor: 900 } })
  t.equal(badCurrency.statusCode, 400, 'not an ISO 4217 code')
  const jpyShipping = await app.inject({ method: 'POST', url: `/shipping/zones/${fallback.id}/options`, headers: admin, payload: { name: 'Japan Post', currency: 'JPY', priceMinor: 900 } })
  t.equal(jpyShipping.statusCode, 201, jpyShipping.body)
  t.match((await get(app, '/cart/shipping-options?country=JP', b!.headers)).json(), { currency: 'JPY', options: [{ name: 'Japan Post', priceMinor: 900 }] })

  const jpyOrder = (await checkout(app, b!.headers, { shippingAddress: JP, currency: 'JPY' })).json()
  t.match(jpyOrder, { currency: 'JPY', subtotalMinor: 5000, shippingMinor: 900, items: [{ unitPriceMinor: 2500, quantity: 2 }] })
  const jpyPaid = await pay(app, b!.headers, jpyOrder.id)
  t.match(jpyPaid.payment, { currency: 'JPY', amountMinor: jpyOrder.totalMinor })

  // A stays in the store currency.
  await add(app, a!.headers, kettle.variants[0].id)
  const eurOrder = (await checkout(app, a!.headers, { shippingAddress: DE })).json()
  t.match(eurOrder, { currency: 'EUR', subtotalMinor: 1999, items: [{ unitPriceMinor: 1999 }] })
  t.match((await pay(app, a!.headers, eurOrder.id)).payment, { currency: 'EUR', amountMinor: eurOrder.totalMinor })

  // Moving a cart to a region where one of its lines is not sold: refused, the cart stays as it was.
  await add(app, c!.headers, euOnly.variants[0].id)
  const move = await app.inject({ method: 'PUT', url: '/cart/region', headers: c!.headers, payload: { country: 'JP' } })
  t.equal(move.statusCode, 409)
  t.match((await get(app, '/cart', c!.headers)).json(), { currency: 'EUR', regionId: null, subtotalMinor: 500 })

  // A fixed-amount coupon names its currency: it takes nothing off a cart in another.
  t.equal((await app.inject({ method: 'POST', url: '/coupons', headers: admin, payload: { code: 'FIVEEUR', kind: 'fixed', value: 500 } })).json().currency, 'EUR')
  await add(app, b!.headers, kettle.variants[0].id)
  t.match((await app.inject({ method: 'POST', url: '/coupons/validate', headers: b!.headers, payload: { code: 'FIVEEUR' } })).json(), { valid: false, reason: /EUR/, currency: 'JPY' })

  // Analytics: the JPY and the EUR order are summed apart, never added.
  const range = `from=${encodeURIComponent(iso(started - 60_000))}&to=${encodeURIComponent(iso(Date.now() + 60_000))}`
  const sales = (await get(app, `/analytics/sales?${range}`, admin)).json()
  t.same(sales.byCurrency.map((c: { currency: string; orders: number; revenueMinor: number }) => [c.currency, c.orders, c.revenueMinor]),
    [['EUR', 1, eurOrder.totalMinor], ['JPY', 1, jpyOrder.totalMinor]])
  t.match(sales, { currency: 'EUR', orders: 1, revenueMinor: eurOrder.totalMinor })
  t.match((await get(app, `/analytics/sales?${range}&currency=JPY`, admin)).json(), { currency: 'JPY', orders: 1, revenueMinor: jpyOrder.totalMinor })
})

t.test('a sale starts and ends at its times, without a write and without a stale cached price', async (t) => {
  const app = await buildTestApp(t)
  const admin = (await registerAdmin(app)).headers
  const lamp = await createProduct(app, admin, { name: 'Lamp', variants: [{ sku: 'LAMP', priceMinor: 4000, stock: 5 }] })
  const at = Date.now()
  const startsAt = at + 2500
  const endsAt = at + 5000
  const list = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: { name: 'Weekend', kind: 'sale', status: 'active', startsAt: iso(startsAt), endsAt: iso(endsAt), prices: [{ variantId: lamp.variants[0].id, currency: 'EUR', amountMinor: 2900 }] },
  })
  t.equal(list.statusCode, 201, list.body)

  const detail = async () => {
    const res = await get(app, `/products/${lamp.id}`)
    return { price: res.json().variants[0].priceMinor as number, was: res.json().variants[0].compareAtPriceMinor as number | null, cache: res.headers['x-cache'] }
  }
  const listed = async () => (await get(app, '/products')).json().items[0].priceRange.minMinor as number
  t.match(await detail(), { price: 4000, cache: 'miss' })
  t.match(await detail(), { price: 4000, cache: 'hit' }, 'cached before the sale')
  t.equal(await listed(), 4000)
  t.ok(Date.now() < startsAt, 'the reads above ran before the start')

  await waitUntil('the sale to start', () => Date.now() >= startsAt, 10_000, 50)
  t.match(await detail(), { price: 2900, was: 4000 }, 'the sale price at its start, though the entry before was cached')
  t.equal(await listed(), 2900, 'listings too')
  const [shopper] = await quickCustomers(app, 1)
  t.match((await add(app, shopper!.headers, lamp.variants[0].id)).json(), { subtotalMinor: 2900 }, 'and the cart')
  t.ok(Date.now() < endsAt, 'still within the sale')

  await waitUntil('the sale to end', () => Date.now() >= endsAt, 10_000, 50)
  t.match(await detail(), { price: 4000, was: null }, 'the base price again at its end')
  t.equal(await listed(), 4000)
  t.match((await get(app, '/cart', shopper!.headers)).json(), { subtotalMinor: 4000 })
})

t.test('a trade group member pays the group price; a guest and another customer do not', async (t) => {
  const app = await buildTestApp(t)
  const admin = (await registerAdmin(app)).headers
  const drill = await createProduct(app, admin, { name: 'Drill', variants: [{ sku: 'DRILL', priceMinor: 10000, stock: 50 }] })
  const group = await app.inject({ method: 'POST', url: '/customer-groups', headers: admin, payload: { name: 'Trade' } })
  t.equal(group.statusCode, 201)
  const [member, other] = await quickCustomers(app, 2)
  t.equal((await app.inject({ method: 'POST', url: `/customer-groups/${group.json().id}/members`, headers: admin, payload: { userId: member!.id } })).statusCode, 204)
  // A contract price above a sale still wins for the group (override), and a quantity tier on top.
  const trade = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: { name: 'Trade prices', kind: 'override', status: 'active', customerGroupId: group.json().id, prices: [{ variantId: drill.variants[0].id, currency: 'EUR', amountMinor: 8000 }] },
  })
  t.equal(trade.statusCode, 201, trade.body)
  const bulk = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: { name: 'Bulk', kind: 'sale', status: 'active', minQuantity: 10, prices: [{ variantId: drill.variants[0].id, currency: 'EUR', amountMinor: 9000 }] },
  })
  t.equal(bulk.statusCode, 201)

  const price = async (headers: Headers = {}) => (await get(app, `/products/${drill.id}`, headers)).json().variants[0].priceMinor
  t.equal(await price(), 10000, 'a guest sees the base price')
  t.equal(await price(member!.headers), 8000, 'the member sees the group price')
  t.equal(await price(other!.headers), 10000, 'another customer does not')
  t.equal(await price(), 10000, 'and the guest still does not, after the member\'s read was cached')

  const guest = (await app.inject({ method: 'POST', url: '/cart/guest' })).json()
  t.match((await add(app, { 'x-cart-token': guest.cartToken }, drill.variants[0].id)).json(), { subtotalMinor: 10000 })
  t.match((await add(app, other!.headers, drill.variants[0].id, 10)).json(), { subtotalMinor: 90000 }, 'the bulk tier from 10')

  await add(app, member!.headers, drill.variants[0].id, 2)
  const order = (await checkout(app, member!.headers, { shippingAddress: DE })).json()
  t.match(order, { currency: 'EUR', subtotalMinor: 16000, items: [{ unitPriceMinor: 8000, quantity: 2 }] })

  // Out of the group, the member pays the base price again: membership is read when pricing.
  await app.inject({ method: 'DELETE', url: `/customer-groups/${group.json().id}/members/${member!.id}`, headers: admin })
  await add(app, member!.headers, drill.variants[0].id)
  const second = (await checkout(app, member!.headers, { shippingAddress: DE })).json()
  t.match(second, { subtotalMinor: 10000, items: [{ unitPriceMinor: 10000 }] })
  t.equal((await app.db.select().from(orders).where(and(eq(orders.userId, member!.id)))).length, 2)
})

t.test('the upgrade to currencies keeps a single-currency shop as it was: prices, coupons, shipping and every order total', async (t) => {
  // A shop on the migrations before multi_currency, selling in GBP, with a placed order.
  const { client, upgrade } = await upgradeFixture(t, 'multi_currency')
  const { rows: [p] } = await client.query(`insert into products (name, slug, status, min_price_minor, max_price_minor) values ('Teapot', 'teapot', 'active', 1500, 2500) returning id`)
  const { rows: variants } = await client.query(`insert into product_variants (product_id, sku, price_minor, stock) values ($1, 'POT-S', 1500, 3), ($1, 'POT-L', 2500, 5) returning id, sku`, [p.id])
  await client.query(`insert into coupons (code, kind, value) values ('TENOFF', 'fixed', 1000), ('TENPC', 'percentage', 10)`)
  const { rows: [zone] } = await client.query(`insert into shipping_zones (name, countries) values ('UK', '{GB}') returning id`)
  await client.query(`insert into shipping_options (zone_id, name, price_minor) values ($1, 'Royal Mail', 395)`, [zone.id])
  const { rows: [order] } = await client.query(`insert into orders (number, guest_email, currency, subtotal_minor, discount_minor, shipping_minor, tax_minor, total_minor, shipping_address)
    values ('SO-000001', 'old@example.com', 'GBP', 4000, 1000, 395, 565, 3960, '{"recipientName":"O","line1":"1 Road","city":"London","postalCode":"N1","country":"GB"}') returning id`)
  await client.query(`insert into order_items (order_id, variant_id, product_id, sku, name, unit_price_minor, quantity, line_total_minor) values ($1, $2, $3, 'POT-S', 'Teapot', 1500, 1, 1500), ($1, $4, $3, 'POT-L', 'Teapot', 2500, 1, 2500)`,
    [order.id, variants[0].id, p.id, variants[1].id])
  const snapshot = async () => (await client.query(`select o.number, o.currency, o.subtotal_minor, o.discount_minor, o.shipping_minor, o.tax_minor, o.total_minor,
    (select json_agg(json_build_object('sku', i.sku, 'unit', i.unit_price_minor, 'total', i.line_total_minor) order by i.sku) from order_items i where i.order_id = o.id) items from orders o`)).rows
  const before = await snapshot()

  // The migration reads STORE_CURRENCY as the app sets it on each connection.
  await client.query(`select set_config('shop.store_currency', 'GBP', false)`)
  await upgrade()

  t.same(await snapshot(), before, 'every order total and line unchanged')
  t.same((await client.query(`select name, currency, is_default from regions`)).rows, [{ name: 'Default', currency: 'GBP', is_default: true }], 'one default region in the store currency')
  t.same((await client.query(`select v.sku, vp.currency, vp.amount_minor from variant_prices vp join product_variants v on v.id = vp.variant_id order by v.sku`)).rows,
    [{ sku: 'POT-L', currency: 'GBP', amount_minor: 2500 }, { sku: 'POT-S', currency: 'GBP', amount_minor: 1500 }], 'each price kept, in GBP')
  t.same((await client.query(`select currency, min_minor, max_minor from product_price_ranges`)).rows, [{ currency: 'GBP', min_minor: 1500, max_minor: 2500 }])
  t.same((await client.query(`select code, currency from coupons order by code`)).rows, [{ code: 'TENOFF', currency: 'GBP' }, { code: 'TENPC', currency: null }], 'a fixed coupon is in the store currency')
  t.same((await client.query(`select name, currency from shipping_options`)).rows, [{ name: 'Royal Mail', currency: 'GBP' }], 'the shipping option too')
})

// Without a cache a listing not decided by price finds the lists that apply in its own statement,
// with one the price schedule decides them: both run the same test.
for (const cache of ['on', 'off'] as const) t.test(`listings sort and filter by the price the shopper pays in the asked currency, price lists and groups included (CACHE=${cache})`, async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: cache })
  const admin = (await registerAdmin(app)).headers
  // Base prices: EUR order A < B < C; in JPY, A is dearer than B.
  const a = await createProduct(app, admin, { name: 'A', variants: [{ sku: 'A', priceMinor: 1000, stock: 5 }] })
  const b = await createProduct(app, admin, { name: 'B', variants: [{ sku: 'B1', priceMinor: 2000, stock: 5 }, { sku: 'B2', priceMinor: 2500, stock: 5 }] })
  const c = await createProduct(app, admin, { name: 'C', variants: [{ sku: 'C', priceMinor: 3000, stock: 5 }] })
  await setPrice(app, admin, a, 'JPY', 3000)
  await setPrice(app, admin, b, 'JPY', 2000)
  await app.inject({ method: 'PUT', url: `/products/${b.id}/variants/${b.variants[1].id}/prices/JPY`, headers: admin, payload: { amountMinor: 2600 } })
  await setPrice(app, admin, c, 'JPY', 4000)
  const names = async (url: string, headers: Headers = {}) => {
    const res = await get(app, url, headers)
    t.equal(res.statusCode, 200, res.body)
    return res.json().items.map((i: { name: string; priceRange: { minMinor: number } }) => `${i.name} ${i.priceRange.minMinor}`)
  }
  t.same(await names('/products?currency=JPY&sort=price_asc'), ['B 2000', 'A 3000', 'C 4000'], 'without lists: by the JPY base price, not the store currency\'s')

  // A sale running now makes C the cheapest in both currencies; a quantity tier changes no listing.
  const sale = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: {
      name: 'Sale', kind: 'sale', status: 'active', startsAt: iso(Date.now() - 60_000), endsAt: iso(Date.now() + 3_600_000),
      prices: [{ variantId: c.variants[0].id, currency: 'EUR', amountMinor: 500 }, { variantId: c.variants[0].id, currency: 'JPY', amountMinor: 1000 }],
    },
  })
  t.equal(sale.statusCode, 201, sale.body)
  const bulk = await app.inject({ method: 'POST', url: '/price-lists', headers: admin, payload: { name: 'Bulk', kind: 'sale', status: 'active', minQuantity: 10, prices: [{ variantId: a.variants[0].id, currency: 'JPY', amountMinor: 10 }] } })
  t.equal(bulk.statusCode, 201, bulk.body)
  // A trade group's contract price for A, above its base: members pay it, so it sorts A last for them.
  const group = (await app.inject({ method: 'POST', url: '/customer-groups', headers: admin, payload: { name: 'Trade' } })).json()
  const trade = await app.inject({ method: 'POST', url: '/price-lists', headers: admin, payload: { name: 'Trade', kind: 'override', status: 'active', customerGroupId: group.id, prices: [{ variantId: a.variants[0].id, currency: 'EUR', amountMinor: 9000 }] } })
  t.equal(trade.statusCode, 201, trade.body)
  const [member, other] = await quickCustomers(app, 2)
  t.equal((await app.inject({ method: 'POST', url: `/customer-groups/${group.id}/members`, headers: admin, payload: { userId: member!.id } })).statusCode, 204)

  t.same(await names('/products?currency=JPY&sort=price_asc'), ['C 1000', 'B 2000', 'A 3000'], 'JPY, the sale price sorts')
  t.same(await names('/products?currency=JPY&sort=price_desc'), ['A 3000', 'B 2000', 'C 1000'])
  t.same(await names('/products?sort=price_asc'), ['C 500', 'A 1000', 'B 2000'], 'EUR, the store currency')
  t.same(await names('/products?sort=price_asc', member!.headers), ['C 500', 'B 2000', 'A 9000'], 'a member: the override above the base')
  t.same(await names('/products?sort=price_asc', other!.headers), ['C 500', 'A 1000', 'B 2000'], 'another customer, after the member\'s page was cached')
  t.same(await names('/products?currency=JPY&maxPrice=1500'), ['C 1000'], 'maxPrice by the sale price')
  t.same(await names('/products?currency=JPY&minPrice=3500'), [], 'minPrice by the sale price: C\'s base is above it, its price is not')
  t.same(await names('/products?minPrice=5000', member!.headers), ['A 9000'], 'filters by the member\'s price')
  t.same(await names('/products?sort=name&maxPrice=999'), ['C 500'], 'a price filter under another sort')

  // Paging one at a time through the sale-priced order: each product once, in order.
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const page: { items: { name: string }[]; nextCursor: string | null } = (await get(app, `/products?currency=JPY&sort=price_asc&limit=1${cursor ? `&cursor=${cursor}` : ''}`)).json()
    seen.push(...page.items.map((i) => i.name))
    cursor = page.nextCursor
  } while (cursor && seen.length < 10)
  t.same(seen, ['C', 'B', 'A'])

  // The listing's prices are the product pages' (the one pricing function), for each shopper and currency.
  for (const [headers, query] of [[{}, ''], [{}, 'currency=JPY'], [member!.headers, ''], [{}, 'sort=price_asc'], [{}, 'currency=JPY&sort=price_desc'], [member!.headers, 'sort=price_asc']] as const) {
    const listed = (await get(app, `/products?${query}`, headers)).json().items
    t.equal(listed.length, 3)
    const currency = query.includes('JPY') ? 'currency=JPY' : ''
    for (const item of listed) t.same(item.priceRange, (await get(app, `/products/${item.id}?${currency}`, headers)).json().priceRange, `${item.name} ${query || 'EUR'}`)
  }
})

// While only sales apply, a listing by price reads each product's lowest price under each list
// from price_list_lowest_prices, which every price and variant write keeps. After each kind of
// write, every listing by price agrees with the product pages (the pricing function) and is in
// their order.
t.test('listings by price under sales follow every price, list and variant write', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: 'off' })
  const admin = (await registerAdmin(app)).headers
  const send = async (method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) => {
    const res = await app.inject({ method, url, headers: admin, ...(payload ? { payload } : {}) })
    t.ok(res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.statusCode === 204 ? undefined : res.json()
  }
  const p = await createProduct(app, admin, { name: 'P', variants: [{ sku: 'P1', priceMinor: 1000, stock: 5 }, { sku: 'P2', priceMinor: 3000, stock: 5 }] })
  const q = await createProduct(app, admin, { name: 'Q', variants: [{ sku: 'Q1', priceMinor: 2000, stock: 5 }] })
  const r = await createProduct(app, admin, { name: 'R', variants: [{ sku: 'R1', priceMinor: 2100, stock: 5 }, { sku: 'R2', priceMinor: 2500, stock: 5 }] })
  const [p1, p2] = p.variants.map((v: { id: string }) => v.id)
  const [q1] = q.variants.map((v: { id: string }) => v.id)
  const [r1, r2] = r.variants.map((v: { id: string }) => v.id)
  for (const [product, variant, amountMinor] of [[p, p1, 4000], [p, p2, 5000], [q, q1, 3500], [r, r1, 3000]] as const) await send('PUT', `/products/${product.id}/variants/${variant}/prices/JPY`, { amountMinor })

  async function agree(step: string, expected: Record<string, string[]>) {
    for (const currency of ['EUR', 'JPY']) {
      for (const sort of ['price_asc', 'price_desc']) {
        const res = await get(app, `/products?currency=${currency}&sort=${sort}`)
        t.equal(res.statusCode, 200, res.body)
        const items: { id: string; name: string; priceRange: { minMinor: number } }[] = res.json().items
        const shown = items.map((i) => `${i.name} ${i.priceRange.minMinor}`)
        t.same(sort === 'price_asc' ? shown : shown.reverse(), expected[currency], `${step}: ${currency} by ${sort}`)
        for (const item of items) t.same(item.priceRange, (await get(app, `/products/${item.id}?currency=${currency}`)).json().priceRange, `${step}: ${item.name} in ${currency} as its page`)
      }
    }
  }
  await agree('no list', { EUR: ['P 1000', 'Q 2000', 'R 2100'], JPY: ['R 3000', 'Q 3500', 'P 4000'] })

  const sale = await send('POST', '/price-lists', { name: 'Sale', kind: 'sale', status: 'active', prices: [{ variantId: p2, currency: 'EUR', amountMinor: 500 }, { variantId: q1, currency: 'JPY', amountMinor: 100 }] })
  t.ok((await app.db.execute(sql`select 1 from price_list_lowest_prices`)).rows.length > 0, 'the sale\'s lowest prices are kept')
  await agree('a sale', { EUR: ['P 500', 'Q 2000', 'R 2100'], JPY: ['Q 100', 'R 3000', 'P 4000'] })
  await send('PUT', `/price-lists/${sale.id}/prices`, { prices: [{ variantId: r2, currency: 'EUR', amountMinor: 1500 }] })
  await agree('a list price added', { EUR: ['P 500', 'R 1500', 'Q 2000'], JPY: ['Q 100', 'R 3000', 'P 4000'] })
  await send('DELETE', `/price-lists/${sale.id}/prices/${p2}/EUR`)
  await agree('a list price removed', { EUR: ['P 1000', 'R 1500', 'Q 2000'], JPY: ['Q 100', 'R 3000', 'P 4000'] })
  const second = await send('POST', '/price-lists', { name: 'Second', kind: 'sale', status: 'active', prices: [{ variantId: q1, currency: 'EUR', amountMinor: 1800 }, { variantId: p1, currency: 'EUR', amountMinor: 900 }] })
  await agree('two sales', { EUR: ['P 900', 'R 1500', 'Q 1800'], JPY: ['Q 100', 'R 3000', 'P 4000'] })
  await send('PATCH', `/products/${q.id}/variants/${q1}`, { priceMinor: 1700 })
  await agree('a base price below the sale\'s', { EUR: ['P 900', 'R 1500', 'Q 1700'], JPY: ['Q 100', 'R 3000', 'P 4000'] })
  await send('PATCH', `/products/${p.id}/variants/${p1}`, { isActive: false })
  await agree('a sold variant deactivated', { EUR: ['R 1500', 'Q 1700', 'P 3000'], JPY: ['Q 100', 'R 3000', 'P 5000'] })
  await send('DELETE', `/products/${r.id}/variants/${r2}`)
  await agree('a sold variant deleted', { EUR: ['Q 1700', 'R 2100', 'P 3000'], JPY: ['Q 100', 'R 3000', 'P 5000'] })
  await send('DELETE', `/products/${q.id}/variants/${q1}/prices/JPY`)
  await agree('a sold variant no longer sold in a currency', { EUR: ['Q 1700', 'R 2100', 'P 3000'], JPY: ['R 3000', 'P 5000'] })
  await send('POST', `/products/${q.id}/variants`, { sku: 'Q2', priceMinor: 50, stock: 1 })
  await agree('a cheaper variant added', { EUR: ['Q 50', 'R 2100', 'P 3000'], JPY: ['R 3000', 'P 5000'] })
  await send('PATCH', `/products/${p.id}/variants/${p1}`, { isActive: true })
  await agree('the variant active again', { EUR: ['Q 50', 'P 900', 'R 2100'], JPY: ['R 3000', 'P 4000'] })
  await send('DELETE', `/price-lists/${sale.id}`)
  await agree('a list deleted', { EUR: ['Q 50', 'P 900', 'R 2100'], JPY: ['R 3000', 'P 4000'] })
  await send('PATCH', `/price-lists/${second.id}`, { kind: 'override' })
  await agree('the list now an override', { EUR: ['Q 50', 'P 900', 'R 2100'], JPY: ['R 3000', 'P 4000'] })
  await send('PUT', `/price-lists/${second.id}/prices`, { prices: [{ variantId: r1, currency: 'EUR', amountMinor: 2400 }] })
  await agree('an override above the base', { EUR: ['Q 50', 'P 900', 'R 2400'], JPY: ['R 3000', 'P 4000'] })
})

t.test('a price list\'s prices are written in one request as the request reads: a repeated price is the last one, a bad one writes none', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: 'off' })
  const admin = (await registerAdmin(app)).headers
  const p = await createProduct(app, admin, { name: 'P', variants: [{ sku: 'P1', priceMinor: 1000, stock: 5 }, { sku: 'P2', priceMinor: 3000, stock: 5 }] })
  const q = await createProduct(app, admin, { name: 'Q', variants: [{ sku: 'Q1', priceMinor: 2000, stock: 5 }] })
  const [p1, p2] = p.variants.map((v: { id: string }) => v.id)
  const [q1] = q.variants.map((v: { id: string }) => v.id)
  const pricesOf = async (id: string) => (await get(app, `/price-lists/${id}`, admin)).json().prices as { variantId: string; currency: string; amountMinor: number }[]
  const byKey = (prices: { variantId: string; currency: string; amountMinor: number }[]) => Object.fromEntries(prices.map((x) => [`${x.variantId === p1 ? 'P1' : x.variantId === p2 ? 'P2' : 'Q1'} ${x.currency}`, x.amountMinor]))

  const created = await app.inject({ method: 'POST', url: '/price-lists', headers: admin, payload: { name: 'Sale', kind: 'sale', status: 'active', prices: [
    { variantId: p1, currency: 'EUR', amountMinor: 800 }, { variantId: q1, currency: 'EUR', amountMinor: 1900 }, { variantId: p1, currency: 'EUR', amountMinor: 700 },
  ] } })
  t.equal(created.statusCode, 201, created.body)
  const sale = created.json()
  t.same(byKey(sale.prices), { 'P1 EUR': 700, 'Q1 EUR': 1900 }, 'created: the repeated price is the last one')

  const put = await app.inject({ method: 'PUT', url: `/price-lists/${sale.id}/prices`, headers: admin, payload: { prices: [
    { variantId: q1, currency: 'EUR', amountMinor: 1500 }, { variantId: p2, currency: 'EUR', amountMinor: 2500 }, { variantId: q1, currency: 'EUR', amountMinor: 1200 },
    { variantId: p1, currency: 'JPY', amountMinor: 90 }, { variantId: q1, currency: 'JPY', amountMinor: 80 },
  ] } })
  t.equal(put.statusCode, 200, put.body)
  const expected = { 'P1 EUR': 700, 'P2 EUR': 2500, 'Q1 EUR': 1200, 'P1 JPY': 90, 'Q1 JPY': 80 }
  t.same(byKey(put.json().prices), expected, 'put: existing prices replaced, new ones added, the repeated one the last')
  t.same(byKey(await pricesOf(sale.id)), expected, 'and read back so')
  const listed = (await get(app, '/products?sort=price_asc')).json().items.map((i: { name: string; priceRange: { minMinor: number } }) => `${i.name} ${i.priceRange.minMinor}`)
  t.same(listed, ['P 700', 'Q 1200'], 'the listing by price follows the written prices')

  for (const [what, prices, status] of [
    ['an unknown variant', [{ variantId: p1, currency: 'EUR', amountMinor: 1 }, { variantId: '00000000-0000-4000-8000-000000000000', currency: 'EUR', amountMinor: 1 }], 404],
    ['a code that is no currency', [{ variantId: p1, currency: 'EUR', amountMinor: 1 }, { variantId: p2, currency: 'ZZZ', amountMinor: 1 }], 400],
    ['a negative amount', [{ variantId: p1, currency: 'EUR', amountMinor: 1 }, { variantId: p2, currency: 'EUR', amountMinor: -1 }], 400],
  ] as const) {
    const res = await app.inject({ method: 'PUT', url: `/price-lists/${sale.id}/prices`, headers: admin, payload: { prices } })
    t.equal(res.statusCode, status, `${what}: ${res.body}`)
    t.same(byKey(await pricesOf(sale.id)), expected, `${what}: no price of the request written`)
  }
})

t.test('the upgrade that keeps lists\' lowest prices fills them for the lists a shop has', async (t) => {
  const { client, upgrade } = await upgradeFixture(t, 'list_lowest_prices')
  const { rows: [p] } = await client.query(`insert into products (name, slug, status, min_price_minor, max_price_minor) values ('Teapot', 'teapot', 'active', 1500, 2500) returning id`)
  const { rows: [small, large, retired] } = await client.query(`insert into product_variants (product_id, sku, price_minor, stock, is_active) values ($1, 'POT-S', 1500, 3, true), ($1, 'POT-L', 2500, 5, true), ($1, 'POT-X', 900, 1, false) returning id`, [p.id])
  await client.query(`insert into variant_prices (variant_id, currency, amount_minor) values ($1, 'EUR', 1500), ($2, 'EUR', 2500), ($3, 'EUR', 900), ($2, 'USD', 2800)`, [small.id, large.id, retired.id])
  const { rows: [sale] } = await client.query(`insert into price_lists (name, kind, status) values ('Sale', 'sale', 'active') returning id`)
  // EUR: the large one's sale price is below the small one's base; USD: only the large one is sold.
  // The retired variant's list price counts for nothing.
  await client.query(`insert into price_list_prices (price_list_id, variant_id, currency, amount_minor) values ($1, $2, 'EUR', 1200), ($1, $2, 'USD', 3000), ($1, $3, 'EUR', 100)`, [sale.id, large.id, retired.id])
  await upgrade()
  t.same((await client.query(`select currency, min_minor from price_list_lowest_prices order by currency`)).rows, [{ currency: 'EUR', min_minor: 1200 }, { currency: 'USD', min_minor: 2800 }])
})

// Writes to one product's list prices, base prices and variants in parallel: each recomputes the
// product's lowest prices after locking it, so the last to commit saw every other's write.
t.test('the kept lowest prices stay right under concurrent price and variant writes', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: 'off', DB_POOL_MAX: '8' })
  const admin = (await registerAdmin(app)).headers
  const p = await createProduct(app, admin, { name: 'P', variants: [1, 2, 3].map((i) => ({ sku: `CP${i}`, priceMinor: 1000 * i, stock: 5 })) })
  const others = [await createProduct(app, admin, { name: 'Q', variants: [{ sku: 'CQ', priceMinor: 1500, stock: 5 }] }), await createProduct(app, admin, { name: 'R', variants: [{ sku: 'CR', priceMinor: 2500, stock: 5 }] })]
  const variants: string[] = p.variants.map((v: { id: string }) => v.id)
  const sale = (await app.inject({ method: 'POST', url: '/price-lists', headers: admin, payload: { name: 'Sale', kind: 'sale', status: 'active', prices: [{ variantId: variants[2], currency: 'EUR', amountMinor: 2000 }] } })).json()
  let seed = 7
  const next = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n
  for (let round = 0; round < 6; round++) {
    const writes = Array.from({ length: 12 }, () => {
      const variantId = variants[next(3)]!
      switch (next(3)) {
        case 0: return app.inject({ method: 'PUT', url: `/price-lists/${sale.id}/prices`, headers: admin, payload: { prices: [{ variantId, currency: 'EUR', amountMinor: 100 + next(4000) }] } })
        case 1: return app.inject({ method: 'PATCH', url: `/products/${p.id}/variants/${variantId}`, headers: admin, payload: { priceMinor: 100 + next(4000) } })
        default: return app.inject({ method: 'PATCH', url: `/products/${p.id}/variants/${variantId}`, headers: admin, payload: { isActive: next(4) > 0 } })
      }
    })
    for (const res of await Promise.all(writes)) t.equal(res.statusCode, 200, res.body)
    for (const sort of ['price_asc', 'price_desc']) {
      const items: { id: string; name: string; priceRange: object }[] = (await get(app, `/products?sort=${sort}`)).json().items
      const pages = await Promise.all(items.map(async (i) => ({ ...i, page: (await get(app, `/products/${i.id}`)).json() })))
      for (const item of pages) t.same(item.priceRange, item.page.priceRange, `round ${round}, ${sort}: ${item.name} as its page`)
      const mins = pages.map((i) => i.page.priceRange.minMinor as number)
      t.same(mins, [...mins].sort((a, b) => (sort === 'price_asc' ? a - b : b - a)), `round ${round}: in order by ${sort}`)
      t.equal(items.filter((i) => others.some((o) => o.id === i.id)).length, 2)
    }
  }
})

t.test('a list-price write and a variant write to one product, made to overlap, leave its kept lowest price right (the product lock)', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CACHE: 'off' })
  const admin = (await registerAdmin(app)).headers
  const p = await createProduct(app, admin, { name: 'P', variants: [{ sku: 'LP1', priceMinor: 1000, stock: 5 }, { sku: 'LP2', priceMinor: 400, stock: 5 }] })
  const [v1, v2] = p.variants.map((v: { id: string }) => v.id as string)
  const sale = (await app.inject({ method: 'POST', url: '/price-lists', headers: admin, payload: { name: 'Sale', kind: 'sale', status: 'active', prices: [{ variantId: v1, currency: 'EUR', amountMinor: 600 }] } })).json()
  const kept = async () => (await app.db.execute<{ min_minor: number }>(sql`select min_minor from price_list_lowest_prices where price_list_id = ${sale.id} and product_id = ${p.id} and currency = 'EUR'`)).rows[0]?.min_minor
  t.equal(await kept(), 400, 'before: the least of 1000 listed at 600, and 400')

  // A session holds the kept row, so the list-price write stops at its refresh with what it has
  // read (its statement's snapshot), holding whatever it locked before. The variant write then
  // starts: with the product locked by the first, it waits for it and reads its list price; without
  // that lock it would run on, and whichever refresh wrote last would keep a stale lowest price
  // (the list write's 400, or the variant write's 600, against the right 500).
  const locker = new pg.Client({ connectionString: app.config.postgres.url })
  await locker.connect()
  t.teardown(() => locker.end())
  // In the locker's transaction pg_stat_activity would stay the snapshot of its first read.
  const waiting = async () => (await locker.query<{ n: number }>("select pg_stat_clear_snapshot(), (select count(*)::int from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock') as n")).rows[0]!.n
  const until = (n: number, what: string) => waitUntil(what, async () => (await waiting()) >= n, 15_000)
  await locker.query('begin')
  await locker.query('select 1 from price_list_lowest_prices where price_list_id = $1 and product_id = $2 for update', [sale.id, p.id])
  const listWrite = app.inject({ method: 'PUT', url: `/price-lists/${sale.id}/prices`, headers: admin, payload: { prices: [{ variantId: v1, currency: 'EUR', amountMinor: 500 }] } })
  await until(1, 'the list-price write waits at its refresh')
  const variantWrite = app.inject({ method: 'PATCH', url: `/products/${p.id}/variants/${v2}`, headers: admin, payload: { priceMinor: 900 } })
  await until(2, 'the variant write waits too')
  await locker.query('rollback')
  for (const res of await Promise.all([listWrite, variantWrite])) t.equal(res.statusCode, 200, res.body)

  t.equal(await kept(), 500, 'after: the least of 1000 listed at 500, and 900')
  t.equal((await get(app, `/products/${p.id}`)).json().priceRange.minMinor, 500, 'the product page says so')
  const listed = (await get(app, '/products?sort=price_asc')).json().items.map((i: { name: string; priceRange: { minMinor: number } }) => `${i.name} ${i.priceRange.minMinor}`)
  t.same(listed, ['P 500'], 'and the listing by price')
})
