import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import pg from 'pg'
import { Toxiproxy, type Proxy } from 'toxiproxy-node-client'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createTestDatabase, deleteRedisKeys, freePort, testEnv } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// Each store, one at a time, behind a Toxiproxy proxy of its own while requests flow: 300 ms of
// latency, then a stalled connection (a hung store: bytes stop, the socket stays open), then a cut
// (every connection reset and refused). Throughout, the process answers; what needs the store
// answers 503 problem+json within its timeout, what does not keeps answering 200; /ready names
// the store; after each fault is removed everything recovers without a restart; and every order
// and payment a client was told about exists once, no more.

const TOXIPROXY_URL = process.env.TEST_TOXIPROXY_URL ?? 'http://127.0.0.1:58474'
const toxiproxy = new Toxiproxy(TOXIPROXY_URL)
type Store = 'postgres' | 'redis' | 'mongo'
const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }

// Short store timeouts so a stall is found out quickly; BOUND_MS is the longest any answer may take.
const TIMEOUTS = { PG_STATEMENT_TIMEOUT_MS: '1000', PG_CONNECT_TIMEOUT_MS: '1000', REDIS_COMMAND_TIMEOUT_MS: '1000', MONGO_OPERATION_TIMEOUT_MS: '1000' }
const BOUND_MS = 6000
const CLIENT_GIVES_UP_MS = 20_000

/** The kinds of request in the load, and which stores each needs. */
const KINDS = {
  health: [],
  product: ['postgres'], // read through the Redis cache; the activity log (MongoDB) is optional
  list: ['postgres'],
  orders: ['redis', 'postgres'], // signed in: the session is checked in Redis
  cart: ['redis', 'mongo', 'postgres'],
  checkout: ['redis', 'mongo', 'postgres'],
} as const satisfies Record<string, readonly Store[]>
type Kind = keyof typeof KINDS
// Reads a store serves from a copy: the catalog from the cache while PostgreSQL is away.
const MAY_BE_CACHED: Partial<Record<Store, Kind[]>> = { postgres: ['product', 'list'] }

interface Outcome { kind: Kind; phase: string; status: number; ms: number; problemType?: string }

async function proxyFor(store: Store, url: string) {
  const u = new URL(url)
  const port = await freePort()
  const proxy = await toxiproxy.createProxy({ name: `${store}-${randomBytes(4).toString('hex')}`, listen: `127.0.0.1:${port}`, upstream: `${u.hostname}:${u.port}` })
  u.port = String(port)
  return { proxy, url: u.toString() }
}

/** The app on isolated test stores, with `store` reached through a proxy; listening on a real port. */
async function appBehindProxy(t: Test, store: Store) {
  const database = await createTestDatabase(t)
  const env = testEnv(database, { ...TIMEOUTS, RATE_LIMIT_MAX: '1000000', AUTH_RATE_LIMIT_MAX: '1000000' })
  const key = { postgres: 'DATABASE_URL', redis: 'REDIS_URL', mongo: 'MONGODB_URL' }[store]
  const { proxy, url } = await proxyFor(store, env[key]!)
  env[key] = url
  const config = loadConfig(env)
  const app = await buildApp(config, { logger: false })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => {
    await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream }).catch(() => {})
    for (const toxic of ['latency', 'stall', 'cut']) await proxy.getToxic(toxic).then((x) => x.remove(), () => {})
    await app.mongo.dropDatabase().catch(() => {})
    await app.close()
    await proxy.remove().catch(() => {})
    await deleteRedisKeys(config.redis.keyPrefix)
  })
  return { app, proxy, database, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}` }
}

/** Requests from `workers` clients in a loop over every kind, until stopped; each outcome is kept with the phase it started in. */
function startLoad(base: string, fixtures: Fixtures, workers: number) {
  const outcomes: Outcome[] = []
  const checkouts: { key: string; headers: Record<string, string>; orderId?: string }[] = []
  const payments: { key: string; orderId: string; headers: Record<string, string>; paymentId?: string }[] = []
  let phase = 'baseline'
  let running = true
  const call = async (kind: Kind, method: string, path: string, headers: Record<string, string> = {}, body?: object) => {
    const started = performance.now()
    const startedIn = phase
    let status = 0
    let json: Record<string, unknown> | undefined
    let problemType: string | undefined
    try {
      const res = await fetch(base + path, {
        method, signal: AbortSignal.timeout(CLIENT_GIVES_UP_MS),
        headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined,
      })
      status = res.status
      const text = await res.text()
      json = text ? JSON.parse(text) as Record<string, unknown> : undefined
      if (status >= 400) problemType = res.headers.get('content-type')?.startsWith('application/problem+json') ? String(json?.type) : `not a problem: ${res.headers.get('content-type')}`
    } catch {
      status = 0 // no answer in CLIENT_GIVES_UP_MS, or the connection dropped
    }
    outcomes.push({ kind, phase: startedIn, status, ms: performance.now() - started, problemType })
    return { status, json }
  }
  const worker = async (w: number) => {
    const customer = fixtures.customers[w]!
    while (running) {
      await call('health', 'GET', '/health')
      await call('product', 'GET', `/products/${fixtures.productId}`)
      await call('list', 'GET', '/products?limit=5')
      await call('orders', 'GET', '/orders?limit=5', customer)
      await call('cart', 'POST', '/cart/items', customer, { variantId: fixtures.variantId, quantity: 1 })
      const key = `checkout-${randomBytes(6).toString('hex')}`
      const attempt: (typeof checkouts)[number] = { key, headers: customer }
      checkouts.push(attempt)
      const order = await call('checkout', 'POST', '/orders', { ...customer, 'idempotency-key': key }, { shippingAddress: ADDRESS })
      if (order.status === 201 || order.status === 200) {
        attempt.orderId = String(order.json!.id)
        const payment: (typeof payments)[number] = { key: `pay-${key}`, orderId: attempt.orderId, headers: customer }
        payments.push(payment)
        const paid = await call('checkout', 'POST', `/orders/${attempt.orderId}/payments`, { ...customer, 'idempotency-key': payment.key }, { provider: 'test', paymentMethod: 'tok_success' })
        if (paid.status === 201 || paid.status === 200) payment.paymentId = String(paid.json!.id)
      }
    }
  }
  const done = Promise.all(fixtures.customers.slice(0, workers).map((_, w) => worker(w)))
  return {
    outcomes, checkouts, payments,
    set phase(name: string) { phase = name },
    async stop() { running = false; await done },
  }
}

interface Fixtures { productId: string; variantId: string; customers: Record<string, string>[] }
async function fixtures(app: App, customers: number): Promise<Fixtures> {
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { name: 'Sturdy', variants: [{ priceMinor: 1500, stock: 1_000_000 }] })
  return { productId: product.id, variantId: product.variants[0].id, customers: (await quickCustomers(app, customers)).map((c) => c.headers) }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Until one request of every kind and /ready all succeed; answers how long that took. */
async function recovery(base: string, fx: Fixtures) {
  const started = performance.now()
  const customer = fx.customers.at(-1)!
  const ok = async (path: string, headers: Record<string, string> = {}) => (await fetch(base + path, { headers, signal: AbortSignal.timeout(CLIENT_GIVES_UP_MS) }).catch(() => undefined))?.status === 200
  while (performance.now() - started < 30_000) {
    const all = await Promise.all([ok('/ready'), ok(`/products/${fx.productId}`), ok('/products?limit=5'), ok('/orders?limit=5', customer), ok('/cart', customer)])
    if (all.every(Boolean)) return performance.now() - started
    await sleep(100)
  }
  return Infinity
}

async function readyNames(base: string, store: Store) {
  const res = await fetch(`${base}/ready`, { signal: AbortSignal.timeout(CLIENT_GIVES_UP_MS) })
  const body = await res.json() as { checks?: Record<string, string> }
  return res.status === 503 && body.checks?.[store] === 'down'
}

const FAULTS = {
  latency: { type: 'latency', attributes: { latency: 300, jitter: 0 }, ms: 3000 },
  stall: { type: 'timeout', attributes: { timeout: 0 }, ms: 5000 },
} as const

for (const store of ['postgres', 'redis', 'mongo'] as const) {
  t.test(`${store} behind Toxiproxy: latency, a stall and a cut under load`, async (t) => {
    const { app, proxy, database, base } = await appBehindProxy(t, store)
    const fx = await fixtures(app, 7)
    const load = startLoad(base, fx, 6)
    const figures: string[] = []
    await sleep(1500)

    for (const name of ['latency', 'stall', 'cut'] as const) {
      load.phase = name
      const began = load.outcomes.length
      let readyNamed = false
      if (name === 'cut') {
        // Every open connection reset, new ones refused: the store is gone.
        await proxy.update({ enabled: false, listen: proxy.listen, upstream: proxy.upstream })
        await sleep(1000)
        readyNamed = await readyNames(base, store)
        await sleep(2000)
        load.phase = `after-${name}`
        await proxy.update({ enabled: true, listen: proxy.listen, upstream: proxy.upstream })
      } else {
        const fault = FAULTS[name]
        const toxic = await proxy.addToxic({ name, type: fault.type, stream: 'downstream', toxicity: 1, attributes: fault.attributes })
        await sleep(fault.ms / 2)
        if (name === 'stall') readyNamed = await readyNames(base, store)
        await sleep(fault.ms / 2)
        load.phase = `after-${name}`
        await toxic.remove()
      }
      const recoveredMs = await recovery(base, fx)
      const during = load.outcomes.slice(began).filter((o) => o.phase === name)
      const fivexx = during.filter((o) => o.status >= 500)
      figures.push(`${name}: ${during.length} requests, ${fivexx.length} 5xx (${fivexx.filter((o) => o.status === 503).length} 503), slowest ${Math.max(...during.map((o) => o.ms)).toFixed(0)} ms, recovered in ${recoveredMs.toFixed(0)} ms`)

      t.ok(recoveredMs < 15_000, `${name}: recovers without a restart (${recoveredMs.toFixed(0)} ms)`)
      const slow = during.filter((o) => o.status === 0 || o.ms > BOUND_MS)
      t.same(slow.slice(0, 5), [], `${name}: every request answered within ${BOUND_MS} ms`)
      const bad = during.filter((o) => o.status !== 0 && o.status >= 400 && !(o.status === 503 && o.problemType === 'urn:problem-type:store-unavailable'))
      t.same(bad.slice(0, 5), [], `${name}: every failure is 503 store-unavailable problem+json`)
      if (name === 'latency') {
        t.same(fivexx.slice(0, 5), [], 'latency: slower, but every request succeeds')
        continue
      }
      t.ok(readyNamed, `${name}: /ready answers 503 and names ${store}`)
      const independent = (Object.keys(KINDS) as Kind[]).filter((k) => !(KINDS[k] as readonly Store[]).includes(store))
      const broken = during.filter((o) => independent.includes(o.kind) && o.status !== 200 && o.status !== 201)
      t.same(broken.slice(0, 5), [], `${name}: what does not need ${store} keeps answering (${independent.join(', ')})`)
      const dependent = (Object.keys(KINDS) as Kind[]).filter((k) => !independent.includes(k) && !(MAY_BE_CACHED[store] ?? []).includes(k))
      t.ok(during.some((o) => dependent.includes(o.kind) && o.status === 503), `${name}: what needs ${store} answers 503`)
    }
    await load.stop()
    t.comment(`${store}: ${figures.join('; ')}`)

    // Money: retry every checkout and payment whose answer was lost, with its key, as a client
    // would. Then each order and payment in PostgreSQL is one a client was told about, once.
    for (const attempt of load.checkouts.filter((c) => !c.orderId)) {
      const res = await fetch(`${base}/orders`, { method: 'POST', headers: { ...attempt.headers, 'idempotency-key': attempt.key, 'content-type': 'application/json' }, body: JSON.stringify({ shippingAddress: ADDRESS }) })
      if (res.status === 201 || res.status === 200) attempt.orderId = String((await res.json() as { id: string }).id)
    }
    for (const payment of load.payments.filter((p) => !p.paymentId)) {
      const res = await fetch(`${base}/orders/${payment.orderId}/payments`, { method: 'POST', headers: { ...payment.headers, 'idempotency-key': payment.key, 'content-type': 'application/json' }, body: JSON.stringify({ provider: 'test', paymentMethod: 'tok_success' }) })
      if (res.status === 201 || res.status === 200) payment.paymentId = String((await res.json() as { id: string }).id)
    }
    const orderIds = new Set(load.checkouts.flatMap((c) => c.orderId ? [c.orderId] : []))
    const paymentIds = new Set(load.payments.flatMap((p) => p.paymentId ? [p.paymentId] : []))
    const direct = new pg.Client({ connectionString: database.url })
    await direct.connect()
    const inDb = async (table: string) => new Set((await direct.query<{ id: string }>(`select id from ${table}`)).rows.map((r) => r.id))
    const [orders, paymentRows] = [await inDb('orders'), await inDb('payments')]
    await direct.end()
    t.ok(orderIds.size > 0, `${orderIds.size} orders made during the faults`)
    t.same([...orders].sort(), [...orderIds].sort(), 'every order in PostgreSQL is one a checkout answered, each once')
    t.same([...paymentRows].sort(), [...paymentIds].sort(), 'every payment in PostgreSQL is one a client was answered, each once')
    t.equal(load.outcomes.filter((o) => o.status === 500).length, 0, 'never a 500')
  })
}
