import t from 'tap'
import { Redis } from 'ioredis'
import { buildTestApp, startOwnRedis, waitUntil } from './helpers.js'
import { DEFAULT_PASSWORD, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// The cache and the rate limit are optional: with Redis dead or hung, public reads answer at
// the database's speed, not after a Redis timeout each. When Redis is back, the cache is used again.
async function timedReads(app: App, url: string, count: number) {
  const started = performance.now()
  const statuses = new Set<number>()
  const caches = new Set<string>()
  for (let i = 0; i < count; i++) {
    const res = await app.inject({ method: 'GET', url })
    statuses.add(res.statusCode)
    caches.add(String(res.headers['x-cache']))
  }
  return { msPerRead: (performance.now() - started) / count, statuses: [...statuses], caches: [...caches] }
}

async function untilHit(app: App, url: string) {
  for (let i = 0; i < 100; i++) {
    const res = await app.inject({ method: 'GET', url })
    if (res.headers['x-cache'] === 'hit') return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

for (const outage of ['killed', 'hung'] as const) {
  t.test(`Redis ${outage}: catalog reads stay fast and come back to the cache`, async (t) => {
    const redis = await startOwnRedis(t)
    const app = await buildTestApp(t, { REDIS_URL: redis.url })
    const { headers } = await registerAdmin(app)
    await createProduct(app, headers, { name: 'Resilient' })
    t.ok(await untilHit(app, '/products'), 'cached while Redis is up')
    const healthy = await timedReads(app, '/products?limit=5', 20)

    if (outage === 'killed') await redis.kill()
    else redis.hang()
    await app.inject({ method: 'GET', url: '/products' }) // the first read may find out the hard way
    const degraded = await timedReads(app, '/products?limit=5', 20)
    t.same(degraded.statuses, [200], 'every read answers')
    // Before: 2-3.5 s per read with Redis killed, no answer at all with Redis hung. A database
    // read takes a few milliseconds; allow a wide margin for a loaded machine.
    t.ok(degraded.msPerRead < Math.max(100, healthy.msPerRead * 20), `${degraded.msPerRead.toFixed(1)} ms per read without Redis (${healthy.msPerRead.toFixed(1)} ms with it)`)
    // Cache versions kept in process are trusted for up to twice their fallback TTL (2 s) when
    // Redis says nothing (a hung Redis closes no connection), so reads may be hits until then;
    // after it, the version lookup finds Redis away and reads go to the database.
    await new Promise((resolve) => setTimeout(resolve, 4100))
    await app.inject({ method: 'GET', url: '/products?limit=5' })
    const fromDatabase = await timedReads(app, '/products?limit=5', 10)
    t.same(fromDatabase.statuses, [200])
    t.same(fromDatabase.caches, ['miss'], 'served from the database')
    t.ok(fromDatabase.msPerRead < Math.max(100, healthy.msPerRead * 20), `${fromDatabase.msPerRead.toFixed(1)} ms per read from the database`)

    // Sign-in needs Redis (sessions): a clear 503, not a 500 or a hang.
    const signIn = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'admin@example.com', password: DEFAULT_PASSWORD } })
    t.equal(signIn.statusCode, 503, 'a route that needs Redis answers 503')
    t.equal(signIn.json().type, 'urn:problem-type:store-unavailable')

    if (outage === 'killed') await redis.start()
    else redis.resume()
    t.ok(await untilHit(app, '/products'), 'the cache is used again once Redis is back')
  })
}

// The global limit does not lapse with Redis: while Redis is away each instance counts on its
// own (a limit per instance rather than none), and once Redis is back the counts are shared again.
t.test('Redis killed: the global rate limit counts in the process, and in Redis again once it is back', async (t) => {
  const redis = await startOwnRedis(t)
  const app = await buildTestApp(t, { REDIS_URL: redis.url, RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' })
  const statuses = async (count: number) => {
    const seen: number[] = []
    for (let i = 0; i < count; i++) seen.push((await app.inject({ method: 'GET', url: '/categories' })).statusCode)
    return seen
  }
  t.same(await statuses(6), [200, 200, 200, 200, 200, 429], 'counted in Redis')

  await redis.kill()
  await app.inject({ method: 'GET', url: '/categories' }) // the request that finds Redis gone (it passes)
  const withoutRedis = await statuses(7)
  t.same(withoutRedis.slice(-2), [429, 429], `limited without Redis too: ${withoutRedis.join(' ')}`)
  t.same(withoutRedis.slice(0, 4), [200, 200, 200, 200], 'counted afresh in the process')
  const limited = await app.inject({ method: 'GET', url: '/categories' })
  t.equal(limited.json().type, 'urn:problem-type:rate-limited')
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After')

  await redis.start()
  const probe = new Redis(redis.url)
  t.teardown(() => probe.quit())
  // Back on Redis: the (empty, restarted) server holds the count again, and its limit applies.
  const counted = await waitUntil('the count in Redis again', async () => {
    await app.inject({ method: 'GET', url: '/categories' })
    const keys = await probe.keys('*rl:*')
    return keys.length > 0 && keys
  }, 10_000, 200)
  const before = Number(await probe.get(counted[0]!))
  t.ok(before >= 1, `Redis counts again (${before})`)
  await statuses(5)
  t.equal(Number(await probe.get(counted[0]!)), before + 5, 'every request counted in Redis')
})
