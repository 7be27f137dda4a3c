import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { slotKey, type RedisClient } from './redis-client.js'

// Sign-in sessions in Redis. A session is a refresh-token family: every refresh rotates the
// token, and presenting an already-rotated token revokes the family (the token was stolen, or
// the client is confused; both end the session). Access tokens carry the family id (`sid`), so
// revoking a family also stops its access tokens at once. One exception, as Auth0 and Okta make
// it: for a few seconds after a rotation the exact token just rotated may be presented again (a
// retry whose answer was lost, two tabs racing) and gets another token of the same family, so
// the race's loser does not end the session the winner was just given. Any older token, or the
// same one after the grace, still ends the family.
//
// Keys (under the client's prefix). A family's keys share the family's hash tag, so the rotation
// script and the per-request check each stay on one Redis Cluster slot; a refresh token is
// `<familyId>.<random>`, so its key is found from the token alone.
//   sf:{<familyId>}           family alive marker -> userId, expires with the session's absolute lifetime
//   rt:{<familyId>}:<sha256>  refresh token -> { fid, uid, used }, same expiry as its family
//   sp:{<familyId>}           sha256 of the token the family rotated last, for the grace period
//   dj:{<familyId>}:<jti>     denied access token of the family, until the token's own expiry
//   us:{<userId>}             set of the user's family ids, for "sign out everywhere"

export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')

/** An opaque random token: 256 bits, base64url. */
export const randomToken = () => randomBytes(32).toString('base64url')

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const familyKey = (fid: string) => slotKey('sf', fid)
const userKey = (uid: string) => slotKey('us', uid)
const deniedKey = (fid: string, jti: string) => slotKey('dj', fid, jti)
const predecessorKey = (fid: string) => slotKey('sp', fid)
/** Set while the session's sign-in (or its latest re-authentication) is recent. */
const recentAuthKey = (fid: string) => slotKey('sa', fid)
/** How long a sign-in counts as recent for linking a provider and changing the second factor. */
export const RECENT_AUTH_SECONDS = 5 * 60
const newRefreshToken = (fid: string) => `${fid}.${randomToken()}`
/** The family a refresh token names, or null for a token not of that form. */
const familyOfToken = (token: string) => {
  const fid = token.slice(0, token.indexOf('.'))
  return UUID.test(fid) ? fid : null
}
const tokenKey = (fid: string, token: string) => slotKey('rt', fid, sha256(token))

// Atomic rotation. KEYS: old token, family, new token, family's last rotated token.
// ARGV: family id, user id, sha256 of the old token, grace in ms.
const ROTATE = `
local fid = redis.call('HGET', KEYS[1], 'fid')
if (not fid) or fid ~= ARGV[1] then return 'invalid' end
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then return 'revoked' end
if redis.call('HGET', KEYS[1], 'used') == '1' then
  if redis.call('GET', KEYS[4]) ~= ARGV[3] then
    redis.call('DEL', KEYS[2])
    return 'reused'
  end
else
  redis.call('HSET', KEYS[1], 'used', '1')
  if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[4]) end
end
redis.call('HSET', KEYS[3], 'fid', ARGV[1], 'uid', ARGV[2], 'used', '0')
redis.call('PEXPIRE', KEYS[3], ttl)
return 'rotated'
`

export type RotateResult =
  | { outcome: 'rotated'; userId: string; familyId: string; refreshToken: string }
  | { outcome: 'invalid' | 'revoked' | 'reused' }

export function createSessionStore(redis: RedisClient, opts: { refreshTtlSeconds: number; reuseGraceSeconds?: number }) {
  return {
    /** Starts a session; returns its family id and first refresh token. */
    async create(userId: string) {
      const familyId = randomUUID()
      const refreshToken = newRefreshToken(familyId)
      const ttl = opts.refreshTtlSeconds
      // The user's list first (two slots, so two transactions): a family that exists is always
      // listed, and one listed but never created is skipped by revokeAll.
      await redis.multi().sadd(userKey(userId), familyId).expire(userKey(userId), ttl).exec()
      await redis.multi()
        .set(familyKey(familyId), userId, 'EX', ttl)
        .hset(tokenKey(familyId, refreshToken), { fid: familyId, uid: userId, used: '0' })
        .expire(tokenKey(familyId, refreshToken), ttl)
        // A new session is a sign-in: recent for a few minutes (refreshes do not renew it).
        .set(recentAuthKey(familyId), '1', 'EX', RECENT_AUTH_SECONDS)
        .exec()
      return { familyId, refreshToken }
    },

    /** The session's holder proved the credentials again just now. */
    async markAuthenticated(familyId: string) {
      await redis.set(recentAuthKey(familyId), '1', 'EX', RECENT_AUTH_SECONDS)
    },

    /** Whether the session's sign-in or re-authentication is recent: a token stolen later is not. */
    async isRecentlyAuthenticated(familyId: string) {
      return (await redis.exists(recentAuthKey(familyId))) === 1
    },

    /** Exchanges a refresh token for a new one; racing calls within the grace all get one. */
    async rotate(refreshToken: string): Promise<RotateResult> {
      const tokenFamily = familyOfToken(refreshToken)
      if (!tokenFamily) return { outcome: 'invalid' }
      const [familyId, userId] = await redis.hmget(tokenKey(tokenFamily, refreshToken), 'fid', 'uid')
      if (!familyId || !userId) return { outcome: 'invalid' }
      const next = newRefreshToken(familyId)
      const outcome = await redis.eval(ROTATE, 4, tokenKey(familyId, refreshToken), familyKey(familyId), tokenKey(familyId, next), predecessorKey(familyId), familyId, userId, sha256(refreshToken), String((opts.reuseGraceSeconds ?? 0) * 1000)) as string
      if (outcome === 'rotated') return { outcome, userId, familyId, refreshToken: next }
      return { outcome: outcome as 'invalid' | 'revoked' | 'reused' }
    },

    /** The family a refresh token belongs to, if the token is known. */
    async familyOf(refreshToken: string) {
      const fid = familyOfToken(refreshToken)
      return fid ? redis.hget(tokenKey(fid, refreshToken), 'fid') : null
    },

    async revokeFamily(familyId: string) {
      await redis.del(familyKey(familyId))
    },

    /** Ends every session of a user, except `keepFamilyId` when given. */
    async revokeAll(userId: string, keepFamilyId?: string) {
      const families = (await redis.smembers(userKey(userId))).filter((fid) => fid !== keepFamilyId)
      if (families.length) {
        // Each family has its own slot: ended one by one, then unlisted (a crash in between
        // leaves ended families listed, which a later call skips).
        await Promise.all(families.map((fid) => redis.del(familyKey(fid))))
        await redis.srem(userKey(userId), ...families)
      }
    },

    async denyAccessToken(claims: { sid: string; jti: string; exp: number }) {
      const ttl = claims.exp - Math.floor(Date.now() / 1000)
      if (ttl > 0) await redis.set(deniedKey(claims.sid, claims.jti), '1', 'EX', ttl)
    },

    /** One round trip per authenticated request: the token is not denied and its session lives. */
    async isAccessAllowed(jti: string, familyId: string) {
      const [denied, family] = await redis.mget(deniedKey(familyId, jti), familyKey(familyId))
      return !denied && family !== null
    },
  }
}
export type SessionStore = ReturnType<typeof createSessionStore>
