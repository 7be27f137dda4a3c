import t from 'tap'
import { buildTestApp } from './helpers.js'
import { DEFAULT_PASSWORD, register } from './users.js'

// Routes that check the current password count attempts per account (issue 12: only the global
// per-IP limit applied, so a stolen access token could guess the password at leisure).

t.test('password checks on account routes are limited per account', async (t) => {
  const app = await buildTestApp(t, { AUTH_ACCOUNT_RATE_LIMIT_MAX: '3' })
  const user = await register(app, { email: 'guessed@example.com' })
  const other = await register(app, { email: 'untouched@example.com' })
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    const wrong = i % 2 === 0
      ? await app.inject({ method: 'POST', url: '/users/me/password', headers: user.headers, payload: { currentPassword: `wrong guess ${i} here`, newPassword: 'a brand new password' } })
      : await app.inject({ method: 'POST', url: '/users/me/email', headers: user.headers, payload: { password: `wrong guess ${i} here`, email: 'new@example.com' } })
    statuses.push(wrong.statusCode)
  }
  t.notOk(statuses.includes(429), `the first attempts are answered (${statuses.join(', ')})`)
  const limited = await app.inject({ method: 'POST', url: '/users/me/password', headers: user.headers, payload: { currentPassword: DEFAULT_PASSWORD, newPassword: 'a brand new password' } })
  t.equal(limited.statusCode, 429, 'the fourth is refused, even with the right password')
  t.ok(Number(limited.headers['retry-after']) > 0)
  const elsewhere = await app.inject({ method: 'POST', url: '/users/me/password', headers: other.headers, payload: { currentPassword: DEFAULT_PASSWORD, newPassword: 'another new password' } })
  t.equal(elsewhere.statusCode, 204, 'another account is not affected')
})
