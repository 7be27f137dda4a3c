import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'

// Sign-in sessions in Redis. A session is a refresh-token family: every refresh rotates the
// token, and presenting an already-rotated token revokes the family (the token was stolen, or
// the client is confused; both end the session). Access tokens carry the family id (`sid`), so
// revoking a family also stops its access tokens at once.
//
// Keys (under the client's prefix):
//   sf:<familyId>   family alive marker -> userId, expires with the session's absolute lifetime
//   rt:<sha256>     refresh token -> { fid, uid, used }, same expiry as its family
//   us:<userId>     set of the user's family ids, for "sign out everywhere"
//   dj:<jti>        denied access token, until the token's own expiry

export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')

/** An opaque random token: 256 bits, base64url. */
export const randomToken = () => randomBytes(32).toString('base64url')

const familyKey = (fid: string) => `sf:${fid}`
const tokenKey = (token: string) => `rt:${sha256(token)}`
const userKey = (uid: string) => `us:${uid}`
const deniedKey = (jti: string) => `dj:${jti}`

// Atomic rotation. KEYS: old token, family, new token. ARGV: family id, user id.
const ROTATE = `
local fid = redis.call('HGET', KEYS[1], 'fid')
if (not fid) or fid ~= ARGV[1] then return 'invalid' end
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 'revoked' end
if redis.call('HGET', KEYS[1], 'used') == '1' then
  redis.call('DEL', KEYS[2])
  return 'reused'
end
redis.call('HSET', KEYS[1], 'used', '1')
redis.call('HSET', KEYS[3], 'fid', ARGV[1], 'uid', ARGV[2], 'used', '0')
redis.call('PEXPIRE', KEYS[3], ttl)
return 'rotated'
`

export type RotateResult =
  | { outcome: 'rotated'; userId: string; familyId: string; refreshToken: string }
  | { outcome: 'invalid' | 'revoked' | 'reused' }

export function createSessionStore(redis: Redis, opts: { refreshTtlSeconds: number }) {
  return {
    /** Starts a session; returns its family id and first refresh token. */
    async create(userId: string) {
      const familyId = randomUUID()
      const refreshToken = randomToken()
      const ttl = opts.refreshTtlSeconds
      await redis.multi()
        .set(familyKey(familyId), userId, 'EX', ttl)
        .hset(tokenKey(refreshToken), { fid: familyId, uid: userId, used: '0' })
        .expire(tokenKey(refreshToken), ttl)
        .sadd(userKey(userId), familyId)
        .expire(userKey(userId), ttl)
        .exec()
      return { familyId, refreshToken }
    },

    /** Exchanges a refresh token for a new one; exactly one of two racing calls wins. */
    async rotate(refreshToken: string): Promise<RotateResult> {
      const record = await redis.hmget(tokenKey(refreshToken), 'fid', 'uid')
      const [familyId, userId] = record
      if (!familyId || !userId) return { outcome: 'invalid' }
      const next = randomToken()
      const outcome = await redis.eval(ROTATE, 3, tokenKey(refreshToken), familyKey(familyId), tokenKey(next), familyId, userId) as string
      if (outcome === 'rotated') return { outcome, userId, familyId, refreshToken: next }
      return { outcome: outcome as 'invalid' | 'revoked' | 'reused' }
    },

    /** The family a refresh token belongs to, if the token is known. */
    async familyOf(refreshToken: string) {
      return redis.hget(tokenKey(refreshToken), 'fid')
    },

    async revokeFamily(familyId: string) {
      await redis.del(familyKey(familyId))
    },

    /** Ends every session of a user, except `keepFamilyId` when given. */
    async revokeAll(userId: string, keepFamilyId?: string) {
      const families = (await redis.smembers(userKey(userId))).filter((fid) => fid !== keepFamilyId)
      if (families.length) {
        await redis.multi().del(...families.map(familyKey)).srem(userKey(userId), ...families).exec()
      }
    },

    async denyAccessToken(jti: string, expiresAtSeconds: number) {
      const ttl = expiresAtSeconds - Math.floor(Date.now() / 1000)
      if (ttl > 0) await redis.set(deniedKey(jti), '1', 'EX', ttl)
    },

    /** One round trip per authenticated request: the token is not denied and its session lives. */
    async isAccessAllowed(jti: string, familyId: string) {
      const [denied, family] = await redis.mget(deniedKey(jti), familyKey(familyId))
      return !denied && family !== null
    },
  }
}
export type SessionStore = ReturnType<typeof createSessionStore>
