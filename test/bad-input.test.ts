import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// Defects named in issue 12 where bad input was a 500 or a lookup told strangers what exists;
// each failed on the code before its fix.

t.test('a cursor holding a fraction where a price sorts is a 400, not a 500', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000 }] })
  for (const sort of ['price_asc', 'price_desc']) {
    const cursor = Buffer.from(JSON.stringify([1.5, randomUUID()])).toString('base64url')
    const res = await app.inject({ method: 'GET', url: `/products?sort=${sort}&cursor=${cursor}` })
    t.equal(res.statusCode, 400, `${sort}: ${res.body}`)
    t.equal(res.json().type, 'urn:problem-type:invalid-cursor')
  }
})

t.test('coupon dates outside 1970-9999 are refused before they reach the database', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  for (const endsAt of ['0005-01-01T00:00:00Z', '0019-12-31T23:59:59Z', '1969-12-31T23:59:59Z']) {
    const res = await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: `OLD${endsAt.slice(0, 4)}`, kind: 'fixed', value: 100, endsAt } })
    t.equal(res.statusCode, 400, `${endsAt}: ${res.body}`)
  }
  const ok = await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'FUTURE', kind: 'fixed', value: 100, endsAt: '9999-12-31T23:59:59Z' } })
  t.equal(ok.statusCode, 201, ok.body)
  t.equal((await app.inject({ method: 'GET', url: '/coupons', headers: admin.headers })).statusCode, 200, 'the listing still answers')
  t.equal((await app.inject({ method: 'GET', url: '/analytics/sales?from=0001-01-01T00:00:00Z&to=2030-01-01T00:00:00Z', headers: admin.headers })).statusCode, 400)
})

t.test('applying a coupon without a cart tells nothing about which codes exist', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  t.equal((await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'REALCODE', kind: 'fixed', value: 100 } })).statusCode, 201)
  const real = await app.inject({ method: 'PUT', url: '/cart/coupon', payload: { code: 'REALCODE' } })
  const unknown = await app.inject({ method: 'PUT', url: '/cart/coupon', payload: { code: 'NOSUCHCODE' } })
  t.equal(real.statusCode, 401)
  t.equal(unknown.statusCode, 401)
  const badToken = { 'x-cart-token': 'a'.repeat(43) }
  const realGuest = await app.inject({ method: 'PUT', url: '/cart/coupon', headers: badToken, payload: { code: 'REALCODE' } })
  const unknownGuest = await app.inject({ method: 'PUT', url: '/cart/coupon', headers: badToken, payload: { code: 'NOSUCHCODE' } })
  t.same([realGuest.statusCode, realGuest.json().detail], [unknownGuest.statusCode, unknownGuest.json().detail], 'a wrong cart token gets the same answer either way')
  const buyer = await register(app, { email: 'coupon@example.com' })
  t.equal((await app.inject({ method: 'PUT', url: '/cart/coupon', headers: buyer.headers, payload: { code: 'realcode' } })).json().couponCode, 'REALCODE')
})

t.test('map keys are checked whatever their characters: a line break or __proto__ is a 400, nothing stored', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000 }] })
  const variantUrl = `/products/${product.id}/variants/${product.variants[0].id}`
  const smuggled = await app.inject({ method: 'PATCH', url: variantUrl, headers: { ...admin.headers, 'content-type': 'application/json' }, payload: '{"options":{"x\\ny":{"nested":[1]}}}' })
  t.equal(smuggled.statusCode, 400, smuggled.body)
  const attributes = await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: { ...admin.headers, 'content-type': 'application/json' }, payload: '{"attributes":{"a\\rb":{"deep":true}}}' })
  t.equal(attributes.statusCode, 400, attributes.body)
  const fine = await app.inject({ method: 'PATCH', url: variantUrl, headers: admin.headers, payload: { options: { 'size (EU)': '42' } } })
  t.equal(fine.statusCode, 200, fine.body)
  t.same(fine.json().options, { 'size (EU)': '42' })
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.ok(JSON.stringify(doc).includes('propertyNames'), 'the contract states the key rule')
})
