import t, { type Test } from 'tap'
import { buildTestApp, createTestDatabase, runProcess, tsx } from './helpers.js'
import { register } from './users.js'

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
