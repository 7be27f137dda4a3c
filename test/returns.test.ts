import t from 'tap'
import { and, eq } from 'drizzle-orm'
import { inventoryMovements, orderItems, orders, payments, productVariants, refunds, testProviderRefunds } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Returns: request within the window, approve, receive (restock what is resellable), refund
// through the payment's refund workflow, once, whatever runs in parallel.
const env = { TAX_RATE_BPS: '2000', SHIPPING_FLAT_MINOR: '499', SHIPPING_FREE_OVER_MINOR: '100000' }
const ADDRESS = { recipientName: 'R', line1: '1 Road', city: 'Berlin', postalCode: '10115', country: 'DE' }
type Headers = Record<string, string>

const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock
const post = (app: App, url: string, headers: Headers, payload?: object) => app.inject({ method: 'POST', url, headers, ...(payload ? { payload } : {}) })

/** Largest-remainder split of `total` in proportion to `weights`, ties to the earlier one: the test's own. */
function split(total: number, weights: number[]) {
  const sum = weights.reduce((s, w) => s + w, 0)
  const shares = weights.map((w, i) => ({ i, floor: Math.floor((total * w) / sum), rest: (total * w) / sum - Math.floor((total * w) / sum) }))
  let left = total - shares.reduce((s, x) => s + x.floor, 0)
  const out = shares.map((s) => s.floor)
  for (const s of [...shares].sort((a, b) => b.rest - a.rest || a.i - b.i)) if (left-- > 0) out[s.i]! += 1
  return out
}

async function deliveredOrder(app: App, admin: Headers, buyer: Headers, lines: [string, number][], coupon?: string) {
  for (const [variantId, quantity] of lines) await post(app, '/cart/items', buyer, { variantId, quantity })
  if (coupon) await app.inject({ method: 'PUT', url: '/cart/coupon', headers: buyer, payload: { code: coupon } })
  const order = (await post(app, '/orders', buyer, { shippingAddress: ADDRESS })).json()
  const payment = (await post(app, `/orders/${order.id}/payments`, buyer, { provider: 'test', paymentMethod: 'tok_success' })).json()
  await post(app, `/payments/${payment.id}/confirm`, buyer, { paymentMethod: 'tok_success' })
  for (const status of ['fulfilled', 'shipped', 'delivered']) {
    const moved = await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin, payload: { status } })
    if (moved.statusCode !== 200) throw new Error(moved.body)
  }
  return { order: (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer })).json(), payment }
}

const statuses = (responses: { statusCode: number }[]) => responses.map((r) => r.statusCode).sort()

t.test('a partial return restocks and refunds exactly once under parallel requests', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = (await registerAdmin(app)).headers
  const a = (await createProduct(app, admin, { variants: [{ sku: 'RA-1', priceMinor: 1999, stock: 20 }] })).variants[0].id
  const b = (await createProduct(app, admin, { variants: [{ sku: 'RB-1', priceMinor: 1250, stock: 10 }] })).variants[0].id
  t.equal((await post(app, '/coupons', admin, { code: 'TEN', kind: 'percentage', value: 10 })).statusCode, 201)
  const { headers: buyer } = await register(app, { email: 'returner@example.com' })
  const { order, payment } = await deliveredOrder(app, admin, buyer, [[a, 3], [b, 2]], 'TEN')
  t.equal(order.status, 'delivered')
  t.ok(order.deliveredAt)

  // The independent figures: discount and tax spread over the lines, each line's worth per unit.
  const gross = [1999 * 3, 1250 * 2]
  const discount = Math.round((gross[0]! + gross[1]!) * 0.1)
  const lineDiscounts = split(discount, gross)
  const nets = gross.map((g, i) => g - lineDiscounts[i]!)
  const tax = Math.round((nets[0]! + nets[1]! + 499) * 0.2)
  const [taxA, taxB] = split(tax, [...nets, 499])
  const valueA = nets[0]! + taxA!
  const valueB = nets[1]! + taxB!
  t.match(order, { discountMinor: discount, taxMinor: tax, totalMinor: nets[0]! + nets[1]! + 499 + tax })
  const itemA = order.items.find((i: { sku: string }) => i.sku === 'RA-1')
  const itemB = order.items.find((i: { sku: string }) => i.sku === 'RB-1')
  t.match(itemA, { discountMinor: lineDiscounts[0], taxMinor: taxA })

  // Ask to return 2 of A (damaged) and 1 of B.
  const asked = await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: itemA.id, quantity: 2, reason: 'damaged', note: 'cracked' }, { orderItemId: itemB.id, quantity: 1, reason: 'no_longer_needed' }] })
  t.equal(asked.statusCode, 201, asked.body)
  const ret = asked.json()
  t.match(ret, { status: 'requested', orderNumber: order.number, refundMinor: null, refund: null })
  const more = await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: itemA.id, quantity: 2, reason: 'other' }] })
  t.equal(more.statusCode, 409, 'never more than was bought, counting returns asked for')
  t.equal(more.json().type, 'urn:problem-type:return-exceeds-ordered')

  t.same(statuses(await Promise.all(Array.from({ length: 5 }, () => post(app, `/returns/${ret.id}/approve`, admin)))), [200, 409, 409, 409, 409])

  // One A of two came back, resellable; B came back. Five identical receipts at once.
  const itemOf = (orderItemId: string) => ret.items.find((i: { orderItemId: string }) => i.orderItemId === orderItemId).id
  const receipt = { items: [{ returnItemId: itemOf(itemA.id), quantity: 1, resellable: true }, { returnItemId: itemOf(itemB.id), quantity: 1, resellable: true }] }
  const received = await Promise.all(Array.from({ length: 5 }, () => post(app, `/returns/${ret.id}/receive`, admin, receipt)))
  t.same(statuses(received), [200, 409, 409, 409, 409])
  const expectedFirst = Math.round(valueA / 3) + Math.round(valueB / 2)
  t.match(received.find((r) => r.statusCode === 200)!.json(), { status: 'received', refundMinor: expectedFirst })
  t.equal(await stockOf(app, a), 20 - 3 + 1, 'one A back on the shelf, once')
  t.equal(await stockOf(app, b), 10 - 2 + 1)
  const movements = await app.db.select().from(inventoryMovements).where(eq(inventoryMovements.reason, 'return'))
  t.same(movements.map((m) => m.delta).sort(), [1, 1], 'one return movement per restocked line')

  // Five refunds at once, no key: one refund of the fixed amount.
  const refunded = await Promise.all(Array.from({ length: 5 }, () => post(app, `/returns/${ret.id}/refund`, admin)))
  t.same(statuses(refunded), [200, 409, 409, 409, 409])
  t.match(refunded.find((r) => r.statusCode === 200)!.json(), { status: 'refunded', refund: { amountMinor: expectedFirst, status: 'succeeded', paymentId: payment.id } })
  const afterFirst = (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer })).json()
  t.match(afterFirst, { status: 'delivered', refundedMinor: expectedFirst }, 'a partial refund leaves the order delivered')

  // The rest of A and B, refunded with one Idempotency-Key sent four times at once.
  const second = (await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: itemA.id, quantity: 1, reason: 'defective' }, { orderItemId: itemB.id, quantity: 1, reason: 'wrong_item' }] })).json()
  t.equal((await post(app, `/returns/${second.id}/approve`, admin)).statusCode, 200)
  const ids = Object.fromEntries(second.items.map((i: { orderItemId: string; id: string }) => [i.orderItemId, i.id]))
  const got = await post(app, `/returns/${second.id}/receive`, admin, { items: [{ returnItemId: ids[itemA.id], quantity: 1, resellable: false }, { returnItemId: ids[itemB.id], quantity: 1, resellable: true }] })
  const expectedSecond = (Math.round((2 * valueA) / 3) - Math.round(valueA / 3)) + (valueB - Math.round(valueB / 2))
  t.match(got.json(), { refundMinor: expectedSecond })
  t.equal(await stockOf(app, a), 18, 'not resellable: not restocked')
  t.equal(await stockOf(app, b), 10)
  const keyed = await Promise.all(Array.from({ length: 4 }, () => app.inject({ method: 'POST', url: `/returns/${second.id}/refund`, headers: { ...admin, 'idempotency-key': 'return-refund-0001' } })))
  t.same(statuses(keyed), [200, 200, 200, 200], 'the same key answers the same result')
  t.equal(new Set(keyed.map((r) => r.json().refund.id)).size, 1)

  const paymentRefunds = await app.db.select().from(refunds).where(eq(refunds.paymentId, payment.id))
  t.same(paymentRefunds.map((r) => r.amountMinor).sort((x, y) => x - y), [expectedFirst, expectedSecond].sort((x, y) => x - y), 'two refunds, one per return')
  const [orderRow] = await app.db.select().from(orders).where(eq(orders.id, order.id))
  t.equal(orderRow!.refundedMinor, expectedFirst + expectedSecond)
  t.equal(orderRow!.status, 'delivered')
  const [paymentRow] = await app.db.select().from(payments).where(eq(payments.id, payment.id))
  t.equal(paymentRow!.refundedMinor, expectedFirst + expectedSecond)
  t.equal((await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: itemB.id, quantity: 1, reason: 'other' }] })).statusCode, 409, 'nothing left to return')
  const shipTax = (await app.inject({ method: 'GET', url: `/analytics/shipping-tax?from=${new Date(Date.now() - 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`, headers: admin })).json()
  t.match(shipTax, { orders: 1, shippingMinor: 499, taxMinor: tax, byCountry: [{ country: 'DE', orders: 1, shippingMinor: 499, taxMinor: tax }] })

  // Analytics: returns and their reasons.
  const range = `from=${new Date(Date.now() - 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`
  const stats = (await app.inject({ method: 'GET', url: `/analytics/returns?${range}`, headers: admin })).json()
  t.match(stats, { returns: 2, refundedMinor: expectedFirst + expectedSecond })
  t.same(Object.fromEntries(stats.byStatus.map((r: { status: string; returns: number }) => [r.status, r.returns])), { refunded: 2 })
  t.same(Object.fromEntries(stats.byReason.map((r: { reason: string; units: number }) => [r.reason, r.units])), { damaged: 2, no_longer_needed: 1, defective: 1, wrong_item: 1 })
})

t.test('a full return of an order shipped free refunds all of it and moves the order to refunded', async (t) => {
  const app = await buildTestApp(t, { ...env, SHIPPING_FREE_OVER_MINOR: '1', PRICES_INCLUDE_TAX: 'true' })
  const admin = (await registerAdmin(app)).headers
  const a = (await createProduct(app, admin, { variants: [{ priceMinor: 1001, stock: 5 }] })).variants[0].id
  const { headers: buyer } = await register(app, { email: 'full@example.com' })
  const { order } = await deliveredOrder(app, admin, buyer, [[a, 3]])
  t.match(order, { pricesIncludeTax: true, shippingMinor: 0, totalMinor: 3003, taxMinor: 3003 - Math.round((3003 * 10000) / 12000) })
  const ret = (await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: order.items[0].id, quantity: 3, reason: 'not_as_described' }] })).json()
  await post(app, `/returns/${ret.id}/approve`, admin)
  const got = (await post(app, `/returns/${ret.id}/receive`, admin, { items: [{ returnItemId: ret.items[0].id, quantity: 3, resellable: true }] })).json()
  t.equal(got.refundMinor, 3003, 'tax-inclusive: the line total is what was paid')
  t.equal((await post(app, `/returns/${ret.id}/refund`, admin)).statusCode, 200)
  t.match((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer })).json(), { status: 'refunded', refundedMinor: 3003 })
  t.equal(await stockOf(app, a), 5, 'restocked by the return only, not again by the refund')
})

t.test('faults in a return refund: after recording, after the provider call; refunded exactly once', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = (await registerAdmin(app)).headers
  const a = (await createProduct(app, admin, { variants: [{ priceMinor: 2000, stock: 10 }] })).variants[0].id
  const { headers: buyer } = await register(app, { email: 'faults@example.com' })
  const { order, payment } = await deliveredOrder(app, admin, buyer, [[a, 4]])
  const lineValue = 8000 + order.items[0].taxMinor
  const ready = async () => {
    const ret = (await post(app, `/orders/${order.id}/returns`, buyer, { items: [{ orderItemId: order.items[0].id, quantity: 1, reason: 'damaged' }] })).json()
    await post(app, `/returns/${ret.id}/approve`, admin)
    await post(app, `/returns/${ret.id}/receive`, admin, { items: [{ returnItemId: ret.items[0].id, quantity: 1, resellable: true }] })
    return ret.id as string
  }
  const refund = (id: string, key: string) => app.inject({ method: 'POST', url: `/returns/${id}/refund`, headers: { ...admin, 'idempotency-key': key } })

  const first = await ready()
  app.faults.failOnce('return.after-record')
  t.equal((await refund(first, 'ret-refund-01')).statusCode, 500)
  t.equal((await refund(first, 'ret-refund-other')).statusCode, 409, 'without the key: already refunded')
  const resumed = await refund(first, 'ret-refund-01')
  t.equal(resumed.statusCode, 200, resumed.body)
  t.match(resumed.json(), { status: 'refunded', refund: { amountMinor: Math.round(lineValue / 4), status: 'succeeded' } })

  const second = await ready()
  app.faults.failOnce('refund.after-provider-call')
  t.equal((await refund(second, 'ret-refund-02')).statusCode, 500)
  t.equal((await app.db.select().from(refunds).where(eq(refunds.status, 'pending'))).length, 1, 'recorded, sent, not settled')
  const again = await refund(second, 'ret-refund-02')
  t.equal(again.statusCode, 200, again.body)
  t.match(again.json(), { refund: { status: 'succeeded', amountMinor: Math.round((2 * lineValue) / 4) - Math.round(lineValue / 4) } })

  const books = await app.db.select().from(testProviderRefunds)
  t.equal(books.length, 2, 'the provider refunded each return once')
  const [row] = await app.db.select().from(orders).where(eq(orders.id, order.id))
  t.equal(row!.refundedMinor, Math.round((2 * lineValue) / 4))
  t.equal((await app.db.select().from(refunds).where(eq(refunds.paymentId, payment.id))).length, 2)
})

t.test('returns: window, bad input, other people, auth', async (t) => {
  const app = await buildTestApp(t, { ...env, RETURN_WINDOW_DAYS: '14' })
  const admin = (await registerAdmin(app)).headers
  const a = (await createProduct(app, admin, { variants: [{ priceMinor: 500, stock: 50 }] })).variants[0].id
  const { headers: buyer } = await register(app, { email: 'owner@example.com' })
  const { headers: other } = await register(app, { email: 'other@example.com' })
  const { order } = await deliveredOrder(app, admin, buyer, [[a, 2]])
  const item = order.items[0].id
  const url = `/orders/${order.id}/returns`

  t.equal((await app.inject({ method: 'POST', url, payload: { items: [{ orderItemId: item, quantity: 1, reason: 'other' }] } })).statusCode, 401)
  t.equal((await post(app, url, other, { items: [{ orderItemId: item, quantity: 1, reason: 'other' }] })).statusCode, 404, "another's order does not exist")
  for (const payload of [{ items: [] }, { items: [{ orderItemId: item, quantity: 0, reason: 'other' }] }, { items: [{ orderItemId: item, quantity: 1, reason: 'boredom' }] },
    { items: [{ orderItemId: item, quantity: 1 }] }, { items: [{ orderItemId: item, quantity: 1, reason: 'other' }, { orderItemId: item, quantity: 1, reason: 'other' }] },
    { items: [{ orderItemId: '00000000-0000-4000-8000-000000000000', quantity: 1, reason: 'other' }] }, { items: [{ orderItemId: item, quantity: 1, reason: 'other', priceMinor: 1 }] }]) {
    const res = await post(app, url, buyer, payload)
    t.equal(res.statusCode, 400, JSON.stringify(payload))
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.equal((await post(app, url, buyer, { items: [{ orderItemId: item, quantity: 3, reason: 'other' }] })).statusCode, 409)
  // Four requests at once for one unit each of a line of two: two are accepted.
  const racing = await Promise.all(Array.from({ length: 4 }, () => post(app, url, buyer, { items: [{ orderItemId: item, quantity: 1, reason: 'other' }] })))
  t.same(statuses(racing), [201, 201, 409, 409])
  for (const r of racing.filter((x) => x.statusCode === 201)) t.equal((await post(app, `/returns/${r.json().id}/reject`, admin, { reason: 'test race' })).statusCode, 200)

  // Not delivered: paid only.
  await post(app, '/cart/items', buyer, { variantId: a, quantity: 1 })
  const unpaid = (await post(app, '/orders', buyer, { shippingAddress: ADDRESS })).json()
  const notYet = await post(app, `/orders/${unpaid.id}/returns`, buyer, { items: [{ orderItemId: unpaid.items[0].id, quantity: 1, reason: 'other' }] })
  t.equal(notYet.json().type, 'urn:problem-type:order-not-delivered')

  const ret = (await post(app, url, buyer, { items: [{ orderItemId: item, quantity: 2, reason: 'damaged' }] })).json()
  t.equal((await post(app, `/returns/${ret.id}/approve`, buyer)).statusCode, 403, 'customers do not approve')
  t.equal((await post(app, `/returns/${ret.id}/refund`, buyer)).statusCode, 403)
  t.equal((await app.inject({ method: 'GET', url: `/returns/${ret.id}`, headers: other })).statusCode, 404)
  t.same((await app.inject({ method: 'GET', url: '/returns', headers: other })).json().items, [])
  t.equal((await app.inject({ method: 'GET', url: '/returns', headers: buyer })).json().items.length, 3, 'mine: the two rejected racers and this one')
  t.equal((await app.inject({ method: 'GET', url: '/returns?status=requested', headers: admin })).json().items.length, 1)
  t.equal((await post(app, `/returns/${ret.id}/receive`, admin, { items: [] })).statusCode, 409, 'not approved yet')
  t.equal((await post(app, `/returns/${ret.id}/refund`, admin)).statusCode, 409, 'not received yet')
  t.equal((await post(app, `/returns/${ret.id}/reject`, admin, {})).statusCode, 400)
  t.match((await post(app, `/returns/${ret.id}/reject`, admin, { reason: 'photos show wear' })).json(), { status: 'rejected', rejectionReason: 'photos show wear' })
  t.equal((await post(app, `/returns/${ret.id}/approve`, admin)).statusCode, 409, 'a rejected return stays rejected')

  // A rejected return frees its quantities; receiving more than asked is refused.
  const again = (await post(app, url, buyer, { items: [{ orderItemId: item, quantity: 1, reason: 'damaged' }] })).json()
  await post(app, `/returns/${again.id}/approve`, admin)
  t.equal((await post(app, `/returns/${again.id}/receive`, admin, { items: [{ returnItemId: again.items[0].id, quantity: 2, resellable: true }] })).statusCode, 400)
  t.equal((await post(app, `/returns/${again.id}/receive`, admin, { items: [{ returnItemId: '00000000-0000-4000-8000-000000000000', quantity: 1, resellable: true }] })).statusCode, 400)
  // Nothing came back: nothing to refund, the return is closed without a payment refund.
  t.match((await post(app, `/returns/${again.id}/receive`, admin, { items: [] })).json(), { status: 'received', refundMinor: 0 })
  t.match((await post(app, `/returns/${again.id}/refund`, admin)).json(), { status: 'refunded', refund: null })

  // An order from before lines carried their tax share: the tax is spread when the goods come back.
  await app.db.update(orders).set({ taxRate: null }).where(eq(orders.id, order.id))
  await app.db.update(orderItems).set({ taxMinor: 0 }).where(eq(orderItems.orderId, order.id))
  const legacy = (await post(app, url, buyer, { items: [{ orderItemId: item, quantity: 1, reason: 'other' }] })).json()
  await post(app, `/returns/${legacy.id}/approve`, admin)
  const [lineTax] = split(order.taxMinor, [1000, 499])
  t.equal(order.taxMinor, Math.round(1499 * 0.2))
  t.match((await post(app, `/returns/${legacy.id}/receive`, admin, { items: [{ returnItemId: legacy.items[0].id, quantity: 1, resellable: true }] })).json(), { refundMinor: Math.round((1000 + lineTax!) / 2) })

  // The window counts from delivery.
  await app.db.update(orders).set({ deliveredAt: new Date(Date.now() - 15 * 86_400_000) }).where(and(eq(orders.id, order.id)))
  const late = await post(app, url, buyer, { items: [{ orderItemId: item, quantity: 1, reason: 'other' }] })
  t.equal(late.statusCode, 409)
  t.equal(late.json().type, 'urn:problem-type:return-window-closed')
  t.equal((await app.inject({ method: 'GET', url: '/returns/00000000-0000-4000-8000-000000000000', headers: admin })).statusCode, 404)
})
