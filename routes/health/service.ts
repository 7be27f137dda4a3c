import type { Connection } from 'mongoose'
import { Cluster } from 'ioredis'
import type { RedisClient } from '../../src/redis-client.js'
import { pingDb, type Db } from '../../db/client.js'

export type StoreCheck = 'up' | 'down' | 'degraded'
export interface ReadinessReport { ready: boolean; checks: { postgres: StoreCheck; mongo: StoreCheck; redis: StoreCheck }; failures: string[] }

const PING_TIMEOUT_MS = 2000

/**
 * A Redis Cluster as clients see it: down when a master the client routes to does not answer or
 * a slot has no master (cluster_state fail); degraded when every slot is served but a node has
 * failed or a master has no replica left, so one more loss would take slots away. A PING alone
 * reaches one node and says nothing of the others.
 */
async function clusterCheck(cluster: Cluster): Promise<StoreCheck> {
  const masters = cluster.nodes('master')
  if (!masters.length) throw new Error('no master known')
  // The client's slot table names a master for each slot; one it has no connection to is gone.
  const connected = new Set(cluster.nodes('all').map((node) => `${node.options.host}:${node.options.port}`))
  const routed = new Set(cluster.slots.map((owners) => owners?.[0]).filter((key): key is string => Boolean(key)))
  const lost = [...routed].filter((key) => !connected.has(key))
  if (lost.length) throw new Error(`master ${lost.join(', ')} not connected`)
  await Promise.all(masters.map((node) => node.ping().catch((err: Error) => {
    throw new Error(`master ${node.options.host}:${node.options.port} does not answer (${err.message})`)
  })))
  const info = String(await masters[0]!.cluster('INFO'))
  const state = /cluster_state:(\w+)/.exec(info)?.[1]
  if (state !== 'ok') throw new Error(`cluster_state ${state ?? 'unknown'}`)
  const nodes = String(await masters[0]!.cluster('NODES')).trim().split('\n').map((line) => line.split(' '))
  const failed = nodes.filter(([, , flags]) => /fail/.test(flags ?? ''))
  const servingMasters = nodes.filter(([, , flags, , , , , , ...slots]) => /master/.test(flags ?? '') && !/fail/.test(flags ?? '') && slots.length > 0)
  const withReplica = new Set(nodes.filter(([, , flags, , , , , link]) => /slave/.test(flags ?? '') && !/fail/.test(flags ?? '') && link === 'connected').map(([, , , master]) => master))
  return failed.length || servingMasters.some(([id]) => !withReplica.has(id)) ? 'degraded' : 'up'
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export function createHealthService(deps: { db: Db; mongo: Connection; redis: RedisClient }) {
  const pings = {
    postgres: () => pingDb(deps.db),
    mongo: async () => {
      if (!deps.mongo.db) throw new Error('not connected')
      await deps.mongo.db.admin().ping()
    },
    redis: async (): Promise<StoreCheck | void> => {
      if (deps.redis instanceof Cluster) return clusterCheck(deps.redis)
      await deps.redis.ping()
    },
  }
  return {
    /** Pings every store at once; a store that errors or takes over 2 s is down; a degraded one (a Redis Cluster short of a node) still serves. */
    async readiness(): Promise<ReadinessReport> {
      const names = Object.keys(pings) as (keyof typeof pings)[]
      const results = await Promise.allSettled(names.map((name) => withTimeout(pings[name](), PING_TIMEOUT_MS)))
      const checks = { postgres: 'up', mongo: 'up', redis: 'up' } as ReadinessReport['checks']
      const failures: string[] = []
      results.forEach((r, i) => {
        const name = names[i]!
        if (r.status === 'fulfilled' && r.value === 'degraded') checks[name] = 'degraded'
        if (r.status === 'rejected') {
          checks[name] = 'down'
          failures.push(`${name} (${r.reason instanceof Error ? r.reason.message : String(r.reason)})`)
        }
      })
      return { ready: failures.length === 0, checks, failures }
    },
  }
}
