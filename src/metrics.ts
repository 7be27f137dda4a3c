import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Command } from 'ioredis'
import type { RedisClient } from './redis-client.js'
import type { mongo } from 'mongoose'
import type { ReplicaReadResult } from '../db/replicas.js'

// The Prometheus metrics of one process (GET /metrics, plugins/metrics.ts). Business counters are
// incremented after the commit that makes them true, so they count what happened, once per
// process; Prometheus sums the instances.

const TIMED = Symbol('timed')

export type OrderEvent = 'placed' | 'paid' | 'cancelled' | 'refunded'

export function createMetrics({ processMetrics = true } = {}) {
  const registry = new Registry()
  if (processMetrics) collectDefaultMetrics({ register: registry, prefix: 'shop_process_' })
  const http = new Histogram({
    name: 'shop_http_request_duration_seconds', help: 'HTTP requests by route template, method and status class',
    labelNames: ['route', 'method', 'status_class'] as const, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [registry],
  })
  const orders = new Counter({ name: 'shop_orders_total', help: 'Orders placed, paid, cancelled and refunded (refunded: each refund)', labelNames: ['event', 'currency'] as const, registers: [registry] })
  const orderAmount = new Counter({ name: 'shop_order_amount_minor_total', help: 'Money of those events in minor units (placed/paid/cancelled: order totals; refunded: refund amounts)', labelNames: ['event', 'currency'] as const, registers: [registry] })
  const paymentFailures = new Counter({ name: 'shop_payment_failures_total', help: 'Payments the provider failed, by provider and reason', labelNames: ['provider', 'reason'] as const, registers: [registry] })
  const checkoutConflicts = new Counter({ name: 'shop_checkout_conflicts_total', help: 'Checkouts refused by the shop\'s rules (out of stock, coupon used up, cart already checked out)', labelNames: ['reason'] as const, registers: [registry] })
  const rateLimited = new Counter({ name: 'shop_rate_limited_total', help: 'Requests refused by a rate limit', labelNames: ['route'] as const, registers: [registry] })
  const cache = new Counter({ name: 'shop_cache_lookups_total', help: 'Response cache lookups by namespace and result', labelNames: ['namespace', 'result'] as const, registers: [registry] })
  const activityDropped = new Counter({ name: 'shop_activity_dropped_total', help: 'Activity log entries dropped because the buffer was full (MongoDB slow or away)', registers: [registry] })
  const outboxBacklog = new Gauge({ name: 'shop_outbox_backlog', help: 'Outbox events not yet handled', registers: [registry] })
  const replicaReads = new Counter({ name: 'shop_postgres_replica_reads_total', help: 'Lag-tolerant reads by where they ran: replica, or the primary because the replica failed (fallback-error) or all were marked down (fallback-down)', labelNames: ['result'] as const, registers: [registry] })
  const poolConnections = new Gauge({ name: 'shop_postgres_pool_connections', help: 'PostgreSQL pool connections by state', labelNames: ['state'] as const, registers: [registry] })
  // Store commands: the shared Redis client's and the MongoDB driver's, by command name.
  const storeBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]
  const redisCommands = new Histogram({ name: 'shop_redis_command_duration_seconds', help: 'Redis commands of the shared client, by command (sent to answered)', labelNames: ['command'] as const, buckets: storeBuckets, registers: [registry] })
  const redisErrors = new Counter({ name: 'shop_redis_command_errors_total', help: 'Redis commands of the shared client that failed (error reply, connection lost, timeout)', labelNames: ['command'] as const, registers: [registry] })
  const mongoCommands = new Histogram({ name: 'shop_mongodb_command_duration_seconds', help: 'MongoDB commands, by command (the driver\'s command monitoring)', labelNames: ['command'] as const, buckets: storeBuckets, registers: [registry] })
  const mongoErrors = new Counter({ name: 'shop_mongodb_command_errors_total', help: 'MongoDB commands that failed', labelNames: ['command'] as const, registers: [registry] })
  const queueJobs = new Gauge({ name: 'shop_queue_jobs', help: 'BullMQ jobs by queue and state (waiting, active, delayed, failed), read at each scrape', labelNames: ['queue', 'state'] as const, registers: [registry] })
  const jobDuration = new Histogram({ name: 'shop_job_duration_seconds', help: 'Background job runs by job name, failed ones included', labelNames: ['job'] as const, buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300], registers: [registry] })
  const jobFailures = new Counter({ name: 'shop_job_failures_total', help: 'Background job runs that threw', labelNames: ['job'] as const, registers: [registry] })

  return {
    registry,
    http, checkoutConflicts, rateLimited, outboxBacklog, poolConnections, activityDropped, queueJobs,
    order(event: OrderEvent, currency: string, amountMinor: number) {
      orders.inc({ event, currency })
      orderAmount.inc({ event, currency }, amountMinor)
    },
    paymentFailed(provider: string, reason: string) { paymentFailures.inc({ provider, reason }) },
    cacheLookup(namespace: string, hit: boolean) { cache.inc({ namespace, result: hit ? 'hit' : 'miss' }) },
    replicaRead(result: ReplicaReadResult) { replicaReads.inc({ result }) },
    jobRun(job: string, seconds: number, failed: boolean) {
      jobDuration.observe({ job }, seconds)
      if (failed) jobFailures.inc({ job })
    },

    /**
     * Times every command of this client. ioredis's own diagnostics channel (`ioredis:command`)
     * is process-wide (BullMQ's blocking connections too) and builds a context object per
     * command, so instead sendCommand is wrapped on this instance (pipelines and MULTI pass
     * through it too); a command re-sent after a reconnect is counted once.
     */
    instrumentRedis(redis: RedisClient) {
      const send = redis.sendCommand.bind(redis) as (command: Command, stream?: unknown, node?: unknown) => unknown
      const observe = (command: Command, started: number, failed: boolean) => {
        redisCommands.observe({ command: command.name }, (performance.now() - started) / 1000)
        if (failed) redisErrors.inc({ command: command.name })
      }
      // On the hot path of every request: nothing allocated beyond the settle callbacks.
      redis.sendCommand = ((command: Command & { [TIMED]?: true }, stream?: unknown, node?: unknown) => {
        if (!command[TIMED]) {
          command[TIMED] = true
          const started = performance.now()
          command.promise.then(() => observe(command, started, false), () => observe(command, started, true))
        }
        return send(command, stream, node)
      }) as RedisClient['sendCommand']
    },

    /** Times MongoDB commands from the driver's command monitoring (the client needs `monitorCommands: true`). */
    instrumentMongo(client: mongo.MongoClient) {
      client.on('commandSucceeded', (e) => mongoCommands.observe({ command: e.commandName }, e.duration / 1000))
      client.on('commandFailed', (e) => {
        mongoCommands.observe({ command: e.commandName }, e.duration / 1000)
        mongoErrors.inc({ command: e.commandName })
      })
    },
  }
}
export type Metrics = ReturnType<typeof createMetrics>
/** What the money-path workflows report; a no-op where no metrics are wanted. */
export type MoneyMetrics = Pick<Metrics, 'order' | 'paymentFailed'>
export const NO_METRICS: MoneyMetrics = { order: () => {}, paymentFailed: () => {} }
