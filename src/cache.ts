import { Cluster } from 'ioredis'
import { randomInt } from 'node:crypto'
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
// keys, so a bump on any instance makes this copy unreachable exactly as it does the Redis entries.
// With a subscriber connection, the versions too are kept in process: a bump publishes the
// namespace on a channel and every instance forgets its copy of that version at once (the next
// lookup reads it again). In case a message was lost, a version older than `versionTtlMs` is read
// again in the background (the lookup does not wait), and one older than twice that before the
// lookup; all are forgotten when the subscription or Redis comes back. A hit then costs no
// Redis round trip at all. Without a subscriber the versions are read on every lookup.
// Concurrent misses of one key load once.
// A Redis Cluster failover can lose the last writes of the master that died (replication is
// asynchronous), a bump among them: the promoted replica would answer a version from before the
// bump, and the entries of that version (here and on the other masters) would be served again.
// So a bump moves a version on by a random step, never back to a value it had, and every entry
// also depends on one generation (`cv:{cache}:*generation`): when the client loses a node, the
// cache is not used until the generation has moved on, which makes every earlier entry unreachable.
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
  /** A connection of its own for the version channel (a subscribed connection runs no other command). */
  subscriber?: RedisClient
  /** How long a version is trusted without a message, in ms. */
  versionTtlMs?: number
  /** false: every lookup loads (CACHE=off); versions are still bumped, for instances that cache. */
  enabled?: boolean
}

/** A result whose value is JSON text (from the cache, or written by its loader): parsed only when read. */
export const fromJson = <T>(json: string, hit = true): CacheResult<T> => {
  let parsed: { value: T } | undefined
  return { hit, json, get value() { return (parsed ??= { value: JSON.parse(json) as T }).value } }
}

/** The namespace every entry depends on besides its own: moved on after a failover. */
const GENERATION = '*generation'

export function createCache(redis: RedisClient, log: FastifyBaseLogger, defaultTtlSeconds: number, onLookup: (namespace: string, hit: boolean) => void = () => {}, health: RedisHealth = ALWAYS_AVAILABLE, options: CacheOptions = {}) {
  const versionKey = (namespace: string) => slotKey('cv', 'cache', namespace)
  const localMaxSize = options.localMaxSize ?? 32 * 1024 * 1024
  const local = localMaxSize > 0 ? new LRUCache<string, string>({ maxSize: localMaxSize, sizeCalculation: (json) => Math.max(1, json.length) }) : undefined
  const loading = new Map<string, Promise<unknown>>()

  // Versions kept in process: namespace -> [version, read at]. `epoch` moves on every message, so a
  // read that was on its way while a bump was announced does not store the version it replaced.
  const { subscriber } = options
  const versionTtlMs = options.versionTtlMs ?? 2000
  const channel = `${redis.options.keyPrefix ?? ''}cache:versions`
  const versions = new Map<string, [string, number]>()
  let epoch = 0
  let listening = false
  let wasAvailable = true
  const forgetAll = () => { versions.clear(); epoch++ }
  // Set when the cluster client loses a node; cleared once the generation has moved on.
  let failedOver = false
  let settling: Promise<boolean> | undefined
  if (redis instanceof Cluster) redis.on('-node', () => { failedOver = true; forgetAll() })
  function settleFailover(): Promise<boolean> {
    settling ??= bumpVersion(GENERATION).then(() => { failedOver = false; log.info('cache generation moved on after a Redis node was lost'); return true }, (err: Error) => {
      health.failed(err)
      return false
    }).finally(() => { settling = undefined })
    return settling
  }
  if (subscriber) {
    subscriber.on('message', (_channel: string, namespace: string) => { versions.delete(namespace); epoch++ })
    // On every (re)connection: subscribe, and start again from Redis, since messages may have been
    // missed meanwhile. Until the subscription answers, versions are read per lookup.
    subscriber.on('ready', () => {
      subscriber.subscribe(channel).then(() => { forgetAll(); listening = true }, (err: Error) => log.warn({ err: err.message }, 'cache version channel not subscribed'))
    })
    subscriber.on('close', () => { listening = false; forgetAll() })
    subscriber.on('error', (err: Error) => log.warn({ err: err.message }, 'cache version channel error'))
  }

  /** Reads versions from Redis, and keeps them unless a bump was announced meanwhile. */
  async function readVersions(namespaces: string[]): Promise<string> {
    const started = epoch
    const read = (await redis.mget(...namespaces.map(versionKey))).map((v) => v ?? '0')
    if (listening && started === epoch) {
      const now = Date.now()
      namespaces.forEach((namespace, i) => versions.set(namespace, [read[i]!, now]))
    }
    return read.join('.')
  }
  const refreshing = new Set<string>()
  function refreshVersions(namespaces: string[]) {
    const key = namespaces.join('+')
    if (refreshing.has(key)) return
    refreshing.add(key)
    readVersions(namespaces).catch((err: Error) => health.failed(err)).finally(() => refreshing.delete(key))
  }

  /** The versions of the namespaces an entry depends on, at most one round trip; null when Redis is away. */
  async function currentVersions(namespaces: string[]): Promise<string | null> {
    const available = health.available
    if (available !== wasAvailable) { wasAvailable = available; forgetAll() }
    if (!available) return null
    if (failedOver && !(await settleFailover())) return null
    if (listening) {
      const now = Date.now()
      let joined = ''
      let aging = false
      for (const namespace of namespaces) {
        const kept = versions.get(namespace)
        const age = kept ? now - kept[1] : Infinity
        if (age > 2 * versionTtlMs) { joined = ''; break }
        aging ||= age > versionTtlMs
        joined = joined ? `${joined}.${kept![0]}` : kept![0]
      }
      if (joined) {
        // Past its TTL but not twice it: answered with it, read again in the background.
        if (aging) refreshVersions(namespaces)
        return joined
      }
    }
    try {
      return await readVersions(namespaces)
    } catch (err) {
      health.failed(err as Error)
      log.warn({ err: (err as Error).message, namespaces }, 'cache unavailable; reading through')
      return null
    }
  }

  /** Moves the namespace's version on and tells every instance, in one round trip. */
  async function bumpVersion(namespace: string) {
    // A random step: a value this key had before (and which a failover could bring back) never comes again.
    const results = await redis.multi().incrby(versionKey(namespace), randomInt(1, 2 ** 31)).publish(channel, namespace).exec()
    const failed = results?.find(([err]) => err)?.[0]
    if (failed) throw failed
    // This instance forgets it now, not when its own message comes back.
    versions.delete(namespace)
    epoch++
  }

  /** Loads and stores an entry; concurrent callers for the same key share one load. */
  function loadOnce<T>(entryKey: string, namespace: string, load: () => Promise<CacheResult<T>>, ttlSeconds: number): Promise<CacheResult<T>> {
    const running = loading.get(entryKey)
    if (running) return running as Promise<CacheResult<T>>
    const done = (async () => {
      const loaded = await load()
      const json = loaded.json ?? JSON.stringify(loaded.value)
      local?.set(entryKey, json, { ttl: ttlSeconds * 1000 })
      redis.set(entryKey, json, 'EX', ttlSeconds)
        .catch((err: Error) => log.warn({ err: err.message, namespace }, 'cache write failed'))
      return loaded
    })()
    loading.set(entryKey, done)
    done.then(() => loading.delete(entryKey), () => loading.delete(entryKey))
    return done
  }

  /** wrap's work, for a loader whose result says what to store (its json, else its value serialised). */
  async function lookup<T>(namespaces: string | string[], key: string, load: () => Promise<CacheResult<T>>, ttlSeconds: number): Promise<CacheResult<T>> {
    if (options.enabled === false) return load()
    const depends = [namespaces].flat()
    const namespace = depends[0]!
    const version = await currentVersions([...depends, GENERATION])
    if (version === null) {
      onLookup(namespace, false)
      return load()
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
    return loadOnce(entryKey, namespace, load, ttlSeconds)
  }

  return {
    /** How long an entry lives unless its caller says less. */
    ttlSeconds: defaultTtlSeconds,
    /** False with CACHE=off: wrap always loads, so what only a cache key needs need not be read. */
    enabled: options.enabled !== false,

    /**
     * The cached value of `key`, loaded on a miss. An entry may depend on several namespaces (a
     * product's detail on the catalog and on that product): a bump of any of them makes it stale.
     */
    wrap<T>(namespaces: string | string[], key: string, load: () => Promise<T>, ttlSeconds = defaultTtlSeconds): Promise<CacheResult<T>> {
      return lookup(namespaces, key, async () => ({ value: await load(), hit: false }), ttlSeconds)
    },

    /**
     * wrap, for a loader that writes its value as JSON text itself (PostgreSQL built it): the text
     * is stored and answered as it is, and parsed only if the value is read.
     */
    wrapJson<T>(namespaces: string | string[], key: string, load: () => Promise<string>, ttlSeconds = defaultTtlSeconds): Promise<CacheResult<T>> {
      return lookup(namespaces, key, async () => fromJson<T>(await load(), false), ttlSeconds)
    },

    /** Makes every cached entry of the namespace stale, or throws (the outbox retries it). */
    async bump(namespace: string) {
      await bumpVersion(namespace)
    },

    /** Makes every cached entry of the namespace stale. Called after the write commits. */
    async invalidate(namespace: string) {
      try {
        await bumpVersion(namespace)
      } catch (err) {
        // The entries would outlive the write by at most their TTL; say so loudly.
        log.error({ err: (err as Error).message, namespace }, 'cache invalidation failed; entries may be stale until their TTL')
      }
    },
  }
}
export type Cache = ReturnType<typeof createCache>
