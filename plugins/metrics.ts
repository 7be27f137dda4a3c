import { timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import { AppError } from '../src/errors.js'
import { createMetrics, type Metrics } from '../src/metrics.js'
import { hasRedisServer } from '../src/redis-client.js'

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

// Prometheus metrics: request latency per route template, the PostgreSQL pool, Redis and MongoDB
// command latency, job queues and runs, the outbox backlog, business counters (reported by the
// workflows), refusals. `GET /metrics` answers only with `Authorization: Bearer $METRICS_TOKEN`
// and does not exist without it; it is outside the API contract. Without the token nobody can
// read them, so nothing is timed either (no hooks, no command wrapping, no process metrics); the
// business counters stay, at an increment each.
const STATUS_CLASS = ['0xx', '1xx', '2xx', '3xx', '4xx', '5xx']
const CHECKOUT_CONFLICTS = new Set(['checkout-unavailable', 'cart-already-checked-out', 'cart-empty', 'coupon-not-applicable'])

export default fp(async (app) => {
  const token = app.config.metricsToken
  const metrics = createMetrics({ processMetrics: Boolean(token) })
  app.decorate('metrics', metrics)
  if (!token) return
  if (hasRedisServer(app.config.redis)) metrics.instrumentRedis(app.redis)
  if (app.mongo.readyState === 1) metrics.instrumentMongo(app.mongo.getClient())
  app.jobs.onFinish = (job, seconds, failed) => metrics.jobRun(job, seconds, failed)

  // A callback hook, not an async one: no promise per request.
  app.addHook('onResponse', (req, reply, done) => {
    const route = req.routeOptions.url ?? 'unmatched'
    if (route !== '/metrics') metrics.http.observe({ route, method: req.method, status_class: STATUS_CLASS[Math.floor(reply.statusCode / 100)] ?? 'other' }, reply.elapsedTime / 1000)
    done()
  })
  app.addHook('onError', async (req, _reply, error) => {
    const route = req.routeOptions.url ?? 'unmatched'
    if ((error as { statusCode?: number }).statusCode === 429) metrics.rateLimited.inc({ route })
    if (route === '/orders' && req.method === 'POST' && error instanceof AppError && error.statusCode === 409 && CHECKOUT_CONFLICTS.has(error.slug)) {
      metrics.checkoutConflicts.inc({ reason: error.slug })
    }
  })

  const expected = Buffer.from(`Bearer ${token}`)
  app.get('/metrics', { config: { rateLimit: false }, schema: { hide: true } }, async (req, reply) => {
    const given = Buffer.from(req.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return reply.code(404).send()
    const [backlog, queues] = await Promise.all([app.outbox.pending(), app.jobs.counts()])
    metrics.outboxBacklog.set(backlog)
    // Redis away: the queue series go missing rather than repeat the last figures.
    metrics.queueJobs.reset()
    for (const [queue, counts] of Object.entries(queues)) {
      for (const [state, count] of Object.entries(counts)) metrics.queueJobs.set({ queue, state }, count)
    }
    const pool = (app.db as unknown as { $client?: { totalCount?: number; idleCount?: number; waitingCount?: number } }).$client
    if (pool?.totalCount !== undefined) {
      metrics.poolConnections.set({ state: 'in_use' }, pool.totalCount - (pool.idleCount ?? 0))
      metrics.poolConnections.set({ state: 'idle' }, pool.idleCount ?? 0)
      metrics.poolConnections.set({ state: 'waiting' }, pool.waitingCount ?? 0)
    }
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}, { name: 'metrics', dependencies: ['config', 'postgres', 'redis', 'mongo', 'jobs'] })
