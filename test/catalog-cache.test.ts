import t from 'tap'
import { sql } from 'drizzle-orm'
import { buildTestApp, startOwnRedis, testEnv } from './helpers.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { registerAdmin } from './users.js'
import { createCategory, createProduct } from './catalog.js'
import type { App } from '../src/app.js'
import { CATALOG_CACHE } from '../src/catalog.js'
import { slotKey } from '../src/redis-client.js'

async function read(app: App, url: string) {
  const res = await app.inject({ method: 'GET', url })
  return { status: res.statusCode, cache: res.headers['x-cache'], body: res.json() }
}

t.test('public reads are cached and every kind of catalog write makes them stale', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const category = await createCategory(app, headers, { slug: 'cached' })
  const product = await createProduct(app, headers, { name: 'Cached', slug: 'cached-product', categoryId: category.id, variants: [{ sku: 'C-1', priceMinor: 1000, stock: 5 }] })
  const variantId = product.variants[0].id
  const urls = ['/products', `/products/${product.id}`, '/products/by-slug/cached-product', '/categories', '/categories/by-slug/cached']

  const warm = async () => {
    for (const url of urls) await read(app, url)
    for (const url of urls) t.equal((await read(app, url)).cache, 'hit', `${url} is a hit when warm`)
  }
  const writes: [string, () => Promise<unknown>, (app: App) => Promise<void>][] = [
    ['update product', () => app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers, payload: { name: 'Renamed' } }),
      async (app) => { t.equal((await read(app, `/products/${product.id}`)).body.name, 'Renamed') }],
    ['add variant', () => app.inject({ method: 'POST', url: `/products/${product.id}/variants`, headers, payload: { sku: 'C-2', priceMinor: 500 } }),
      async (app) => { t.equal((await read(app, '/products')).body.items[0].priceRange.minMinor, 500) }],
    ['update variant', () => app.inject({ method: 'PATCH', url: `/products/${product.id}/variants/${variantId}`, headers, payload: { priceMinor: 300 } }),
      async (app) => { t.equal((await read(app, '/products/by-slug/cached-product')).body.priceRange.minMinor, 300) }],
    ['adjust stock', () => app.inject({ method: 'POST', url: `/products/${product.id}/variants/${variantId}/stock-adjustments`, headers, payload: { delta: -5, reason: 'damage' } }),
      async (app) => { t.equal((await read(app, `/products/${product.id}`)).body.variants.find((v: { id: string }) => v.id === variantId).stock, 0) }],
    ['update category', () => app.inject({ method: 'PATCH', url: `/categories/${category.id}`, headers, payload: { name: 'Cached Renamed' } }),
      async (app) => { t.equal((await read(app, '/categories/by-slug/cached')).body.name, 'Cached Renamed') }],
    ['create category', () => createCategory(app, headers, { slug: 'fresh' }),
      async (app) => { t.equal((await read(app, '/categories')).body.items.length, 2) }],
    ['create product', () => createProduct(app, headers, { name: 'Second' }),
      async (app) => { t.equal((await read(app, '/products')).body.items.length, 2) }],
    ['delete category', async () => app.inject({ method: 'DELETE', url: `/categories/${(await read(app, '/categories/by-slug/fresh')).body.id}`, headers }),
      async (app) => { t.equal((await read(app, '/categories')).body.items.length, 1) }],
    ['delete product', () => app.inject({ method: 'DELETE', url: `/products/${product.id}`, headers }),
      async (app) => { t.equal((await read(app, `/products/${product.id}`)).status, 404) }],
  ]
  for (const [name, write, check] of writes) {
    await warm()
    await write()
    t.equal((await read(app, '/products')).cache, 'miss', `${name}: the listing is fresh`)
    await check(app)
  }
})

t.test('admin reads bypass the cache', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  await createProduct(app, headers)
  await app.inject({ method: 'GET', url: '/products', headers })
  t.equal((await app.inject({ method: 'GET', url: '/products', headers })).headers['x-cache'], 'miss')
})

t.test('a Redis failure never fails a catalog read', async (t) => {
  const redis = await startOwnRedis(t)
  const app = await buildTestApp(t, { REDIS_URL: redis.url })
  const { headers } = await registerAdmin(app)
  const product = await createProduct(app, headers, { name: 'Survivor' })
  await read(app, '/products')
  t.equal((await read(app, '/products')).cache, 'hit')

  await redis.kill()
  // Versions and entries kept in process are not used once the connection's loss is noticed.
  for (let i = 0; i < 50 && app.redisHealth.available; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const list = await read(app, '/products')
  t.equal(list.status, 200)
  t.equal(list.cache, 'miss', 'an unreachable cache is a miss')
  t.equal(list.body.items[0].name, 'Survivor')
  t.equal((await read(app, `/products/${product.id}`)).status, 200)
  t.equal((await read(app, '/categories')).status, 200)
})

t.test('a sale makes stale only what it changed: the sold product, and listings only when in-stock flips', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  const other = await createProduct(app, headers, { name: 'Untouched', slug: 'untouched', variants: [{ priceMinor: 800, stock: 20 }] })
  const sold = await createProduct(app, headers, { name: 'Selling', slug: 'selling', variants: [{ priceMinor: 1200, stock: 3 }] })
  const { register } = await import('./users.js')
  const buyer = await register(app, { email: 'shopper@example.com' })
  const buy = async (quantity: number, key: string) => {
    await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId: sold.variants[0].id, quantity } })
    t.equal((await app.inject({ method: 'POST', url: '/orders', headers: { ...buyer.headers, 'idempotency-key': key }, payload: { shippingAddress: { recipientName: 'S', line1: '1 Road', city: 'Oslo', postalCode: '0150', country: 'NO' } } })).statusCode, 201)
  }
  const urls = ['/products', `/products/${other.id}`, '/products/by-slug/untouched', `/products/${sold.id}`, '/products/by-slug/selling']
  for (const url of urls) await read(app, url)

  await buy(1, 'partial-sale-1')
  t.equal((await read(app, '/products')).cache, 'hit', 'the listing stays cached: nothing it shows changed')
  t.equal((await read(app, `/products/${other.id}`)).cache, 'hit', 'another product stays cached')
  t.equal((await read(app, '/products/by-slug/untouched')).cache, 'hit')
  const fresh = await read(app, `/products/${sold.id}`)
  t.equal(fresh.cache, 'miss', 'the sold product is read again')
  t.equal(fresh.body.variants[0].stock, 2, 'with its new stock')
  t.equal((await read(app, '/products/by-slug/selling')).body.variants[0].stock, 2, 'by slug too')

  await buy(2, 'sell-out-1')
  const list = await read(app, '/products')
  t.equal(list.cache, 'miss', 'selling out changes what the listing shows')
  t.equal(list.body.items.find((p: { id: string }) => p.id === sold.id).inStock, false)
  t.equal((await read(app, `/products/${other.id}`)).cache, 'miss', 'and a listing change refreshes details with it (one catalog version)')
})

t.test('two instances: a hit is the same bytes as a miss, and a write on one makes the other\'s in-process copy stale at once', async (t) => {
  const a = await buildTestApp(t)
  // A second instance on the same stores (database, Redis prefix), as behind a load balancer.
  const b = await buildApp(loadConfig({
    ...testEnv({ name: 'second', url: a.config.postgres.url! }), MONGODB_URL: a.config.mongo.url!, REDIS_KEY_PREFIX: a.config.redis.keyPrefix,
  }), { logger: false })
  t.teardown(() => b.close())
  const { headers } = await registerAdmin(a)
  const product = await createProduct(a, headers, { name: 'Shared', variants: [{ priceMinor: 1000, stock: 5 }] })
  for (const url of ['/products', `/products/${product.id}`]) {
    const miss = await b.inject({ method: 'GET', url })
    const hit = await b.inject({ method: 'GET', url })
    t.equal(hit.headers['x-cache'], 'hit')
    t.equal(hit.body, miss.body, `${url}: a hit answers the bytes of a miss`)
    t.equal(hit.headers['content-type'], miss.headers['content-type'])
    t.equal((await a.inject({ method: 'GET', url })).headers['x-cache'], 'hit', 'the other instance finds it in Redis')
  }
  await a.inject({ method: 'PATCH', url: `/products/${product.id}`, headers, payload: { name: 'Renamed elsewhere' } })
  const after = await read(b, `/products/${product.id}`)
  t.equal(after.cache, 'miss')
  t.equal(after.body.name, 'Renamed elsewhere')
  t.equal((await read(b, '/products')).body.items[0].name, 'Renamed elsewhere')
})

t.test('cache versions are kept in process: a hit runs no Redis command; a version moved without its message is read again within the fallback TTL', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await registerAdmin(app)
  await createProduct(app, headers, { name: 'Versioned' })
  t.equal((await read(app, '/products')).cache, 'miss')
  t.equal((await read(app, '/products')).cache, 'hit')
  // A bump that no instance hears of (as if its message were lost): this instance keeps its version...
  await app.redis.incr(slotKey('cv', 'cache', CATALOG_CACHE))
  t.equal((await read(app, '/products')).cache, 'hit', 'the version is not read from Redis per lookup')
  // ...for about the fallback TTL (2 s): the first lookup after it reads the version again in the background.
  await new Promise((resolve) => setTimeout(resolve, 2200))
  await read(app, '/products')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal((await read(app, '/products')).cache, 'miss', 'then read again')
  // A bump through the cache is announced and heard at once.
  t.equal((await read(app, '/products')).cache, 'hit')
  await app.cache.invalidate(CATALOG_CACHE)
  t.equal((await read(app, '/products')).cache, 'miss')
})

t.test('CACHE=off: every public read goes to PostgreSQL', async (t) => {
  const app = await buildTestApp(t, { CACHE: 'off' })
  const { headers } = await registerAdmin(app)
  const product = await createProduct(app, headers, { name: 'Uncached' })
  for (const url of ['/products', `/products/${product.id}`]) {
    const answers = [await read(app, url), await read(app, url)]
    t.same(answers.map((a) => a.cache), ['miss', 'miss'], `${url}: a miss every time`)
  }
  // A change made behind the API's back (no version bump) shows at once.
  await app.db.execute(sql`update products set name = 'Renamed in SQL' where id = ${product.id}`)
  t.equal((await read(app, `/products/${product.id}`)).body.name, 'Renamed in SQL')
  t.equal((await read(app, '/products')).body.items[0].name, 'Renamed in SQL')
})
