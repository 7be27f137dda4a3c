import argon2 from 'argon2'
import { BadRequest, Conflict, Overloaded } from './errors.js'
import { createGate } from './gate.js'

// argon2id at the OWASP minimum (19 MiB, t=2, p=1).
const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const

export const PASSWORD_MIN_LENGTH = 10
export const PASSWORD_MAX_LENGTH = 128

/**
 * argon2 runs on libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise), which
 * file and crypto work share: at most `concurrency` hashes run at once and at most `queue` wait;
 * beyond that a request is shed at once with 503 and Retry-After rather than queued without end.
 */
const createHashGate = (concurrency: number, queue: number) => createGate(concurrency, queue,
  () => new Overloaded('Too many password checks at once; retry in a second'))
let gate = createHashGate(2, 64)

/** Sets the bounds of concurrent password hashing (PASSWORD_HASH_CONCURRENCY, PASSWORD_HASH_QUEUE); the app does at start. */
export function limitPasswordHashing(limits: { concurrency: number; queue: number }) {
  gate = createHashGate(limits.concurrency, limits.queue)
}

export function hashPassword(password: string) {
  return gate(() => argon2.hash(password, ARGON2_OPTIONS))
}

/**
 * argon2id with the password parameters under a given salt, as hex: for secrets that are looked
 * up by their hash (recovery codes), so one hash per attempt. Shares the password hashing bounds.
 */
export async function hashWithSalt(secret: string, salt: Buffer) {
  return (await gate(() => argon2.hash(secret, { ...ARGON2_OPTIONS, salt, raw: true }))).toString('hex')
}

// Verified against when an email is unknown, so a miss costs as long as a wrong password.
const decoyHash = argon2.hash('decoy-password-for-timing', ARGON2_OPTIONS)

/** Compares in constant time; with no stored hash (no such user, or an account without a
 * password) it burns the same time and fails. */
export async function verifyPassword(storedHash: string | null | undefined, password: string) {
  if (!storedHash) {
    const decoy = await decoyHash
    await gate(() => argon2.verify(decoy, password).catch(() => false))
    return false
  }
  return gate(() => argon2.verify(storedHash, password).catch(() => false))
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
