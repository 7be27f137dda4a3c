import t from 'tap'
import { eq, sql } from 'drizzle-orm'
import { products } from '../db/schema/index.js'
import { ProductSummary } from '../routes/products/schemas.js'
import { buildTestApp } from './helpers.js'
import { registerAdmin } from './users.js'
import { createCategory, createProduct } from './catalog.js'
import { png, upload } from './uploads-fixtures.js'

interface Summary { id: string; name: string; priceRange: { minMinor: number }; inStock: boolean; rating: { average: number; count: number }; createdAt: string; categoryId: string | null }

t.test('every filter and sort returns the right rows in the right order', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const root = await createCategory(app, headers, { slug: 'root' })
  const child = await createCategory(app, headers, { slug: 'child', parentId: root.id })
  const grandchild = await createCategory(app, headers, { slug: 'grandchild', parentId: child.id })
  const other = await createCategory(app, headers, { slug: 'other' })

  // name, price, stock, category, description, ratings (count, sum)
  const specs = [
    { name: 'Wool Sweater', price: 8900, stock: 5, cat: root.id, description: 'warm wool knit', ratings: [4, 18] },
    { name: 'Cotton Tee', price: 1500, stock: 0, cat: child.id, description: 'soft cotton', ratings: [2, 9] },
    { name: 'Linen Trousers', price: 5900, stock: 2, cat: grandchild.id, description: 'cool linen for summer', ratings: [0, 0] },
    { name: 'Wool Socks', price: 900, stock: 50, cat: other.id, description: 'merino wool socks, wool blend', ratings: [3, 9] },
    { name: 'Anorak', price: 12900, stock: 1, cat: null, description: 'waterproof shell', ratings: [1, 5] },
    { name: 'Beanie', price: 1500, stock: 3, cat: child.id, description: 'knit hat', ratings: [5, 15] },
  ]
  const made: (Summary & { spec: (typeof specs)[number] })[] = []
  for (const spec of specs) {
    const p = await createProduct(app, headers, { name: spec.name, description: spec.description, categoryId: spec.cat, variants: [{ priceMinor: spec.price, stock: spec.stock }, { priceMinor: spec.price + 500, stock: 0 }] })
    const [count, sum] = spec.ratings as [number, number]
    // Ratings are written by the reviews domain; set the aggregates directly for listing.
    await app.db.update(products).set({ ratingCount: count, ratingSum: sum }).where(eq(products.id, p.id))
    made.push({ ...p, spec })
  }
  await createProduct(app, headers, { name: 'Wool Draft', status: 'draft', description: 'wool' })

  const list = async (query: string) => {
    const res = await app.inject({ method: 'GET', url: `/products?limit=100&${query}` })
    t.equal(res.statusCode, 200, query)
    return res.json().items as Summary[]
  }
  const names = (items: Summary[]) => items.map((p) => p.name)
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

  // Independent expectations computed from the specs.
  const newest = [...made].reverse().map((p) => p.name)
  t.same(names(await list('')), newest, 'default: newest first')
  t.same(names(await list('sort=newest')), newest)
  t.same(names(await list('sort=price_asc')), [...made].sort((a, b) => a.spec.price - b.spec.price || byId(a, b)).map((p) => p.name))
  t.same(names(await list('sort=price_desc')), [...made].sort((a, b) => b.spec.price - a.spec.price || byId(b, a)).map((p) => p.name))
  t.same(names(await list('sort=name')), [...made].map((p) => p.name).sort())
  const avg = (p: (typeof made)[number]) => (p.spec.ratings[0] ? Math.round((p.spec.ratings[1]! / p.spec.ratings[0]) * 100) / 100 : 0)
  t.same(names(await list('sort=rating')), [...made].sort((a, b) => avg(b) - avg(a) || byId(b, a)).map((p) => p.name))
  const rated = (await list('sort=rating'))[0]!
  t.same(rated.rating, { average: 5, count: 1 }, 'Anorak: 5/1')

  t.same(names(await list(`category=${root.id}`)).sort(), ['Beanie', 'Cotton Tee', 'Linen Trousers', 'Wool Sweater'], 'a category includes its descendants')
  t.same(names(await list(`category=${child.id}`)).sort(), ['Beanie', 'Cotton Tee', 'Linen Trousers'])
  t.same(names(await list(`category=${grandchild.id}`)), ['Linen Trousers'])
  t.same(names(await list('minPrice=1500&maxPrice=5900')).sort(), ['Beanie', 'Cotton Tee', 'Linen Trousers'], 'inclusive price bounds on the lowest price')
  t.same(names(await list('inStock=true')).sort(), ['Anorak', 'Beanie', 'Linen Trousers', 'Wool Socks', 'Wool Sweater'])
  t.same(names(await list('inStock=true&minPrice=1000&sort=price_asc')), ['Beanie', 'Linen Trousers', 'Wool Sweater', 'Anorak'])

  const wool = await list('q=wool')
  t.same(names(wool).sort(), ['Wool Socks', 'Wool Sweater'], 'full text; drafts excluded')
  t.equal(wool[0]!.name, 'Wool Socks', 'ranked: more matches first')
  t.same(names(await list('q=knit')).sort(), ['Beanie', 'Wool Sweater'], 'description matches too')
  t.same(names(await list('q=sweaters')), ['Wool Sweater'], 'stemmed')
  t.same(names(await list('q=wool&sort=price_asc')), ['Wool Socks', 'Wool Sweater'])
  t.same(await list('q=%22unbalanced'), [], 'user syntax cannot break the query')

  t.same(Object.fromEntries((await list('')).map((p) => [p.name, p.inStock])), Object.fromEntries(made.map((p) => [p.name, p.spec.stock > 0])), 'inStock on each item')
  const item = (await list('q=anorak'))[0]!
  t.same(item.priceRange, { minMinor: 12900, maxMinor: 13400, currency: 'EUR' })
  t.equal(item.inStock, true)
})

t.test('injected or invalid sort and filter values are 400', async (t) => {
  const app = await buildTestApp(t)
  const bad = [
    "sort=price_asc;drop table products", 'sort=created_at', 'sort=', 'minPrice=1%20or%201=1', 'minPrice=-1', 'maxPrice=1.5',
    'category=not-a-uuid', "category=1'%20or%20'1'='1", 'limit=0', 'limit=101', 'inStock=maybe', 'status=deleted',
    'cursor=eyJ4IjoxfQ', `cursor=${Buffer.from(JSON.stringify(["x'); drop table products; --", '00000000-0000-4000-8000-000000000000'])).toString('base64url')}`,
    'sort=relevance', 'minPrice=500&maxPrice=100', 'unknown=1',
  ]
  for (const query of bad) {
    const res = await app.inject({ method: 'GET', url: `/products?${query}` })
    t.equal(res.statusCode, 400, query)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.equal((await app.inject({ method: 'GET', url: '/products?sort=price_asc' })).statusCode, 200, 'the products table survived')
})

t.test('paging has no duplicates or gaps while products are inserted between page reads', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const originals: string[] = []
  for (let i = 0; i < 12; i++) originals.push((await createProduct(app, headers, { name: `P${String(i).padStart(2, '0')}`, variants: [{ priceMinor: 100 * (i % 4) }] })).id)

  for (const sort of ['newest', 'price_asc', 'price_desc', 'name', 'rating']) {
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res = await app.inject({ method: 'GET', url: `/products?limit=5&sort=${sort}${cursor ? `&cursor=${cursor}` : ''}` })
      t.equal(res.statusCode, 200)
      const page: { items: { id: string }[]; nextCursor: string | null } = res.json()
      seen.push(...page.items.map((p) => p.id))
      cursor = page.nextCursor
      // A new product lands between page reads.
      await createProduct(app, headers, { name: `New ${sort} ${pages}`, variants: [{ priceMinor: 150 }] })
      pages++
    } while (cursor && pages < 50)
    t.equal(new Set(seen).size, seen.length, `${sort}: no duplicates`)
    t.same(originals.filter((id) => !seen.includes(id)), [], `${sort}: every original product seen`)
  }
})

t.test('a listing page, written by PostgreSQL, is the bytes the serialiser writes: each item as its product page has it, in ProductSummary\'s key order', async (t) => {
  // Without a cache the product page is serialised by Fastify from objects on every read: the reference.
  const app = await buildTestApp(t, { CACHE: 'off' })
  const { headers } = await registerAdmin(app)
  const category = await createCategory(app, headers, { slug: 'bytes' })
  const names = ['Quote " and back\\slash', 'Control \u0001 tab \t newline \n', 'Emoji \u{1F600} and line separator \u2028', 'Ünïcödé 日本語 ×÷', 'Plain']
  const made: { id: string; slug: string }[] = []
  for (const [i, name] of names.entries()) {
    made.push(await createProduct(app, headers, { name, categoryId: i === 0 ? category.id : null, variants: [{ priceMinor: 1000 + i * 333 }, { priceMinor: 5000 + i }] }))
  }
  const image = (await upload(app, headers, 'product_image', 'p.png', 'image/png', png())).json().id as string
  const patched = await app.inject({ method: 'PATCH', url: `/products/${made[1]!.id}`, headers, payload: { imageIds: [image] } })
  t.equal(patched.statusCode, 200)
  // Averages (generated, numeric) with two decimals (11/3), a whole number (15/3), under one (1/20).
  await app.db.execute(sql`update products set rating_count = case slug when ${made[0]!.slug} then 3 when ${made[2]!.slug} then 3 else 20 end,
    rating_sum = case slug when ${made[0]!.slug} then 11 when ${made[2]!.slug} then 15 else 1 end`)

  const keys = Object.keys(ProductSummary.properties)
  for (const url of ['/products?limit=3', '/products?limit=10&sort=name', '/products?limit=10&sort=price_desc&category=' + category.id]) {
    // No body in a message: a raw U+2028 in it would break the TAP stream's lines.
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    const page = res.json()
    t.ok(page.items.length > 0)
    t.equal(res.body, JSON.stringify(page), `${url}: compact, each value as JSON.stringify writes it`)
    for (const item of page.items) {
      const detail = (await app.inject({ url: `/products/${item.id}` })).json()
      t.equal(JSON.stringify(item), JSON.stringify(Object.fromEntries(keys.map((k) => [k, detail[k]]))), `${item.slug}: the product page's values, keys in ProductSummary's order`)
    }
  }
  t.match((await app.inject({ url: `/products?limit=10&sort=name` })).json().items.find((i: { id: string }) => i.id === made[1]!.id), { imageIds: [image], images: [{ id: image }] }, 'images are the uploads\' own')
})
