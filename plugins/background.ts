import fp from 'fastify-plugin'
import { activityEntry, activityModel } from '../db/models/activity.js'
import { dayRetention } from '../src/mongo-retention.js'
import { hasRedisServer } from '../src/redis-client.js'

// What runs in the background, in one place: the outbox handlers (side effects after a commit)
// and the schedules. The API loads it (outbox events are handled at once by the request that
// wrote them, and by the drain schedule), and so does the worker (src/worker.ts). The schedules
// and the queue workers (app.jobs) start only in a process with jobs on: the API unless
// JOBS=off, and always the worker.

const HOUR = 3_600_000
const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000

export default fp(async (app) => {
  const { outbox, jobs, services, config } = app
  const { checkout: checkoutConfig } = config

  // Outbox handlers, one per topic of OutboxTopics (src/side-effects.ts), which types each
  // payload; every one is idempotent (delivery is at least once).
  outbox.on('cache.invalidate', async ({ namespace }) => { await app.cache.bump(namespace) })
  // The entry's id is the event's, so a second delivery is a duplicate key, not a second entry.
  const entries = activityModel(app.mongo)
  const activityRetention = dayRetention(entries, 'at')
  outbox.on('activity.record', async (payload, event) => {
    try {
      const at = new Date(payload.at)
      await activityRetention.note([at])
      await entries.collection.insertOne(activityEntry({ _id: event.id, type: payload.type, userId: payload.userId, ip: payload.ip, at, data: payload.data }) as never)
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
  })
  // The cart clear after a checkout: ordered quantities out, generation on.
  outbox.on('cart.consumed', async (payload) => {
    app.faults.at('cart.before-clear')
    const cart = 'owner' in payload ? { kind: 'owned' as const, owned: payload.owner } : { kind: 'user' as const, userId: payload.userId }
    await services.cart.consume(cart, payload.generation, payload.lines, payload.seen)
  })
  // Order notifications and low-stock alerts.
  const { orderMail, webhooks } = services
  outbox.on('mail.order', (payload, event) => orderMail.sendOrderMail(event, payload))
  outbox.on('mail.low-stock', (payload, event) => orderMail.sendLowStock(event, payload, checkoutConfig.lowStockThreshold))
  // Outbound webhooks: each event fans out to deliveries, which the `webhooks` queue sends.
  outbox.on('webhook.event', async (payload, event) => { await webhooks.fanOut(event.id, payload) })
  const domain = new URL(config.publicUrl).hostname
  outbox.on('mail.webhook-disabled', ({ endpointId }, event) => webhooks.mailDisabled(event.id, endpointId, services.mailOnce, domain))

  // Schedules.
  jobs.every('outbox-drain', 2_000, () => outbox.drain())
  jobs.every('outbox-purge', HOUR, () => outbox.purge())
  jobs.every('sent-mail-purge', HOUR, () => services.mailOnce.purge())
  jobs.every('order-expiry', 60_000, () => services.cancel.expireUnpaid())
  jobs.every('payments-reconcile', 60_000, () => services.reconcile())
  jobs.every('idempotency-purge', HOUR, () => services.idempotency.purgeExpired())
  jobs.every('order-access-purge', HOUR, () => services.orderAccess.purge())
  // Deliveries whose job was lost (Redis flushed, a crash) are queued again; without Redis the
  // sweep is the delivery loop's safety net and sends what is due itself.
  jobs.every('webhook-sweep', 60_000, () => (hasRedisServer(config.redis) ? webhooks.sweep() : webhooks.drain()))
  jobs.every('webhook-purge', HOUR, () => webhooks.purge())
  jobs.every('guest-cart-retention', HOUR, () => services.cart.removeAbandonedGuestCarts(config.cart.guestRetentionDays, config.mongo.timeoutMs))
  // Product images whose sizes are still to make are queued again (their entry lost: Redis
  // flushed, a dead worker); the queue's own worker makes them, a bounded number at once.
  jobs.every('image-sizes-sweep', 60_000, () => services.uploads.sweepSizes())
  jobs.every('upload-orphans', HOUR, () => services.uploads.removeOrphans(config.uploads.orphanGraceHours))
  // A customer's data: exports built and erasures run (or resumed after a dead worker's lease).
  jobs.every('data-exports', 5_000, () => services.dataExports.runDue())
  jobs.every('data-export-purge', HOUR, () => services.dataExports.purgeExpired())
  jobs.every('erasures', 5_000, () => services.erasure.runDue())
  // Catalog imports and exports run in their own queue; this queues again those whose entry was
  // lost (Redis flushed, a worker that died: its lease passes), and runs them itself without Redis.
  jobs.every('catalog-jobs-sweep', 30_000, () => (hasRedisServer(config.redis) ? services.catalogIo.sweep() : services.catalogIo.runDue(1)))
  jobs.every('catalog-files-purge', HOUR, () => services.catalogIo.purgeFiles())
  jobs.every('activity-retention', HOUR, () => activityRetention.deleteBefore(new Date(Date.now() - config.activityRetentionDays * 86_400_000), config.mongo.timeoutMs))
}, { name: 'background', dependencies: ['services', 'outbox', 'jobs', 'cache', 'mongo', 'mailer'] })
