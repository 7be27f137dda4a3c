import type { Queue, Worker } from 'bullmq'
import { bullPrefix, connectRedis, hasRedisServer, type RedisClient, type RedisConfig } from './redis-client.js'
import type { FastifyBaseLogger } from 'fastify'

// A work queue of ids (outbound webhook deliveries): each id is one BullMQ job (the id is the
// job id, so adding it again while it waits changes nothing), retried after a failed run with
// the delay the processor asks for (exponential; the processor keeps the schedule in
// PostgreSQL). Without a Redis server (embedded mode) the same processor runs on in-process
// timers. Producers always enqueue; start() runs the worker, and the jobs runner (src/jobs.ts)
// calls it only in a process with jobs on.

/** What a run asks for next: nothing (done), or another run after `retryInMs`. */
export type RunResult = { retryInMs?: number }
export interface WorkQueue {
  add(ids: string[]): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

const ADD_TIMEOUT_MS = 3000

class RetryLater extends Error {
  constructor(readonly retryInMs: number) { super(`not done; retrying in ${retryInMs} ms`) }
}

export function createWorkQueue(opts: {
  name: string; redis: RedisConfig; log: FastifyBaseLogger
  /** Most runs of one job (BullMQ attempts); the processor decides when to stop before that. */
  maxRuns: number; concurrency: number
  process: (id: string) => Promise<RunResult>
}): WorkQueue {
  if (!hasRedisServer(opts.redis)) {
    // As BullMQ does: at most `concurrency` runs at once, the rest wait their turn in order, and
    // an id already waiting or running is not added twice.
    const timers = new Set<NodeJS.Timeout>()
    const queued = new Set<string>()
    const ready: string[] = []
    let running = 0
    let open = false
    const pump = () => {
      while (open && running < opts.concurrency && ready.length) {
        const id = ready.shift()!
        running++
        opts.process(id)
          .then((r) => { queued.delete(id); if (open && r.retryInMs !== undefined) schedule(id, r.retryInMs) })
          .catch((err: Error) => { queued.delete(id); opts.log.error({ queue: opts.name, id, err }, 'queued work failed') })
          .finally(() => { running--; pump() })
      }
    }
    const schedule = (id: string, delayMs: number) => {
      if (queued.has(id)) return
      queued.add(id)
      const timer = setTimeout(() => { timers.delete(timer); ready.push(id); pump() }, delayMs)
      timer.unref()
      timers.add(timer)
    }
    return {
      async add(ids) { if (open) ids.forEach((id) => schedule(id, 0)) },
      async start() { open = true },
      async close() { open = false; timers.forEach(clearTimeout); timers.clear(); ready.length = 0; queued.clear() },
    }
  }

  // BullMQ needs its own connections (blocking commands, no ioredis keyPrefix; it has `prefix`).
  const connections: RedisClient[] = []
  const connection = () => {
    const redis = connectRedis(opts.redis, { maxRetriesPerRequest: null, lazyConnect: false })
    connections.push(redis)
    return redis
  }
  const prefix = bullPrefix(opts.redis.keyPrefix)
  let queue: Promise<Queue> | undefined
  let worker: Worker | undefined
  // Loaded on first use only: the embedded mode and the dev loop never pay for it.
  const getQueue = () => (queue ??= import('bullmq').then(({ Queue }) => {
    const q = new Queue(opts.name, { connection: connection(), prefix })
    // Without a listener an 'error' (Redis away) would end the process.
    q.on('error', (err) => opts.log.warn({ queue: opts.name, err: err.message }, 'queue connection error'))
    return q
  }))
  return {
    async add(ids) {
      if (!ids.length) return
      const q = await getQueue()
      const adding = q.addBulk(ids.map((id) => ({
        name: opts.name, data: { id },
        opts: { jobId: id, attempts: opts.maxRuns, backoff: { type: 'asked' }, removeOnComplete: true, removeOnFail: true },
      })))
      // BullMQ's connection waits for Redis without limit; a caller (an outbox handler run in a
      // request) gives up instead, and the outbox or the sweep enqueues again (same job ids).
      let timer: NodeJS.Timeout | undefined
      const giveUp = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`queue ${opts.name}: Redis did not take the jobs within ${ADD_TIMEOUT_MS} ms`)), ADD_TIMEOUT_MS) })
      adding.catch(() => {})
      try { await Promise.race([adding, giveUp]) } finally { clearTimeout(timer) }
    },
    async start() {
      const { Worker } = await import('bullmq')
      worker = new Worker(opts.name, async (job) => {
        const result = await opts.process(String(job.data.id))
        if (result.retryInMs !== undefined) throw new RetryLater(result.retryInMs)
      }, {
        connection: connection(), prefix, concurrency: opts.concurrency,
        // The delay before the next run is the one the processor computed.
        settings: { backoffStrategy: (_attemptsMade: number, _type?: string, err?: Error) => (err instanceof RetryLater ? err.retryInMs : 1000) },
      })
      worker.on('error', (err) => opts.log.warn({ queue: opts.name, err: err.message }, 'queue worker error'))
    },
    async close() {
      // A graceful close waits for Redis; with Redis away, shutdown does not wait for ever.
      const bounded = (closing: Promise<void> | undefined) => Promise.race([closing?.catch(() => {}), new Promise((r) => setTimeout(r, ADD_TIMEOUT_MS).unref())])
      await bounded(worker?.close())
      await bounded(queue?.then((q) => q.close()))
      connections.forEach((c) => c.disconnect())
    },
  }
}
