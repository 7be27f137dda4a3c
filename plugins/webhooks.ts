import fp from 'fastify-plugin'
import { createWorkQueue, type WorkQueue } from '../src/queue.js'
import { hasRedisServer } from '../src/redis-client.js'
import { createSecretBox } from '../routes/webhooks/secrets.js'
import { createWebhookService, type WebhookService } from '../routes/webhooks/service.js'

declare module 'fastify' {
  interface FastifyInstance { webhooks: WebhookService }
}

// Outbound webhooks, built once: the admin routes (routes/webhooks) and the delivery worker share
// the service. Events arrive as `webhook.event` outbox rows written with the change they describe
// (src/side-effects.ts); the handler fans each out to deliveries, which the `webhooks` queue sends.
export default fp(async (app) => {
  const settings = app.config.webhooks
  const service = createWebhookService({
    db: app.db, outbox: app.outbox, box: createSecretBox(settings.secretsKey), log: app.log, settings,
    // The queue is made just below; nothing is enqueued before the plugin has loaded.
    enqueue: (ids) => queue.add(ids),
    userAgent: 'shop-api-webhooks/1',
  })
  const queue: WorkQueue = createWorkQueue({
    name: 'webhooks', redis: app.config.redis, log: app.log,
    maxRuns: settings.maxAttempts, concurrency: 5, runWorker: app.config.jobs,
    process: async (id) => {
      const { retryInMs } = await service.attempt(id)
      return retryInMs === undefined ? {} : { retryInMs }
    },
  })
  app.decorate('webhooks', service)

  app.outbox.on('webhook.event', async (payload, event) => {
    await service.fanOut(event.id, payload as { type: string; createdAt: string; data: unknown })
  })
  const domain = new URL(app.config.publicUrl).hostname
  app.outbox.on('mail.webhook-disabled', (payload, event) => service.mailDisabled(event.id, String(payload.endpointId), app.mailer, domain))

  // Deliveries whose job was lost (Redis flushed, a crash) are queued again; without Redis the
  // sweep is the delivery loop's safety net and sends what is due itself.
  app.jobs.every('webhook-sweep', 60_000, () => (hasRedisServer(app.config.redis) ? service.sweep() : service.drain()))
  app.jobs.every('webhook-purge', 3_600_000, () => service.purge())
  app.addHook('onReady', () => queue.start())
  app.addHook('onClose', () => queue.close())
}, { name: 'webhooks', dependencies: ['postgres', 'outbox', 'jobs', 'mailer'] })
