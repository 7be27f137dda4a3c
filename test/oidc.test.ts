import t from 'tap'
import { and, eq } from 'drizzle-orm'
import { userIdentities, users } from '../db/schema/index.js'
import { sha256 } from '../src/sessions.js'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { startOidcProvider, TEST_CLIENT, TEST_REDIRECT_URI, type TestAccount } from './oidc-provider.js'
import { authHeader, DEFAULT_PASSWORD, register } from './users.js'

// Sign-in with OpenID Connect, end to end against a real oidc-provider: discovery, PKCE, state,
// nonce, code exchange, ID token and userinfo are the real protocol; only the provider's login
// screen is replaced by a handler that signs in the account the test names.

const accounts: Record<string, TestAccount> = {
  'new-verified': { email: 'Nova@Example.com', email_verified: true, name: 'Nova Verified' },
  'new-unverified': { email: 'una@example.com', email_verified: false, name: 'Una' },
  'bob-verified': { email: 'bob@example.com', email_verified: true, name: 'Bob at the provider' },
  'alice-unverified': { email: 'alice@example.com', email_verified: false, name: 'Not Alice' },
  'carol-other': { email: 'carol.elsewhere@example.com', email_verified: true },
  'dan-idp': { email: 'dan@example.com', email_verified: true, name: 'Dan' },
  squatter: { email: 'victim@example.com', email_verified: false },
  squatter2: { email: 'owner@example.com', email_verified: false },
}

const idp = await startOidcProvider(t, accounts)
const mailbox = await startMailbox(t)
const app = await buildTestApp(t, {
  SMTP_URL: mailbox.url,
  OIDC_PROVIDERS: 'local',
  OIDC_LOCAL_ISSUER: idp.issuer,
  OIDC_LOCAL_CLIENT_ID: TEST_CLIENT.id,
  OIDC_LOCAL_CLIENT_SECRET: TEST_CLIENT.secret,
  OIDC_LOCAL_REDIRECT_URI: TEST_REDIRECT_URI,
  AUTH_RATE_LIMIT_MAX: '1000',
})

type Authorization = { code: string; state: string; iss?: string }
const flowKey = (state: string) => `oidc:flow:${sha256(state)}`

async function start(headers?: Record<string, string>, path = '/auth/oidc/local/start') {
  const res = await app.inject({ method: 'POST', url: path, headers })
  if (res.statusCode !== 200) throw new Error(`start failed: ${res.statusCode} ${res.body}`)
  return res.json() as { authorizationUrl: string; state: string; expiresIn: number }
}

/** Starts a sign-in and plays the browser at the provider as `accountId`; returns the redirect's query. */
async function authorizeAs(accountId: string): Promise<Authorization> {
  const { authorizationUrl } = await start()
  idp.signInAs(accountId)
  return idp.authorize(authorizationUrl)
}

const callback = (payload: Authorization, url = '/auth/oidc/local/callback', headers?: Record<string, string>) =>
  app.inject({ method: 'POST', url, payload, headers })

t.test('a new provider account signs in as a new customer with the same tokens as password sign-in', async (t) => {
  const providers = await app.inject({ method: 'GET', url: '/auth/oidc/providers' })
  t.same(providers.json(), { items: [{ name: 'local' }] })

  const started = await start()
  const url = new URL(started.authorizationUrl)
  t.equal(url.origin, idp.issuer)
  t.equal(url.searchParams.get('code_challenge_method'), 'S256')
  t.equal(url.searchParams.get('state'), started.state)
  t.ok(url.searchParams.get('nonce'), 'a nonce is sent')
  t.equal(url.searchParams.get('redirect_uri'), TEST_REDIRECT_URI)
  t.equal(started.expiresIn, 600)
  const stored = JSON.parse((await app.redis.get(flowKey(started.state)))!)
  t.ok(stored.codeVerifier, 'the PKCE verifier stays on the server')
  t.ok(await app.redis.ttl(flowKey(started.state)) <= 600)

  idp.signInAs('new-verified')
  const res = await callback(await idp.authorize(started.authorizationUrl))
  t.equal(res.statusCode, 200, res.body)
  const body = res.json()
  t.match(body.user, { email: 'nova@example.com', name: 'Nova Verified', role: 'customer', emailVerified: true })
  t.equal(body.tokens.tokenType, 'Bearer')
  t.equal(await app.redis.get(flowKey(started.state)), null, 'the flow is used up')

  const me = await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(body.tokens.accessToken) })
  t.equal(me.statusCode, 200)
  t.equal(me.json().id, body.user.id)
  const refreshed = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: body.tokens.refreshToken } })
  t.equal(refreshed.statusCode, 200, 'the refresh token rotates like any other')

  const identities = await app.inject({ method: 'GET', url: '/auth/identities', headers: authHeader(body.tokens.accessToken) })
  t.match(identities.json(), { hasPassword: false, items: [{ provider: 'local', email: 'nova@example.com', emailVerified: true }] })

  // The second sign-in finds the same account through the linked identity.
  const again = await callback(await authorizeAs('new-verified'))
  t.equal(again.statusCode, 200)
  t.equal(again.json().user.id, body.user.id)

  // No password: password sign-in fails as for a wrong one; password routes say what to do.
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'nova@example.com', password: DEFAULT_PASSWORD } })
  t.equal(login.statusCode, 401)
  const change = await app.inject({ method: 'POST', url: '/users/me/password', headers: authHeader(body.tokens.accessToken), payload: { currentPassword: 'anything', newPassword: 'a brand new password' } })
  t.equal(change.statusCode, 409)
  t.equal(change.json().type, 'urn:problem-type:no-password')
  const totp = await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers: authHeader(body.tokens.accessToken) })
  t.equal(totp.statusCode, 409)
})

t.test('a wrong or reused state is refused before the code is exchanged', async (t) => {
  const authorization = await authorizeAs('new-verified')
  const forged = await callback({ ...authorization, state: 'not-a-state-we-issued' })
  t.equal(forged.statusCode, 400)
  t.equal(forged.json().type, 'urn:problem-type:oidc-state-invalid')
  t.equal((await app.db.select().from(users).where(eq(users.email, 'nova@example.com'))).length, 1)
  t.ok(authorization.iss, 'the provider names itself in the redirect (RFC 9207)')
  const otherIssuer = await callback({ ...authorization, iss: 'https://evil.example' })
  t.equal(otherIssuer.statusCode, 400, 'a redirect from another issuer (mix-up) is refused')
  t.equal(otherIssuer.json().type, 'urn:problem-type:oidc-response-invalid')
  t.equal((await callback(authorization)).statusCode, 400, 'and it used up its state')
  const withoutIss = await authorizeAs('new-verified')
  const noIss = await callback({ code: withoutIss.code, state: withoutIss.state })
  t.equal(noIss.statusCode, 400, 'a provider that sends iss must have it passed on')
  t.equal(noIss.json().type, 'urn:problem-type:oidc-response-invalid')

  const fresh = await authorizeAs('new-verified')
  t.equal((await callback({ ...fresh, state: 'not-a-state-we-issued' })).statusCode, 400)
  t.equal((await callback(fresh)).statusCode, 200, 'the right state still works: the forged one consumed nothing')
  const other = await app.inject({ method: 'POST', url: '/auth/oidc/elsewhere/callback', payload: authorization })
  t.equal(other.statusCode, 404, 'an unknown provider')
})

t.test('a replayed code is refused: by its used state, and by the provider when the state is restored', async (t) => {
  const authorization = await authorizeAs('new-verified')
  const flow = await app.redis.get(flowKey(authorization.state))
  t.equal((await callback(authorization)).statusCode, 200)
  const replay = await callback(authorization)
  t.equal(replay.statusCode, 400)
  t.equal(replay.json().type, 'urn:problem-type:oidc-state-invalid')

  await app.redis.set(flowKey(authorization.state), flow!, 'EX', 600)
  const atProvider = await callback(authorization)
  t.equal(atProvider.statusCode, 400)
  t.equal(atProvider.json().type, 'urn:problem-type:oidc-code-rejected')
  t.match(atProvider.json().detail, /invalid_grant/)
})

t.test('an ID token whose nonce is not the one sent is refused and makes no account', async (t) => {
  const { authorizationUrl, state } = await start()
  const flow = JSON.parse((await app.redis.get(flowKey(state)))!)
  await app.redis.set(flowKey(state), JSON.stringify({ ...flow, nonce: 'some-other-nonce' }), 'EX', 600)
  idp.signInAs('dan-idp')
  const res = await callback(await idp.authorize(authorizationUrl))
  t.equal(res.statusCode, 400)
  t.equal(res.json().type, 'urn:problem-type:oidc-response-invalid')
  t.match(res.json().detail, /nonce/)
  t.same(await app.db.select().from(users).where(eq(users.email, 'dan@example.com')), [])
})

t.test('an unverified email never links to an existing account nor duplicates it', async (t) => {
  const alice = await register(app, { email: 'alice@example.com', name: 'Alice' })
  const res = await callback(await authorizeAs('alice-unverified'))
  t.equal(res.statusCode, 409)
  t.equal(res.json().type, 'urn:problem-type:oidc-email-unverified')
  t.equal((await app.db.select().from(users).where(eq(users.email, 'alice@example.com'))).length, 1)
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.userId, alice.body.user.id)), [])

  // With no account at that address the answer is the same, and no account is made: one made
  // then would be the provider account's, under an address its holder was never shown to own,
  // and whoever owns the mailbox would verify it for them with the link we mail.
  const fresh = await callback(await authorizeAs('new-unverified'))
  t.equal(fresh.statusCode, 409, fresh.body)
  t.equal(fresh.json().type, 'urn:problem-type:oidc-email-unverified')
  t.same(await app.db.select().from(users).where(eq(users.email, 'una@example.com')), [], 'no account at that address')
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.subject, 'new-unverified')), [], 'no link')
  t.same(mailbox.received.filter((mail) => mail.to.includes('una@example.com')), [], 'nothing mailed to the address')
})

t.test('an existing account is linked only after its owner confirms with the password', async (t) => {
  const bob = await register(app, { email: 'bob@example.com', name: 'Bob' })
  const res = await callback(await authorizeAs('bob-verified'))
  t.equal(res.statusCode, 202)
  const pending = res.json()
  t.match(pending, { provider: 'local', email: 'bob@example.com', expiresIn: 600 })
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.userId, bob.body.user.id)), [], 'nothing linked yet')

  const confirm = (password: string) => app.inject({ method: 'POST', url: '/auth/oidc/confirm-link', payload: { linkToken: pending.linkToken, email: 'bob@example.com', password } })
  const wrong = await confirm('not bobs password')
  t.equal(wrong.statusCode, 401)
  const someoneElse = await register(app, { email: 'mallory@example.com' })
  const otherAccount = await app.inject({ method: 'POST', url: '/auth/oidc/confirm-link', payload: { linkToken: pending.linkToken, email: 'mallory@example.com', password: DEFAULT_PASSWORD } })
  t.equal(otherAccount.statusCode, 400, 'the token links only the account it was made for')
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.userId, someoneElse.body.user.id)), [])

  const ok = await confirm(DEFAULT_PASSWORD)
  t.equal(ok.statusCode, 200, ok.body)
  t.equal(ok.json().user.id, bob.body.user.id)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: authHeader(ok.json().tokens.accessToken) })).json().email, 'bob@example.com')
  t.equal((await confirm(DEFAULT_PASSWORD)).statusCode, 400, 'a link token works once')

  // From now on the provider signs Bob in directly.
  const direct = await callback(await authorizeAs('bob-verified'))
  t.equal(direct.statusCode, 200)
  t.equal(direct.json().user.id, bob.body.user.id)

  // Bob keeps his password, so the provider account can go; then the provider no longer signs him in.
  const unlink = await app.inject({ method: 'DELETE', url: '/auth/identities/local', headers: bob.headers })
  t.equal(unlink.statusCode, 204)
  t.equal((await callback(await authorizeAs('bob-verified'))).statusCode, 202, 'back to asking for confirmation')
  t.equal((await app.inject({ method: 'DELETE', url: '/auth/identities/local', headers: bob.headers })).statusCode, 404)
})

t.test('a signed-in user links a provider account with another email; the last way in cannot be unlinked', async (t) => {
  const carol = await register(app, { email: 'carol@example.com', name: 'Carol' })
  const started = await start(carol.headers, '/auth/oidc/local/link/start')
  idp.signInAs('carol-other')
  const authorization = await idp.authorize(started.authorizationUrl)

  const asSignIn = await callback(authorization)
  t.equal(asSignIn.statusCode, 400, 'a link flow cannot finish as a sign-in')
  // That attempt consumed the state; link again.
  const again = await start(carol.headers, '/auth/oidc/local/link/start')
  const mallory = await register(app, { email: 'mallory2@example.com' })
  const authorization2 = await idp.authorize(again.authorizationUrl)
  const byOther = await callback(authorization2, '/auth/oidc/local/link/callback', mallory.headers)
  t.equal(byOther.statusCode, 400, 'only the account that started the link finishes it')

  const third = await start(carol.headers, '/auth/oidc/local/link/start')
  const linked = await callback(await idp.authorize(third.authorizationUrl), '/auth/oidc/local/link/callback', carol.headers)
  t.equal(linked.statusCode, 200, linked.body)
  t.match(linked.json(), { hasPassword: true, items: [{ provider: 'local', email: 'carol.elsewhere@example.com' }] })
  const signIn = await callback(await authorizeAs('carol-other'))
  t.equal(signIn.json().user.id, carol.body.user.id, 'the provider account now signs Carol in')

  // An account made by the provider has no password: its only provider account stays.
  const nova = await callback(await authorizeAs('new-verified'))
  const refused = await app.inject({ method: 'DELETE', url: '/auth/identities/local', headers: authHeader(nova.json().tokens.accessToken) })
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().type, 'urn:problem-type:last-sign-in-method')
  t.equal((await app.db.select().from(userIdentities).where(and(eq(userIdentities.userId, nova.json().user.id), eq(userIdentities.provider, 'local')))).length, 1)
})

/**
 * An account as sign-in with an unverified provider email made it before such sign-ins were
 * refused: no password, the address unverified, the provider account linked at creation, and a
 * session of the provider account's holder.
 */
async function legacySquatterAccount(email: string, subject: string) {
  const [user] = await app.db.insert(users).values({ email, name: 'Squatter', passwordHash: null }).returning()
  await app.db.insert(userIdentities).values({ userId: user!.id, provider: 'local', subject, email, emailVerified: false, confirmedAt: new Date() })
  const session = await app.sessions.create(user!.id)
  return { user: user!, headers: authHeader(app.issueAccessToken({ sub: user!.id, role: user!.role, sid: session.familyId })) }
}

t.test('an account made with an unverified email before: the owner of the mailbox takes it back by reset, and the provider link goes', async (t) => {
  const squatter = await legacySquatterAccount('victim@example.com', 'squatter')
  t.equal((await callback(await authorizeAs('squatter'))).statusCode, 200, 'the provider account signed in to it')

  // The real owner asks for a reset, which sets the first password of the account.
  await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: 'victim@example.com' } })
  const [, token] = await mailbox.waitFor('victim@example.com', /reset-password\?token=([A-Za-z0-9_-]{20,})/)
  const reset = await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, password: 'the owner takes it back' } })
  t.equal(reset.statusCode, 204)

  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: squatter.headers })).statusCode, 401, 'the squatter session ended')
  const again = await callback(await authorizeAs('squatter'))
  t.equal(again.statusCode, 409, 'the unverified provider account no longer signs in')
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'victim@example.com', password: 'the owner takes it back' } })
  t.equal(login.statusCode, 200)
  t.same((await app.inject({ method: 'GET', url: '/auth/identities', headers: authHeader(login.json().tokens.accessToken) })).json(), { hasPassword: true, items: [] })
})

t.test('an account made with an unverified email before: the owner verifying the address does not hand it to the provider account', async (t) => {
  const squatter = await legacySquatterAccount('owner@example.com', 'squatter2')
  // The verification mail reaches the mailbox's owner, who follows it (as anyone would who just signed up somewhere).
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email/resend', headers: squatter.headers })).statusCode, 202)
  const [, token] = await mailbox.waitFor('owner@example.com', /verify-email\?token=([A-Za-z0-9_-]{20,})/)
  const verified = await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token } })
  t.equal(verified.statusCode, 200, verified.body)
  t.equal(verified.json().emailVerified, true)

  // The mailbox vouched for the address, not for the provider account: its link and sessions go.
  t.same(await app.db.select().from(userIdentities).where(eq(userIdentities.userId, squatter.user.id)), [], 'the link is gone')
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: squatter.headers })).statusCode, 401, 'the squatter session ended')
  const again = await callback(await authorizeAs('squatter2'))
  t.equal(again.statusCode, 409, 'the provider account does not sign in to the verified account')
  t.equal(again.json().type, 'urn:problem-type:oidc-email-unverified')
})

t.test('a provider that cannot be reached is a 503, and nothing is kept', async (t) => {
  const { freePort } = await import('./helpers.js')
  const offline = await buildTestApp(t, {
    OIDC_PROVIDERS: 'offline', OIDC_OFFLINE_ISSUER: `http://127.0.0.1:${await freePort()}`,
    OIDC_OFFLINE_CLIENT_ID: 'shop', OIDC_OFFLINE_CLIENT_SECRET: 'secret',
  })
  const res = await offline.inject({ method: 'POST', url: '/auth/oidc/offline/start' })
  t.equal(res.statusCode, 503)
  t.equal(res.json().type, 'urn:problem-type:oidc-provider-unavailable')
  // KEYS patterns do not get ioredis's prefix.
  t.same(await offline.redis.keys(`${offline.config.redis.keyPrefix}oidc:*`), [])
})

t.test('a deactivated account cannot sign in through its provider either', async (t) => {
  const first = await callback(await authorizeAs('dan-idp'))
  t.equal(first.statusCode, 200)
  await app.db.update(users).set({ isActive: false }).where(eq(users.id, first.json().user.id))
  const res = await callback(await authorizeAs('dan-idp'))
  t.equal(res.statusCode, 403)
  t.equal(res.json().type, 'urn:problem-type:account-deactivated')
})
