import t from 'tap'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { register } from './users.js'

// A reset token is bound to the account as it was when mailed (issue 12: tokens carried only the
// user id, so one mailed to an old address, or outlived by another reset, still worked).

const RESET_LINK = /reset-password\?token=([A-Za-z0-9_-]{20,})/

t.test('a completed reset or an email change voids every older reset token', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  await register(app, { email: 'owner@example.com' })
  await mailbox.waitFor('owner@example.com', /verify-email/)
  const forgot = async (email: string) => {
    await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email } })
    return (await mailbox.waitFor(email, RESET_LINK))[1]!
  }
  const reset = (token: string, password: string) => app.inject({ method: 'POST', url: '/auth/password/reset', payload: { token, password } })

  const first = await forgot('owner@example.com')
  const second = await forgot('owner@example.com')
  t.equal((await reset(second, 'the second new password')).statusCode, 204)
  t.equal((await reset(first, 'the first new password')).statusCode, 400, 'the older token died with the completed reset')

  const beforeMove = await forgot('owner@example.com')
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'owner@example.com', password: 'the second new password' } })
  const headers = { authorization: `Bearer ${login.json().tokens.accessToken}` }
  t.equal((await app.inject({ method: 'POST', url: '/users/me/email', headers, payload: { email: 'moved@example.com', password: 'the second new password' } })).statusCode, 202)
  const [, moveToken] = await mailbox.waitFor('moved@example.com', /verify-email\?token=([A-Za-z0-9_-]{20,})/)
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: moveToken } })).statusCode, 200, 'the move is confirmed')
  t.equal((await reset(beforeMove, 'a takeover password')).statusCode, 400, 'a token mailed to the old address no longer works')
})
