import closeWithGrace from 'close-with-grace'
import { hasRedisServer } from './redis-client.js'
import { ConfigError, loadConfigOrExit } from './config.js'
import { tracingWanted } from './tracing.js'

// `npm run worker`: the schedules, the outbox drain and the queue workers in their own process,
// on the same stores as the API (which then runs with JOBS=off and only enqueues). Several
// workers may run: each scheduled run and each queued job is taken by one of them (BullMQ).

// Jobs are shared through Redis and the stores must be servers: the embedded mode (PGlite,
// the in-process Redis stand-in) belongs to one process, which runs its jobs itself.
const config = loadConfigOrExit({
  check: (config) => {
    const missing = [
      ...config.postgres.url ? [] : ['DATABASE_URL'],
      ...hasRedisServer(config.redis) ? [] : ['REDIS_URL (or REDIS_CLUSTER_NODES)'],
      ...config.mongo.url ? [] : ['MONGODB_URL'],
    ]
    if (missing.length) throw new ConfigError(`the worker needs the stores as servers: set ${missing.join(', ')} (without them, run the API alone: it runs its jobs itself)`)
  },
})

const tracing = tracingWanted() ? await (await import('./telemetry.js')).startTracing() : undefined
const { buildWorker } = await import('./app.js')
const worker = await buildWorker(config)

closeWithGrace({ delay: 30_000 }, async ({ signal, err }) => {
  if (err) worker.log.error({ err }, 'worker closing after an uncaught error')
  else worker.log.info({ signal }, 'worker shutting down: finishing the jobs it holds')
  // Closing waits for the running jobs (BullMQ's graceful close); what is left waits in Redis.
  await worker.close()
  worker.log.info('worker stopped')
  await tracing?.shutdown()
})

if (config.workerPort) await worker.listen({ host: config.host, port: config.workerPort })
else await worker.ready()
worker.log.info({ health: config.workerPort ? `http://${config.host}:${config.workerPort}/health` : null }, 'worker running: schedules, outbox drain and queue workers')
