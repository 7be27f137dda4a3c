import type { Job, Queue, Worker } from 'bullmq'
import { bullPrefix, connectRedis, hasRedisServer, type RedisConfig } from './redis-client.js'
import type { FastifyBaseLogger } from 'fastify'
import { createWorkQueue, type RunResult, type WorkQueue } from './queue.js'

// Background jobs (retention, expiry) and work queues (webhook deliveries). With a Redis server
// the schedules are BullMQ job schedulers: one schedule per name across all instances, and each
// run is taken by exactly one worker. The embedded single-process mode runs the same functions
// on in-process timers. Producers enqueue wherever they run; only start() (a process with jobs
// on: the API by default, or `npm run worker`) runs the schedules and the queue workers.

export type JobFunction = () => Promise<unknown>
export interface JobRunner {
  /** Runs `run` every `intervalMs`. Call before start(). */
  every(name: string, intervalMs: number, run: JobFunction): void
  /** A work queue of ids whose worker runs with the schedules. Call before start(). */
  queue(opts: { name: string; maxRuns: number; concurrency: number; process: (id: string) => Promise<RunResult> }): WorkQueue
  start(): Promise<void>
  close(): Promise<void>
  /** For tests: observe each run as it finishes. */
  onRun?: (name: string, runId: string) => void
  /** For metrics: each run's duration and whether it threw. */
  onFinish?: (name: string, seconds: number, failed: boolean) => void
  /** Jobs per queue and state (waiting, active, delayed, failed); empty without BullMQ. */
  counts(): Promise<Record<string, Record<string, number>>>
}

const QUEUE = 'maintenance'
const MAINTENANCE_CONCURRENCY = 4

export function createJobRunner(opts: { redis: RedisConfig; log: FastifyBaseLogger }): JobRunner {
  const jobs = new Map<string, { intervalMs: number; run: JobFunction }>()
  const queues: WorkQueue[] = []
  const runner: JobRunner = {
    every(name, intervalMs, run) { jobs.set(name, { intervalMs, run }) },
    queue(queueOpts) {
      const queue = createWorkQueue({ ...queueOpts, redis: opts.redis, log: opts.log })
      queues.push(queue)
      return queue
    },
    start: async () => {},
    close: async () => {},
    counts: async () => ({}),
  }
  const startQueues = () => Promise.all(queues.map((q) => q.start()))
  const closeQueues = () => Promise.all(queues.map((q) => q.close()))

  async function runOne(name: string, runId: string) {
    const job = jobs.get(name)
    if (!job) return
    const started = Date.now()
    let failed = true
    try {
      const result = await job.run()
      failed = false
      opts.log.info({ job: name, runId, ms: Date.now() - started, result }, 'job finished')
    } finally {
      runner.onFinish?.(name, (Date.now() - started) / 1000, failed)
      runner.onRun?.(name, runId)
    }
  }

  if (!hasRedisServer(opts.redis)) {
    const timers: NodeJS.Timeout[] = []
    runner.start = async () => {
      await startQueues()
      for (const [name, { intervalMs }] of jobs) {
        let running = false
        const timer = setInterval(() => {
          if (running) return
          running = true
          runOne(name, new Date().toISOString())
            .catch((err: Error) => opts.log.error({ job: name, err }, 'job failed'))
            .finally(() => { running = false })
        }, intervalMs)
        timer.unref()
        timers.push(timer)
      }
    }
    runner.close = async () => { timers.forEach(clearInterval); await closeQueues() }
    return runner
  }

  // BullMQ needs its own connections: blocking commands, and no ioredis keyPrefix (it has `prefix`).
  const connection = () => connectRedis(opts.redis, { maxRetriesPerRequest: null, lazyConnect: false })
  const prefix = bullPrefix(opts.redis.keyPrefix)
  let queue: Queue | undefined
  let worker: Worker | undefined
  runner.start = async () => {
    await startQueues()
    if (!jobs.size) return
    // Loaded only with a Redis server: the embedded mode and the dev loop never pay for it.
    const { Queue, Worker } = await import('bullmq')
    queue = new Queue(QUEUE, { connection: connection(), prefix })
    for (const [name, { intervalMs }] of jobs) {
      await queue.upsertJobScheduler(name, { every: intervalMs }, { name, opts: { removeOnComplete: 100, removeOnFail: 100 } })
    }
    // Several runs at once: one slow run (an erasure step waiting on a row lock, a retention pass
    // over a large log) must not hold up the outbox drain and every other schedule behind it.
    // Runs of one schedule may then overlap, as they already do across instances: every job
    // takes its work under claims or leases, or is idempotent.
    worker = new Worker(QUEUE, (job: Job) => runOne(job.name, job.id ?? ''), { connection: connection(), prefix, concurrency: MAINTENANCE_CONCURRENCY })
    worker.on('failed', (job, err) => opts.log.error({ job: job?.name, err }, 'job failed'))
    worker.on('error', (err) => opts.log.warn({ err: err.message }, 'job worker error'))
  }
  runner.counts = async (): Promise<Record<string, Record<string, number>>> => {
    // Redis away: no queue figures this scrape rather than no scrape at all.
    const counts = await queue?.getJobCounts('waiting', 'active', 'delayed', 'failed').catch(() => undefined)
    return counts ? { [QUEUE]: counts } : {}
  }
  runner.close = async () => {
    await closeQueues()
    await worker?.close()
    await queue?.close()
    await Promise.all([worker, queue].map(async (c) => (await c?.client)?.disconnect()))
  }
  return runner
}
