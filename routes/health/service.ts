import type { Connection } from 'mongoose'
import type { RedisClient } from '../../src/redis-client.js'
import { pingDb, type Db } from '../../db/client.js'

export type StoreCheck = 'up' | 'down'
export interface ReadinessReport { ready: boolean; checks: { postgres: StoreCheck; mongo: StoreCheck; redis: StoreCheck }; failures: string[] }

const PING_TIMEOUT_MS = 2000

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
    redis: async () => { await deps.redis.ping() },
  }
  return {
    /** Pings every store at once; a store that errors or takes over 2 s is down. */
    async readiness(): Promise<ReadinessReport> {
      const names = Object.keys(pings) as (keyof typeof pings)[]
      const results = await Promise.allSettled(names.map((name) => withTimeout(pings[name](), PING_TIMEOUT_MS)))
      const checks = { postgres: 'up', mongo: 'up', redis: 'up' } as ReadinessReport['checks']
      const failures: string[] = []
      results.forEach((r, i) => {
        const name = names[i]!
        if (r.status === 'rejected') {
          checks[name] = 'down'
          failures.push(`${name} (${r.reason instanceof Error ? r.reason.message : String(r.reason)})`)
        }
      })
      return { ready: failures.length === 0, checks, failures }
    },
  }
}
