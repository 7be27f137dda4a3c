import type { RedisClient } from './redis-client.js'
import { randomToken, sha256 } from './sessions.js'

// Single-use tokens sent by mail (password reset, email verification, confirming an erasure). Only the SHA-256 of the
// token is stored; GETDEL makes using one atomic, so a token works once even under a race.

export type TokenPurpose = 'password-reset' | 'email-verification' | 'account-erasure'

const key = (purpose: TokenPurpose, token: string) => `ott:${purpose}:${sha256(token)}`

export function createOneTimeTokens(redis: RedisClient) {
  return {
    async issue(purpose: TokenPurpose, payload: Record<string, string>, ttlSeconds: number) {
      const token = randomToken()
      await redis.set(key(purpose, token), JSON.stringify(payload), 'EX', ttlSeconds)
      return token
    },
    async consume(purpose: TokenPurpose, token: string): Promise<Record<string, string> | null> {
      const value = await redis.getdel(key(purpose, token))
      return value ? JSON.parse(value) : null
    },
  }
}
export type OneTimeTokens = ReturnType<typeof createOneTimeTokens>
