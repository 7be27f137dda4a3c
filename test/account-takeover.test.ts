import t from 'tap'
import * as OTPAuth from 'otpauth'
import { eq } from 'drizzle-orm'
import { userIdentities, users } from '../db/schema/index.js'
import type { App } from '../src/app.js'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { startOidcProvider, TEST_CLIENT, TEST_REDIRECT_URI, type TestAccount } from './oidc-provider.js'
import { DEFAULT_PASSWORD, register, registerAdmin } from './users.js'

// Issue #24: nobody may adopt or keep an account that is not theirs. Each test here was seen
// failing on the code before its fix.

const VERIFY_LINK = /verify-email\?token=([A-Za-z0-9_-]{20,})/
/** A problem body without its per-request instance id. */
const problem = (res: { json(): Record<string, unknown> }) => { const { instance: _, ...rest } = res.json(); return rest }

t.test('sign-in waits for the verified address and answers an unverified account like a wrong password', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const login = (email: string, password: string) => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } })
  const registerAs = (email: string, password: string) => app.inject({ method: 'POST', url: '/auth/register', payload: { email, password, name: 'Someone' } })

  // The owner registers and verifies.
  t.equal((await registerAs('owner@example.com', DEFAULT_PASSWORD)).statusCode, 202)
  const [, ownerToken] = await mailbox.waitFor('owner@example.com', VERIFY_LINK)
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: ownerToken } })).statusCode, 200)

  // A stranger registers a free address and the owner's, each with a password of their choosing.
  t.equal((await registerAs('free@example.com', 'a stranger password')).statusCode, 202)
  t.equal((await registerAs('owner@example.com', 'a stranger password')).statusCode, 202)
  const wrong = await login('owner@example.com', 'not the password')
  const free = await login('free@example.com', 'a stranger password')
  const taken = await login('owner@example.com', 'a stranger password')
  t.equal(free.statusCode, 401, 'an unverified account does not sign in')
  for (const res of [free, taken]) {
    t.equal(res.statusCode, wrong.statusCode, 'same status as a wrong password')
    t.same(problem(res), problem(wrong), 'same body as a wrong password')
  }

  // The mailbox owner of the free address verifies with one click; then the sign-in works.
  const [, freeToken] = await mailbox.waitFor('free@example.com', VERIFY_LINK)
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: freeToken } })).statusCode, 200)
  t.equal((await login('free@example.com', 'a stranger password')).statusCode, 200, 'signs in once verified')
  t.equal((await login('owner@example.com', DEFAULT_PASSWORD)).statusCode, 200, 'the owner was never affected')
})

t.test('changing my address answers the same whether or not the new one is taken, and changes only through the new mailbox', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const { headers } = await register(app, { email: 'mover@example.com' })
  await register(app, { email: 'taken@example.com', name: 'Taken Owner' })
  const change = (email: string) => app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email, password: DEFAULT_PASSWORD } })

  const toTaken = await change('taken@example.com')
  const toFree = await change('Free@Example.com')
  t.equal(toTaken.statusCode, toFree.statusCode, 'same status for a taken and a free address')
  t.same(toTaken.json(), toFree.json(), 'same body')
  t.equal(toFree.statusCode, 202, 'accepted: the new address confirms by mail')
  const me = await app.inject({ method: 'GET', url: '/users/me', headers })
  t.match(me.json(), { email: 'mover@example.com', emailVerified: true }, 'nothing changes before the new mailbox confirms')

  // The owner of the taken address is told; the free address gets the link that makes the change.
  await mailbox.waitFor('taken@example.com', /asked to move[\s\S]*/i)
  await mailbox.waitFor('mover@example.com', /free@example\.com/)
  const [, token] = await mailbox.waitFor('free@example.com', VERIFY_LINK)
  const confirmed = await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token } })
  t.equal(confirmed.statusCode, 200)
  t.match(confirmed.json(), { email: 'free@example.com', emailVerified: true })
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'free@example.com', password: DEFAULT_PASSWORD } })).statusCode, 200)
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'taken@example.com', password: DEFAULT_PASSWORD } })).json().user.name, 'Taken Owner', 'the taken account is unchanged')
})

// Linking and second-factor changes, with a real OpenID Connect provider.
const idpAccounts: Record<string, TestAccount> = {
  intruder: { email: 'intruder@elsewhere.example', email_verified: true, name: 'Intruder' },
  'legacy-intruder': { email: 'legacy@elsewhere.example', email_verified: true },
  'owner-at-idp': { email: 'linker@example.com', email_verified: true },
}
const idp = await startOidcProvider(t, idpAccounts)
const oidcEnv = (smtp: string) => ({
  SMTP_URL: smtp, OIDC_PROVIDERS: 'local', OIDC_LOCAL_ISSUER: idp.issuer, OIDC_LOCAL_CLIENT_ID: TEST_CLIENT.id,
  OIDC_LOCAL_CLIENT_SECRET: TEST_CLIENT.secret, OIDC_LOCAL_REDIRECT_URI: TEST_REDIRECT_URI, AUTH_RATE_LIMIT_MAX: '1000',
})
const sidOf = (headers: { authorization: string }) => JSON.parse(Buffer.from(headers.authorization.split('.')[1]!, 'base64url').toString()).sid as string
/** The sign-in of this session is no longer recent: what a token stolen later looks like. */
const ageSession = (app: App, headers: { authorization: string }) => app.redis.del(`sa:{${sidOf(headers)}}`)

/** Signs in at the provider as `account` (a sign-in, or a link with `headers`); answers the callback. */
async function throughProvider(app: App, account: string, headers?: Record<string, string>) {
  const prefix = headers ? '/auth/oidc/local/link' : '/auth/oidc/local'
  const started = await app.inject({ method: 'POST', url: `${prefix}/start`, headers })
  if (started.statusCode !== 200) return started
  idp.signInAs(account)
  const authorization = await idp.authorize(started.json().authorizationUrl)
  return app.inject({ method: 'POST', url: `${prefix}/callback`, payload: authorization, headers })
}
const reauthenticate = (app: App, headers: Record<string, string>, body: Record<string, string>) =>
  app.inject({ method: 'POST', url: '/auth/reauthenticate', headers, payload: body })

t.test('a stolen access token cannot link a provider nor change the second factor; linking needs a recent password', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, oidcEnv(mailbox.url))
  const victim = await register(app, { email: 'linker@example.com' })
  await ageSession(app, victim.headers)

  const stolenLink = await throughProvider(app, 'intruder', victim.headers)
  t.equal(stolenLink.statusCode, 403, 'linking with a token whose sign-in is not recent is refused')
  t.equal(stolenLink.json().type, 'urn:problem-type:reauthentication-required')
  t.equal((await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers: victim.headers })).statusCode, 403, '2FA setup too')
  t.equal((await app.inject({ method: 'GET', url: '/auth/identities', headers: victim.headers })).json().items.length, 0, 'nothing linked')

  // The owner confirms the password again; then links, and is told by mail.
  t.equal((await reauthenticate(app, victim.headers, { password: 'not the password' })).statusCode, 401)
  t.equal((await reauthenticate(app, victim.headers, { password: DEFAULT_PASSWORD })).statusCode, 204)
  const linked = await throughProvider(app, 'owner-at-idp', victim.headers)
  t.equal(linked.statusCode, 200, linked.body)
  await mailbox.waitFor('linker@example.com', /local account[\s\S]*was linked/i)
})

t.test('a reset removes every provider link the mailbox does not vouch for, even one whose provider verified its own address', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, oidcEnv(mailbox.url))
  const victim = await register(app, { email: 'reset-victim@example.com' })
  // Whoever knows the password links their own provider account (its address verified by the provider).
  await reauthenticate(app, victim.headers, { password: DEFAULT_PASSWORD })
  t.equal((await throughProvider(app, 'intruder', victim.headers)).statusCode, 200)
  t.equal((await throughProvider(app, 'intruder')).json().user.id, victim.body.user.id, 'the provider signs in as the victim')

  // The owner takes the account back with a reset.
  await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: 'reset-victim@example.com' } })
  const [, token] = await mailbox.waitFor('reset-victim@example.com', /reset-password\?token=([A-Za-z0-9_-]{20,})/)
  t.equal((await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, password: 'the owner takes it back' } })).statusCode, 204)
  const after = await throughProvider(app, 'intruder')
  t.not(after.json().user?.id, victim.body.user.id, 'the intruder provider account no longer signs in as the victim')
})

t.test('sign-out everywhere and a password change remove links made without the owner confirming', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, oidcEnv(mailbox.url))
  const victim = await register(app, { email: 'legacy-victim@example.com' })
  // A link made with nothing but a session (as linking was before it needed a recent password).
  await app.db.insert(userIdentities).values({ userId: victim.body.user.id, provider: 'local', subject: 'legacy-intruder', email: 'legacy@elsewhere.example', emailVerified: true })
  t.equal((await throughProvider(app, 'legacy-intruder')).json().user.id, victim.body.user.id)

  t.equal((await app.inject({ method: 'POST', url: '/auth/logout-all', headers: victim.headers })).statusCode, 204)
  const after = await throughProvider(app, 'legacy-intruder')
  t.not(after.json().user?.id, victim.body.user.id, 'sign-out everywhere removed the unconfirmed link')

  // A password change does too; a link the owner made after a recent sign-in stays.
  const again = await register(app, { email: 'legacy-victim@example.com' })
  t.equal((await throughProvider(app, 'owner-at-idp', again.headers)).statusCode, 200)
  await app.db.delete(users).where(eq(users.email, 'legacy@elsewhere.example'))
  await app.db.insert(userIdentities).values({ userId: victim.body.user.id, provider: 'other', subject: 'legacy-intruder', email: 'legacy@elsewhere.example', emailVerified: true })
  const changed = await app.inject({ method: 'POST', url: '/users/me/password', headers: again.headers, payload: { currentPassword: DEFAULT_PASSWORD, newPassword: 'another good password' } })
  t.equal(changed.statusCode, 204)
  const left = await app.db.select({ provider: userIdentities.provider }).from(userIdentities).where(eq(userIdentities.userId, victim.body.user.id))
  t.same(left, [{ provider: 'local' }], 'the unconfirmed link went, the confirmed one stayed')
})

t.test('2FA changes need a recent sign-in and are mailed; a reset keeps 2FA; an admin clears it, audited', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, oidcEnv(mailbox.url))
  const owner = await register(app, { email: 'second@example.com' })
  const setup = await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers: owner.headers })
  t.equal(setup.statusCode, 200, 'a fresh sign-in may set up 2FA')
  const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(setup.json().secret) }).generate()
  t.equal((await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers: owner.headers, payload: { code } })).statusCode, 200)
  await mailbox.waitFor('second@example.com', /two-factor[\s\S]*(enabled|turned on)/i)

  await ageSession(app, owner.headers)
  const disable = await app.inject({ method: 'POST', url: '/auth/2fa/disable', headers: owner.headers, payload: { password: DEFAULT_PASSWORD } })
  t.equal(disable.statusCode, 403, 'turning 2FA off needs a recent sign-in with the second factor')
  t.equal((await reauthenticate(app, owner.headers, { password: DEFAULT_PASSWORD })).statusCode, 401, 'which needs the code')

  // A reset proves the mailbox only: the second factor stays.
  await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: 'second@example.com' } })
  const [, token] = await mailbox.waitFor('second@example.com', /reset-password\?token=([A-Za-z0-9_-]{20,})/)
  t.equal((await app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, password: 'a new password here' } })).statusCode, 204)
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'second@example.com', password: 'a new password here' } })
  t.equal(login.json().type, 'urn:problem-type:totp-required')

  // Lost authenticator and codes: an admin clears 2FA (after checking who asks, outside the shop).
  const admin = await registerAdmin(app)
  const cleared = await app.inject({ method: 'DELETE', url: `/users/${owner.body.user.id}/two-factor`, headers: admin.headers })
  t.equal(cleared.statusCode, 200, cleared.body)
  t.equal(cleared.json().twoFactorEnabled, false)
  await mailbox.waitFor('second@example.com', /two-factor[\s\S]*(turned off|disabled)/i)
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'second@example.com', password: 'a new password here' } })).statusCode, 200)
  await app.activity.flush()
  const audit = (await app.inject({ method: 'GET', url: `/activity?type=admin_action&userId=${admin.user.id}`, headers: admin.headers })).json().items
  t.ok(audit.some((a: { data: { route: string; params: { userId: string } } }) => a.data.route === '/users/:userId/two-factor' && a.data.params.userId === owner.body.user.id), 'audited')
})

t.test('the verification mail does not carry the free-text name to an address nobody has confirmed', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const name = 'Cheap pills at evil.example'
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { email: 'spam-target@example.com', password: DEFAULT_PASSWORD, name } })).statusCode, 202)
  const [mail] = await mailbox.waitFor('spam-target@example.com', /[\s\S]*verify-email[\s\S]*/)
  t.notMatch(mail, /evil\.example/, 'the name a stranger typed is not mailed')
})
