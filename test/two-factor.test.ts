import t from 'tap'
import * as OTPAuth from 'otpauth'
import { eq } from 'drizzle-orm'
import { users } from '../db/schema/index.js'
import { buildTestApp, createTestDatabase } from './helpers.js'
import { DEFAULT_PASSWORD, register } from './users.js'

const codeFor = (secret: string, offsetSteps = 0) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: Date.now() + offsetSteps * 30_000 })

/** Waits for a fresh 30 s step when the current one is nearly over, so a code made for "the
 *  previous step" is not two steps old by the time the server checks it. */
async function clearOfStepEdge() {
  const left = 30_000 - (Date.now() % 30_000)
  if (left < 8_000) await new Promise((r) => setTimeout(r, left + 50))
}

t.test('TOTP: enable with a code, login requires it, codes and recovery codes are single use, disable with password', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await register(app, { email: 'twofa@example.com' })
  const login = (extra: object = {}) => app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'twofa@example.com', password: DEFAULT_PASSWORD, ...extra } })

  const notPending = await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: '123456' } })
  t.equal(notPending.statusCode, 409, 'enable before setup')

  const setup = await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers })
  t.equal(setup.statusCode, 200)
  await clearOfStepEdge()
  const { secret, otpauthUrl } = setup.json()
  t.match(otpauthUrl, /^otpauth:\/\/totp\/Shop:twofa%40example\.com\?/)
  t.equal((await login()).statusCode, 200, 'not required until confirmed')

  const wrong = await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: codeFor(secret, 10) } })
  t.equal(wrong.statusCode, 400)
  // The previous step's code: valid (window ±1) and not the one login will use.
  const enabled = await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: codeFor(secret, -1) } })
  t.equal(enabled.statusCode, 200)
  const { recoveryCodes } = enabled.json()
  t.equal(recoveryCodes.length, 10)
  t.equal(new Set(recoveryCodes).size, 10)

  const withoutCode = await login()
  t.equal(withoutCode.statusCode, 401)
  t.equal(withoutCode.json().type, 'urn:problem-type:totp-required')
  t.equal((await login({ totpCode: codeFor(secret, 5) })).statusCode, 401, 'a far-off code fails')

  const code = codeFor(secret)
  const withCode = await login({ totpCode: code })
  t.equal(withCode.statusCode, 200)
  t.equal(withCode.json().user.twoFactorEnabled, true)
  t.equal((await login({ totpCode: code })).statusCode, 401, 'the same code cannot be replayed')

  const recovery = recoveryCodes[0]
  t.equal((await login({ recoveryCode: recovery })).statusCode, 200)
  t.equal((await login({ recoveryCode: recovery })).statusCode, 401, 'a recovery code works once')
  t.equal((await login({ recoveryCode: recoveryCodes[1].replace('-', '').toLowerCase() })).statusCode, 200, 'codes are read without dash or case')

  const badDisable = await app.inject({ method: 'POST', url: '/auth/2fa/disable', headers, payload: { password: 'not my password' } })
  t.equal(badDisable.statusCode, 401)
  const disable = await app.inject({ method: 'POST', url: '/auth/2fa/disable', headers, payload: { password: DEFAULT_PASSWORD } })
  t.equal(disable.statusCode, 204)
  t.equal((await login()).statusCode, 200, 'no code needed once disabled')
  t.equal((await login({ recoveryCode: recoveryCodes[2] })).statusCode, 200, 'codes are ignored when 2FA is off')
})

t.test('TOTP secrets are sealed at rest; plain or old-key secrets are sealed anew at the next sign-in; keys rotate', async (t) => {
  const newKey = `new:${Buffer.alloc(32, 7).toString('base64')}`
  const database = await createTestDatabase(t)
  const app = await buildTestApp(t, { DATABASE_URL: database.url })
  const { headers, body: { user } } = await register(app, { email: 'sealed@example.com' })
  const { secret } = (await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers })).json()
  await clearOfStepEdge()
  t.equal((await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: codeFor(secret, -1) } })).statusCode, 200)
  const stored = async () => (await app.db.select({ totpSecret: users.totpSecret }).from(users).where(eq(users.id, user.id)))[0]!.totpSecret!
  const sealed = await stored()
  t.match(sealed, /^v1\.dev\./, 'sealed with the configured key')
  t.notOk(sealed.includes(secret), 'the secret is not in the row')
  const login = (target = app, offsetSteps = 0) => target.inject({ method: 'POST', url: '/auth/login', payload: { email: 'sealed@example.com', password: DEFAULT_PASSWORD, totpCode: codeFor(secret, offsetSteps) } })
  t.equal((await login()).statusCode, 200, 'a code from the sealed secret signs in')

  // A row from before sealing (plain text) still works, and is sealed at that sign-in.
  await app.db.update(users).set({ totpSecret: secret }).where(eq(users.id, user.id))
  t.equal((await login(app, 1)).statusCode, 200, 'a plain-text secret from before still works')
  t.match(await stored(), /^v1\.dev\./, 'and is sealed at that sign-in')

  // Rotation: a new key first, the old one kept; the next sign-in moves the secret to the new key.
  const rotated = await buildTestApp(t, { DATABASE_URL: database.url, TOTP_ENCRYPTION_KEYS: `${newKey},dev:${Buffer.from('dev-only-totp-key-change-me-0123').toString('base64')}` })
  t.equal((await login(rotated, -1)).statusCode, 200, 'the old key still opens')
  t.match(await stored(), /^v1\.new\./, 'sealed under the new key')
})
