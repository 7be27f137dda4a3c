import t from 'tap'
import { buildTestApp, startOwnFerretDb } from './helpers.js'
import { authHeader, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

async function setup(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const shirt = await createProduct(app, admin.headers, { name: 'Shirt', variants: [{ sku: 'SHIRT-M', priceMinor: 2500, stock: 10 }, { sku: 'SHIRT-L', priceMinor: 2700, stock: 3 }] })
  const mug = await createProduct(app, admin.headers, { name: 'Mug', variants: [{ sku: 'MUG', priceMinor: 900, stock: 100 }] })
  return { app, admin, shirtM: shirt.variants[0].id as string, shirtL: shirt.variants[1].id as string, mug: mug.variants[0].id as string, shirt, mugProduct: mug }
}
const cart = (app: App, headers: Record<string, string>, method: 'GET' | 'POST' | 'PATCH' | 'DELETE' = 'GET', url = '/cart', payload?: object) =>
  app.inject({ method, url, headers, payload })

t.test('guest cart: add, change, remove, clear; prices come from the catalog', async (t) => {
  const { app, shirtM, mug } = await setup(t)
  const created = await app.inject({ method: 'POST', url: '/cart/guest' })
  t.equal(created.statusCode, 201)
  const { cartToken } = created.json()
  t.ok(Buffer.from(cartToken, 'base64url').length >= 32)
  const headers = { 'x-cart-token': cartToken }

  let res = await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 2 })
  t.equal(res.statusCode, 200)
  res = await cart(app, headers, 'POST', '/cart/items', { variantId: mug })
  res = await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 1 })
  let body = res.json()
  t.same(body.lines.map((l: { sku: string; quantity: number }) => [l.sku, l.quantity]), [['SHIRT-M', 3], ['MUG', 1]], 'adds sum up')
  t.equal(body.subtotalMinor, 3 * 2500 + 900)
  t.equal(body.itemCount, 4)
  t.equal(body.lines[0].lineTotalMinor, 7500)

  body = (await cart(app, headers, 'PATCH', `/cart/items/${shirtM}`, { quantity: 1 })).json()
  t.equal(body.subtotalMinor, 2500 + 900)
  body = (await cart(app, headers, 'DELETE', `/cart/items/${mug}`)).json()
  t.same(body.lines.map((l: { sku: string }) => l.sku), ['SHIRT-M'])
  t.equal((await cart(app, headers, 'DELETE', `/cart/items/${mug}`)).statusCode, 404, 'removing a missing line')
  body = (await cart(app, headers, 'DELETE', '/cart')).json()
  t.same(body.lines, [])
  t.equal(body.subtotalMinor, 0)

  t.equal((await cart(app, {})).statusCode, 401, 'no token, not signed in')
  t.equal((await cart(app, { 'x-cart-token': 'x'.repeat(43) })).statusCode, 404, 'unknown token')
})

t.test('the client never sets a price, and limits give clear 4xx errors', async (t) => {
  const { app, shirtM, shirtL, mug } = await setup(t, { CART_MAX_LINES: '2', CART_MAX_QUANTITY: '5' })
  const { headers } = await register(app, { email: 'limits@example.com' })
  const withPrice = await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 1, priceMinor: 1 })
  t.equal(withPrice.statusCode, 400)
  t.equal((await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 0 })).statusCode, 400)
  t.equal((await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: '2' })).statusCode, 400)
  t.equal((await cart(app, headers, 'POST', '/cart/items', { variantId: 'nope' })).statusCode, 400)
  t.equal((await cart(app, headers, 'POST', '/cart/items', { variantId: '00000000-0000-4000-8000-000000000000' })).statusCode, 404)

  const tooMany = await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 6 })
  t.equal(tooMany.statusCode, 400)
  t.equal(tooMany.json().type, 'urn:problem-type:quantity-limit')
  const overStock = await cart(app, headers, 'POST', '/cart/items', { variantId: shirtL, quantity: 4 })
  t.equal(overStock.statusCode, 409)
  t.equal(overStock.json().type, 'urn:problem-type:insufficient-stock')
  t.match(overStock.json().detail, /Only 3/)
  await cart(app, headers, 'POST', '/cart/items', { variantId: shirtL, quantity: 3 })
  t.equal((await cart(app, headers, 'POST', '/cart/items', { variantId: shirtL, quantity: 1 })).statusCode, 409, 'summing past stock')
  await cart(app, headers, 'POST', '/cart/items', { variantId: shirtM })
  const full = await cart(app, headers, 'POST', '/cart/items', { variantId: mug })
  t.equal(full.statusCode, 409)
  t.equal(full.json().type, 'urn:problem-type:cart-full')
  t.equal((await cart(app, headers)).json().lines.length, 2, 'nothing lost by the refused requests')
})

t.test('price and availability changes after adding show on the next read', async (t) => {
  const { app, admin, shirt, shirtM, shirtL, mug, mugProduct } = await setup(t)
  const { headers } = await register(app, { email: 'changes@example.com' })
  for (const [variantId, quantity] of [[shirtM, 2], [shirtL, 2], [mug, 1]] as const) await cart(app, headers, 'POST', '/cart/items', { variantId, quantity })

  await app.inject({ method: 'PATCH', url: `/products/${shirt.id}/variants/${shirtM}`, headers: admin.headers, payload: { priceMinor: 3000 } })
  await app.inject({ method: 'POST', url: `/products/${shirt.id}/variants/${shirtL}/stock-adjustments`, headers: admin.headers, payload: { delta: -2, reason: 'damage' } })
  await app.inject({ method: 'PATCH', url: `/products/${mugProduct.id}`, headers: admin.headers, payload: { status: 'archived' } })

  const body = (await cart(app, headers)).json()
  const bySku = Object.fromEntries(body.lines.map((l: { sku: string }) => [l.sku, l]))
  t.match(bySku['SHIRT-M'], { unitPriceMinor: 3000, addedUnitPriceMinor: 2500, lineTotalMinor: 6000, available: true, issues: ['price_increased'] })
  t.match(bySku['SHIRT-L'], { stock: 1, available: false, issues: ['insufficient_stock'], lineTotalMinor: 0 })
  t.match(bySku.MUG, { unitPriceMinor: null, available: false, issues: ['unavailable'] })
  t.equal(body.subtotalMinor, 6000, 'only available lines count')

  await app.inject({ method: 'PATCH', url: `/products/${shirt.id}/variants/${shirtM}`, headers: admin.headers, payload: { priceMinor: 2000 } })
  await app.inject({ method: 'DELETE', url: `/products/${shirt.id}/variants/${shirtL}`, headers: admin.headers })
  const later = (await cart(app, headers)).json()
  const laterBySku = Object.fromEntries(later.lines.map((l: { sku: string | null; variantId: string }) => [l.sku ?? l.variantId, l]))
  t.same(laterBySku['SHIRT-M'].issues, ['price_decreased'])
  t.match(laterBySku[shirtL], { sku: null, available: false, issues: ['unavailable'] }, 'a deleted variant stays visible as unavailable')
})

t.test('50 parallel adds to one cart lose nothing', async (t) => {
  const app = await buildTestApp(t, { CART_MAX_QUANTITY: '1000' })
  const admin = await registerAdmin(app)
  const products: string[] = []
  for (let i = 0; i < 10; i++) products.push((await createProduct(app, admin.headers, { variants: [{ priceMinor: 100 + i, stock: 1000 }] })).variants[0].id as string)
  const { headers } = await register(app, { email: 'parallel@example.com' })
  // 10 different variants, 5 adds of each, all at once: 50 writes on one document.
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => cart(app, headers, 'POST', '/cart/items', { variantId: products[i % 10], quantity: 1 + (i % 3) })))
  t.same([...new Set(results.map((r) => r.statusCode))], [200])
  const body = (await cart(app, headers)).json()
  t.equal(body.lines.length, 10, "every variant has its line")
  for (let v = 0; v < 10; v++) {
    const expected = Array.from({ length: 50 }, (_, i) => i).filter((i) => i % 10 === v).reduce((sum, i) => sum + 1 + (i % 3), 0)
    t.equal(body.lines.find((l: { variantId: string }) => l.variantId === products[v]).quantity, expected, `variant ${v} sums exactly`)
  }
})

t.test('merge on sign-in: quantities summed and capped by stock; the guest cart is gone', async (t) => {
  const { app, shirtM, shirtL, mug } = await setup(t)
  const guest = (await app.inject({ method: 'POST', url: '/cart/guest' })).json().cartToken
  await cart(app, { 'x-cart-token': guest }, 'POST', '/cart/items', { variantId: shirtM, quantity: 4 })
  await cart(app, { 'x-cart-token': guest }, 'POST', '/cart/items', { variantId: shirtL, quantity: 2 })

  const user = await register(app, { email: 'merge@example.com' })
  await cart(app, user.headers, 'POST', '/cart/items', { variantId: shirtM, quantity: 7 })
  await cart(app, user.headers, 'POST', '/cart/items', { variantId: mug, quantity: 1 })
  await cart(app, user.headers, 'POST', '/cart/items', { variantId: shirtL, quantity: 2 })

  const merged = await cart(app, user.headers, 'POST', '/cart/merge', { cartToken: guest })
  t.equal(merged.statusCode, 200)
  const q = Object.fromEntries(merged.json().lines.map((l: { sku: string; quantity: number }) => [l.sku, l.quantity]))
  t.same(q, { 'SHIRT-M': 10, MUG: 1, 'SHIRT-L': 3 }, '7+4 capped at stock 10; 2+2 capped at stock 3')
  t.equal((await cart(app, { 'x-cart-token': guest })).statusCode, 404, 'the guest cart is gone')
  t.equal((await cart(app, user.headers, 'POST', '/cart/merge', { cartToken: guest })).statusCode, 404, 'a second merge adds nothing')
  t.equal((await cart(app, {}, 'POST', '/cart/merge', { cartToken: guest })).statusCode, 401)
})

t.test("nobody can read or change another's cart", async (t) => {
  const { app, shirtM, mug } = await setup(t)
  const ada = await register(app, { email: 'ada@example.com' })
  const eve = await register(app, { email: 'eve@example.com' })
  await cart(app, ada.headers, 'POST', '/cart/items', { variantId: shirtM })
  const adaGuest = (await app.inject({ method: 'POST', url: '/cart/guest' })).json().cartToken
  await cart(app, { 'x-cart-token': adaGuest }, 'POST', '/cart/items', { variantId: mug })
  await cart(app, ada.headers, 'POST', '/cart/merge', { cartToken: adaGuest })

  // Eve's own cart is hers alone; sending Ada's merged guest token as a guest finds nothing.
  t.same((await cart(app, eve.headers)).json().lines, [])
  t.equal((await cart(app, { 'x-cart-token': adaGuest })).statusCode, 404)
  t.equal((await cart(app, { 'x-cart-token': adaGuest }, 'POST', '/cart/items', { variantId: mug })).statusCode, 404)
  t.equal((await cart(app, eve.headers, 'POST', '/cart/merge', { cartToken: adaGuest })).statusCode, 404)
  t.equal((await cart(app, eve.headers, 'DELETE', `/cart/items/${shirtM}`)).statusCode, 404, "Ada's line is not in Eve's cart")
  t.equal((await cart(app, ada.headers)).json().lines.length, 2, "Ada's cart is untouched")
  // A signed-in user's token wins over any X-Cart-Token header.
  const other = (await app.inject({ method: 'POST', url: '/cart/guest' })).json().cartToken
  t.equal((await cart(app, { ...eve.headers, 'x-cart-token': other })).json().kind, 'user')
  t.equal((await cart(app, authHeader('garbage'))).statusCode, 401)
})

t.test('two racing merges of one guest cart add it once', async (t) => {
  const { app, shirtM } = await setup(t)
  const guest = (await app.inject({ method: 'POST', url: '/cart/guest' })).json().cartToken
  await cart(app, { 'x-cart-token': guest }, 'POST', '/cart/items', { variantId: shirtM, quantity: 2 })
  const user = await register(app, { email: 'race-merge@example.com' })
  const results = await Promise.all(Array.from({ length: 5 }, () => cart(app, user.headers, 'POST', '/cart/merge', { cartToken: guest })))
  t.same(results.map((r) => r.statusCode).sort(), [200, 404, 404, 404, 404])
  t.equal((await cart(app, user.headers)).json().lines[0].quantity, 2)
})

t.test('a cart request while MongoDB is down is a 503, not a 500', async (t) => {
  const ferret = await startOwnFerretDb(t)
  const app = await buildTestApp(t, { MONGODB_URL: `${ferret.url}carts` })
  const user = await register(app, { email: 'down@example.com' })
  t.equal((await cart(app, user.headers)).statusCode, 200)
  await ferret.stop()
  const res = await cart(app, user.headers)
  t.equal(res.statusCode, 503)
  t.equal(res.json().type, 'urn:problem-type:store-unavailable')
})
