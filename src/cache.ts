import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { ALWAYS_AVAILABLE, type RedisHealth } from './redis-health.js'

// The one response cache. Keys carry the versions of the namespaces they depend on
// (`cache:<ns>[+<ns>]:v<version>[.<version>]:<key>`); a write bumps a version, so every older
// entry that depends on it becomes unreachable at once and expires on its own TTL.
// Redis trouble never fails a request: a read error is a miss, a write error is dropped; both logged.
// While Redis is away (RedisHealth) the cache is not asked at all: reads go to the database.

export interface CacheResult<T> { value: T; hit: boolean }

export function createCache(redis: Redis, log: FastifyBaseLogger, defaultTtlSeconds: number, onLookup: (namespace: string, hit: boolean) => void = () => {}, health: RedisHealth = ALWAYS_AVAILABLE) {
  const versionKey = (namespace: string) => `cache:${namespace}:version`

  /** The versions of the namespaces an entry depends on, in one round trip; null when Redis is away. */
  async function currentVersions(namespaces: string[]): Promise<string | null> {
    if (!health.available) return null
    try {
      return (await redis.mget(...namespaces.map(versionKey))).map((v) => v ?? '0').join('.')
    } catch (err) {
      health.failed(err as Error)
      log.warn({ err: (err as Error).message, namespaces }, 'cache unavailable; reading through')
      return null
    }
  }

  return {
    /**
     * The cached value of `key`, loaded on a miss. An entry may depend on several namespaces (a
     * product's detail on the catalog and on that product): a bump of any of them makes it stale.
     */
    async wrap<T>(namespaces: string | string[], key: string, load: () => Promise<T>, ttlSeconds = defaultTtlSeconds): Promise<CacheResult<T>> {
      const depends = [namespaces].flat()
      const namespace = depends[0]!
      const version = await currentVersions(depends)
      if (version === null) {
        onLookup(namespace, false)
        return { value: await load(), hit: false }
      }
      const entryKey = `cache:${depends.join('+')}:v${version}:${key}`
      try {
        const cached = await redis.get(entryKey)
        if (cached !== null) {
          onLookup(namespace, true)
          return { value: JSON.parse(cached) as T, hit: true }
        }
      } catch (err) {
        health.failed(err as Error)
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
