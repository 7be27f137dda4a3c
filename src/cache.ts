import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'

// The one response cache. Keys carry a namespace version (`cache:<ns>:v<version>:<key>`); a write
// bumps the version, so every older entry becomes unreachable at once and expires on its own TTL.
// Redis trouble never fails a request: a read error is a miss, a write error is dropped; both logged.

export interface CacheResult<T> { value: T; hit: boolean }

export function createCache(redis: Redis, log: FastifyBaseLogger, defaultTtlSeconds: number, onLookup: (namespace: string, hit: boolean) => void = () => {}) {
  const versionKey = (namespace: string) => `cache:${namespace}:version`

  async function currentVersion(namespace: string): Promise<string | null> {
    try {
      return (await redis.get(versionKey(namespace))) ?? '0'
    } catch (err) {
      log.warn({ err: (err as Error).message, namespace }, 'cache unavailable; reading through')
      return null
    }
  }

  return {
    async wrap<T>(namespace: string, key: string, load: () => Promise<T>, ttlSeconds = defaultTtlSeconds): Promise<CacheResult<T>> {
      const version = await currentVersion(namespace)
      if (version === null) return { value: await load(), hit: false }
      const entryKey = `cache:${namespace}:v${version}:${key}`
      try {
        const cached = await redis.get(entryKey)
        if (cached !== null) {
          onLookup(namespace, true)
          return { value: JSON.parse(cached) as T, hit: true }
        }
      } catch (err) {
        log.warn({ err: (err as Error).message, namespace }, 'cache read failed; reading through')
      }
      onLookup(namespace, false)
      const value = await load()
      redis.set(entryKey, JSON.stringify(value), 'EX', ttlSeconds)
        .catch((err: Error) => log.warn({ err: err.message, namespace }, 'cache write failed'))
      return { value, hit: false }
    },

    /** Makes every cached entry of the namespace stale, or throws (the outbox retries it). */
    async bump(namespace: string) {
      await redis.incr(versionKey(namespace))
    },

    /** Makes every cached entry of the namespace stale. Called after the write commits. */
    async invalidate(namespace: string) {
      try {
        await redis.incr(versionKey(namespace))
      } catch (err) {
        // The entries would outlive the write by at most their TTL; say so loudly.
        log.error({ err: (err as Error).message, namespace }, 'cache invalidation failed; entries may be stale until their TTL')
      }
    },
  }
}
export type Cache = ReturnType<typeof createCache>
