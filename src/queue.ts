import type { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'

// A work queue of ids (outbound webhook deliveries): each id is one BullMQ job (the id is the
// job id, so adding it again while it waits changes nothing), retried after a failed run with
// the delay the processor asks for (exponential; the processor keeps the schedule in
// PostgreSQL). Without a Redis server (embedded mode) the same processor runs on in-process
// timers. Producers always enqueue; only a process with jobs on runs the worker.

/** What a run asks for next: nothing (done), or another run after `retryInMs`. */
export type RunResult = { retryInMs?: number }
export interface WorkQueue {
  add(ids: string[]): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

class RetryLater extends Error {
  constructor(readonly retryInMs: number) { super(`not done; retrying in ${retryInMs} ms`) }
}

export function createWorkQueue(opts: {
  name: string; redisUrl?: string; prefix: string; log: FastifyBaseLogger
  /** Most runs of one job (BullMQ attempts); the processor decides when to stop before that. */
  maxRuns: number; concurrency: number; runWorker: boolean
  process: (id: string) => Promise<RunResult>
}): WorkQueue {
  if (!opts.redisUrl) {
    const timers = new Set<NodeJS.Timeout>()
    let open = false
    const schedule = (id: string, delayMs: number) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        opts.process(id)
          .then((r) => { if (open && r.retryInMs !== undefined) schedule(id, r.retryInMs) })
          .catch((err: Error) => opts.log.error({ queue: opts.name, id, err }, 'queued work failed'))
      }, delayMs)
      timer.unref()
      timers.add(timer)
    }
    return {
      async add(ids) { if (open) ids.forEach((id) => schedule(id, 0)) },
      async start() { open = opts.runWorker },
      async close() { open = false; timers.forEach(clearTimeout); timers.clear() },
    }
  }

  // BullMQ needs its own connections (blocking commands, no ioredis keyPrefix; it has `prefix`).
  const connection = () => new Redis(opts.redisUrl!, { maxRetriesPerRequest: null, lazyConnect: false })
  const prefix = `${opts.prefix}bull`
  let queue: Promise<Queue> | undefined
  let worker: Worker | undefined
  // Loaded on first use only: the embedded mode and the dev loop never pay for it.
  const getQueue = () => (queue ??= import('bullmq').then(({ Queue }) => new Queue(opts.name, { connection: connection(), prefix })))
  return {
    async add(ids) {
      if (!ids.length) return
      const q = await getQueue()
      await q.addBulk(ids.map((id) => ({
        name: opts.name, data: { id },
        opts: { jobId: id, attempts: opts.maxRuns, backoff: { type: 'asked' }, removeOnComplete: true, removeOnFail: true },
      })))
    },
    async start() {
      if (!opts.runWorker) return
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
      await worker?.close()
      const q = queue ? await queue : undefined
      await q?.close()
      await Promise.all([worker, q].map(async (c) => (await c?.client)?.disconnect()))
    },
  }
}
