import t, { type Test } from 'tap'
import { buildTestApp, createTestDatabase, runProcess, tsx, TEST_REDIS_URL } from './helpers.js'
import { authHeader, register } from './users.js'

const run = (t: Test, args: string[], env: Record<string, string>) => runProcess(t, tsx('db/create-admin.ts', ...args), {
  env: { PATH: process.env.PATH ?? '', ...env }, timeoutMs: 30_000,
})

t.test('user:create-admin creates an admin that can sign in, and promotes an existing account', async (t) => {
  const db = await createTestDatabase(t)
  const app = await buildTestApp(t, { DATABASE_URL: db.url })

  const created = await run(t, ['--email', 'Boss@Example.com'], { DATABASE_URL: db.url })
  t.equal(created.code, 0, created.stderr)
  const password = created.stdout.match(/password \(shown once\): (\S+)/)?.[1]
  t.ok(password, 'a generated password is printed once')
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'boss@example.com', password } })
  t.equal(login.statusCode, 200)
  t.match(login.json().user, { role: 'admin', emailVerified: true })
  t.equal((await app.inject({ method: 'GET', url: '/users', headers: { authorization: `Bearer ${login.json().tokens.accessToken}` } })).statusCode, 200)

  await register(app, { email: 'later@example.com' })
  const promoted = await run(t, ['--email', 'later@example.com'], { DATABASE_URL: db.url })
  t.equal(promoted.code, 0, promoted.stderr)
  t.match(promoted.stdout, /now an admin/)

  const bad = await run(t, ['--email', 'nope'], { DATABASE_URL: db.url })
  t.equal(bad.code, 2)
  t.match(bad.stderr, /usage/)
})

// Issue #24: the command promoted whatever account had the address, unverified, and its
// registrant's sessions went on, now as an admin's.
t.test('user:create-admin refuses an account whose address is not verified, and ends the sessions of one it promotes', async (t) => {
  const db = await createTestDatabase(t)
  const app = await buildTestApp(t, { DATABASE_URL: db.url })
  const env = { DATABASE_URL: db.url, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: app.config.redis.keyPrefix }

  // Someone registered the address the operator will name, and holds a session.
  const squatter = await register(app, { email: 'boss@shop.example', verified: false })
  const refused = await run(t, ['--email', 'boss@shop.example'], env)
  t.equal(refused.code, 1, 'refused')
  t.match(refused.stderr, /not verified/)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: squatter.headers })).json().role, 'customer', 'not promoted')

  // Once the owner of the mailbox verified it, the promotion goes through and old sessions end.
  const { users } = await import('../db/schema/index.js')
  await app.db.update(users).set({ emailVerifiedAt: new Date() })
  const promoted = await run(t, ['--email', 'boss@shop.example'], env)
  t.equal(promoted.code, 0, promoted.stderr)
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: squatter.body.tokens.refreshToken } })).statusCode, 401, 'the old refresh token is dead')
  t.equal((await app.inject({ method: 'GET', url: '/users', headers: authHeader(squatter.body.tokens.accessToken) })).statusCode, 401, 'the old access token too')
})
