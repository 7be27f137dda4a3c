import argon2 from 'argon2'
import { BadRequest, Conflict } from './errors.js'

// argon2id at the OWASP minimum (19 MiB, t=2, p=1).
const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export const PASSWORD_MIN_LENGTH = 10
export const PASSWORD_MAX_LENGTH = 128

export function hashPassword(password: string) {
  return argon2.hash(password, ARGON2_OPTIONS)
}

// Verified against when an email is unknown, so a miss costs as long as a wrong password.
const decoyHash = hashPassword('decoy-password-for-timing')

/** Compares in constant time; with no stored hash (no such user, or an account without a
 * password) it burns the same time and fails. */
export async function verifyPassword(storedHash: string | null | undefined, password: string) {
  if (!storedHash) {
    await argon2.verify(await decoyHash, password).catch(() => false)
    return false
  }
  return argon2.verify(storedHash, password).catch(() => false)
}

/** The rules beyond length (which the schemas enforce): not the email or its local part. */
export function assertPasswordPolicy(password: string, email: string) {
  const lowered = password.toLowerCase()
  const normalizedEmail = email.trim().toLowerCase()
  if (lowered === normalizedEmail || lowered === normalizedEmail.split('@')[0]) {
    throw new BadRequest('The password must not be your email address', 'weak-password')
  }
}

/** An account made by OpenID Connect sign-in has no password until its owner sets one by reset. */
export function assertHasPassword(user: { passwordHash: string | null }) {
  if (user.passwordHash === null) {
    throw new Conflict('This account has no password yet; set one through POST /auth/password/forgot', 'no-password')
  }
}
