import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import { productVariants } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { quickCustomers, register, registerAdmin } from './users.js'
import { createCategory, createProduct } from './catalog.js'
import type { App } from '../src/app.js'

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
const TAX_BPS = 2000
const env = { TAX_RATE_BPS: String(TAX_BPS), SHIPPING_FLAT_MINOR: '499', SHIPPING_FREE_OVER_MINOR: '10000' }

const add = (app: App, headers: Record<string, string>, variantId: string, quantity = 1) => app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
const checkout = (app: App, headers: Record<string, string>, payload: object = { shippingAddress: ADDRESS }, key?: string) =>
  app.inject({ method: 'POST', url: '/orders', headers: { ...headers, ...(key ? { 'idempotency-key': key } : {}) }, payload })
const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock

// An independent calculation of what an order must cost, written from the rules, not the code.
function expectedTotals(lines: { price: number; qty: number; eligible: boolean }[], coupon: { percent?: number; fixed?: number; max?: number } | null) {
  const subtotal = lines.reduce((s, l) => s + l.price * l.qty, 0)
  const eligible = lines.filter((l) => l.eligible).reduce((s, l) => s + l.price * l.qty, 0)
  let discount = 0
  if (coupon) {
    discount = coupon.percent ? Math.round((eligible * coupon.percent) / 100) : coupon.fixed!
    if (coupon.max !== undefined) discount = Math.min(discount, coupon.max)
    discount = Math.min(discount, eligible)
  }
  const goods = subtotal - discount
  const shipping = goods >= 10000 ? 0 : 499
  const tax = Math.round(((goods + shipping) * TAX_BPS) / 10000)
  return { subtotalMinor: subtotal, discountMinor: discount, shippingMinor: shipping, taxMinor: tax, totalMinor: goods + shipping + tax }
}

t.test('checkout: totals from the catalog, coupon by category, stock decremented, snapshots, cart cleared', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const shirts = await createCategory(app, admin.headers, { slug: 'shirts' })
  const tees = await createCategory(app, admin.headers, { slug: 'tees', parentId: shirts.id })
  const tee = await createProduct(app, admin.headers, { name: 'Tee', categoryId: tees.id, variants: [{ sku: 'TEE-M', priceMinor: 1999, stock: 10 }] })
  const mug = await createProduct(app, admin.headers, { name: 'Mug', variants: [{ sku: 'MUG-1', priceMinor: 1250, stock: 5 }] })
  const coupon = await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'shirts15', kind: 'percentage', value: 15, categoryIds: [shirts.id] } })
  t.equal(coupon.statusCode, 201)

  const { headers } = await register(app, { email: 'buyer@example.com' })
  await add(app, headers, tee.variants[0].id, 3)
  await add(app, headers, mug.variants[0].id, 2)
  const applied = await app.inject({ method: 'PUT', url: '/cart/coupon', headers, payload: { code: 'SHIRTS15' } })
  t.equal(applied.json().couponCode, 'SHIRTS15')
  const validation = await app.inject({ method: 'POST', url: '/coupons/validate', headers, payload: { code: 'shirts15' } })
  t.match(validation.json(), { valid: true, reason: null, discountMinor: Math.round(3 * 1999 * 0.15) })

  for (const extra of [{ totalMinor: 1 }, { subtotalMinor: 1 }, { items: [{ variantId: tee.variants[0].id, unitPriceMinor: 1 }] }, { discountMinor: 5000 }]) {
    t.equal((await checkout(app, headers, { shippingAddress: ADDRESS, ...extra })).statusCode, 400, `client-sent ${Object.keys(extra)[0]} is refused`)
  }
  t.equal((await checkout(app, headers, { shippingAddress: { ...ADDRESS, priceMinor: 1 } })).statusCode, 400)

  const res = await checkout(app, headers)
  t.equal(res.statusCode, 201, res.body)
  const order = res.json()
  t.match(order, { status: 'pending_payment', currency: 'EUR', couponCode: 'SHIRTS15', ...expectedTotals([{ price: 1999, qty: 3, eligible: true }, { price: 1250, qty: 2, eligible: false }], { percent: 15 }) })
  t.match(order.number, /^SO-\d{6}$/)
  t.same(order.items.map((i: { sku: string; quantity: number; unitPriceMinor: number }) => [i.sku, i.quantity, i.unitPriceMinor]), [['MUG-1', 2, 1250], ['TEE-M', 3, 1999]])
  t.equal(order.items.reduce((s: number, i: { discountMinor: number }) => s + i.discountMinor, 0), order.discountMinor, 'line discounts add up')
  t.equal(await stockOf(app, tee.variants[0].id), 7)
  t.equal(await stockOf(app, mug.variants[0].id), 3)
  t.same((await app.inject({ method: 'GET', url: '/cart', headers })).json().lines, [], 'cart cleared after commit')

  // Later catalog changes do not touch the order.
  await app.inject({ method: 'PATCH', url: `/products/${tee.id}/variants/${tee.variants[0].id}`, headers: admin.headers, payload: { priceMinor: 1 } })
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers })).json().items[1].unitPriceMinor, 1999)
  t.equal((await checkout(app, headers)).statusCode, 409, 'an empty cart cannot be checked out')
})

t.test('more totals, each against the independent calculation', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const big = await createProduct(app, admin.headers, { variants: [{ priceMinor: 7333, stock: 50 }] })
  const small = await createProduct(app, admin.headers, { variants: [{ priceMinor: 333, stock: 50 }] })
  await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'FIVEOFF', kind: 'fixed', value: 500, minSubtotalMinor: 1000 } })
  await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'HALF', kind: 'percentage', value: 50, maxDiscountMinor: 2500, productIds: [big.id] } })
  const cases = [
    { lines: [[big, 1], [small, 3]] as const, code: null, coupon: null },
    { lines: [[big, 2]] as const, code: 'FIVEOFF', coupon: { fixed: 500 } },
    { lines: [[big, 1], [small, 1]] as const, code: 'HALF', coupon: { percent: 50, max: 2500 }, eligible: [true, false] },
    { lines: [[small, 1]] as const, code: null, coupon: null },
  ]
  for (const [i, c] of cases.entries()) {
    const { headers } = await register(app, { email: `case${i}@example.com` })
    for (const [p, q] of c.lines) await add(app, headers, p.variants[0].id, q)
    const res = await checkout(app, headers, { shippingAddress: ADDRESS, couponCode: c.code })
    t.equal(res.statusCode, 201, res.body)
    const expected = expectedTotals(c.lines.map(([p, q], j) => ({ price: p.variants[0].priceMinor, qty: q, eligible: c.eligible ? c.eligible[j]! : true })), c.coupon)
    t.match(res.json(), expected, `case ${i}`)
  }
  const { headers } = await register(app, { email: 'below-min@example.com' })
  await add(app, headers, small.variants[0].id, 1)
  const refused = await checkout(app, headers, { shippingAddress: ADDRESS, couponCode: 'FIVEOFF' })
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().type, 'urn:problem-type:coupon-not-applicable')
  const why = await app.inject({ method: 'POST', url: '/coupons/validate', headers, payload: { code: 'FIVEOFF' } })
  t.match(why.json(), { valid: false, reason: /subtotal of at least 1000/ })
})

t.test('lines out of stock give a 409 naming them, and change nothing', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const a = await createProduct(app, admin.headers, { variants: [{ stock: 2 }] })
  const b = await createProduct(app, admin.headers, { variants: [{ stock: 5 }] })
  const { headers } = await register(app, { email: 'short@example.com' })
  await add(app, headers, a.variants[0].id, 2)
  await add(app, headers, b.variants[0].id, 1)
  await app.inject({ method: 'POST', url: `/products/${a.id}/variants/${a.variants[0].id}/stock-adjustments`, headers: admin.headers, payload: { delta: -1, reason: 'damage' } })
  const res = await checkout(app, headers)
  t.equal(res.statusCode, 409)
  t.same(res.json().errors, [{ path: `/cart/lines/${a.variants[0].id}`, message: 'only 1 left' }])
  t.equal(await stockOf(app, b.variants[0].id), 5, 'no partial decrement')
  t.equal((await app.inject({ method: 'GET', url: '/cart', headers })).json().lines.length, 2, 'the cart is kept')
})

t.test('100 parallel checkouts of a variant with stock 1: exactly one order, stock 0', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20' })
  const admin = await registerAdmin(app)
  const last = await createProduct(app, admin.headers, { variants: [{ stock: 1 }] })
  const buyers = await quickCustomers(app, 100)
  for (const b of buyers) t.equal((await add(app, b.headers, last.variants[0].id)).statusCode, 200)
  const results = await Promise.all(buyers.map((b) => checkout(app, b.headers)))
  const statuses = results.map((r) => r.statusCode)
  t.equal(statuses.filter((s) => s === 201).length, 1, 'one order')
  t.equal(statuses.filter((s) => s === 409).length, 99, 'the rest are told it is gone')
  t.equal(await stockOf(app, last.variants[0].id), 0)
  const { rows } = await app.db.execute<{ n: number }>(sql`select count(*)::int as n from orders`)
  t.equal(rows[0]!.n, 1)
})

t.test('20 parallel checkouts with a coupon limited to one use: exactly one discount', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20' })
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ priceMinor: 5000, stock: 100 }] })
  await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'ONCE', kind: 'fixed', value: 1000, usageLimit: 1 } })
  const buyers = await quickCustomers(app, 20)
  for (const b of buyers) await add(app, b.headers, p.variants[0].id)
  const results = await Promise.all(buyers.map((b) => checkout(app, b.headers, { shippingAddress: ADDRESS, couponCode: 'ONCE' })))
  const placed = results.filter((r) => r.statusCode === 201).map((r) => r.json())
  t.equal(placed.filter((o) => o.discountMinor > 0).length, 1, 'one discounted order')
  t.equal(results.filter((r) => r.statusCode === 409 && r.json().type === 'urn:problem-type:coupon-not-applicable').length, 19)
  const coupon = (await app.inject({ method: 'GET', url: '/coupons', headers: admin.headers })).json().items[0]
  t.equal(coupon.timesRedeemed, 1)
})

t.test('per-customer limit holds, also when one customer races checkouts', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ priceMinor: 5000, stock: 100 }] })
  await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'MINE', kind: 'fixed', value: 700, perCustomerLimit: 1 } })
  const { headers } = await register(app, { email: 'greedy@example.com' })
  await add(app, headers, p.variants[0].id, 2)
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => checkout(app, headers, { shippingAddress: ADDRESS, couponCode: 'MINE' }, `race-key-${i}`)))
  t.same(results.map((r) => r.statusCode).sort(), [201, 409, 409, 409, 409], 'one cart, one order')
  await add(app, headers, p.variants[0].id, 1)
  const again = await checkout(app, headers, { shippingAddress: ADDRESS, couponCode: 'MINE' })
  t.equal(again.statusCode, 409)
  t.match(again.json().detail, /already used/)
  const other = await register(app, { email: 'other@example.com' })
  await add(app, other.headers, p.variants[0].id, 1)
  t.equal((await checkout(app, other.headers, { shippingAddress: ADDRESS, couponCode: 'MINE' })).json().discountMinor, 700, 'another customer still can')
})

t.test('Idempotency-Key: 10 parallel requests, one order, identical responses; a different body is 422', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1500, stock: 20 }] })
  const { headers } = await register(app, { email: 'retry@example.com' })
  await add(app, headers, p.variants[0].id, 2)
  const results = await Promise.all(Array.from({ length: 10 }, () => checkout(app, headers, { shippingAddress: ADDRESS }, 'checkout-key-0001')))
  t.same([...new Set(results.map((r) => r.statusCode))], [201])
  t.equal(new Set(results.map((r) => r.body)).size, 1, 'byte-identical bodies')
  t.equal(results.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 9)
  t.equal(await stockOf(app, p.variants[0].id), 18, 'stock taken once')
  t.equal((await app.inject({ method: 'GET', url: '/orders', headers })).json().items.length, 1)

  const later = await checkout(app, headers, { shippingAddress: ADDRESS }, 'checkout-key-0001')
  t.equal(later.body, results[0]!.body, 'replayed later too')
  const different = await checkout(app, headers, { shippingAddress: { ...ADDRESS, city: 'Bath' } }, 'checkout-key-0001')
  t.equal(different.statusCode, 422)
  t.equal(different.json().type, 'urn:problem-type:idempotency-key-reused')
  t.equal((await checkout(app, headers, { shippingAddress: ADDRESS }, 'bad key!')).statusCode, 400)
})

t.test('checkouts of different variants of the same products, in opposite orders, never deadlock', async (t) => {
  const app = await buildTestApp(t, { ...env, DB_POOL_MAX: '20' })
  const admin = await registerAdmin(app)
  const customers = await quickCustomers(app, 2)
  const statuses: number[] = []
  // Each round: two products of two variants; one customer buys the first variants, the other
  // the second ones, listed the other way round. No variant is shared, every product is.
  for (let round = 0; round < 15; round++) {
    const [p, q] = [await createProduct(app, admin.headers, { variants: [{ priceMinor: 500, stock: 50 }, { priceMinor: 600, stock: 50 }] }),
      await createProduct(app, admin.headers, { variants: [{ priceMinor: 700, stock: 50 }, { priceMinor: 800, stock: 50 }] })]
    for (const variantId of [p.variants[0].id, q.variants[0].id]) await add(app, customers[0]!.headers, variantId)
    for (const variantId of [q.variants[1].id, p.variants[1].id]) await add(app, customers[1]!.headers, variantId)
    const answers = await Promise.all(customers.map((c) => checkout(app, c.headers)))
    statuses.push(...answers.map((a) => a.statusCode))
  }
  t.same([...new Set(statuses)], [201], `every checkout placed (${statuses.filter((s) => s !== 201).length} failed)`)
})

t.test('order numbers: SO- and six digits at least, drawn with the order; past 999999 no digit is lost', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const mug = await createProduct(app, admin.headers, { name: 'Mug', variants: [{ sku: 'MUG-N', priceMinor: 1250, stock: 5 }] })
  const { headers } = await register(app, { email: 'numbers@example.com' })
  await add(app, headers, mug.variants[0].id)
  const first = (await checkout(app, headers)).json()
  t.match(first.number, /^SO-\d{6}$/)
  await app.db.execute(sql`select setval('order_number_seq', 1234566)`)
  await add(app, headers, mug.variants[0].id)
  t.equal((await checkout(app, headers)).json().number, 'SO-1234567')
})
