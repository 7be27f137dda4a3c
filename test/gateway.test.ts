import t from 'tap'
import { Type } from '@sinclair/typebox'
import { randomBytes } from 'node:crypto'
import { buildTestApp } from './helpers.js'

const PROBLEM = 'application/problem+json; charset=utf-8'

t.test('an unknown route is a problem+json 404', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/no/such/route?x=1' })
  t.equal(res.statusCode, 404)
  t.equal(res.headers['content-type'], PROBLEM)
  t.match(res.json(), { type: 'about:blank', title: 'Not Found', status: 404, detail: 'Route GET /no/such/route not found', instance: res.headers['x-request-id'] })
})

t.test('framework and validation errors are problem+json; a crash shows no internals', async (t) => {
  const app = await buildTestApp(t, { BODY_LIMIT_BYTES: '2048' })
  // A probe route inside the real app, so these go through the app's own error handling.
  app.post('/probe', {
    schema: {
      body: Type.Object({ email: Type.String({ format: 'email' }), quantity: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
    },
  }, async () => ({ ok: true }))
  app.get('/crash', async () => { throw new Error('connection string postgres://secret@db leaked') })

  const invalid = await app.inject({ method: 'POST', url: '/probe', payload: { email: 'not-an-email', quantity: 0 } })
  t.equal(invalid.statusCode, 400)
  t.equal(invalid.headers['content-type'], PROBLEM)
  t.match(invalid.json(), { type: 'urn:problem-type:validation', status: 400, errors: [{ path: '/body/email' }] })

  const extra = await app.inject({ method: 'POST', url: '/probe', payload: { email: 'a@b.co', quantity: 1, role: 'admin' } })
  t.equal(extra.statusCode, 400, 'unknown properties are rejected, not dropped')
  t.same(extra.json().errors, [{ path: '/body/role', message: 'is not allowed' }])

  const missing = await app.inject({ method: 'POST', url: '/probe', payload: { email: 'a@b.co' } })
  t.same(missing.json().errors, [{ path: '/body/quantity', message: "must have required property 'quantity'" }])

  const malformed = await app.inject({ method: 'POST', url: '/probe', headers: { 'content-type': 'application/json' }, payload: '{"email":' })
  t.equal(malformed.statusCode, 400)
  t.equal(malformed.headers['content-type'], PROBLEM)

  const tooLarge = await app.inject({ method: 'POST', url: '/probe', payload: { email: 'a@b.co', quantity: 1, pad: 'x'.repeat(4096) } })
  t.equal(tooLarge.statusCode, 413)
  t.equal(tooLarge.headers['content-type'], PROBLEM)
  t.equal(tooLarge.json().status, 413)

  const wrongType = await app.inject({ method: 'POST', url: '/probe', headers: { 'content-type': 'text/xml' }, payload: '<a/>' })
  t.equal(wrongType.statusCode, 415)
  t.equal(wrongType.headers['content-type'], PROBLEM)

  const crash = await app.inject({ method: 'GET', url: '/crash' })
  t.equal(crash.statusCode, 500)
  t.equal(crash.headers['content-type'], PROBLEM)
  t.notMatch(crash.body, /secret|postgres|stack|Error:/)
  t.match(crash.json(), { title: 'Internal Server Error', status: 500 })
})

t.test('the rate limit answers 429 with Retry-After, counted in Redis across instances', async (t) => {
  // Two app instances sharing one Redis key prefix stand for two servers behind a balancer.
  const prefix = `rl_${randomBytes(4).toString('hex')}:`
  const env = { RATE_LIMIT_MAX: '3', RATE_LIMIT_WINDOW_MS: '60000', REDIS_KEY_PREFIX: prefix }
  const first = await buildTestApp(t, env)
  const second = await buildTestApp(t, env)
  const statuses = []
  for (const app of [first, second, first]) statuses.push((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode)
  t.same(statuses, [200, 200, 200])

  const limited = await second.inject({ method: 'GET', url: '/docs/json' })
  t.equal(limited.statusCode, 429)
  t.equal(limited.headers['content-type'], PROBLEM)
  t.ok(Number(limited.headers['retry-after']) > 0, 'Retry-After is a positive number of seconds')
  t.match(limited.json(), { status: 429, title: 'Too Many Requests', type: 'urn:problem-type:rate-limited' })

  // Unknown routes are throttled too; the probes are not.
  t.equal((await first.inject({ method: 'GET', url: '/nope' })).statusCode, 429)
  t.equal((await first.inject({ method: 'GET', url: '/health' })).statusCode, 200)
})

t.test('far from the limit, counts are kept in process and synchronised in batches; two instances still share one limit', async (t) => {
  const prefix = `rl_${randomBytes(4).toString('hex')}:`
  const env = { RATE_LIMIT_MAX: '200', RATE_LIMIT_WINDOW_MS: '60000', REDIS_KEY_PREFIX: prefix }
  const first = await buildTestApp(t, env)
  const second = await buildTestApp(t, env)
  const counter = 'rl:127.0.0.1'

  for (let i = 0; i < 10; i++) t.equal((await first.inject({ method: 'GET', url: '/docs/json' })).statusCode, 200)
  t.not(await first.redis.get(counter), '10', 'not one Redis write per request')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(await first.redis.get(counter), '10', 'the counts reach Redis within the sync interval')

  // Alternate between the instances until one refuses: the limit is shared, within a small tolerance.
  let allowed = 10
  let status = 200
  for (let i = 0; status === 200 && i < 400; i++) {
    status = (await (i % 2 ? second : first).inject({ method: 'GET', url: '/docs/json' })).statusCode
    if (status === 200) allowed++
  }
  t.equal(status, 429)
  t.ok(allowed >= 200 && allowed <= 210, `${allowed} requests allowed across two instances for a limit of 200`)
  t.equal((await first.inject({ method: 'GET', url: '/docs/json' })).statusCode, 429, 'both instances refuse')
  t.equal((await second.inject({ method: 'GET', url: '/docs/json' })).statusCode, 429)
})

t.test('helmet security headers are present', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/health' })
  t.equal(res.headers['x-content-type-options'], 'nosniff')
  t.equal(res.headers['x-frame-options'], 'SAMEORIGIN')
  t.match(res.headers['strict-transport-security'], /max-age=\d+/)
  t.match(res.headers['content-security-policy'], /default-src 'none'/)
  t.equal(res.headers['referrer-policy'], 'no-referrer')
  t.notOk(res.headers['x-powered-by'])
})

t.test('CORS allows the allowlist and nothing else', async (t) => {
  const app = await buildTestApp(t, { CORS_ORIGINS: 'https://shop.example, https://admin.shop.example' })
  const allowed = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://admin.shop.example' } })
  t.equal(allowed.headers['access-control-allow-origin'], 'https://admin.shop.example')
  t.match(allowed.headers['access-control-expose-headers'], /X-Request-Id/)

  const preflight = await app.inject({
    method: 'OPTIONS', url: '/health',
    headers: { origin: 'https://shop.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], 'https://shop.example')
  t.match(preflight.headers['access-control-allow-headers'], /Authorization/)
  // What the browser SDK (sdk/) sends on its own, guest orders' token among them.
  for (const header of ['Idempotency-Key', 'X-Cart-Token', 'X-Order-Token']) {
    t.match(preflight.headers['access-control-allow-headers'], new RegExp(`\\b${header}\\b`), `a browser may send ${header}`)
  }

  for (const origin of ['https://evil.example', 'https://shop.example.evil.example', 'null']) {
    const denied = await app.inject({ method: 'GET', url: '/health', headers: { origin } })
    t.notOk(denied.headers['access-control-allow-origin'], `${origin} is not allowed`)
  }
})
