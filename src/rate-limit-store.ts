import type { RedisClient } from './redis-client.js'
import type { FastifyBaseLogger } from 'fastify'
import type { FastifyRateLimitStore } from '@fastify/rate-limit'
import { ALWAYS_AVAILABLE, type RedisHealth } from './redis-health.js'

// A store for @fastify/rate-limit that counts in Redis, so every instance counts together,
// without a Redis round trip per request. Far from its limit, a client's requests are counted
// in this process and added to Redis in one pipelined INCRBY per key every `syncMs`; each sync
// answers the count of all instances. Within `headroom` of the limit (half the limit, and at
// least 50 requests), every request is counted in Redis itself, so the limit holds exactly there;
// what the other instances counted in their last `syncMs` is the tolerance. Small limits (the
// sign-in limits) are therefore always exact.
//
// While Redis is away (RedisHealth), every request is counted in this process alone: each
// instance then enforces the limit on its own, rather than no instance at all. Those counts are
// not sent to Redis later; once it answers again, counting goes back to it.

export interface SyncedStoreOptions {
  /** How often counts made in this process are added to Redis. */
  syncMs?: number
  /** Requests below the limit from which every request is counted in Redis (at least this, or half the limit). */
  minHeadroom?: number
}

/** The most clients counted in the process while Redis is away; beyond it the oldest is forgotten. */
export const MAX_LOCAL_KEYS = 100_000

/** Fixed-window counts kept in this process alone, for while Redis is away. */
export function createLocalCounts(maxKeys = MAX_LOCAL_KEYS) {
  const windows = new Map<string, { count: number; resetAt: number }>()
  return {
    /** Counts one request of `key`: the count in its window and the ms left of the window. */
    incr(key: string, timeWindow: number, now = Date.now()) {
      let entry = windows.get(key)
      if (!entry || now >= entry.resetAt) {
        windows.delete(key)
        if (windows.size >= maxKeys) {
          for (const [k, e] of windows) if (now >= e.resetAt) windows.delete(k)
          // Still full: the oldest window goes (a Map iterates in insertion order).
          if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!)
        }
        entry = { count: 0, resetAt: now + timeWindow }
        windows.set(key, entry)
      }
      entry.count++
      return { current: entry.count, ttl: entry.resetAt - now }
    },
    get size() { return windows.size },
  }
}

export interface Counter {
  /** The count Redis answered last (all instances), for the window ending at `resetAt`. */
  known: number
  /** Counted here, not yet sent. */
  pending: number
  /** Sent, not yet answered. */
  inFlight: number
  resetAt: number
  windowMs: number
}

/** The key's counter at `now`: a new one, or this one with its window started again once past its end. */
export function counterAt(counter: Counter | undefined, now: number, timeWindow: number): Counter {
  if (!counter) return { known: 0, pending: 0, inFlight: 0, resetAt: now + timeWindow, windowMs: timeWindow }
  if (now >= counter.resetAt) { counter.known = 0; counter.resetAt = now + timeWindow }
  return counter
}

/**
 * The count this request makes as far as this process knows, and whether it may be counted here
 * and synced later: only with at least `minHeadroom` requests, and half the limit, still to spare.
 */
export function estimateOf(counter: Pick<Counter, 'known' | 'inFlight' | 'pending'>, max: number, minHeadroom: number) {
  const estimate = counter.known + counter.inFlight + counter.pending + 1
  return { estimate, countHere: max - estimate >= Math.max(minHeadroom, max / 2) }
}

// INCRBY, and the window's expiry on the first count: [count, ms left in the window].
const SCRIPT = `
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {current, ttl}`

type Scripted = RedisClient & { rateLimitAdd(key: string, by: number, windowMs: number): Promise<[number, number]> }

/** Returns the store class to hand to @fastify/rate-limit (`store`) and a flush for shutdown. */
export function createSyncedRateLimitStore(redis: RedisClient, log: FastifyBaseLogger, namespace: string, health: RedisHealth = ALWAYS_AVAILABLE, options: SyncedStoreOptions = {}) {
  const syncMs = options.syncMs ?? 100
  const minHeadroom = options.minHeadroom ?? 50
  if (!('rateLimitAdd' in redis)) redis.defineCommand('rateLimitAdd', { numberOfKeys: 1, lua: SCRIPT })
  const scripted = redis as Scripted
  const counters = new Map<string, Counter>()
  const local = createLocalCounts()
  let timer: NodeJS.Timeout | undefined

  const settle = (counter: Counter, sent: number, [current, ttl]: [number, number]) => {
    counter.inFlight -= sent
    counter.known = current
    counter.resetAt = Date.now() + ttl
  }
  const failed = (counter: Counter, sent: number, err: Error) => {
    // Counts lost with a failing Redis; until it answers again, requests are counted in the process alone.
    counter.inFlight -= sent
    health.failed(err)
    log.warn({ err: err.message }, 'rate limit counts not synchronised')
  }

  /**
   * Sends every pending count: in one pipeline to a single server; to a cluster as separate
   * commands (a cluster pipeline must stay on one slot, and each client's key has its own).
   */
  function sync() {
    timer = undefined
    const now = Date.now()
    const sent: [string, Counter, number][] = []
    for (const [key, counter] of counters) {
      if (counter.pending === 0) {
        // Idle and past its window: forget it.
        if (counter.inFlight === 0 && now >= counter.resetAt) counters.delete(key)
        continue
      }
      counter.inFlight += counter.pending
      sent.push([key, counter, counter.pending])
      counter.pending = 0
    }
    if (!sent.length) return Promise.resolve()
    if (redis.isCluster) {
      return Promise.all(sent.map(([key, counter, by]) => scripted.rateLimitAdd(key, by, counter.windowMs)
        .then((res) => settle(counter, by, res), (err: Error) => failed(counter, by, err)))).then(() => {})
    }
    const pipeline = redis.pipeline()
    for (const [key, counter, by] of sent) (pipeline as unknown as Scripted).rateLimitAdd(key, by, counter.windowMs)
    return pipeline.exec().then((results) => {
      results?.forEach(([err, res], i) => {
        const [, counter, by] = sent[i]!
        if (err) failed(counter, by, err)
        else settle(counter, by, res as [number, number])
      })
    }, (err: Error) => { for (const [, counter, by] of sent) failed(counter, by, err) })
  }

  class SyncedStore implements FastifyRateLimitStore {
    constructor(_globalParams?: unknown, private readonly prefix = namespace) {}

    incr(id: string, cb: Parameters<FastifyRateLimitStore['incr']>[1], timeWindow: number, max: number) {
      const key = this.prefix + id
      const now = Date.now()
      // Redis known to be away: counted here alone, at once (no request waits on a dead Redis).
      if (!health.available) {
        cb(null, local.incr(key, timeWindow, now))
        return
      }
      const counter = counterAt(counters.get(key), now, timeWindow)
      counters.set(key, counter)
      const { estimate, countHere } = estimateOf(counter, max, minHeadroom)
      if (countHere) {
        counter.pending++
        timer ??= setTimeout(sync, syncMs).unref()
        cb(null, { current: estimate, ttl: counter.resetAt - now })
        return
      }
      // Near the limit: this request, and what is pending here, counted in Redis now.
      const by = counter.pending + 1
      counter.pending = 0
      counter.inFlight += by
      scripted.rateLimitAdd(key, by, timeWindow).then((res) => {
        settle(counter, by, res)
        cb(null, { current: res[0], ttl: res[1] })
      }, (err: Error) => {
        // Redis failed just now: this request is the first counted here alone.
        failed(counter, by, err)
        cb(null, local.incr(key, timeWindow))
      })
    }

    /** A route's own limit counts apart (the same keys as the plugin's Redis store). */
    child(routeOptions: Parameters<FastifyRateLimitStore['child']>[0]) {
      // The plugin passes the route's merged limit options, which carry routeInfo (its typings say RouteOptions).
      const { routeInfo } = routeOptions as unknown as { routeInfo: { method: string; url: string } }
      return new SyncedStore(undefined, `${this.prefix}${routeInfo.method}${routeInfo.url}-`)
    }
  }

  /** Sends what is counted here now (at shutdown). */
  const flush = () => {
    clearTimeout(timer)
    return sync()
  }
  return { Store: SyncedStore, flush }
}
