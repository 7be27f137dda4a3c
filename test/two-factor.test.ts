import t from 'tap'
import * as OTPAuth from 'otpauth'
import { eq, sql } from 'drizzle-orm'
import { users } from '../db/schema/index.js'
import { sha256 } from '../src/sessions.js'
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

/** Turns 2FA on for a new verified customer through the API; returns its secret and recovery codes. */
async function enableTwoFactor(app: Awaited<ReturnType<typeof buildTestApp>>, email: string) {
  const { headers, body: { user } } = await register(app, { email })
  const { secret } = (await app.inject({ method: 'POST', url: '/auth/2fa/setup', headers })).json()
  await clearOfStepEdge()
  const enabled = await app.inject({ method: 'POST', url: '/auth/2fa/enable', headers, payload: { code: codeFor(secret, -1) } })
  if (enabled.statusCode !== 200) throw new Error(`enable failed: ${enabled.statusCode} ${enabled.body}`)
  return { user, headers, secret, recoveryCodes: enabled.json().recoveryCodes as string[] }
}
type StoredCode = { code_hash: string; salt: string | null; used_at: Date | null }
const storedCodes = async (app: Awaited<ReturnType<typeof buildTestApp>>, userId: string) =>
  (await app.db.execute(sql`select * from recovery_codes where user_id = ${userId}`)).rows as StoredCode[]
/** The fast hashes an attacker with the table would try first: SHA-256 of the code, with and without its dash. */
const fastHashes = (codes: string[]) => new Set(codes.flatMap((c) => [sha256(c), sha256(c.replace('-', '')), sha256(c.replace('-', '').toLowerCase())]))

t.test('recovery codes are stored salted and slow: no fast hash of a code, a salt of each account', async (t) => {
  const app = await buildTestApp(t)
  const a = await enableTwoFactor(app, 'salted-a@example.com')
  const b = await enableTwoFactor(app, 'salted-b@example.com')
  const salts: (string | null)[] = []
  for (const who of [a, b]) {
    const rows = await storedCodes(app, who.user.id)
    t.equal(rows.length, 10)
    const fast = fastHashes(who.recoveryCodes)
    t.notOk(rows.some((r) => fast.has(r.code_hash)), 'no row holds an unsalted SHA-256 of a code')
    t.ok(rows.every((r) => typeof r.salt === 'string' && Buffer.from(r.salt, 'base64').length >= 16), 'each row names a salt of at least 16 bytes')
    t.equal(new Set(rows.map((r) => r.salt)).size, 1, 'one salt per account: a code is hashed once per attempt')
    salts.push(rows[0]?.salt ?? null)
  }
  t.not(salts[0], salts[1], 'accounts have different salts')

  const login = (email: string, recoveryCode: string) => app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: DEFAULT_PASSWORD, recoveryCode } })
  t.equal((await login('salted-a@example.com', b.recoveryCodes[0]!)).statusCode, 401, "another account's code does not work")
  t.equal((await login('salted-a@example.com', a.recoveryCodes[3]!.toLowerCase())).statusCode, 200, 'a code signs in (case and dash do not matter)')
  t.equal((await login('salted-a@example.com', a.recoveryCodes[3]!)).statusCode, 401, 'once')
})

t.test('recovery codes stored as plain SHA-256 before keep working, and are salted at the next sign-in with a second factor', async (t) => {
  const app = await buildTestApp(t)
  const who = await enableTwoFactor(app, 'legacy-codes@example.com')
  // The codes as enable stored them before: SHA-256 of the code without its dash, no salt.
  const legacy = ['ABCDE-FGHIJ', 'KLMNO-PQRST', 'UVWXY-Z2345', '7ZZZZ-YYYY6']
  await app.db.execute(sql`delete from recovery_codes where user_id = ${who.user.id}`)
  for (const code of legacy) await app.db.execute(sql`insert into recovery_codes (user_id, code_hash) values (${who.user.id}, ${sha256(code.replace('-', ''))})`)
  const login = (extra: object) => app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'legacy-codes@example.com', password: DEFAULT_PASSWORD, ...extra } })

  t.equal((await login({ recoveryCode: legacy[0] })).statusCode, 200, 'a code stored before signs in')
  const rows = await storedCodes(app, who.user.id)
  t.equal(rows.length, 4)
  t.notOk(rows.some((r) => fastHashes(legacy).has(r.code_hash)), 'no fast hash is left after that sign-in')
  t.equal(new Set(rows.map((r) => r.salt)).size, 1)
  t.ok(rows[0]?.salt, 'all salted, with one salt')

  t.equal((await login({ recoveryCode: legacy[0] })).statusCode, 401, 'the used code stays used')
  t.equal((await login({ recoveryCode: legacy[1] })).statusCode, 200, 'the other codes, salted now, still sign in')
  t.equal((await login({ recoveryCode: legacy[1] })).statusCode, 401, 'once')

  // A sign-in with the authenticator salts them too.
  await app.db.execute(sql`delete from recovery_codes where user_id = ${who.user.id} and used_at is null`)
  await app.db.execute(sql`insert into recovery_codes (user_id, code_hash) values (${who.user.id}, ${sha256('UVWXYZ2345')})`)
  await clearOfStepEdge()
  t.equal((await login({ totpCode: codeFor(who.secret) })).statusCode, 200)
  t.ok((await storedCodes(app, who.user.id)).every((r) => r.salt && r.code_hash !== sha256('UVWXYZ2345')), 'salted at a TOTP sign-in')
  t.equal((await login({ recoveryCode: legacy[2] })).statusCode, 200, 'and it still works')
})
