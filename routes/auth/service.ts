import { randomBytes } from 'node:crypto'
import { and, eq, isNotNull, isNull, or, sql } from 'drizzle-orm'
import * as OTPAuth from 'otpauth'
import type { RedisClient } from '../../src/redis-client.js'
import { recoveryCodes, users } from '../../db/schema/index.js'
import { isUniqueViolation, type Db } from '../../db/client.js'
import { BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized } from '../../src/errors.js'
import { RECENT_AUTH_SECONDS } from '../../src/sessions.js'
import { assertHasPassword, assertPasswordPolicy, hashPassword, hashWithSalt, verifyPassword } from '../../src/passwords.js'
import { sha256, type SessionStore } from '../../src/sessions.js'
import type { OneTimeTokens } from '../../src/one-time-tokens.js'
import type { SecretBox } from '../../src/secret-box.js'
import { accountStamp, type AccountMail } from '../../src/account-mail.js'
import type { AccessClaims } from '../../plugins/auth.js'
import { normalizeEmail, removeUnconfirmedLinks, toUser, type UserRow, type UserService } from '../users/service.js'
import { claimGuestOrders } from '../../src/guest-orders.js'

export interface AuthDeps {
  db: Db
  redis: RedisClient
  sessions: SessionStore
  tokens: OneTimeTokens
  accountMail: AccountMail
  users: UserService
  issueAccessToken: (claims: Omit<AccessClaims, 'jti'>) => string
  accessTtlSeconds: number
  totpIssuer: string
  /** Seals TOTP secrets at rest (and while pending setup in Redis). */
  secretBox: SecretBox
}

const TOTP_SETUP_TTL_SECONDS = 600
/** The spacing of sign-in turns to an account with `failures` recent failures. */
const slowDownMs = (failures: number) => Math.min(5000, 250 * 2 ** (failures - FREE_FAILURES))
/** An attempt whose turn is further away than this is refused rather than kept waiting. */
const MAX_TURN_WAIT_MS = 10_000
/**
 * Takes the account's next sign-in turn: `spacing` ms after now and after the latest turn taken
 * (KEYS[1], ms of Redis time). ARGV: spacing ms, longest wait ms. Returns the wait before the
 * turn, or minus the wait when that is longer than allowed (no turn is taken then).
 */
const TAKE_TURN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0')) + tonumber(ARGV[1])
local wait = start - now
if wait > tonumber(ARGV[2]) then return -wait end
redis.call('SET', KEYS[1], start, 'PX', wait + 1000)
return wait
`
const FREE_FAILURES = 5
const FAILURE_WINDOW_SECONDS = 15 * 60
/** What a sealed TOTP secret is bound to: it opens only for its own account. */
const totpContext = (userId: string) => `totp:${userId}`
const RECOVERY_CODE_COUNT = 10
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

// An account whose address is not verified yet gets this answer too: sign-in must not tell
// whether an address was free when someone registered it.
const invalidCredentials = () => new Unauthorized('The email or password is not correct, or the address is not confirmed yet (open the link in the mail we sent)', 'invalid-credentials')
/** How often a right password on an unverified account mails the verification link again. */
const VERIFICATION_NUDGE_SECONDS = 10 * 60
const normalizeRecoveryCode = (code: string) => code.replace('-', '').toUpperCase()

/**
 * A recovery code as stored: argon2id of its SHA-256 under the account's salt. The SHA-256 inside
 * is what codes stored before were, so those are salted without knowing the codes.
 */
const storedRecoveryCode = (digest: string, salt: string) => hashWithSalt(digest, Buffer.from(salt, 'base64'))
const newRecoveryCodeSalt = () => randomBytes(16).toString('base64')

function newRecoveryCode() {
  const chars = [...randomBytes(10)].map((b) => BASE32[b & 31]).join('')
  return `${chars.slice(0, 5)}-${chars.slice(5)}`
}

export function createAuthService(deps: AuthDeps) {
  const { db, redis, sessions, tokens, accountMail } = deps
  const findByEmail = db.select().from(users).where(eq(users.email, sql.placeholder('email'))).limit(1).prepare('user_by_email')

  const totpFor = (secret: string, email: string) => new OTPAuth.TOTP({
    issuer: deps.totpIssuer, label: email, algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret),
  })

  /** A code is valid in the current step ±1, and each step's code works once per user. */
  async function checkTotp(user: UserRow, secret: string, code: string) {
    const totp = totpFor(secret, user.email)
    const delta = totp.validate({ token: code, window: 1 })
    if (delta === null) return false
    const step = Math.floor(Date.now() / 1000 / 30) + delta
    return (await redis.set(`totp-used:${user.id}:${step}`, '1', 'EX', 120, 'NX')) === 'OK'
  }

  /** The account's recovery code salt, if any of its codes is salted. */
  async function recoveryCodeSalt(userId: string) {
    const [row] = await db.select({ salt: recoveryCodes.salt }).from(recoveryCodes).where(and(eq(recoveryCodes.userId, userId), isNotNull(recoveryCodes.salt))).limit(1)
    return row?.salt ?? null
  }

  async function consumeRecoveryCode(userId: string, code: string) {
    const digest = sha256(normalizeRecoveryCode(code))
    const salt = await recoveryCodeSalt(userId)
    const legacy = and(isNull(recoveryCodes.salt), eq(recoveryCodes.codeHash, digest))
    const matches = salt ? or(and(eq(recoveryCodes.salt, salt), eq(recoveryCodes.codeHash, await storedRecoveryCode(digest, salt))), legacy) : legacy
    const used = await db.update(recoveryCodes).set({ usedAt: new Date() })
      .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.usedAt), matches))
      .returning({ id: recoveryCodes.id })
    return used.length === 1
  }

  /**
   * Salts the account's codes still stored as plain SHA-256 (from before salting): once, at a
   * sign-in with a second factor. A failure (hashing shed under load) leaves them for the next one.
   */
  async function saltLegacyRecoveryCodes(userId: string) {
    const legacy = await db.select({ id: recoveryCodes.id, codeHash: recoveryCodes.codeHash }).from(recoveryCodes)
      .where(and(eq(recoveryCodes.userId, userId), isNull(recoveryCodes.salt)))
    if (!legacy.length) return
    const salt = await recoveryCodeSalt(userId) ?? newRecoveryCodeSalt()
    for (const row of legacy) {
      const codeHash = await storedRecoveryCode(row.codeHash, salt)
      // Unless used or replaced meanwhile (the hash is what it was).
      await db.update(recoveryCodes).set({ codeHash, salt })
        .where(and(eq(recoveryCodes.id, row.id), isNull(recoveryCodes.salt), eq(recoveryCodes.codeHash, row.codeHash)))
    }
  }

  async function tokensFor(user: UserRow, session: { familyId: string; refreshToken: string }) {
    return {
      tokenType: 'Bearer' as const,
      accessToken: deps.issueAccessToken({ sub: user.id, role: user.role, sid: session.familyId }),
      expiresIn: deps.accessTtlSeconds,
      refreshToken: session.refreshToken,
    }
  }

  /** What every sign-in (password or OpenID Connect) ends with: a new session and its token pair. */
  async function startSession(user: UserRow) {
    // A verified owner of an address takes the guest orders placed with it (once).
    await claimGuestOrders(db, user)
    return { user: toUser(user), tokens: await tokensFor(user, await sessions.create(user.id)) }
  }

  /**
   * Failed sign-ins to one account from anywhere slow it down, never lock it out: after
   * FREE_FAILURES failures in the window, sign-ins to the account take turns, each turn
   * `slowDownMs` after the later of now and the turn before (250 ms, doubling per further
   * failure, up to 5 s). Every
   * attempt waits for its turn before its password is checked, the right one too: answering a
   * right password at once would let parallel guesses read a slow answer as a miss and not wait.
   * An attempt whose turn is more than MAX_TURN_WAIT_MS away is refused (429 with Retry-After)
   * unchecked, so guesses in parallel are spaced just as guesses in a row. Limits per account and
   * source, and per IP, stop any one address.
   */
  async function waitForTurn(email: string) {
    let wait: number
    try {
      const failures = Number(await redis.get(`login-failures:${email}`) ?? 0)
      if (failures < FREE_FAILURES) return
      wait = await redis.eval(TAKE_TURN, 1, `login-turn:${email}`, slowDownMs(failures), MAX_TURN_WAIT_MS) as number
    } catch {
      return // Redis away: the per-source limits (in-process meanwhile) still apply
    }
    if (wait < 0) {
      const seconds = Math.ceil(-wait / 1000)
      throw new TooManyRequests(`Too many sign-in attempts to this account at once; retry in ${seconds} s`, seconds)
    }
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }

  async function countFailure(email: string) {
    const key = `login-failures:${email}`
    try {
      const failures = await redis.incr(key)
      if (failures === 1) await redis.expire(key, FAILURE_WINDOW_SECONDS)
    } catch {
      // Redis away: see waitForTurn
    }
  }

  /** The checks of password sign-in (password, active account, second factor); returns the account. */
  async function checkPasswordSignIn(input: { email: string; password: string; totpCode?: string; recoveryCode?: string }) {
    const email = normalizeEmail(input.email)
    await waitForTurn(email)
    try {
      return await checkCredentials(input)
    } catch (err) {
      if (err instanceof Unauthorized && (err.slug === 'invalid-credentials' || err.slug === 'invalid-totp')) await countFailure(email)
      throw err
    }
  }

  async function checkCredentials(input: { email: string; password: string; totpCode?: string; recoveryCode?: string }) {
    const [user] = await findByEmail.execute({ email: normalizeEmail(input.email) })
    // Unknown email and wrong password take the same time and give the same answer.
    if (!(await verifyPassword(user?.passwordHash, input.password)) || !user) throw invalidCredentials()
    // Only a verified address signs in: whoever registered someone else's address cannot use it.
    // The answer is a wrong password's; the mailbox gets the link again (not more than once in 10 minutes).
    if (!user.emailVerifiedAt) {
      if (user.isActive && await redis.set(`verification-nudge:${user.id}`, '1', 'EX', VERIFICATION_NUDGE_SECONDS, 'NX').catch(() => null)) await accountMail.sendVerification(user)
      throw invalidCredentials()
    }
    if (!user.isActive) throw new Forbidden('This account is deactivated', 'account-deactivated')
    if (user.totpSecret && user.totpEnabledAt) {
      if (input.totpCode) {
        const { plain, stale } = deps.secretBox.open(user.totpSecret, totpContext(user.id))
        if (!(await checkTotp(user, plain, input.totpCode))) throw new Unauthorized('The two-factor code is not valid or was already used', 'invalid-totp')
        // Stored in plain text before sealing, or under a key since rotated: sealed anew now.
        if (stale) await db.update(users).set({ totpSecret: deps.secretBox.seal(plain, totpContext(user.id)) }).where(and(eq(users.id, user.id), eq(users.totpSecret, user.totpSecret)))
      } else if (input.recoveryCode) {
        if (!(await consumeRecoveryCode(user.id, input.recoveryCode))) throw new Unauthorized('The recovery code is not valid or was already used', 'invalid-totp')
      } else {
        throw new Unauthorized('This account requires a two-factor code (totpCode) or a recovery code', 'totp-required')
      }
      await saltLegacyRecoveryCodes(user.id).catch(() => {})
    }
    return user
  }

  /** Refuses unless the session's sign-in or re-authentication is recent (a token stolen later is not). */
  async function requireRecentSignIn(sid: string) {
    if (!(await sessions.isRecentlyAuthenticated(sid))) {
      throw new Forbidden(`Confirm it is you first: POST /auth/reauthenticate with your password (and two-factor code), or sign in again, within ${RECENT_AUTH_SECONDS / 60} minutes before this`, 'reauthentication-required')
    }
  }

  async function clearTotp(userId: string) {
    return db.transaction(async (tx) => {
      const [row] = await tx.update(users).set({ totpSecret: null, totpEnabledAt: null, updatedAt: new Date() }).where(eq(users.id, userId)).returning()
      await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId))
      return row!
    })
  }

  return {
    startSession,
    checkPasswordSignIn,
    requireRecentSignIn,

    /** The signed-in user proves the password (and second factor) again; the session counts as recently signed in. */
    async reauthenticate(claims: { sub: string; sid: string }, input: { password: string; totpCode?: string; recoveryCode?: string }) {
      const user = await deps.users.requireUser(claims.sub)
      assertHasPassword(user)
      const checked = await checkPasswordSignIn({ ...input, email: user.email })
      if (checked.id !== user.id) throw invalidCredentials()
      await sessions.markAuthenticated(claims.sid)
    },

    /**
     * Creates the account, or, when the address already has one, mails its owner instead: both
     * take about the same time (the password is hashed either way) and the caller cannot tell
     * which happened. The new account signs in with POST /auth/login.
     */
    async register(input: { email: string; password: string; name: string }): Promise<void> {
      const email = normalizeEmail(input.email)
      assertPasswordPolicy(input.password, email)
      const passwordHash = await hashPassword(input.password)
      const [user] = await db.insert(users).values({ email, name: input.name.trim(), passwordHash })
        .onConflictDoNothing({ target: users.email }).returning()
      if (user) return accountMail.sendVerification(user)
      const [owner] = await findByEmail.execute({ email })
      if (owner) accountMail.sendRegistrationAttempt(owner)
    },

    async login(input: { email: string; password: string; totpCode?: string; recoveryCode?: string }) {
      return startSession(await checkPasswordSignIn(input))
    },

    async refresh(refreshToken: string) {
      const result = await sessions.rotate(refreshToken)
      if (result.outcome === 'reused') throw new Unauthorized('This refresh token was already used; the session has been ended', 'refresh-token-reused')
      if (result.outcome !== 'rotated') throw new Unauthorized('The refresh token is not valid', 'invalid-refresh-token')
      const user = await deps.users.requireUser(result.userId)
      if (!user.isActive) {
        await sessions.revokeFamily(result.familyId)
        throw new Unauthorized('The session has ended', 'session-ended')
      }
      return tokensFor(user, result)
    },

    async logout(claims: { sid: string; jti: string; exp: number }) {
      await sessions.revokeFamily(claims.sid)
      await sessions.denyAccessToken(claims)
    },

    async logoutEverywhere(claims: { sub: string; sid: string; jti: string; exp: number }) {
      const user = await deps.users.requireUser(claims.sub)
      // An account with no password keeps its links: they are its only way in.
      if (user.passwordHash !== null) await removeUnconfirmedLinks(db, user)
      await sessions.revokeAll(claims.sub)
      await sessions.denyAccessToken(claims)
    },


    async verifyEmail(token: string) {
      const payload = await tokens.consume('email-verification', token)
      if (!payload?.userId || !payload.email) throw new BadRequest('The verification link is not valid or has expired', 'invalid-token')
      // A move to another address (`from`): the account must still have the address it asked from,
      // and the new one must still be free. Otherwise the address must still be the one the link was sent to.
      let updated: UserRow[]
      let unvouched: unknown[] = []
      try {
        updated = await db.transaction(async (tx) => {
          const [before] = await tx.select({ emailVerifiedAt: users.emailVerifiedAt }).from(users).where(eq(users.id, payload.userId!)).for('update')
          const rows = await tx.update(users).set({ ...(payload.from ? { email: payload.email } : {}), emailVerifiedAt: new Date(), updatedAt: new Date() })
            .where(and(eq(users.id, payload.userId!), eq(users.email, payload.from ?? payload.email!))).returning()
          // The first proof of the address vouches for the mailbox, not for a provider account
          // linked before it: such links (left by sign-ins with an email the provider had not
          // verified, before those were refused) go, as a reset removes them, and so do the
          // sessions they made. The mailbox's owner then sets a password by reset.
          if (rows[0] && before && !before.emailVerifiedAt) unvouched = await removeUnconfirmedLinks(tx, rows[0], true)
          return rows
        })
      } catch (err) {
        // The follower of the link holds that mailbox, so telling them it was taken meanwhile reveals nothing.
        if (isUniqueViolation(err, 'users_email_key')) throw new Conflict('Another account uses that email address now', 'email-taken')
        throw err
      }
      if (!updated[0]) throw new BadRequest('The verification link is not valid or has expired', 'invalid-token')
      if (unvouched.length) await sessions.revokeAll(updated[0].id)
      await claimGuestOrders(db, updated[0])
      return toUser(updated[0])
    },

    async resendVerification(userId: string) {
      const user = await deps.users.requireUser(userId)
      if (user.emailVerifiedAt) throw new Conflict('The email address is already verified', 'already-verified')
      await accountMail.sendVerification(user)
    },

    /** Answers the same whether or not the account exists. */
    async forgotPassword(email: string) {
      const [user] = await findByEmail.execute({ email: normalizeEmail(email) })
      if (user?.isActive) await accountMail.sendPasswordReset(user)
    },

    async resetPassword(token: string, password: string) {
      const payload = await tokens.consume('password-reset', token)
      if (!payload?.userId) throw new BadRequest('The reset link is not valid or has expired', 'invalid-token')
      const user = await deps.users.requireUser(payload.userId)
      if (payload.stamp !== accountStamp(user)) throw new BadRequest('The reset link is not valid or has expired', 'invalid-token')
      assertPasswordPolicy(password, user.email)
      const passwordHash = await hashPassword(password)
      await db.transaction(async (tx) => {
        // The link came to the address (the stamp binds it), so it verifies the address too: the
        // owner of an address someone registered unverified takes the account back this way.
        await tx.update(users).set({ passwordHash, emailVerifiedAt: user.emailVerifiedAt ?? new Date(), updatedAt: new Date() }).where(eq(users.id, user.id))
        // The reset proves the mailbox: every link it does not vouch for goes, so whoever made an
        // account with someone else's address at a lax provider, or linked their own provider
        // account with the password or a session, keeps no way in after the owner takes it back.
        // The second factor stays: a mailbox alone must not be enough to take an account that has
        // one (lost authenticator and codes: an admin clears it, DELETE /users/{userId}/two-factor).
        await removeUnconfirmedLinks(tx, user, true)
      })
      await sessions.revokeAll(user.id)
    },

    /** Step 1: a secret to put in the authenticator; not active until confirmed with a code. */
    async setupTotp(userId: string) {
      const user = await deps.users.requireUser(userId)
      if (user.totpEnabledAt) throw new Conflict('Two-factor authentication is already enabled', 'totp-enabled')
      // The second factor guards password sign-in (a provider's sign-in has its own) and turning it off needs the password.
      assertHasPassword(user)
      const secret = new OTPAuth.Secret({ size: 20 }).base32
      await redis.set(`totp-setup:${userId}`, deps.secretBox.seal(secret, totpContext(userId)), 'EX', TOTP_SETUP_TTL_SECONDS)
      return { secret, otpauthUrl: totpFor(secret, user.email).toString() }
    },

    /** Step 2: the first code proves the authenticator works; returns recovery codes once. */
    async enableTotp(userId: string, code: string) {
      const user = await deps.users.requireUser(userId)
      if (user.totpEnabledAt) throw new Conflict('Two-factor authentication is already enabled', 'totp-enabled')
      const pending = await redis.get(`totp-setup:${userId}`)
      if (!pending) throw new Conflict('Start two-factor setup first; the pending secret expires after 10 minutes', 'totp-not-pending')
      const secret = deps.secretBox.open(pending, totpContext(userId)).plain
      if (!(await checkTotp(user, secret, code))) throw new BadRequest('The code does not match the authenticator', 'invalid-totp')
      const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode)
      const salt = newRecoveryCodeSalt()
      const hashes = await Promise.all(codes.map((c) => storedRecoveryCode(sha256(normalizeRecoveryCode(c)), salt)))
      await db.transaction(async (tx) => {
        await tx.update(users).set({ totpSecret: deps.secretBox.seal(secret, totpContext(userId)), totpEnabledAt: new Date(), updatedAt: new Date() }).where(eq(users.id, userId))
        await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, userId))
        await tx.insert(recoveryCodes).values(hashes.map((codeHash) => ({ userId, codeHash, salt })))
      })
      await redis.del(`totp-setup:${userId}`)
      accountMail.sendSecurityNotice(user, 'Two-factor authentication was turned on for your account.')
      return { recoveryCodes: codes }
    },

    async disableTotp(userId: string, password: string) {
      const user = await deps.users.requireUser(userId)
      assertHasPassword(user)
      if (!(await verifyPassword(user.passwordHash, password))) throw new Unauthorized('The password is not correct', 'invalid-credentials')
      if (!user.totpEnabledAt) throw new Conflict('Two-factor authentication is not enabled', 'totp-disabled')
      await clearTotp(userId)
      accountMail.sendSecurityNotice(user, 'Two-factor authentication was turned off for your account.')
    },

    /** An admin clears the second factor of an owner who lost authenticator and codes; every session ends. */
    async adminClearTotp(userId: string) {
      const user = await deps.users.requireUser(userId)
      if (!user.totpEnabledAt) throw new Conflict('Two-factor authentication is not enabled', 'totp-disabled')
      const row = await clearTotp(userId)
      await sessions.revokeAll(userId)
      accountMail.sendSecurityNotice(user, 'Two-factor authentication was turned off for your account by our support team.')
      return toUser(row)
    },
  }
}
export type AuthService = ReturnType<typeof createAuthService>
