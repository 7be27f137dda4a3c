import t from 'tap'
import * as OTPAuth from 'otpauth'
import { buildTestApp } from './helpers.js'
import { DEFAULT_PASSWORD, register } from './users.js'

const codeFor = (secret: string, offsetSteps = 0) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret), digits: 6, period: 30 }).generate({ timestamp: Date.now() + offsetSteps * 30_000 })

t.test('TOTP: enable with a code, login requires it, codes and recovery codes are single use, disable with password', async (t) => {
  const app = await buildTestApp(t)
  const { headers } = await register(app, { email: 'twofa@example.com' })
  const login = (extra: object = {}) => app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'twofa@example.com', password: DEFAULT_PASSWORD, ...extra } })

  const notPending = await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: '123456' } })
  t.equal(notPending.statusCode, 409, 'enable before setup')

  const setup = await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers })
  t.equal(setup.statusCode, 200)
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
