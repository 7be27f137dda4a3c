import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

/**
 * Outbound webhook endpoints registered by admins. The signing secret must be usable to sign, so
 * it cannot be hashed: it is stored encrypted (AES-256-GCM under WEBHOOK_SECRETS_KEY, see
 * routes/webhooks/secrets.ts) and shown in clear only when created or rotated.
 */
export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  url: text('url').notNull(),
  description: text('description'),
  events: text('events').array().notNull(),
  isActive: boolean('is_active').notNull().default(true),
  secretEncrypted: text('secret_encrypted').notNull(),
  // Deliveries that ran out of attempts in a row; a success resets it; at the limit the endpoint is disabled.
  consecutiveFailures: integer('consecutive_failures').notNull().default(0),
  disabledAt: ts('disabled_at'),
  disabledReason: text('disabled_reason'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  index('webhook_endpoints_created_idx').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
])

export const webhookDeliveryStatus = pgEnum('webhook_delivery_status', ['pending', 'succeeded', 'failed'])

/**
 * One event for one endpoint. The event id is the outbox event's, so the fan-out, however often
 * it runs, makes one row per (event, endpoint), and a job retried after a success finds it done.
 */
export const webhookDeliveries = pgTable('webhook_deliveries', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  eventId: uuid('event_id').notNull(),
  endpointId: uuid('endpoint_id').notNull().references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
  eventType: text('event_type').notNull(),
  // The exact body sent (and signed) on every attempt.
  body: text('body').notNull(),
  status: webhookDeliveryStatus('status').notNull().default('pending'),
  attempts: integer('attempts').notNull().default(0),
  nextAttemptAt: ts('next_attempt_at').notNull().defaultNow(),
  // Held by the attempt in flight, so a stalled job run again does not send it twice at once.
  leasedUntil: ts('leased_until'),
  lastError: text('last_error'),
  succeededAt: ts('succeeded_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('webhook_deliveries_event_endpoint_key').on(t.eventId, t.endpointId),
  index('webhook_deliveries_endpoint_created_idx').on(t.endpointId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('webhook_deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
  check('webhook_deliveries_attempts_check', sql`${t.attempts} >= 0`),
])

/** Every HTTP attempt of a delivery: what came back, or why nothing did. */
export const webhookAttempts = pgTable('webhook_attempts', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  deliveryId: uuid('delivery_id').notNull().references(() => webhookDeliveries.id, { onDelete: 'cascade' }),
  attemptedAt: ts('attempted_at').notNull().defaultNow(),
  succeeded: boolean('succeeded').notNull(),
  statusCode: integer('status_code'),
  responseExcerpt: text('response_excerpt'),
  error: text('error'),
  durationMs: integer('duration_ms').notNull(),
}, (t) => [
  index('webhook_attempts_delivery_idx').on(t.deliveryId, t.attemptedAt),
])
