import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createCategory, createProduct } from './catalog.js'

t.test('product CRUD: variants, price range from variants, validation, unique slug and SKU', async (t) => {
  const app = await buildTestApp(t, { STORE_CURRENCY: 'GBP' })
  const { headers } = await registerAdmin(app)
  const category = await createCategory(app, headers)
  const created = await app.inject({
    method: 'POST', url: '/products', headers,
    payload: {
      name: 'Linen Shirt', slug: 'linen-shirt', description: 'Breathable linen', status: 'active', categoryId: category.id,
      attributes: { material: 'linen' },
      variants: [
        { sku: 'LS-S', options: { size: 'S' }, priceMinor: 4500, stock: 3 },
        { sku: 'LS-M', options: { size: 'M' }, priceMinor: 4900, compareAtPriceMinor: 5900, stock: 0 },
        { sku: 'LS-XL', options: { size: 'XL' }, priceMinor: 9900, stock: 5, isActive: false },
      ],
    },
  })
  t.equal(created.statusCode, 201)
  const product = created.json()
  t.match(product, { slug: 'linen-shirt', status: 'active', categoryId: category.id, attributes: { material: 'linen' }, inStock: true })
  t.same(product.priceRange, { minMinor: 4500, maxMinor: 4900, currency: 'GBP' }, 'range over active variants')
  t.equal(product.variants.length, 3, 'admins see inactive variants')
  t.equal(product.variants[1].currency, 'GBP')

  const publicView = (await app.inject({ method: 'GET', url: `/products/${product.id}` })).json()
  t.same(publicView.variants.map((v: { sku: string }) => v.sku), ['LS-S', 'LS-M'], 'customers see active variants only')
  t.equal((await app.inject({ method: 'GET', url: '/products/by-slug/linen-shirt' })).json().id, product.id)

  const updated = await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers, payload: { name: 'Linen Shirt II' } })
  t.equal(updated.json().name, 'Linen Shirt II')

  const variant = await app.inject({ method: 'POST', url: `/products/${product.id}/variants`, headers, payload: { sku: 'LS-XS', priceMinor: 3900 } })
  t.equal(variant.statusCode, 201)
  t.equal((await app.inject({ method: 'GET', url: `/products/${product.id}` })).json().priceRange.minMinor, 3900, 'range follows a new variant')
  const repriced = await app.inject({ method: 'PATCH', url: `/products/${product.id}/variants/${variant.json().id}`, headers, payload: { priceMinor: 5000 } })
  t.equal(repriced.json().priceMinor, 5000)
  t.same((await app.inject({ method: 'GET', url: `/products/${product.id}` })).json().priceRange, { minMinor: 4500, maxMinor: 5000, currency: 'GBP' })

  t.equal((await app.inject({ method: 'POST', url: `/products/${product.id}/variants`, headers, payload: { sku: 'LS-S', priceMinor: 1 } })).statusCode, 409, 'duplicate SKU')
  t.equal((await app.inject({ method: 'POST', url: '/products', headers, payload: { name: 'X', slug: 'linen-shirt', variants: [{ sku: 'NEW-1', priceMinor: 1 }] } })).statusCode, 409, 'duplicate slug')
  t.equal((await app.inject({ method: 'POST', url: '/products', headers, payload: { name: 'X', slug: 'no-variants', variants: [] } })).statusCode, 400, 'at least one variant')
  t.equal((await app.inject({ method: 'POST', url: '/products', headers, payload: { name: 'X', slug: 'bad-cat', categoryId: '00000000-0000-4000-8000-000000000000', variants: [{ sku: 'BC-1', priceMinor: 1 }] } })).statusCode, 404)
  for (const bad of [{ priceMinor: -1 }, { priceMinor: 10.5 }, { priceMinor: '10.50' }, { priceMinor: null }, { stock: -3 }]) {
    const res = await app.inject({ method: 'POST', url: '/products', headers, payload: { name: 'X', slug: 'bad-price', variants: [{ sku: 'BP-1', priceMinor: 100, ...bad }] } })
    t.equal(res.statusCode, 400, JSON.stringify(bad))
  }
  for (const extra of [{ minPriceMinor: 1 }, { ratingAvg: 5 }, { id: product.id }, { variants: [] }]) {
    t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers, payload: { name: 'Y', ...extra } })).statusCode, 400, `PATCH with ${Object.keys(extra)[0]}`)
  }
  t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}/variants/${variant.json().id}`, headers, payload: { stock: 100 } })).statusCode, 400, 'stock only via adjustments')

  // Variants can be deleted down to one, never zero.
  for (const v of product.variants.slice(1)) t.equal((await app.inject({ method: 'DELETE', url: `/products/${product.id}/variants/${v.id}`, headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/products/${product.id}/variants/${variant.json().id}`, headers })).statusCode, 204)
  const last = await app.inject({ method: 'DELETE', url: `/products/${product.id}/variants/${product.variants[0].id}`, headers })
  t.equal(last.statusCode, 409)
  t.equal(last.json().type, 'urn:problem-type:last-variant')

  t.equal((await app.inject({ method: 'DELETE', url: `/products/${product.id}`, headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/products/${product.id}`, headers })).statusCode, 404)
})

t.test('drafts and archived products are invisible to customers; admins see them', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const customer = await register(app, { email: 'shopper@example.com' })
  const draft = await createProduct(app, admin.headers, { name: 'Secret', status: 'draft' })
  const archived = await createProduct(app, admin.headers, { name: 'Old', status: 'archived' })
  const active = await createProduct(app, admin.headers, { name: 'Public' })

  for (const headers of [{}, customer.headers]) {
    const list = (await app.inject({ method: 'GET', url: '/products', headers })).json()
    t.same(list.items.map((p: { id: string }) => p.id), [active.id])
    t.equal((await app.inject({ method: 'GET', url: `/products/${draft.id}`, headers })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: `/products/by-slug/${archived.slug}`, headers })).statusCode, 404)
    const asked = (await app.inject({ method: 'GET', url: '/products?status=draft', headers })).json()
    t.same(asked.items.map((p: { id: string }) => p.id), [active.id], 'a customer asking for drafts still gets active products')
  }
  const drafts = (await app.inject({ method: 'GET', url: '/products?status=draft', headers: admin.headers })).json()
  t.same(drafts.items.map((p: { id: string }) => p.id), [draft.id])
  t.equal((await app.inject({ method: 'GET', url: `/products/${draft.id}`, headers: admin.headers })).statusCode, 200)
  t.equal((await app.inject({ method: 'GET', url: '/products', headers: { authorization: 'Bearer nonsense' } })).statusCode, 401, 'a bad token is not silently anonymous')
})

t.test('product writes are admin-only', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const customer = await register(app, { email: 'c@example.com' })
  const p = await createProduct(app, admin.headers)
  const v = p.variants[0].id
  const writes = [
    ['POST', '/products', { name: 'x', slug: 'x', variants: [{ sku: 'X', priceMinor: 1 }] }],
    ['PATCH', `/products/${p.id}`, { name: 'x' }],
    ['DELETE', `/products/${p.id}`, undefined],
    ['POST', `/products/${p.id}/variants`, { sku: 'Y', priceMinor: 1 }],
    ['PATCH', `/products/${p.id}/variants/${v}`, { priceMinor: 1 }],
    ['DELETE', `/products/${p.id}/variants/${v}`, undefined],
    ['POST', `/products/${p.id}/variants/${v}/stock-adjustments`, { delta: 5, reason: 'restock' }],
    ['GET', `/products/${p.id}/variants/${v}/stock-adjustments`, undefined],
  ] as const
  for (const [method, url, payload] of writes) {
    t.equal((await app.inject({ method, url, payload, headers: customer.headers })).statusCode, 403, `${method} ${url} as customer`)
    t.equal((await app.inject({ method, url, payload })).statusCode, 401, `${method} ${url} anonymous`)
  }
  t.equal((await app.inject({ method: 'GET', url: `/products/${p.id}` })).json().variants[0].priceMinor, 1000, 'nothing changed')
})

t.test('stock adjustments: reasons recorded, never below zero, exact under concurrency', async (t) => {
  const app = await buildTestApp(t)
  const { headers, user } = await registerAdmin(app)
  const p = await createProduct(app, headers, { variants: [{ stock: 5 }] })
  const url = `/products/${p.id}/variants/${p.variants[0].id}/stock-adjustments`

  const added = await app.inject({ method: 'POST', url, headers, payload: { delta: 10, reason: 'restock', note: 'PO-42' } })
  t.equal(added.statusCode, 200)
  t.equal(added.json().stock, 15)
  const tooMuch = await app.inject({ method: 'POST', url, headers, payload: { delta: -16, reason: 'damage' } })
  t.equal(tooMuch.statusCode, 409)
  t.equal(tooMuch.json().type, 'urn:problem-type:insufficient-stock')
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { delta: 0, reason: 'correction' } })).statusCode, 400)
  t.equal((await app.inject({ method: 'POST', url, headers, payload: { delta: 1, reason: 'sale' } })).statusCode, 400, 'sale is for checkout only')

  // 30 parallel removals of 1 from 15: exactly 15 succeed and stock ends at 0.
  const results = await Promise.all(Array.from({ length: 30 }, () => app.inject({ method: 'POST', url, headers, payload: { delta: -1, reason: 'damage' } })))
  t.equal(results.filter((r) => r.statusCode === 200).length, 15)
  t.equal(results.filter((r) => r.statusCode === 409).length, 15)
  const after = (await app.inject({ method: 'GET', url: `/products/${p.id}` })).json()
  t.equal(after.variants[0].stock, 0)
  t.equal(after.inStock, false)

  const movements: { delta: number; note: string | null }[] = []
  let cursor: string | null = null
  do {
    const page: { items: { delta: number; note: string | null }[]; nextCursor: string | null } = (await app.inject({ method: 'GET', url: `${url}?limit=7${cursor ? `&cursor=${cursor}` : ''}`, headers })).json()
    movements.push(...page.items)
    cursor = page.nextCursor
  } while (cursor)
  t.equal(movements.length, 17, 'initial stock + restock + 15 removals')
  t.equal(movements.reduce((sum: number, m: { delta: number }) => sum + m.delta, 0), 0, 'movements sum to the stock')
  t.match(movements.find((m: { note: string | null }) => m.note === 'PO-42'), { delta: 10, stockAfter: 15, reason: 'restock', actorId: user.id })
})
