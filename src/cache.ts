import { slotKey, type RedisClient } from './redis-client.js'
import type { FastifyBaseLogger } from 'fastify'
import { LRUCache } from 'lru-cache'
import { ALWAYS_AVAILABLE, type RedisHealth } from './redis-health.js'

// The one response cache. Keys carry the versions of the namespaces they depend on
// (`ce:<ns>[+<ns>]:v<version>[.<version>]:<key>`); a write bumps a version, so every older
// entry that depends on it becomes unreachable at once and expires on its own TTL. The versions
// (`cv:{cache}:<ns>`) share one hash tag, so reading several in one MGET works on a Redis
// Cluster; the entries spread over the cluster.
// Entries are JSON text, and a hit hands that text back (`json`) so a route can send it as it is:
// no parse and no second serialisation on the hot path (`value` parses only when read).
// In front of Redis sits a small in-process copy of recent entries, keyed by the same versioned
// keys: the versions are still read from Redis on every lookup (one round trip), so a bump on any
// instance makes this copy unreachable at once, exactly as it does the Redis entries; it saves
// the second round trip and the transfer of the entry. Concurrent misses of one key load once.
// Redis trouble never fails a request: a read error is a miss, a write error is dropped; both logged.
// While Redis is away (RedisHealth) the cache is not asked at all: reads go to the database.

export interface CacheResult<T> {
  value: T
  hit: boolean
  /** The entry as JSON text, when it came from the cache (a route may send it as it is). */
  json?: string
}

export interface CacheOptions {
  /** Bytes (UTF-16 code units) of entries kept in this process; 0 turns the in-process copy off. */
  localMaxSize?: number
}

const fromJson = <T>(json: string): CacheResult<T> => {
  let parsed: { value: T } | undefined
  return { hit: true, json, get value() { return (parsed ??= { value: JSON.parse(json) as T }).value } }
}

export function createCache(redis: RedisClient, log: FastifyBaseLogger, defaultTtlSeconds: number, onLookup: (namespace: string, hit: boolean) => void = () => {}, health: RedisHealth = ALWAYS_AVAILABLE, options: CacheOptions = {}) {
  const versionKey = (namespace: string) => slotKey('cv', 'cache', namespace)
  const localMaxSize = options.localMaxSize ?? 32 * 1024 * 1024
  const local = localMaxSize > 0 ? new LRUCache<string, string>({ maxSize: localMaxSize, sizeCalculation: (json) => Math.max(1, json.length) }) : undefined
  const loading = new Map<string, Promise<unknown>>()

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

  /** Loads and stores an entry; concurrent callers for the same key share one load. */
  function loadOnce<T>(entryKey: string, namespace: string, load: () => Promise<T>, ttlSeconds: number): Promise<T> {
    const running = loading.get(entryKey)
    if (running) return running as Promise<T>
    const done = (async () => {
      const value = await load()
      const json = JSON.stringify(value)
      local?.set(entryKey, json, { ttl: ttlSeconds * 1000 })
      redis.set(entryKey, json, 'EX', ttlSeconds)
        .catch((err: Error) => log.warn({ err: err.message, namespace }, 'cache write failed'))
      return value
    })()
    loading.set(entryKey, done)
    done.then(() => loading.delete(entryKey), () => loading.delete(entryKey))
    return done
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
      const entryKey = `ce:${depends.join('+')}:v${version}:${key}`
      const kept = local?.get(entryKey)
      if (kept !== undefined) {
        onLookup(namespace, true)
        return fromJson<T>(kept)
      }
      try {
        // The entry and its remaining lifetime in one round trip: the copy here expires with it.
        const [[getErr, cached], [, ttl]] = (await redis.pipeline().get(entryKey).pttl(entryKey).exec()) as [[Error | null, string | null], [Error | null, number]]
        if (getErr) throw getErr
        if (cached !== null) {
          onLookup(namespace, true)
          if (ttl > 0) local?.set(entryKey, cached, { ttl })
          return fromJson<T>(cached)
        }
      } catch (err) {
        health.failed(err as Error)
        log.warn({ err: (err as Error).message, namespace }, 'cache read failed; reading through')
      }
      onLookup(namespace, false)
      return { value: await loadOnce(entryKey, namespace, load, ttlSeconds), hit: false }
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
