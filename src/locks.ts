import { randomUUID } from 'node:crypto'
import type { RedisClient } from './redis-client.js'
import { Conflict } from './errors.js'

// A short mutual-exclusion lock in Redis (SET NX PX; released only by its holder), for
// read-modify-write on documents where the document store cannot guarantee it: FerretDB 1.24
// applies two racing conditional updates of one version both (see db/models/cart.ts).

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`

/** How long a lock lives unless its holder says otherwise. */
export const DEFAULT_LOCK_TTL_MS = 5000

export async function withLock<T>(redis: RedisClient, name: string, work: () => Promise<T>, opts: { ttlMs?: number; waitMs?: number } = {}): Promise<T> {
  const ttlMs = opts.ttlMs ?? DEFAULT_LOCK_TTL_MS
  const deadline = Date.now() + (opts.waitMs ?? 10_000)
  const key = `lock:${name}`
  const token = randomUUID()
  for (let attempt = 1; ; attempt++) {
    if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) === 'OK') break
    if (Date.now() > deadline) throw new Conflict('This resource is busy with other requests; retry', 'busy')
    await new Promise((r) => setTimeout(r, Math.min(2 * attempt, 25) + Math.random() * 5))
  }
  try {
    return await work()
  } finally {
    await redis.eval(RELEASE, 1, key, token).catch(() => { /* expires on its own */ })
  }
}
