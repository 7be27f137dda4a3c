import { and, asc, eq, inArray, isNull, lt, lte, or, sql } from 'drizzle-orm'
import { users, webhookAttempts, webhookDeliveries, webhookEndpoints } from '../../db/schema/index.js'
import { prepareOnce, type Db } from '../../db/client.js'
import { Conflict, NotFound } from '../../src/errors.js'
import type { Outbox } from '../../src/outbox.js'
import { newestFirst } from '../../src/pagination.js'
import type { OutboxEvent, OutboxTopics, WebhookEventType } from '../../src/side-effects.js'
import type { MailSender } from '../../src/sent-mail.js'
import { checkEndpointUrl, postSigned, type AttemptResult } from './delivery.js'
import { newSigningSecret, type SecretBox } from './secrets.js'

// Outbound webhooks: endpoints (admin), the fan-out of an event to one delivery per subscribed
// endpoint, and one attempt of a delivery at a time (run by the `webhooks` queue that
// plugins/services.ts builds on app.jobs).
// PostgreSQL holds the truth: a delivery's state, its next due time, every attempt; the queue
// only says when to look again.

type EndpointRow = typeof webhookEndpoints.$inferSelect
type DeliveryRow = typeof webhookDeliveries.$inferSelect
type AttemptRow = typeof webhookAttempts.$inferSelect

export interface WebhookSettings { allowPrivateUrls: boolean; timeoutMs: number; maxAttempts: number; backoffMs: number; disableAfter: number }
export interface WebhookDeps {
  db: Db; outbox: Pick<Outbox, 'transaction'>; box: SecretBox; log: { warn(details: Record<string, unknown>, message: string): void }; settings: WebhookSettings
  /** Hands deliveries to the queue (after their rows are committed). */
  enqueue: (deliveryIds: string[]) => Promise<void>
  userAgent: string
}
export interface EndpointInput { url: string; events: WebhookEventType[]; description?: string | null; isActive?: boolean }

/** The delay after the n-th failed attempt: backoff, doubling each time. */
export const retryDelayMs = (backoffMs: number, failedAttempts: number) => backoffMs * 2 ** Math.max(0, failedAttempts - 1)

/** How long finished deliveries and their attempts are kept. */
export const RETENTION_DAYS = 30

export const ENDPOINT_DISABLED_MAIL = (endpointId: string): OutboxEvent<'mail.webhook-disabled'> => ({ topic: 'mail.webhook-disabled', payload: { endpointId } })

const toEndpoint = (e: EndpointRow) => ({
  id: e.id, url: e.url, description: e.description, events: e.events as WebhookEventType[], isActive: e.isActive,
  consecutiveFailures: e.consecutiveFailures, disabledAt: e.disabledAt?.toISOString() ?? null, disabledReason: e.disabledReason,
  createdAt: e.createdAt.toISOString(), updatedAt: e.updatedAt.toISOString(),
})
const toAttempt = (a: AttemptRow) => ({
  id: a.id, attemptedAt: a.attemptedAt.toISOString(), succeeded: a.succeeded, statusCode: a.statusCode,
  responseExcerpt: a.responseExcerpt, error: a.error, durationMs: a.durationMs,
})
const toDelivery = (d: DeliveryRow, attempts: AttemptRow[]) => ({
  id: d.id, eventId: d.eventId, endpointId: d.endpointId, eventType: d.eventType, status: d.status,
  nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null, lastError: d.lastError,
  succeededAt: d.succeededAt?.toISOString() ?? null, createdAt: d.createdAt.toISOString(), body: d.body,
  attempts: attempts.map(toAttempt),
})

// Every outbound event reads its subscribers: built once and prepared (db/client.ts prepareOnce).
const subscribersOf = prepareOnce((db: Db) => db.select({ id: webhookEndpoints.id }).from(webhookEndpoints)
  .where(and(eq(webhookEndpoints.isActive, true), sql`${sql.placeholder('type')} = any(${webhookEndpoints.events})`)).prepare('webhook_subscribers'))

export function createWebhookService({ db, outbox, box, log, settings, enqueue, userAgent }: WebhookDeps) {
  const checkUrl = (url: string) => checkEndpointUrl(url, settings.allowPrivateUrls)

  async function endpointRow(id: string) {
    const [row] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id))
    if (!row) throw new NotFound('webhook endpoint', id)
    return row
  }

  async function attemptsOf(deliveryIds: string[]) {
    const byDelivery = new Map<string, AttemptRow[]>()
    if (!deliveryIds.length) return byDelivery
    const rows = await db.select().from(webhookAttempts).where(inArray(webhookAttempts.deliveryId, deliveryIds)).orderBy(asc(webhookAttempts.attemptedAt))
    for (const row of rows) byDelivery.set(row.deliveryId, [...(byDelivery.get(row.deliveryId) ?? []), row])
    return byDelivery
  }

  async function getDelivery(id: string) {
    const [row] = await db.select().from(webhookDeliveries).where(eq(webhookDeliveries.id, id))
    if (!row) throw new NotFound('webhook delivery', id)
    return toDelivery(row, (await attemptsOf([id])).get(id) ?? [])
  }

  /** Writes what one attempt gave, in one transaction: the attempt, the delivery, the endpoint's failure streak. */
  async function record(delivery: DeliveryRow, result: AttemptResult, attemptedAt: Date) {
    const attempts = delivery.attempts + 1
    const disabled = await outbox.transaction(async (tx, emit) => {
      await tx.insert(webhookAttempts).values({ deliveryId: delivery.id, attemptedAt, ...result })
      if (result.succeeded) {
        await tx.update(webhookDeliveries).set({ status: 'succeeded', attempts, succeededAt: new Date(), leasedUntil: null, lastError: null, updatedAt: new Date() }).where(eq(webhookDeliveries.id, delivery.id))
        await tx.update(webhookEndpoints).set({ consecutiveFailures: 0 }).where(and(eq(webhookEndpoints.id, delivery.endpointId), sql`${webhookEndpoints.consecutiveFailures} <> 0`))
        return false
      }
      const final = attempts >= settings.maxAttempts
      await tx.update(webhookDeliveries).set({
        status: final ? 'failed' : 'pending', attempts, leasedUntil: null, lastError: result.error, updatedAt: new Date(),
        // The database's clock, as the lease check reads it; the queue's delay starts later still.
        nextAttemptAt: sql`now() + make_interval(secs => ${retryDelayMs(settings.backoffMs, attempts) / 1000})`,
      }).where(eq(webhookDeliveries.id, delivery.id))
      if (!final) return false
      const [endpoint] = await tx.update(webhookEndpoints).set({ consecutiveFailures: sql`${webhookEndpoints.consecutiveFailures} + 1` })
        .where(eq(webhookEndpoints.id, delivery.endpointId)).returning()
      if (!endpoint || !endpoint.isActive || endpoint.consecutiveFailures < settings.disableAfter) return false
      await tx.update(webhookEndpoints).set({ isActive: false, disabledAt: new Date(), disabledReason: `${endpoint.consecutiveFailures} deliveries in a row failed; last: ${result.error ?? 'unknown'}`.slice(0, 500), updatedAt: new Date() })
        .where(eq(webhookEndpoints.id, endpoint.id))
      await emit([ENDPOINT_DISABLED_MAIL(endpoint.id)])
      return true
    })
    if (disabled) log.warn({ endpointId: delivery.endpointId, failures: settings.disableAfter }, 'webhook endpoint disabled after repeated failed deliveries')
    return { attempts, final: !result.succeeded && attempts >= settings.maxAttempts }
  }

  const service = {
    async create(input: EndpointInput) {
      const url = checkUrl(input.url)
      const secret = newSigningSecret()
      const [row] = await db.insert(webhookEndpoints).values({ url, events: input.events, description: input.description ?? null, isActive: input.isActive ?? true, secretEncrypted: box.seal(secret) }).returning()
      return { ...toEndpoint(row!), secret }
    },

    async list(query: { limit: number; cursor?: string }) {
      const keyset = newestFirst(webhookEndpoints.createdAt, webhookEndpoints.id)
      const rows = await db.select().from(webhookEndpoints).where(keyset.after(query.cursor)).orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      return { items: page.items.map(toEndpoint), nextCursor: page.nextCursor }
    },

    async get(id: string) { return toEndpoint(await endpointRow(id)) },

    /** Turning an endpoint back on clears its failure streak. */
    async update(id: string, input: Partial<EndpointInput>) {
      const changes: Partial<typeof webhookEndpoints.$inferInsert> = { updatedAt: new Date() }
      if (input.url !== undefined) changes.url = checkUrl(input.url)
      if (input.events !== undefined) changes.events = input.events
      if (input.description !== undefined) changes.description = input.description
      if (input.isActive !== undefined) {
        changes.isActive = input.isActive
        if (input.isActive) Object.assign(changes, { consecutiveFailures: 0, disabledAt: null, disabledReason: null })
      }
      const [row] = await db.update(webhookEndpoints).set(changes).where(eq(webhookEndpoints.id, id)).returning()
      if (!row) throw new NotFound('webhook endpoint', id)
      return toEndpoint(row)
    },

    /** Removes the endpoint with its deliveries and their attempts. */
    async remove(id: string) {
      const gone = await db.delete(webhookEndpoints).where(eq(webhookEndpoints.id, id)).returning({ id: webhookEndpoints.id })
      if (!gone.length) throw new NotFound('webhook endpoint', id)
    },

    /** A new secret, shown once; the old one stops signing at once. */
    async rotateSecret(id: string) {
      const secret = newSigningSecret()
      const [row] = await db.update(webhookEndpoints).set({ secretEncrypted: box.seal(secret), updatedAt: new Date() }).where(eq(webhookEndpoints.id, id)).returning()
      if (!row) throw new NotFound('webhook endpoint', id)
      return { ...toEndpoint(row), secret }
    },

    async listDeliveries(endpointId: string, query: { limit: number; cursor?: string; status?: DeliveryRow['status'] }) {
      await endpointRow(endpointId)
      const keyset = newestFirst(webhookDeliveries.createdAt, webhookDeliveries.id)
      const rows = await db.select().from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.endpointId, endpointId), query.status ? eq(webhookDeliveries.status, query.status) : undefined, keyset.after(query.cursor)))
        .orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      const attempts = await attemptsOf(page.items.map((d) => d.id))
      return { items: page.items.map((d) => toDelivery(d, attempts.get(d.id) ?? [])), nextCursor: page.nextCursor }
    },

    getDelivery,

    /** Sends a delivery again (same event id and body, fresh attempts), whatever its state; not while one is in flight. */
    async replay(deliveryId: string) {
      const [row] = await db.select({ delivery: webhookDeliveries, isActive: webhookEndpoints.isActive }).from(webhookDeliveries)
        .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, webhookDeliveries.endpointId)).where(eq(webhookDeliveries.id, deliveryId))
      if (!row) throw new NotFound('webhook delivery', deliveryId)
      if (!row.isActive) throw new Conflict('The endpoint is disabled; enable it first', 'webhook-endpoint-disabled')
      const [queued] = await db.update(webhookDeliveries).set({ status: 'pending', attempts: 0, nextAttemptAt: new Date(), succeededAt: null, lastError: null, updatedAt: new Date() })
        .where(and(eq(webhookDeliveries.id, deliveryId), or(isNull(webhookDeliveries.leasedUntil), lt(webhookDeliveries.leasedUntil, sql`now()`)))).returning({ id: webhookDeliveries.id })
      if (!queued) throw new Conflict('The delivery is being sent right now', 'webhook-delivery-in-flight')
      await enqueue([deliveryId])
      return getDelivery(deliveryId)
    },

    /**
     * The outbox handler of `webhook.event`: one delivery per active endpoint subscribed to the
     * type (unique on event and endpoint, so running it again adds nothing), then queued.
     */
    async fanOut(eventId: string, payload: OutboxTopics['webhook.event']) {
      const endpoints = await subscribersOf(db).execute({ type: payload.type })
      // No subscriber, nothing to deliver (a delivery left pending by an earlier run, its endpoint
      // since unsubscribed, is the sweep's): one statement instead of two on most events.
      if (!endpoints.length) return { deliveries: 0 }
      const body = JSON.stringify({ id: eventId, type: payload.type, createdAt: payload.createdAt, data: payload.data })
      await db.insert(webhookDeliveries).values(endpoints.map((e) => ({ eventId, endpointId: e.id, eventType: payload.type, body }))).onConflictDoNothing()
      const pending = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries).where(and(eq(webhookDeliveries.eventId, eventId), eq(webhookDeliveries.status, 'pending')))
      await enqueue(pending.map((d) => d.id))
      return { deliveries: pending.length }
    },

    /**
     * One attempt of a delivery (the queue's processor). Leases the row so no other run sends it
     * meanwhile; a delivery already succeeded (a job retried after its success) is never sent
     * again. Returns when to try again, if at all.
     */
    async attempt(deliveryId: string): Promise<{ outcome: 'succeeded' | 'retry' | 'failed' | 'skipped'; retryInMs?: number }> {
      const leaseSeconds = Math.ceil(settings.timeoutMs / 1000) + 30
      const [delivery] = await db.update(webhookDeliveries).set({ leasedUntil: sql`now() + make_interval(secs => ${leaseSeconds})` })
        .where(and(eq(webhookDeliveries.id, deliveryId), eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, sql`now() + interval '1 second'`),
          or(isNull(webhookDeliveries.leasedUntil), lt(webhookDeliveries.leasedUntil, sql`now()`)))).returning()
      if (!delivery) return { outcome: 'skipped' }
      const [endpoint] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, delivery.endpointId))
      if (!endpoint?.isActive) {
        await db.update(webhookDeliveries).set({ status: 'failed', leasedUntil: null, lastError: 'endpoint disabled', updatedAt: new Date() }).where(eq(webhookDeliveries.id, deliveryId))
        return { outcome: 'skipped' }
      }
      const attemptedAt = new Date()
      let result: AttemptResult
      try {
        // Checked again: the URL may predate the policy (WEBHOOK_ALLOW_PRIVATE_URLS turned off).
        checkUrl(endpoint.url)
        result = await postSigned({ url: endpoint.url, body: delivery.body, secret: box.open(endpoint.secretEncrypted), eventId: delivery.eventId, eventType: delivery.eventType, deliveryId, timeoutMs: settings.timeoutMs, allowPrivate: settings.allowPrivateUrls, userAgent })
      } catch (err) {
        result = { succeeded: false, statusCode: null, responseExcerpt: null, error: `not sent: ${(err as Error).message}`.slice(0, 500), durationMs: 0 }
      }
      const { attempts, final } = await record(delivery, result, attemptedAt)
      if (result.succeeded) return { outcome: 'succeeded' }
      if (final) return { outcome: 'failed' }
      return { outcome: 'retry', retryInMs: retryDelayMs(settings.backoffMs, attempts) }
    },

    /**
     * Attempts every due pending delivery now, in this process: for tests, and for the sweep in
     * the embedded mode. Returns counts of outcomes.
     */
    async drain() {
      const counts = { succeeded: 0, retry: 0, failed: 0, skipped: 0 }
      const due = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'pending'), lte(webhookDeliveries.nextAttemptAt, sql`now()`))).orderBy(asc(webhookDeliveries.createdAt)).limit(500)
      for (const { id } of due) counts[(await service.attempt(id)).outcome]++
      return counts
    },

    /** Queues again the pending deliveries whose time passed a while ago (a job lost with Redis, or a crash). */
    async sweep(graceMs = 60_000) {
      const overdue = await db.select({ id: webhookDeliveries.id }).from(webhookDeliveries)
        .where(and(eq(webhookDeliveries.status, 'pending'), lt(webhookDeliveries.nextAttemptAt, sql`now() - make_interval(secs => ${graceMs / 1000})`),
          or(isNull(webhookDeliveries.leasedUntil), lt(webhookDeliveries.leasedUntil, sql`now()`)))).limit(1000)
      await enqueue(overdue.map((d) => d.id))
      return { requeued: overdue.length }
    },

    /** Removes finished deliveries (and their attempts) older than `days`. */
    async purge(days = RETENTION_DAYS) {
      const gone = await db.delete(webhookDeliveries)
        .where(and(inArray(webhookDeliveries.status, ['succeeded', 'failed']), lt(webhookDeliveries.updatedAt, sql`now() - make_interval(days => ${days})`))).returning({ id: webhookDeliveries.id })
      return { removed: gone.length }
    },

    /** The notice to the admins that an endpoint was disabled (outbox `mail.webhook-disabled`). */
    async mailDisabled(eventId: string, endpointId: string, mailer: MailSender, domain: string) {
      const [endpoint] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, endpointId))
      const admins = await db.select({ email: users.email }).from(users).where(and(eq(users.role, 'admin'), eq(users.isActive, true)))
      if (!endpoint || !admins.length) return
      await mailer.send({
        to: admins.map((a) => a.email), messageId: `<${eventId}@${domain}>`,
        subject: `Webhook endpoint disabled: ${endpoint.url}`,
        text: `The webhook endpoint ${endpoint.url} (${endpoint.id}) was disabled: ${endpoint.disabledReason ?? 'repeated failures'}.\n\nFix the receiver, enable the endpoint again (PATCH /webhooks/endpoints/${endpoint.id} with isActive true) and replay the failed deliveries.\n`,
      })
    },
  }
  return service
}
export type WebhookService = ReturnType<typeof createWebhookService>
