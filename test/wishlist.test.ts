import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

t.test('wishlist: idempotent add, list with products, remove, move to cart; private to its owner', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const single = await createProduct(app, admin.headers, { name: 'Single', variants: [{ priceMinor: 1200, stock: 5 }] })
  const multi = await createProduct(app, admin.headers, { name: 'Multi', variants: [{ priceMinor: 1000 }, { priceMinor: 1100 }] })
  const draft = await createProduct(app, admin.headers, { name: 'Draft', status: 'draft' })
  const ada = await register(app, { email: 'ada@example.com' })
  const eve = await register(app, { email: 'eve@example.com' })

  const adds = await Promise.all([single.id, single.id, single.id, multi.id].map((id) => app.inject({ method: 'PUT', url: `/wishlist/items/${id}`, headers: ada.headers })))
  t.same(adds.map((r) => r.statusCode), [200, 200, 200, 200])
  const list = (await app.inject({ method: 'GET', url: '/wishlist', headers: ada.headers })).json()
  t.same(list.items.map((i: { productId: string }) => i.productId).sort(), [single.id, multi.id].sort(), 'three racing adds keep one entry')
  t.equal(list.items.find((i: { productId: string }) => i.productId === single.id).product.name, 'Single')

  t.equal((await app.inject({ method: 'PUT', url: `/wishlist/items/${draft.id}`, headers: ada.headers })).statusCode, 404, 'drafts cannot be saved')
  t.equal((await app.inject({ method: 'GET', url: '/wishlist' })).statusCode, 401)
  t.same((await app.inject({ method: 'GET', url: '/wishlist', headers: eve.headers })).json().items, [], "Eve does not see Ada's list")
  t.equal((await app.inject({ method: 'DELETE', url: `/wishlist/items/${single.id}`, headers: eve.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: `/wishlist/items/${single.id}/move-to-cart`, headers: eve.headers, payload: {} })).statusCode, 404)

  const needsVariant = await app.inject({ method: 'POST', url: `/wishlist/items/${multi.id}/move-to-cart`, headers: ada.headers, payload: {} })
  t.equal(needsVariant.statusCode, 400)
  t.equal(needsVariant.json().type, 'urn:problem-type:variant-required')
  const moved = await app.inject({ method: 'POST', url: `/wishlist/items/${single.id}/move-to-cart`, headers: ada.headers, payload: { quantity: 2 } })
  t.equal(moved.statusCode, 200)
  t.match(moved.json().lines, [{ variantId: single.variants[0].id, quantity: 2 }])
  const movedMulti = await app.inject({ method: 'POST', url: `/wishlist/items/${multi.id}/move-to-cart`, headers: ada.headers, payload: { variantId: multi.variants[1].id } })
  t.equal(movedMulti.json().subtotalMinor, 2 * 1200 + 1100)
  t.same((await app.inject({ method: 'GET', url: '/wishlist', headers: ada.headers })).json().items, [], 'moved items leave the wishlist')

  await app.inject({ method: 'PUT', url: `/wishlist/items/${single.id}`, headers: ada.headers })
  await app.inject({ method: 'PATCH', url: `/products/${single.id}`, headers: admin.headers, payload: { status: 'archived' } })
  const afterArchive = (await app.inject({ method: 'GET', url: '/wishlist', headers: ada.headers })).json()
  t.same(afterArchive.items.map((i: { product: unknown }) => i.product), [null], 'an archived product shows as no longer sold')
  t.equal((await app.inject({ method: 'DELETE', url: `/wishlist/items/${single.id}`, headers: ada.headers })).statusCode, 204)
})
