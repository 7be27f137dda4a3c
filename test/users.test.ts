import t from 'tap'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { authHeader, DEFAULT_PASSWORD, register, registerAdmin } from './users.js'

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }

t.test('profile: read and update; role and other fields cannot be set', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await register(app, { email: 'profile@example.com' })
  const updated = await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { name: '  Ada King ' } })
  t.equal(updated.statusCode, 200)
  t.equal(updated.json().name, 'Ada King')
  for (const extra of [{ role: 'admin' }, { isAdmin: true }, { email: 'x@example.com' }, { isActive: false }]) {
    const res = await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { name: 'X', ...extra } })
    t.equal(res.statusCode, 400, `${Object.keys(extra)[0]} refused`)
  }
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers })).json().role, 'customer')
})

t.test('changing email needs the password and takes effect when the new address confirms', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const { headers } = await register(app, { email: 'old@example.com' })
  const [, token] = await mailbox.waitFor('old@example.com', /token=([A-Za-z0-9_-]{20,})/)
  await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token } })

  t.equal((await app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email: 'new@example.com', password: 'wrong password' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email: 'OLD@example.com', password: DEFAULT_PASSWORD } })).statusCode, 400, 'the same address')
  const changed = await app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email: 'New@Example.com', password: DEFAULT_PASSWORD } })
  t.equal(changed.statusCode, 202)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers })).json().email, 'old@example.com', 'unchanged until confirmed')
  const [, newToken] = await mailbox.waitFor('new@example.com', /token=([A-Za-z0-9_-]{20,})/)

  // Another account takes the address meanwhile: the link cannot move this one there.
  const second = await app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email: 'race@example.com', password: DEFAULT_PASSWORD } })
  t.equal(second.statusCode, 202)
  const [, raceToken] = await mailbox.waitFor('race@example.com', /token=([A-Za-z0-9_-]{20,})/)
  await register(app, { email: 'race@example.com' })
  const raced = await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: raceToken } })
  t.equal(raced.statusCode, 409)
  t.equal(raced.json().type, 'urn:problem-type:email-taken')

  t.match((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: newToken } })).json(), { email: 'new@example.com', emailVerified: true })
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: newToken } })).statusCode, 400, 'once')
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'new@example.com', password: DEFAULT_PASSWORD } })).statusCode, 200)
})

t.test('changing the password ends the other sessions but keeps this one', async (t) => {
  const app = await buildTestApp(t)
  const first = await register(app, { email: 'pw@example.com' })
  const other = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'pw@example.com', password: DEFAULT_PASSWORD } })).json()
  t.equal((await app.inject({ method: 'POST', url: '/users/me/password', headers: first.headers, payload: { currentPassword: 'wrong one', newPassword: 'a new good password' } })).statusCode, 401)
  const res = await app.inject({ method: 'POST', url: '/users/me/password', headers: first.headers, payload: { currentPassword: DEFAULT_PASSWORD, newPassword: 'a new good password' } })
  t.equal(res.statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: first.headers })).statusCode, 200, 'this session continues')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(other.tokens.accessToken) })).statusCode, 401, 'the other ends')
  t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: other.tokens.refreshToken } })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'pw@example.com', password: 'a new good password' } })).statusCode, 200)
})

t.test('addresses: CRUD, one default, validation, and nobody else can touch them', async (t) => {
  const app = await buildTestApp(t)
  const ada = await register(app, { email: 'ada@example.com' })
  const eve = await register(app, { email: 'eve@example.com' })

  const first = await app.inject({ method: 'POST', url: '/users/me/addresses', headers: ada.headers, payload: ADDRESS })
  t.equal(first.statusCode, 201)
  t.equal(first.json().isDefault, true, 'the first address is the default')
  const second = await app.inject({ method: 'POST', url: '/users/me/addresses', headers: ada.headers, payload: { ...ADDRESS, line1: '1 Other Street', isDefault: true } })
  t.equal(second.json().isDefault, true)
  const list = (await app.inject({ method: 'GET', url: '/users/me/addresses', headers: ada.headers })).json().items
  t.equal(list.length, 2)
  t.same(list.map((a: { isDefault: boolean }) => a.isDefault), [true, false], 'exactly one default, listed first')
  t.equal(list[0].id, second.json().id)

  const firstId = first.json().id
  const patched = await app.inject({ method: 'PATCH', url: `/users/me/addresses/${firstId}`, headers: ada.headers, payload: { city: 'Bath', isDefault: true } })
  t.equal(patched.statusCode, 200)
  t.match(patched.json(), { city: 'Bath', isDefault: true })
  t.equal((await app.inject({ method: 'GET', url: `/users/me/addresses/${second.json().id}`, headers: ada.headers })).json().isDefault, false)

  for (const bad of [{ ...ADDRESS, country: 'gb' }, { ...ADDRESS, line1: '' }, { ...ADDRESS, userId: eve.body.user.id }, { line1: 'x' }]) {
    t.equal((await app.inject({ method: 'POST', url: '/users/me/addresses', headers: ada.headers, payload: bad })).statusCode, 400)
  }
  t.equal((await app.inject({ method: 'PATCH', url: `/users/me/addresses/${firstId}`, headers: ada.headers, payload: {} })).statusCode, 400, 'empty patch')

  // Eve cannot read, change or delete Ada's address: it does not exist for her.
  t.equal((await app.inject({ method: 'GET', url: `/users/me/addresses/${firstId}`, headers: eve.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'PATCH', url: `/users/me/addresses/${firstId}`, headers: eve.headers, payload: { city: 'Evil' } })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/users/me/addresses/${firstId}`, headers: eve.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/users/me/addresses', headers: eve.headers })).json().items.length, 0)

  t.equal((await app.inject({ method: 'DELETE', url: `/users/me/addresses/${firstId}`, headers: ada.headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/users/me/addresses/${firstId}`, headers: ada.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'GET', url: '/users/me/addresses/not-a-uuid', headers: ada.headers })).statusCode, 400)
})

t.test('parallel address creation keeps the limit and a single default', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await register(app, { email: 'many-addresses@example.com' })
  const results = await Promise.all(Array.from({ length: 25 }, (_, i) =>
    app.inject({ method: 'POST', url: '/users/me/addresses', headers, payload: { ...ADDRESS, line1: `${i} Road`, isDefault: true } })))
  t.equal(results.filter((r) => r.statusCode === 201).length, 20)
  t.equal(results.filter((r) => r.statusCode === 409).length, 5)
  const items = (await app.inject({ method: 'GET', url: '/users/me/addresses', headers })).json().items
  t.equal(items.length, 20)
  t.equal(items.filter((a: { isDefault: boolean }) => a.isDefault).length, 1)
})

t.test('admin: list and search with cursor paging, read one, change role', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const created = []
  for (let i = 0; i < 7; i++) created.push((await register(app, { email: `shopper${i}@example.com`, name: `Shopper ${i}` })).body.user)

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const query: string = `limit=3${cursor ? `&cursor=${cursor}` : ''}&role=customer`
    const page = await app.inject({ method: 'GET', url: `/users?${query}`, headers: admin.headers })
    t.equal(page.statusCode, 200)
    const body = page.json()
    t.ok(body.items.length <= 3)
    seen.push(...body.items.map((u: { id: string }) => u.id))
    cursor = body.nextCursor
  } while (cursor)
  t.equal(seen.length, 7, 'every customer once')
  t.equal(new Set(seen).size, 7, 'no duplicates across pages')
  t.same(seen, [...created].reverse().map((u) => u.id), 'newest first')

  const search = (await app.inject({ method: 'GET', url: '/users?q=shopper3', headers: admin.headers })).json()
  t.same(search.items.map((u: { email: string }) => u.email), ['shopper3@example.com'])
  t.equal((await app.inject({ method: 'GET', url: '/users?q=%25', headers: admin.headers })).json().items.length, 0, 'LIKE wildcards are literal')
  t.equal((await app.inject({ method: 'GET', url: '/users?cursor=garbage', headers: admin.headers })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/users?limit=1000', headers: admin.headers })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/users?sort=email', headers: admin.headers })).statusCode, 400)

  const target = created[0]!
  t.equal((await app.inject({ method: 'GET', url: `/users/${target.id}`, headers: admin.headers })).json().email, 'shopper0@example.com')
  t.equal((await app.inject({ method: 'GET', url: '/users/00000000-0000-4000-8000-000000000000', headers: admin.headers })).statusCode, 404)

  const targetLogin = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'shopper0@example.com', password: DEFAULT_PASSWORD } })).json()
  const promoted = await app.inject({ method: 'PATCH', url: `/users/${target.id}/role`, headers: admin.headers, payload: { role: 'admin' } })
  t.equal(promoted.statusCode, 200)
  t.equal(promoted.json().role, 'admin')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(targetLogin.tokens.accessToken) })).statusCode, 401, 'old-role tokens end')
  t.equal((await app.inject({ method: 'PATCH', url: `/users/${target.id}/role`, headers: admin.headers, payload: { role: 'owner' } })).statusCode, 400)
  t.equal((await app.inject({ method: 'PATCH', url: `/users/${admin.user.id}/role`, headers: admin.headers, payload: { role: 'customer' } })).statusCode, 409)
})
