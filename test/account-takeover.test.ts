import t from 'tap'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { DEFAULT_PASSWORD, register } from './users.js'

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
