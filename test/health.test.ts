import t from 'tap'
import { adminQuery, buildTestApp, createTestDatabase, startOwnFerretDb, startOwnRedis } from './helpers.js'

t.test('GET /health and /ready answer when every store is up', async (t) => {
  const app = await buildTestApp(t)
  const health = await app.inject({ method: 'GET', url: '/health' })
  t.equal(health.statusCode, 200)
  t.equal(health.json().status, 'ok')
  t.match(health.headers['x-request-id'], /^[0-9a-f-]{36}$/)

  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready', checks: { postgres: 'up', mongo: 'up', redis: 'up' } })
})

t.test('a caller-supplied request id is echoed back; an unsafe one is replaced', async (t) => {
  const app = await buildTestApp(t)
  const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'abc-123' } })
  t.equal(kept.headers['x-request-id'], 'abc-123')
  const replaced = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'bad id\nwith newline' } })
  t.not(replaced.headers['x-request-id'], 'bad id\nwith newline')
})

t.test('/ready is 503 naming redis when its server goes away', async (t) => {
  const redis = await startOwnRedis(t)
  const app = await buildTestApp(t, { REDIS_URL: redis.url })
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)

  await redis.kill()
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  const body = res.json()
  t.same(body.checks, { postgres: 'up', mongo: 'up', redis: 'down' })
  t.match(body.detail, /redis/)
  t.notMatch(body.detail, /postgres|mongo/)
  // The rest of the API keeps answering while Redis is away (the rate limit counts in the process).
  t.equal((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200)
})

t.test('/ready is 503 naming mongo when its server goes away', async (t) => {
  const ferret = await startOwnFerretDb(t)
  const app = await buildTestApp(t, { MONGODB_URL: `${ferret.url}health` })
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)

  await ferret.stop()
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 503)
  t.same(res.json().checks, { postgres: 'up', mongo: 'down', redis: 'up' })
  t.match(res.json().detail, /mongo/)
})

t.test('/ready is 503 naming postgres when its database goes away', async (t) => {
  const db = await createTestDatabase(t)
  const app = await buildTestApp(t, { DATABASE_URL: db.url })
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)

  await adminQuery(`drop database ${db.name} with (force)`)
  const res = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(res.statusCode, 503)
  t.same(res.json().checks, { postgres: 'down', mongo: 'up', redis: 'up' })
  t.match(res.json().detail, /postgres/)
})
