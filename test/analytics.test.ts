import t from 'tap'
import { eq } from 'drizzle-orm'
import { orders } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

const ADDRESS = { recipientName: 'A', line1: '1 Road', city: 'Town', postalCode: '12345', country: 'DE' }

async function order(app: App, headers: Record<string, string>, lines: [string, number][], payWith: string | null) {
  for (const [variantId, quantity] of lines) await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
  const placed = (await app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: ADDRESS } })).json()
  let payment = null
  if (payWith) {
    payment = (await app.inject({ method: 'POST', url: `/orders/${placed.id}/payments`, headers, payload: { provider: 'test', paymentMethod: payWith } })).json()
    await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: payWith } })
  }
  return { order: placed, payment }
}

t.test('analytics figures equal an independent calculation over the orders', async (t) => {
  const testStarted = Date.now()
  const app = await buildTestApp(t, { TAX_RATE_BPS: '1000' })
  const admin = await registerAdmin(app)
  const a = await createProduct(app, admin.headers, { name: 'Alpha', variants: [{ sku: 'A-1', priceMinor: 1200, stock: 100 }] })
  const b = await createProduct(app, admin.headers, { name: 'Beta', variants: [{ sku: 'B-1', priceMinor: 350, stock: 8 }] })
  await createProduct(app, admin.headers, { name: 'Gamma', variants: [{ sku: 'G-1', priceMinor: 99, stock: 2 }] })
  const [c1, c2, c3] = await quickCustomers(app, 3)

  const placed = [
    await order(app, c1!.headers, [[a.variants[0].id, 2], [b.variants[0].id, 1]], 'tok_success'),
    await order(app, c2!.headers, [[b.variants[0].id, 4]], 'tok_success'),
    await order(app, c3!.headers, [[a.variants[0].id, 1]], 'tok_success'),
    await order(app, c1!.headers, [[a.variants[0].id, 5]], 'tok_decline'),
    await order(app, c2!.headers, [[a.variants[0].id, 1]], null),
  ]
  // Spread the paid orders over two UTC days counted back from today, so the test holds on any
  // day: day 1 at 10:00 ten days ago, day 2 the next day at 23:30 (just before a UTC midnight).
  const DAY = 86_400_000
  const midnight = (at: number) => Math.floor(at / DAY) * DAY
  const iso = (at: number) => new Date(at).toISOString()
  const day1Start = midnight(Date.now()) - 10 * DAY
  const day1 = new Date(day1Start + 10 * 3_600_000)
  const day2 = new Date(day1Start + DAY + 23.5 * 3_600_000)
  await app.db.update(orders).set({ paidAt: day1 }).where(eq(orders.id, placed[0]!.order.id))
  await app.db.update(orders).set({ paidAt: day1 }).where(eq(orders.id, placed[1]!.order.id))
  await app.db.update(orders).set({ paidAt: day2 }).where(eq(orders.id, placed[2]!.order.id))
  // A partial refund on the first order.
  await app.inject({ method: 'POST', url: `/payments/${placed[0]!.payment.id}/refunds`, headers: admin.headers, payload: { amountMinor: 300 } })

  const paid = placed.slice(0, 3).map((p) => p.order)
  const refunds = [300, 0, 0]
  const revenue = paid.reduce((s, o, i) => s + o.totalMinor - refunds[i]!, 0)
  const get = async (url: string) => (await app.inject({ method: 'GET', url, headers: admin.headers })).json()
  // From before day 1 to tomorrow: the payments themselves are dated now.
  const range = `from=${iso(day1Start - 5 * DAY)}&to=${iso(Date.now() + DAY)}`

  const sales = await get(`/analytics/sales?${range}`)
  t.equal(sales.orders, 3)
  t.equal(sales.revenueMinor, revenue)
  t.equal(sales.averageOrderValueMinor, Math.round(revenue / 3))
  t.same(sales.byDay, [
    { day: iso(day1Start).slice(0, 10), orders: 2, revenueMinor: paid[0].totalMinor - 300 + paid[1].totalMinor },
    { day: iso(day1Start + DAY).slice(0, 10), orders: 1, revenueMinor: paid[2].totalMinor },
  ])
  t.equal((await get(`/analytics/sales?from=${iso(day1Start + DAY)}&to=${iso(day1Start + 2 * DAY)}`)).orders, 1, 'the range bounds apply')

  // Units and revenue (after line discounts) per product, from the paid orders' items.
  const byProduct = new Map<string, { units: number; revenue: number }>()
  for (const o of paid) for (const i of o.items) {
    const e = byProduct.get(i.productId) ?? { units: 0, revenue: 0 }
    byProduct.set(i.productId, { units: e.units + i.quantity, revenue: e.revenue + i.lineTotalMinor - i.discountMinor })
  }
  const top = await get(`/analytics/top-products?${range}&by=units`)
  t.same(top.items.map((r: { productId: string; units: number; revenueMinor: number }) => [r.productId, r.units, r.revenueMinor]),
    [...byProduct.entries()].sort((x, y) => y[1].units - x[1].units).map(([id, v]) => [id, v.units, v.revenue]))
  t.equal((await get(`/analytics/top-products?${range}&by=revenue`)).items[0].name, 'Alpha')

  const low = await get('/analytics/low-stock?threshold=3')
  t.same(low.items.map((r: { sku: string; stock: number }) => [r.sku, r.stock]), [['G-1', 2], ['B-1', 3]], 'B-1: 8 - 1 - 4 = 3')

  const pay = (await get(`/analytics/payments?${range}`)).byProvider
  const captured = paid.reduce((s, o) => s + o.totalMinor, 0)
  t.same(pay, [{ provider: 'test', currency: 'EUR', payments: 4, succeeded: 3, failed: 1, successRate: 0.75, capturedMinor: captured, refundedMinor: 300, refundRate: Math.round((300 / captured) * 10_000) / 10_000 }])

  // From when this test started (not today's midnight, which may fall between registering and asking).
  const customers = await get(`/analytics/customers?from=${iso(testStarted - 60_000)}&to=${iso(Date.now() + DAY)}`)
  t.equal(customers.total, 3, 'the admin is not a customer')

  t.equal((await app.inject({ method: 'GET', url: `/analytics/sales?${range}`, headers: c1!.headers })).statusCode, 403)
  t.equal((await app.inject({ method: 'GET', url: `/analytics/sales?from=${iso(Date.now())}&to=${iso(Date.now() - 30 * DAY)}`, headers: admin.headers })).statusCode, 400, 'from after to')
  t.equal((await app.inject({ method: 'GET', url: '/analytics/sales?from=yesterday&to=today', headers: admin.headers })).statusCode, 400)
})
