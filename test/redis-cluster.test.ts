import t from 'tap'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Cluster, Redis } from 'ioredis'
import { buildTestApp, captureLogs, TEST_REDIS_CLUSTER_NODES } from './helpers.js'
import { authHeader, DEFAULT_PASSWORD, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// The app on a real three-master Redis Cluster (test/services.sh starts it): the flows that use
// Redis together (sessions, rate limits, the cache, cart locks, idempotent checkout, BullMQ) run
// without a CROSSSLOT error, and their keys land on more than one master.

const nodes = TEST_REDIS_CLUSTER_NODES.split(',').filter(Boolean)
const skip = nodes.length ? false : 'TEST_REDIS_CLUSTER_NODES is empty: no Redis Cluster to test against'
const masters = nodes.map((node) => {
  const at = node.lastIndexOf(':')
  return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
})

/** Each master's keys under `prefix` (a plain connection per node: a cluster's SCAN sees one node). */
async function keysByNode(prefix: string) {
  const found: Record<string, string[]> = {}
  for (const { host, port } of masters) {
    const node = new Redis({ host, port, lazyConnect: true })
    await node.connect()
    try {
      const keys: string[] = []
      let cursor = '0'
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
        keys.push(...batch)
        cursor = next
      } while (cursor !== '0')
      found[`${host}:${port}`] = keys
      // Cleanup: keys of several slots cannot go in one DEL on a cluster node.
      if (keys.length) await keys.reduce((p, key) => p.unlink(key), node.pipeline()).exec()
    } finally {
      node.disconnect()
    }
  }
  return found
}


const METRICS = 'cluster-metrics-token-0123'
const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('sessions, cache, cart, idempotent checkout and BullMQ on a Redis Cluster', { skip }, async (t) => {
  const logs = captureLogs()
  const prefix = `cluster_${randomBytes(4).toString('hex')}:`
  const app: App = await buildTestApp(t, { REDIS_CLUSTER_NODES: nodes.join(','), REDIS_KEY_PREFIX: prefix, JOBS: 'on', REFRESH_REUSE_GRACE_SECONDS: '0', METRICS_TOKEN: METRICS }, { logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => keysByNode(prefix))
  const probeRuns: string[] = []
  app.jobs.every('cluster-probe', 300, async () => 'ok')
  app.jobs.onRun = (name, runId) => { if (name === 'cluster-probe') probeRuns.push(runId) }
  await app.ready()
  t.ok(app.redis instanceof Cluster, 'the shared client is an ioredis Cluster')

  // Sessions: a refresh-token family rotates, a reused token ends it, logout ends another.
  const customer = await register(app, { email: 'ada@example.com' })
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: customer.headers })).statusCode, 200, 'the access token is honoured')
  const first = customer.body.tokens.refreshToken as string
  const rotated = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })
  t.equal(rotated.statusCode, 200, rotated.body)
  const second = rotated.json().refreshToken as string
  t.not(second, first, 'a new refresh token')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(rotated.json().accessToken) })).statusCode, 200)
  const reused = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })
  t.match(reused.json(), { status: 401, type: /refresh-token-reused/ }, 'presenting the rotated token again ends the family')
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: second } })).statusCode, 401, 'the family is gone')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: customer.headers })).statusCode, 401, 'and so are its access tokens')

  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'ada@example.com', password: DEFAULT_PASSWORD } })
  t.equal(login.statusCode, 200, login.body)
  const headers = authHeader(login.json().tokens.accessToken)
  const other = authHeader((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'ada@example.com', password: DEFAULT_PASSWORD } })).json().tokens.accessToken)
  t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: other })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: other })).statusCode, 401, 'logged out at once')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers })).statusCode, 200, 'the other session lives')

  // Catalog cache: a miss, a hit, and a fresh read after an admin write.
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { name: 'Clustered', variants: [{ sku: 'CL-1', priceMinor: 1500, stock: 5 }] })
  const read = () => app.inject({ method: 'GET', url: `/products/${product.id}` })
  t.equal((await read()).headers['x-cache'], 'miss')
  t.equal((await read()).headers['x-cache'], 'hit')
  t.equal((await app.inject({ method: 'GET', url: '/products' })).headers['x-cache'], 'miss')
  t.equal((await app.inject({ method: 'GET', url: '/products' })).headers['x-cache'], 'hit')
  t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name: 'Reclustered' } })).statusCode, 200)
  const fresh = await read()
  t.equal(fresh.headers['x-cache'], 'miss', 'the write made the entry stale')
  t.equal(fresh.json().name, 'Reclustered')

  // A webhook subscriber, delivered through the BullMQ queue.
  const received: string[] = []
  const receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c })
    req.on('end', () => { received.push(body); res.writeHead(200).end('ok') })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { receiver.closeAllConnections(); receiver.close(() => resolve()) }))
  const endpoint = await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['order.created'] } })
  t.equal(endpoint.statusCode, 201, endpoint.body)

  // Cart (under a Redis lock, released at once, so no key stays) and an idempotent checkout replayed with the same key.
  t.equal((await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId: product.variants[0].id, quantity: 2 } })).statusCode, 200)
  const checkout = () => app.inject({ method: 'POST', url: '/orders', headers: { ...headers, 'idempotency-key': 'cluster-checkout-1' }, payload: { shippingAddress: ADDRESS } })
  const placed = await checkout()
  t.equal(placed.statusCode, 201, placed.body)
  const replayed = await checkout()
  t.equal(replayed.json().id, placed.json().id, 'the retry replays the first order')
  t.same((await app.inject({ method: 'GET', url: '/cart', headers })).json().lines, [], 'the cart was cleared')

  const [delivery] = await until('the webhook delivery', () => received.length > 0 && received)
  t.match(JSON.parse(delivery!), { type: 'order.created', data: { order: { id: placed.json().id } } }, 'the BullMQ worker delivered the webhook')
  await until('a scheduled BullMQ job', () => probeRuns.length > 0)
  t.pass(`scheduled job ran ${probeRuns.length} time(s)`)

  // The app's keys live on several masters, and BullMQ's on one slot.
  const byNode = await keysByNode(prefix)
  const used = Object.entries(byNode).filter(([, keys]) => keys.length > 0)
  t.ok(used.length > 1, `keys on ${used.length} of ${masters.length} masters: ${Object.entries(byNode).map(([n, k]) => `${n}=${k.length}`).join(' ')}`)
  const bull = Object.entries(byNode).filter(([, keys]) => keys.some((k) => k.startsWith(`${prefix}{bull}:`)))
  t.equal(bull.length, 1, 'BullMQ keys share one slot')
  for (const kind of ['sf:{', 'rt:{', 'us:{', 'cv:{cache}:', 'ce:', 'rl:']) {
    t.ok(Object.values(byNode).flat().some((k) => k.startsWith(`${prefix}${kind}`)), `${kind}… keys were written`)
  }

  // Readiness pings the cluster; the metrics time the cluster client's commands and count no error.
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.match(ready.json(), { status: 'ready', checks: { redis: 'up' } })
  const metrics = (await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS}` } })).body
  t.match(metrics, /shop_redis_command_duration_seconds_count\{command="evalsha"\} [1-9]/, 'Lua scripts timed')
  t.notMatch(metrics, /shop_redis_command_errors_total\{/, 'no Redis command failed')

  const redisTrouble = logs.lines.filter((l) => /CROSSSLOT|slot|redis|cache|rate limiter|queue|job failed/i.test(JSON.stringify(l)))
  t.same(redisTrouble, [], 'no Redis error was logged (CROSSSLOT or other)')
  t.ok(app.redisHealth.available, 'Redis stayed healthy')
})

t.test('the rate limit on a Redis Cluster counts across two instances and answers 429', { skip }, async (t) => {
  const logs = captureLogs()
  const prefix = `cluster_rl_${randomBytes(4).toString('hex')}:`
  const env = { REDIS_CLUSTER_NODES: nodes.join(','), REDIS_KEY_PREFIX: prefix, RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000', AUTH_ACCOUNT_RATE_LIMIT_MAX: '2' }
  const one = await buildTestApp(t, env, { logger: { level: 'warn', stream: logs.stream } })
  const two = await buildTestApp(t, env, { logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => keysByNode(prefix))
  const statuses = []
  for (const app of [one, two, one, two]) statuses.push((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode)
  t.same(statuses, [200, 200, 200, 429], 'the fourth request, on the other instance, is limited')

  // The per-account limit (rate-limiter-flexible's Lua script on the cluster).
  const attempt = (app: App) => app.inject({ method: 'POST', url: '/auth/login', remoteAddress: '10.9.8.7', payload: { email: 'nobody@example.com', password: 'wrong password here' } })
  const logins = [(await attempt(one)).statusCode, (await attempt(two)).statusCode, (await attempt(one)).statusCode]
  t.equal(logins.at(-1), 429, `sign-in attempts: ${logins.join(', ')}`)
  t.same(logs.lines.filter((l) => /CROSSSLOT|slot|redis|rate limiter/i.test(JSON.stringify(l))), [], 'no Redis error was logged')
})

t.test('far from the limit, counts made in process reach the cluster: one command per key, keys on several slots', { skip }, async (t) => {
  const logs = captureLogs()
  const prefix = `cluster_rls_${randomBytes(4).toString('hex')}:`
  const app = await buildTestApp(t, { REDIS_CLUSTER_NODES: nodes.join(','), REDIS_KEY_PREFIX: prefix, RATE_LIMIT_MAX: '1000', RATE_LIMIT_WINDOW_MS: '60000' }, { logger: { level: 'warn', stream: logs.stream } })
  t.teardown(() => keysByNode(prefix))
  // 12 clients, 2 requests each: far from the limit, so counted here and synchronised in one batch.
  const clients = Array.from({ length: 12 }, (_, i) => `10.77.0.${i + 1}`)
  for (const remoteAddress of [...clients, ...clients]) t.equal((await app.inject({ method: 'GET', url: '/docs/json', remoteAddress })).statusCode, 200)
  const read = () => Promise.all(clients.map((ip) => app.redis.get(`rl:${ip}`)))
  let counts = await read()
  for (let waited = 0; waited < 3000 && !counts.every((v) => v === '2'); waited += 50) {
    await new Promise((r) => setTimeout(r, 50))
    counts = await read()
  }
  t.same(counts, clients.map(() => '2'), 'each client counted twice in Redis')
  const nodesWithCounts = Object.values(await keysByNode(`${prefix}rl:`)).filter((keys) => keys.length > 0).length
  t.ok(nodesWithCounts > 1, `the counters live on ${nodesWithCounts} masters`)
  t.same(logs.lines.filter((l) => /CROSSSLOT|slot|rate limit/i.test(JSON.stringify(l))), [], 'no synchronisation failed')
})
