import t from 'tap'
import { createHmac } from 'node:crypto'
import { buildTestApp } from './helpers.js'
import { authHeader, register, registerAdmin, DEFAULT_PASSWORD } from './users.js'

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')
function signHs256(header: object, payload: object, secret: string) {
  const unsigned = `${b64(header)}.${b64(payload)}`
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
}

t.test('tampered, expired, alg none, wrong audience and wrong issuer tokens are 401', async (t) => {
  const app = await buildTestApp(t)
  const { body } = await register(app, { email: 'tokens@example.com' })
  const good = body.tokens.accessToken as string
  const claims = JSON.parse(Buffer.from(good.split('.')[1]!, 'base64url').toString())
  const secret = app.config.jwtSecret
  const now = Math.floor(Date.now() / 1000)

  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(good) })).statusCode, 200, 'the genuine token works')

  const [h, , s] = good.split('.')
  const cases: Record<string, string> = {
    'tampered payload (role admin)': `${h}.${b64({ ...claims, role: 'admin' })}.${s}`,
    'tampered signature': `${good.slice(0, -4)}AAAA`,
    'expired': signHs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, iat: now - 3600, exp: now - 60 }, secret),
    'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, role: 'admin' })}.`,
    'wrong audience': signHs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, aud: 'someone-else' }, secret),
    'wrong issuer': signHs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, iss: 'evil' }, secret),
    'HS512 with the right secret': signHs256({ alg: 'HS512', typ: 'JWT' }, claims, secret),
    'signed with another secret': signHs256({ alg: 'HS256', typ: 'JWT' }, claims, 'another-secret-that-is-long-enough-000'),
    'missing session id': signHs256({ alg: 'HS256', typ: 'JWT' }, { ...claims, sid: undefined }, secret),
    'garbage': 'not.a.jwt',
  }
  for (const [name, token] of Object.entries(cases)) {
    const res = await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(token) })
    t.equal(res.statusCode, 401, name)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', `${name}: problem+json`)
  }
  const expired = await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(cases.expired!) })
  t.equal(expired.json().type, 'urn:problem-type:token-expired')
  t.equal((await app.inject({ method: 'GET', url: '/users/me' })).statusCode, 401, 'no token')
})

t.test('a customer on any admin route is 403; an admin gets through', async (t) => {
  const app = await buildTestApp(t)
  const customer = await register(app, { email: 'cust@example.com' })
  const admin = await registerAdmin(app)
  const id = customer.body.user.id
  const adminRoutes = [
    { method: 'GET', url: '/users' },
    { method: 'GET', url: `/users/${id}` },
    { method: 'PATCH', url: `/users/${id}/role`, payload: { role: 'admin' } },
    { method: 'POST', url: `/users/${id}/deactivate` },
    { method: 'POST', url: `/users/${id}/reactivate` },
  ] as const
  for (const route of adminRoutes) {
    const res = await app.inject({ ...route, headers: customer.headers })
    t.equal(res.statusCode, 403, `${route.method} ${route.url} as customer`)
    t.equal((await app.inject({ ...route, headers: {} })).statusCode, 401, `${route.method} ${route.url} anonymous`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/users', headers: admin.headers })).statusCode, 200)

  // The route table: every route under /users except /users/me* requires the admin role.
  const adminPaths = app.printRoutes({ commonPrefix: false })
  t.match(adminPaths, /users/)
})

t.test('refresh token reuse revokes the whole family', async (t) => {
  const app = await buildTestApp(t)
  const { body } = await register(app, { email: 'reuse@example.com' })
  const first = body.tokens.refreshToken
  const rotated = (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })).json()
  const rotatedAgain = (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: rotated.refreshToken } })).json()
  t.ok(rotatedAgain.accessToken)

  // An attacker replays the first token: the answer is 401 and the legitimate chain dies too.
  const replay = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })
  t.equal(replay.statusCode, 401)
  t.equal(replay.json().type, 'urn:problem-type:refresh-token-reused')
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: rotatedAgain.refreshToken } })).statusCode, 401)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(rotatedAgain.accessToken) })).statusCode, 401, 'access tokens of the family stop too')

  // Another session of the same user is untouched.
  const other = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'reuse@example.com', password: DEFAULT_PASSWORD } })
  t.equal(other.statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: 'x'.repeat(43) } })).statusCode, 401, 'unknown token')
})

t.test('parallel refreshes of one token keep the session: every racer gets a token of it', async (t) => {
  const app = await buildTestApp(t)
  const { body } = await register(app, { email: 'race@example.com' })
  const results = await Promise.all(Array.from({ length: 10 }, () =>
    app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: body.tokens.refreshToken } })))
  t.same(results.map((r) => r.statusCode), Array(10).fill(200), 'the race has no loser that ends the session')
  const tokens = results.map((r) => r.json())
  t.equal(new Set(tokens.map((x) => x.refreshToken)).size, 10, 'each gets its own new token')
  for (const x of tokens) t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(x.accessToken) })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens[3].refreshToken } })).statusCode, 200, 'and each rotates on')
})

t.test('the grace is only for the token just rotated, and only for its few seconds', async (t) => {
  const app = await buildTestApp(t, { REFRESH_REUSE_GRACE_SECONDS: '1' })
  const older = await register(app, { email: 'grace@example.com' })
  const t1 = older.body.tokens.refreshToken
  const t2 = (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: t1 } })).json()
  const t3 = (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: t2.refreshToken } })).json()
  const stale = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: t1 } })
  t.equal(stale.statusCode, 401, 'an older token than the one just rotated ends the family, grace or not')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(t3.accessToken) })).statusCode, 401)

  const login = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'grace@example.com', password: DEFAULT_PASSWORD } })).json()
  const first = login.tokens.refreshToken
  const next = (await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })).json()
  await new Promise((r) => setTimeout(r, 1200))
  const late = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: first } })
  t.equal(late.statusCode, 401, 'after the grace, the same token is a reuse')
  t.equal(late.json().type, 'urn:problem-type:refresh-token-reused')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(next.accessToken) })).statusCode, 401, 'and the family ends')
})

t.test('logout everywhere ends every session; deactivation ends them and blocks sign-in', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const { body } = await register(app, { email: 'many@example.com' })
  const second = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'many@example.com', password: DEFAULT_PASSWORD } })).json()
  const out = await app.inject({ method: 'POST', url: '/auth/logout-all', headers: authHeader(second.tokens.accessToken) })
  t.equal(out.statusCode, 204)
  for (const tokens of [body.tokens, second.tokens]) {
    t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(tokens.accessToken) })).statusCode, 401)
    t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode, 401)
  }

  const third = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'many@example.com', password: DEFAULT_PASSWORD } })).json()
  const deactivated = await app.inject({ method: 'POST', url: `/users/${body.user.id}/deactivate`, headers: admin.headers })
  t.equal(deactivated.statusCode, 200)
  t.equal(deactivated.json().isActive, false)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(third.tokens.accessToken) })).statusCode, 401, 'sessions end on deactivation')
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'many@example.com', password: DEFAULT_PASSWORD } })
  t.equal(login.statusCode, 403)
  t.equal(login.json().type, 'urn:problem-type:account-deactivated')

  t.equal((await app.inject({ method: 'POST', url: `/users/${body.user.id}/reactivate`, headers: admin.headers })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'many@example.com', password: DEFAULT_PASSWORD } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: `/users/${admin.user.id}/deactivate`, headers: admin.headers })).statusCode, 409, 'an admin cannot lock itself out')
})

t.test('brute force on login: 429 with Retry-After per account and source, per IP; strangers cannot lock the owner out', async (t) => {
  const app = await buildTestApp(t, { AUTH_ACCOUNT_RATE_LIMIT_MAX: '5', AUTH_RATE_LIMIT_MAX: '8' })
  await register(app, { email: 'victim@example.com' })
  const attempt = (email: string, ip: string, password = 'guess guess guess') => app.inject({ method: 'POST', url: '/auth/login', remoteAddress: ip, payload: { email, password } })

  // Per account and source: one address guessing one account is stopped.
  const fromOneSource = []
  for (let i = 0; i < 6; i++) fromOneSource.push((await attempt('victim@example.com', '10.0.0.1')).statusCode)
  t.same(fromOneSource, [401, 401, 401, 401, 401, 429])
  const limited = await attempt('VICTIM@example.com', '10.0.0.1')
  t.equal(limited.statusCode, 429, 'the address is the same whatever the spelling of the email')
  t.ok(Number(limited.headers['retry-after']) > 0)
  t.equal(limited.headers['content-type'], 'application/problem+json; charset=utf-8')

  // Guesses from many addresses are slowed down (progressive delays on failures), never a lockout:
  // the owner signs in from their own address at once.
  const started = performance.now()
  const fromManySources = []
  for (let i = 0; i < 3; i++) fromManySources.push((await attempt('victim@example.com', `10.0.1.${i + 1}`)).statusCode)
  t.same(fromManySources, [401, 401, 401], 'each other address is answered')
  t.ok(performance.now() - started >= 250 + 500 + 1000, 'after five failures each further failure waits longer')
  const owner = await attempt('victim@example.com', '192.168.1.20', DEFAULT_PASSWORD)
  t.equal(owner.statusCode, 200, 'the owner is not locked out by strangers')

  // Per IP: one address trying many accounts.
  const fromOneIp = []
  for (let i = 0; i < 9; i++) fromOneIp.push((await attempt(`user${i}@example.com`, '10.9.9.9')).statusCode)
  t.same(fromOneIp, [401, 401, 401, 401, 401, 401, 401, 401, 429])
})

t.test('failed sign-ins by a stranger do not block the owner from asking for a reset', async (t) => {
  const app = await buildTestApp(t, { AUTH_ACCOUNT_RATE_LIMIT_MAX: '3' })
  await register(app, { email: 'owner@example.com' })
  for (let i = 0; i < 4; i++) await app.inject({ method: 'POST', url: '/auth/login', remoteAddress: `10.1.0.${i}`, payload: { email: 'owner@example.com', password: 'guess guess guess' } })
  const forgot = await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: 'owner@example.com' } })
  t.equal(forgot.statusCode, 202)
})

// Issue #24: only wrong passwords waited, so guesses sent in parallel and given up after a short
// time read every slow answer as a miss: the slow-down cost a parallel guesser nothing.
t.test('parallel guesses take turns too: the right password is not told apart by its speed, and a flood is refused', async (t) => {
  const app = await buildTestApp(t, { AUTH_ACCOUNT_RATE_LIMIT_MAX: '1000', AUTH_RATE_LIMIT_MAX: '1000' })
  await register(app, { email: 'parallel@example.com' })
  const attempt = (i: number, password = 'guess guess guess') => app.inject({ method: 'POST', url: '/auth/login', remoteAddress: `10.2.${i >> 8}.${i & 255}`, payload: { email: 'parallel@example.com', password } })
  for (let i = 0; i < 5; i++) t.equal((await attempt(i)).statusCode, 401, 'a free failure')

  const started = performance.now()
  const timed = (i: number, password?: string) => attempt(i, password).then((res) => ({ status: res.statusCode, ms: performance.now() - started, retryAfter: res.headers['retry-after'] }))
  const burst = await Promise.all([timed(10), timed(11), timed(12, DEFAULT_PASSWORD), timed(13), timed(14)])
  const right = burst[2]!
  t.equal(right.status, 200)
  t.ok(burst.some((b) => b.status === 401 && b.ms < right.ms), `a guess is answered before the right password (${burst.map((b) => `${b.status}:${b.ms.toFixed(0)}`).join(' ')})`)

  const flood = await Promise.all(Array.from({ length: 40 }, (_, i) => timed(100 + i)))
  const refused = flood.filter((f) => f.status === 429)
  t.ok(refused.length > 0, `guesses beyond the turns of the next 10 s are refused (${refused.length} of 40)`)
  t.ok(refused.every((f) => Number(f.retryAfter) > 0), 'with Retry-After')
})

// Issue #24: argon2 work was unbounded, so a flood of sign-ins queued without end on the thread
// pool every password check (and the rest of the app's file and crypto work) shares.
t.test('password hashing is bounded: beyond the queue a sign-in is shed with 503 and Retry-After', async (t) => {
  const app = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '1000', AUTH_ACCOUNT_RATE_LIMIT_MAX: '1000', PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '2' })
  const flood = await Promise.all(Array.from({ length: 12 }, (_, i) => app.inject({
    method: 'POST', url: '/auth/login', remoteAddress: `10.3.0.${i}`, payload: { email: `nobody${i}@example.com`, password: 'guess guess guess' },
  })))
  const shed = flood.filter((res) => res.statusCode === 503)
  t.ok(shed.length > 0, `some are shed (${flood.map((r) => r.statusCode).join(' ')})`)
  t.ok(shed.every((res) => Number(res.headers['retry-after']) > 0 && res.json().type === 'urn:problem-type:overloaded'), 'with Retry-After')
  t.ok(flood.filter((res) => res.statusCode === 401).length >= 3, 'the ones admitted are answered')
})
