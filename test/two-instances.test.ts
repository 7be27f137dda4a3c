import t from 'tap'
import { eq } from 'drizzle-orm'
import { orders } from '../db/schema/index.js'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createTestDatabase, deleteRedisKeys, freePort, testEnv } from './helpers.js'
import { DEFAULT_PASSWORD, authHeader, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// Two API instances on different ports sharing PostgreSQL, MongoDB and Redis, as behind a load
// balancer: what one instance does, the other honours at once.

type Call = (method: string, path: string, opts?: { body?: unknown; headers?: Record<string, string> }) => Promise<Response>

async function twoInstances(t: { teardown(fn: () => unknown): void }, env: Record<string, string> = {}) {
  const config = loadConfig(testEnv(await createTestDatabase(t), env))
  const apps: App[] = []
  const calls: Call[] = []
  t.teardown(async () => {
    await apps[0]?.mongo.dropDatabase().catch(() => {})
    await Promise.all(apps.map((app) => app.close()))
    await deleteRedisKeys(config.redis.keyPrefix)
  })
  for (let i = 0; i < 2; i++) {
    const app = await buildApp(config, { logger: false })
    apps.push(app)
    const port = await freePort()
    await app.listen({ host: '127.0.0.1', port })
    calls.push((method, path, { body, headers = {} } = {}) => fetch(`http://127.0.0.1:${port}${path}`, {
      method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
    }))
  }
  return { apps, a: calls[0]!, b: calls[1]! }
}

t.test('the global rate limit counts requests to both instances together', async (t) => {
  const { a, b } = await twoInstances(t, { RATE_LIMIT_MAX: '6', RATE_LIMIT_WINDOW_MS: '60000' })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await (i % 2 ? b : a)('GET', '/categories')).status)
  t.same(statuses, [200, 200, 200, 200, 200, 200, 429, 429], 'six requests in all, three on each, then both refuse')
  const refused = await b('GET', '/categories')
  t.equal(refused.headers.get('ratelimit-limit') ?? refused.headers.get('x-ratelimit-limit'), '6')
})

t.test('sessions, the catalog cache and idempotency are shared by both instances', async (t) => {
  const { apps: [seed], a, b } = await twoInstances(t)
  const admin = await registerAdmin(seed!)
  const product = await createProduct(seed!, admin.headers, { name: 'Lamp', variants: [{ priceMinor: 2500, stock: 10 }] })

  t.test('a logout on one instance is honoured by the other at once', async (t) => {
    await register(seed!, { email: 'leaving@example.com' })
    const login = await (await a('POST', '/auth/login', { body: { email: 'leaving@example.com', password: DEFAULT_PASSWORD } })).json() as { tokens: { accessToken: string } }
    const headers = authHeader(login.tokens.accessToken)
    t.equal((await b('GET', '/users/me', { headers })).status, 200, 'the token works on B')
    t.equal((await a('POST', '/auth/logout', { headers })).status, 204, 'logout on A')
    const after = await b('GET', '/users/me', { headers })
    t.equal(after.status, 401, 'B refuses the access token right after')
  })

  t.test('a catalog write on one instance invalidates what the other serves', async (t) => {
    const path = `/products/${product.id}`
    const read = async () => { const res = await b('GET', path); return { cache: res.headers.get('x-cache'), name: ((await res.json()) as { name: string }).name } }
    const list = async () => { const res = await b('GET', '/products?limit=10'); return { cache: res.headers.get('x-cache'), names: ((await res.json()) as { items: { name: string }[] }).items.map((p) => p.name) } }
    t.same(await read(), { cache: 'miss', name: 'Lamp' })
    t.same(await read(), { cache: 'hit', name: 'Lamp' }, 'B serves the detail from its cache (in-process copy in front of Redis)')
    t.same(await list(), { cache: 'miss', names: ['Lamp'] })
    t.same(await list(), { cache: 'hit', names: ['Lamp'] })
    const patched = await a('PATCH', path, { headers: admin.headers, body: { name: 'Desk lamp' } })
    t.equal(patched.status, 200, 'renamed on A')
    t.same(await read(), { cache: 'miss', name: 'Desk lamp' }, 'B serves the new name at once')
    t.same(await list(), { cache: 'miss', names: ['Desk lamp'] }, 'and lists it at once')
  })

  t.test('an idempotent checkout retried on the other instance replays the same answer; one order', async (t) => {
    const customer = await register(seed!, { email: 'buyer@example.com' })
    t.equal((await a('POST', '/cart/items', { headers: customer.headers, body: { variantId: product.variants[0].id, quantity: 2 } })).status, 200)
    const body = { shippingAddress: { recipientName: 'Ada', line1: '1 Road', city: 'York', postalCode: 'YO1 7HH', country: 'GB' } }
    const headers = { ...customer.headers, 'idempotency-key': 'two-instances-1' }
    const first = await a('POST', '/orders', { headers, body })
    t.equal(first.status, 201, 'placed on A')
    const retried = await b('POST', '/orders', { headers, body })
    t.equal(retried.status, 201, 'retried on B')
    t.equal(retried.headers.get('idempotent-replayed'), 'true')
    t.same(await retried.json(), await first.json(), 'the same order')
    const placed = await seed!.db.select({ id: orders.id }).from(orders).where(eq(orders.userId, customer.body.user.id))
    t.equal(placed.length, 1, 'one order in the database')
  })
})
