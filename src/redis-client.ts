import { Cluster, Redis, type RedisOptions } from 'ioredis'

// The Redis behind the app: one server (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES).
// Redis and Cluster share ioredis's command interface, so code that takes a `RedisClient` runs
// on either. On a cluster, every key a multi-key command, MULTI, pipeline or Lua script touches
// must hash to one slot: such keys are built with `slotKey` and share a hash tag.

export type RedisClient = Redis | Cluster

export interface RedisConfig {
  url?: string
  /** Seed nodes of a Redis Cluster; when set, the app talks to the cluster, not `url`. */
  clusterNodes?: { host: string; port: number }[]
  keyPrefix: string
  commandTimeoutMs: number
}

/** Whether a Redis server (or cluster) is configured, rather than the in-process stand-in. */
export const hasRedisServer = (config: RedisConfig) => Boolean(config.clusterNodes?.length || config.url)

/** A new connection to the configured server or cluster; `options` apply to every node. */
export function connectRedis(config: RedisConfig, options: RedisOptions & { keyPrefix?: string }): RedisClient {
  if (config.clusterNodes?.length) {
    const { keyPrefix, enableOfflineQueue, lazyConnect, ...nodeOptions } = options
    return new Cluster(config.clusterNodes, { keyPrefix, enableOfflineQueue, lazyConnect, redisOptions: nodeOptions })
  }
  if (!config.url) throw new Error('connectRedis: neither REDIS_URL nor REDIS_CLUSTER_NODES is set')
  return new Redis(config.url, options)
}

/** Where the app's Redis is, for logs (no credentials). */
export function redisLocation(config: RedisConfig): string {
  if (config.clusterNodes?.length) return config.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',')
  if (!config.url) return 'in-process'
  const url = new URL(config.url)
  return `${url.hostname}:${url.port || 6379}`
}

/**
 * A key in the cluster slot of `group`: `<kind>:{<group>}[:<rest>]`. Redis hashes only the text
 * between the first `{` and `}`, so every key built with the same group lands on one slot (and
 * the client's keyPrefix, put in front, does not move it).
 */
export function slotKey(kind: string, group: string, rest?: string): string {
  if (!group || /[{}]/.test(group)) throw new Error(`slotKey: the group must be non-empty and without braces: ${group}`)
  return rest === undefined ? `${kind}:{${group}}` : `${kind}:{${group}}:${rest}`
}

/**
 * BullMQ's key prefix: a Lua script of BullMQ touches several keys of a queue, so all its keys
 * share one hash tag (BullMQ's advice for Redis Cluster). It starts with the app's key prefix,
 * which BullMQ's own connections do not add.
 */
export const bullPrefix = (keyPrefix: string) => `${keyPrefix}{bull}`
