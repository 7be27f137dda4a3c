import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

const ADDRESS = { recipientName: 'A', line1: '1 Road', city: 'Town', postalCode: '12345', country: 'DE' }

t.test('coupon admin: CRUD, validation, codes unique and case-insensitive, admin-only', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const customer = await register(app, { email: 'c@example.com' })
  const create = (payload: object, headers = admin.headers) => app.inject({ method: 'POST', url: '/coupons', headers, payload })

  // Ends a year from now, whatever day the test runs.
  const endsAt = new Date(Date.now() + 365 * 86_400_000).toISOString()
  const created = await create({ code: 'Spring-10', kind: 'percentage', value: 10, endsAt, usageLimit: 100 })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { code: 'SPRING-10', kind: 'percentage', value: 10, timesRedeemed: 0, endsAt })
  t.equal((await create({ code: 'spring-10', kind: 'fixed', value: 5 })).statusCode, 409, 'codes are case-insensitive')
  t.equal((await create({ code: 'BAD', kind: 'percentage', value: 150 })).statusCode, 409, 'a percentage above 100')
  for (const bad of [{ code: 'x', kind: 'fixed', value: 1 }, { code: 'OK1', kind: 'bogus', value: 1 }, { code: 'OK2', kind: 'fixed', value: 0 }, { code: 'OK3', kind: 'fixed', value: 1, timesRedeemed: 5 }]) {
    t.equal((await create(bad)).statusCode, 400, JSON.stringify(bad))
  }
  t.equal((await create({ code: 'NOPE', kind: 'fixed', value: 1 }, customer.headers)).statusCode, 403)

  const id = created.json().id
  const updated = await app.inject({ method: 'PATCH', url: `/coupons/${id}`, headers: admin.headers, payload: { isActive: false } })
  t.equal(updated.json().isActive, false)
  t.equal((await app.inject({ method: 'GET', url: `/coupons/${id}`, headers: admin.headers })).json().isActive, false)
  t.equal((await app.inject({ method: 'GET', url: '/coupons', headers: customer.headers })).statusCode, 403)
  t.equal((await app.inject({ method: 'DELETE', url: `/coupons/${id}`, headers: admin.headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/coupons/${id}`, headers: admin.headers })).statusCode, 404)
})

t.test('validate explains why a code does not apply; a redeemed coupon cannot be deleted', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ priceMinor: 3000, stock: 10 }] })
  const other = await createProduct(app, admin.headers, { variants: [{ priceMinor: 100, stock: 10 }] })
  const coupons = [
    { code: 'FUTURE', kind: 'fixed', value: 100, startsAt: new Date(Date.now() + 86_400_000).toISOString() },
    { code: 'PAST', kind: 'fixed', value: 100, endsAt: new Date(Date.now() - 86_400_000).toISOString() },
    { code: 'OFF', kind: 'fixed', value: 100, isActive: false },
    { code: 'ONLYOTHER', kind: 'fixed', value: 100, productIds: [other.id] },
    { code: 'GOOD', kind: 'percentage', value: 20 },
  ]
  for (const c of coupons) await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: c })
  const { headers } = await register(app, { email: 'v@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId: p.variants[0].id } })
  const validate = async (code: string) => (await app.inject({ method: 'POST', url: '/coupons/validate', headers, payload: { code } })).json()
  t.match(await validate('FUTURE'), { valid: false, reason: /not valid yet/ })
  t.match(await validate('PAST'), { valid: false, reason: /expired/ })
  t.match(await validate('OFF'), { valid: false, reason: /no longer active/ })
  t.match(await validate('MISSING'), { valid: false, reason: /does not exist/ })
  t.match(await validate('ONLYOTHER'), { valid: false, reason: /does not apply to any item/ })
  t.match(await validate('good'), { valid: true, discountMinor: 600 })
  t.equal((await app.inject({ method: 'PUT', url: '/cart/coupon', headers, payload: { code: 'OFF' } })).statusCode, 404, 'an inactive code cannot be applied')
  t.equal((await app.inject({ method: 'PUT', url: '/cart/coupon', headers, payload: { code: 'good' } })).json().couponCode, 'GOOD')
  t.equal((await app.inject({ method: 'DELETE', url: '/cart/coupon', headers })).json().couponCode, null)
  await app.inject({ method: 'PUT', url: '/cart/coupon', headers, payload: { code: 'GOOD' } })
  const order = (await app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: ADDRESS } })).json()
  t.equal(order.discountMinor, 600)
  const good = (await app.inject({ method: 'GET', url: '/coupons', headers: admin.headers })).json().items.find((c: { code: string }) => c.code === 'GOOD')
  t.equal(good.timesRedeemed, 1)
  t.equal((await app.inject({ method: 'DELETE', url: `/coupons/${good.id}`, headers: admin.headers })).statusCode, 409)
  // Cancelling gives the use back.
  await app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers })
  t.equal((await app.inject({ method: 'GET', url: `/coupons/${good.id}`, headers: admin.headers })).json().timesRedeemed, 0)
})
