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

t.test('wishlist prices are the shopper\'s: in the asked currency or the cart\'s, with the price lists and groups that apply', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR' })
  const admin = (await registerAdmin(app)).headers
  const kettle = await createProduct(app, admin, { name: 'Kettle', variants: [{ priceMinor: 2000, stock: 5 }, { priceMinor: 2600, stock: 5 }] })
  const euOnly = await createProduct(app, admin, { name: 'Plug', variants: [{ priceMinor: 500, stock: 5 }] })
  for (const [variant, amountMinor] of [[kettle.variants[0].id, 3000], [kettle.variants[1].id, 3500]] as const) {
    const res = await app.inject({ method: 'PUT', url: `/products/${kettle.id}/variants/${variant}/prices/JPY`, headers: admin, payload: { amountMinor } })
    t.equal(res.statusCode, 200, res.body)
  }
  const japan = (await app.inject({ method: 'POST', url: '/regions', headers: admin, payload: { name: 'Japan', currency: 'JPY', countries: ['JP'] } })).json()
  // A sale running now in both currencies, on the cheaper variant.
  const sale = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: {
      name: 'Sale', kind: 'sale', status: 'active', startsAt: new Date(Date.now() - 60_000).toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      prices: [{ variantId: kettle.variants[0].id, currency: 'EUR', amountMinor: 1500 }, { variantId: kettle.variants[0].id, currency: 'JPY', amountMinor: 2400 }],
    },
  })
  t.equal(sale.statusCode, 201, sale.body)
  // A trade group's override above the base, for its members only.
  const group = (await app.inject({ method: 'POST', url: '/customer-groups', headers: admin, payload: { name: 'Trade' } })).json()
  const trade = await app.inject({
    method: 'POST', url: '/price-lists', headers: admin,
    payload: { name: 'Trade', kind: 'override', status: 'active', customerGroupId: group.id, prices: [{ variantId: kettle.variants[1].id, currency: 'EUR', amountMinor: 1200 }] },
  })
  t.equal(trade.statusCode, 201, trade.body)

  const ada = await register(app, { email: 'ada@example.com' })
  const bob = await register(app, { email: 'bob@example.com' })
  t.equal((await app.inject({ method: 'POST', url: `/customer-groups/${group.id}/members`, headers: admin, payload: { userId: bob.body.user.id } })).statusCode, 204)
  for (const who of [ada, bob]) {
    for (const id of [kettle.id, euOnly.id]) t.equal((await app.inject({ method: 'PUT', url: `/wishlist/items/${id}`, headers: who.headers })).statusCode, 200)
  }
  const ranges = async (headers: Record<string, string>, query = '') => {
    const res = await app.inject({ method: 'GET', url: `/wishlist${query}`, headers })
    t.equal(res.statusCode, 200, res.body)
    return Object.fromEntries(res.json().items.map((i: { productId: string; product: { priceRange: unknown } | null }) => [i.productId === kettle.id ? 'kettle' : 'plug', i.product?.priceRange ?? null]))
  }

  t.same(await ranges(ada.headers), { kettle: { minMinor: 1500, maxMinor: 2600, currency: 'EUR' }, plug: { minMinor: 500, maxMinor: 500, currency: 'EUR' } }, 'the sale price in the store currency')
  t.same(await ranges(ada.headers, '?currency=JPY'), { kettle: { minMinor: 2400, maxMinor: 3500, currency: 'JPY' }, plug: null }, 'in JPY: the JPY sale price; a product not sold in JPY shows as not sold')
  t.same(await ranges(ada.headers, `?region=${japan.id}`), { kettle: { minMinor: 2400, maxMinor: 3500, currency: 'JPY' }, plug: null }, 'a region names its currency')
  t.same(await ranges(bob.headers), { kettle: { minMinor: 1200, maxMinor: 1500, currency: 'EUR' }, plug: { minMinor: 500, maxMinor: 500, currency: 'EUR' } }, 'the group override for a member')
  t.equal((await app.inject({ method: 'GET', url: '/wishlist?currency=ABC', headers: ada.headers })).statusCode, 400, 'not a currency')

  // A shopper whose cart is in Japan's region sees the wishlist in yen without asking.
  await app.inject({ method: 'DELETE', url: `/wishlist/items/${euOnly.id}`, headers: ada.headers })
  t.match((await app.inject({ method: 'PUT', url: '/cart/region', headers: ada.headers, payload: { country: 'JP' } })).json(), { currency: 'JPY' })
  t.same(await ranges(ada.headers), { kettle: { minMinor: 2400, maxMinor: 3500, currency: 'JPY' } }, "the cart's currency by default")
  t.equal((await app.inject({ method: 'PUT', url: `/wishlist/items/${kettle.id}`, headers: ada.headers })).json().items[0].product.priceRange.currency, 'JPY', 'and in the list an add answers')
})
