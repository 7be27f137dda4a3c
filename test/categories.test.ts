import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createCategory, createProduct } from './catalog.js'

t.test('category tree: create, nest, read by slug, move, cycles refused', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const clothing = await createCategory(app, headers, { name: 'Clothing', slug: 'clothing' })
  const shoes = await createCategory(app, headers, { name: 'Shoes', slug: 'shoes', position: 2 })
  const shirts = await createCategory(app, headers, { name: 'Shirts', slug: 'shirts', parentId: clothing.id })
  const tees = await createCategory(app, headers, { name: 'T-shirts', slug: 't-shirts', parentId: shirts.id })

  const tree = (await app.inject({ method: 'GET', url: '/categories' })).json().items
  t.same(tree.map((c: { slug: string }) => c.slug), ['clothing', 'shoes'])
  t.equal(tree[0].children[0].slug, 'shirts')
  t.equal(tree[0].children[0].children[0].slug, 't-shirts')

  const one = await app.inject({ method: 'GET', url: '/categories/by-slug/shirts' })
  t.equal(one.statusCode, 200)
  t.match(one.json(), { id: shirts.id, parentId: clothing.id, children: [{ id: tees.id }] })
  t.equal((await app.inject({ method: 'GET', url: '/categories/by-slug/nope' })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/categories/by-slug/Bad_Slug' })).statusCode, 400)

  // Moving under itself or a descendant would make a loop.
  t.equal((await app.inject({ method: 'PATCH', url: `/categories/${clothing.id}`, headers, payload: { parentId: tees.id } })).statusCode, 409)
  t.equal((await app.inject({ method: 'PATCH', url: `/categories/${clothing.id}`, headers, payload: { parentId: clothing.id } })).statusCode, 409)
  const moved = await app.inject({ method: 'PATCH', url: `/categories/${shirts.id}`, headers, payload: { parentId: shoes.id } })
  t.equal(moved.statusCode, 200)
  t.equal(moved.json().parentId, shoes.id)
  const toRoot = await app.inject({ method: 'PATCH', url: `/categories/${shirts.id}`, headers, payload: { parentId: null } })
  t.equal(toRoot.json().parentId, null)

  t.equal((await app.inject({ method: 'POST', url: '/categories', headers, payload: { name: 'Dup', slug: 'shoes' } })).statusCode, 409)
  t.equal((await app.inject({ method: 'POST', url: '/categories', headers, payload: { name: 'Orphan', slug: 'orphan', parentId: '00000000-0000-4000-8000-000000000000' } })).statusCode, 404)
  t.equal((await app.inject({ method: 'PATCH', url: `/categories/${shoes.id}`, headers, payload: {} })).statusCode, 400)
})

t.test('concurrent opposite moves cannot create a loop', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const a = await createCategory(app, headers, { slug: 'a' })
  const b = await createCategory(app, headers, { slug: 'b' })
  const [ab, ba] = await Promise.all([
    app.inject({ method: 'PATCH', url: `/categories/${a.id}`, headers, payload: { parentId: b.id } }),
    app.inject({ method: 'PATCH', url: `/categories/${b.id}`, headers, payload: { parentId: a.id } }),
  ])
  t.same([ab.statusCode, ba.statusCode].sort(), [200, 409])
})

t.test('deleting a category is refused while it has children or products', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const parent = await createCategory(app, headers, { slug: 'parent' })
  const child = await createCategory(app, headers, { slug: 'child', parentId: parent.id })
  const product = await createProduct(app, headers, { categoryId: child.id })

  const withChild = await app.inject({ method: 'DELETE', url: `/categories/${parent.id}`, headers })
  t.equal(withChild.statusCode, 409)
  t.equal(withChild.json().type, 'urn:problem-type:category-not-empty')
  t.equal((await app.inject({ method: 'DELETE', url: `/categories/${child.id}`, headers })).statusCode, 409, 'has a product')

  await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers, payload: { categoryId: null } })
  t.equal((await app.inject({ method: 'DELETE', url: `/categories/${child.id}`, headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/categories/${parent.id}`, headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/categories/${parent.id}`, headers })).statusCode, 404)
})

t.test('category writes are admin-only', async (t) => {
  const app = await buildTestApp(t)
  const customer = await register(app, { email: 'c@example.com' })
  const { headers } = await registerAdmin(app)
  const cat = await createCategory(app, headers)
  for (const [method, url, payload] of [['POST', '/categories', { name: 'x', slug: 'x' }], ['PATCH', `/categories/${cat.id}`, { name: 'y' }], ['DELETE', `/categories/${cat.id}`, undefined]] as const) {
    t.equal((await app.inject({ method, url, payload, headers: customer.headers })).statusCode, 403, `${method} as customer`)
    t.equal((await app.inject({ method, url, payload })).statusCode, 401, `${method} anonymous`)
  }
})
