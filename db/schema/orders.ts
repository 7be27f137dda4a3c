import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, jsonb, pgEnum, pgSequence, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'
import { productVariants } from './catalog.js'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

export const couponKind = pgEnum('coupon_kind', ['percentage', 'fixed'])

export const coupons = pgTable('coupons', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  code: text('code').notNull(),
  kind: couponKind('kind').notNull(),
  // percentage: 1-100; fixed: minor units of `currency`.
  value: integer('value').notNull(),
  // The currency a fixed amount is in (it applies to carts in that currency only); null for percentages.
  currency: text('currency'),
  minSubtotalMinor: integer('min_subtotal_minor').notNull().default(0),
  maxDiscountMinor: integer('max_discount_minor'),
  startsAt: ts('starts_at'),
  endsAt: ts('ends_at'),
  usageLimit: integer('usage_limit'),
  perCustomerLimit: integer('per_customer_limit'),
  // Counted under the coupon's row lock at checkout, so the limits hold under concurrency.
  timesRedeemed: integer('times_redeemed').notNull().default(0),
  productIds: uuid('product_ids').array().notNull().default(sql`'{}'::uuid[]`),
  categoryIds: uuid('category_ids').array().notNull().default(sql`'{}'::uuid[]`),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('coupons_code_key').on(t.code),
  check('coupons_currency_check', sql`(${t.kind} = 'fixed') = (${t.currency} is not null)`),
  check('coupons_value_check', sql`(${t.kind} = 'percentage' and ${t.value} between 1 and 100) or (${t.kind} = 'fixed' and ${t.value} > 0)`),
  check('coupons_redeemed_check', sql`${t.timesRedeemed} >= 0 and (${t.usageLimit} is null or ${t.timesRedeemed} <= ${t.usageLimit})`),
])

export const orderStatus = pgEnum('order_status', ['pending_payment', 'paid', 'fulfilled', 'shipped', 'delivered', 'cancelled', 'refunded'])
export const orderNumberSeq = pgSequence('order_number_seq', { startWith: 1000 })

export interface ShippingAddress {
  recipientName: string; line1: string; line2?: string | null; city: string; region?: string | null; postalCode: string; country: string; phone?: string | null
}

/** The shipping option and tax rate an order was priced with, as they were then. */
export interface ShippingSnapshot { optionId: string; name: string; zoneId: string; zoneName: string }
export interface TaxSnapshot { rateId: string | null; name: string; country: string | null; region: string | null; rateBps: number }

export const orders = pgTable('orders', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  number: text('number').notNull(),
  // Null for a guest order (guestEmail says whom it is for) until the verified owner of that
  // address claims it into their account.
  userId: uuid('user_id').references(() => users.id, { onDelete: 'restrict' }),
  // The contact address a guest checked out with (normalised); kept after a claim.
  guestEmail: text('guest_email'),
  // Which client address placed a guest order while it is unpaid, as a keyed hash (the address
  // cannot be read back): unpaid guest orders per address are bounded. Cleared once the order is
  // paid or cancelled, and on erasure.
  guestClient: text('guest_client'),
  status: orderStatus('status').notNull().default('pending_payment'),
  currency: text('currency').notNull(),
  subtotalMinor: integer('subtotal_minor').notNull(),
  discountMinor: integer('discount_minor').notNull().default(0),
  shippingMinor: integer('shipping_minor').notNull().default(0),
  taxMinor: integer('tax_minor').notNull().default(0),
  totalMinor: integer('total_minor').notNull(),
  refundedMinor: integer('refunded_minor').notNull().default(0),
  couponId: uuid('coupon_id').references(() => coupons.id, { onDelete: 'set null' }),
  couponCode: text('coupon_code'),
  shippingAddress: jsonb('shipping_address').$type<ShippingAddress>().notNull(),
  // Null on orders placed before shipping options and tax rates existed.
  shippingOption: jsonb('shipping_option').$type<ShippingSnapshot>(),
  taxRate: jsonb('tax_rate').$type<TaxSnapshot>(),
  // Tax-inclusive prices: the tax is part of subtotal and shipping, not added to the total.
  pricesIncludeTax: boolean('prices_include_tax').notNull().default(false),
  // When it was delivered: the return window counts from here.
  deliveredAt: ts('delivered_at'),
  expiresAt: ts('expires_at'),
  paidAt: ts('paid_at'),
  cancelledAt: ts('cancelled_at'),
  // Set once when the order's stock goes back (cancel, expiry, full refund): never twice.
  stockReleasedAt: ts('stock_released_at'),
  // What the admin entered when the order shipped; shown to the customer and in the mail.
  shippingCarrier: text('shipping_carrier'),
  trackingNumber: text('tracking_number'),
  // The cart and its checkout generation this order consumed: one cart generation makes at most
  // one order, whatever retries, lock expiries or other instances do (the fence of checkout).
  cartId: text('cart_id'),
  cartGeneration: integer('cart_generation'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('orders_number_key').on(t.number),
  uniqueIndex('orders_cart_generation_key').on(t.cartId, t.cartGeneration),
  index('orders_user_created_idx').on(t.userId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('orders_created_idx').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('orders_pending_expiry_idx').on(t.expiresAt).where(sql`status = 'pending_payment'`),
  index('orders_paid_at_idx').on(t.paidAt).where(sql`paid_at is not null`),
  index('orders_guest_email_idx').on(t.guestEmail).where(sql`guest_email is not null`),
  index('orders_guest_client_unpaid_idx').on(t.guestClient).where(sql`guest_client is not null and status = 'pending_payment'`),
  check('orders_buyer_check', sql`${t.userId} is not null or ${t.guestEmail} is not null`),
  check('orders_money_check', sql`${t.subtotalMinor} >= 0 and ${t.discountMinor} >= 0 and ${t.shippingMinor} >= 0 and ${t.taxMinor} >= 0
    and ${t.totalMinor} = ${t.subtotalMinor} - ${t.discountMinor} + ${t.shippingMinor} + case when ${t.pricesIncludeTax} then 0 else ${t.taxMinor} end
    and ${t.refundedMinor} >= 0 and ${t.refundedMinor} <= ${t.totalMinor}`),
])

/** What was bought, as it was when bought: later catalog edits never change an order. */
export const orderItems = pgTable('order_items', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'cascade' }),
  variantId: uuid('variant_id').references(() => productVariants.id, { onDelete: 'set null' }),
  productId: uuid('product_id'),
  sku: text('sku').notNull(),
  name: text('name').notNull(),
  options: jsonb('options').$type<Record<string, string>>().notNull().default({}),
  unitPriceMinor: integer('unit_price_minor').notNull(),
  quantity: integer('quantity').notNull(),
  lineTotalMinor: integer('line_total_minor').notNull(),
  discountMinor: integer('discount_minor').notNull().default(0),
  // This line's share of the order's tax (the rest is on shipping).
  taxMinor: integer('tax_minor').notNull().default(0),
}, (t) => [
  index('order_items_order_idx').on(t.orderId),
  index('order_items_variant_idx').on(t.variantId),
  check('order_items_check', sql`${t.quantity} > 0 and ${t.unitPriceMinor} >= 0 and ${t.lineTotalMinor} = ${t.unitPriceMinor} * ${t.quantity}`),
])

export const couponRedemptions = pgTable('coupon_redemptions', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  couponId: uuid('coupon_id').notNull().references(() => coupons.id, { onDelete: 'cascade' }),
  // Null for a guest's redemption; `email` then names the buyer (per-customer limits count by it).
  userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
  email: text('email'),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'cascade' }),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('coupon_redemptions_order_key').on(t.orderId),
  index('coupon_redemptions_coupon_user_idx').on(t.couponId, t.userId),
  index('coupon_redemptions_coupon_email_idx').on(t.couponId, t.email),
])

/**
 * Capability tokens for one order (guest checkout): who holds one reads, pays and cancels that
 * order and nothing else. Only the SHA-256 of the 256-bit random token is stored; a token is
 * dead once revoked or past expires_at.
 */
export const orderAccessTokens = pgTable('order_access_tokens', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'cascade' }),
  tokenHash: text('token_hash').notNull(),
  expiresAt: ts('expires_at').notNull(),
  revokedAt: ts('revoked_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('order_access_tokens_hash_key').on(t.tokenHash),
  index('order_access_tokens_order_idx').on(t.orderId),
  index('order_access_tokens_expires_idx').on(t.expiresAt),
])

// pending: recorded, the provider has not answered yet (a crash here is settled by reconciliation).
export const paymentStatus = pgEnum('payment_status', ['pending', 'requires_confirmation', 'succeeded', 'failed'])

export const payments = pgTable('payments', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'restrict' }),
  provider: text('provider').notNull(),
  // Known once the provider has answered; our own id is the provider's idempotency key.
  providerPaymentId: text('provider_payment_id'),
  status: paymentStatus('status').notNull(),
  amountMinor: integer('amount_minor').notNull(),
  currency: text('currency').notNull(),
  // What the customer chose (a provider token or PaymentMethod id, never card data): a re-sent
  // create must carry the same parameters under its idempotency key.
  paymentMethod: text('payment_method'),
  // Refunded or being refunded (pending refunds are reserved here, so two cannot overdraw it).
  refundedMinor: integer('refunded_minor').notNull().default(0),
  failureReason: text('failure_reason'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('payments_provider_id_key').on(t.provider, t.providerPaymentId),
  // At most one payment in flight per order: a second attempt is a 409. (At most one capture
  // counts: the order moves to paid once, under its row lock; any other capture is refunded.)
  uniqueIndex('payments_one_in_flight_per_order').on(t.orderId).where(sql`status in ('pending', 'requires_confirmation')`),
  index('payments_order_idx').on(t.orderId),
  index('payments_unsettled_idx').on(t.updatedAt).where(sql`status in ('pending', 'requires_confirmation')`),
  index('payments_created_idx').on(t.createdAt),
  check('payments_refund_check', sql`${t.amountMinor} > 0 and ${t.refundedMinor} >= 0 and ${t.refundedMinor} <= ${t.amountMinor}`),
])

export const refundStatus = pgEnum('refund_status', ['pending', 'succeeded', 'failed'])

export const refunds = pgTable('refunds', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  paymentId: uuid('payment_id').notNull().references(() => payments.id, { onDelete: 'restrict' }),
  amountMinor: integer('amount_minor').notNull(),
  reason: text('reason'),
  // pending: recorded and reserved on the payment; sent to the provider outside any transaction.
  status: refundStatus('status').notNull().default('pending'),
  providerRefundId: text('provider_refund_id'),
  // false for money returned because a capture arrived for an order no longer payable: that
  // refund is the payment's business, never part of the order's own refund total.
  countsTowardOrder: boolean('counts_toward_order').notNull().default(true),
  failureReason: text('failure_reason'),
  actorId: uuid('actor_id').references(() => users.id, { onDelete: 'set null' }),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  index('refunds_payment_idx').on(t.paymentId),
  index('refunds_pending_idx').on(t.updatedAt).where(sql`status = 'pending'`),
  check('refunds_amount_check', sql`${t.amountMinor} > 0`),
])

/** Each provider event id once: a replayed webhook finds its row and changes nothing. */
export const webhookEvents = pgTable('webhook_events', {
  provider: text('provider').notNull(),
  eventId: text('event_id').notNull(),
  type: text('type').notNull(),
  receivedAt: ts('received_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.provider, t.eventId] })])

/** Stored first responses of requests sent with an Idempotency-Key (kept 24 hours). */
export const idempotencyKeys = pgTable('idempotency_keys', {
  userId: uuid('user_id').notNull(),
  scope: text('scope').notNull(),
  key: text('key').notNull(),
  requestHash: text('request_hash').notNull(),
  responseStatus: integer('response_status'),
  responseBody: jsonb('response_body'),
  createdAt: ts('created_at').notNull().defaultNow(),
  completedAt: ts('completed_at'),
  // The attempt holding the key, and until when: a lease renewed while it runs, so the key of
  // a request whose process died is taken over by its retry instead of staying stuck.
  leaseToken: uuid('lease_token'),
  lockedUntil: ts('locked_until'),
  // What a dead attempt already recorded (a payment id), so its retry resumes rather than repeats.
  resourceId: uuid('resource_id'),
}, (t) => [primaryKey({ columns: [t.userId, t.scope, t.key] }), index('idempotency_keys_created_idx').on(t.createdAt)])

/**
 * Side effects of a committed change (cart clear, cache invalidation, activity), written in the
 * same transaction and handled after it by src/outbox.ts: none is lost, each handler is idempotent.
 */
export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  topic: text('topic').notNull(),
  // Events of one key (a cart) are handled in order of creation.
  key: text('key'),
  payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
  attempts: integer('attempts').notNull().default(0),
  availableAt: ts('available_at').notNull().defaultNow(),
  lastError: text('last_error'),
  processedAt: ts('processed_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [
  index('outbox_due_idx').on(t.availableAt).where(sql`processed_at is null`),
  index('outbox_key_idx').on(t.key).where(sql`processed_at is null`),
])

/**
 * The books of the built-in `test` payment provider. It stands in for a remote provider, so it
 * keeps its own records, written outside our transactions, and honours idempotency keys as Stripe
 * does: the same key returns the same object; the same key with other parameters is an error.
 */
// What the outbox's mail handlers sent, by Message-ID (the outbox event's id) and recipient,
// written as soon as SMTP accepts: a retry of the event (the process died before the outbox
// marked it done) skips who already has it (src/sent-mail.ts); purged after 7 days.
export const sentMail = pgTable('sent_mail', {
  messageId: text('message_id').notNull(),
  recipient: text('recipient').notNull(),
  sentAt: ts('sent_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.messageId, t.recipient] }), index('sent_mail_sent_at_idx').on(t.sentAt)])

export const testProviderPayments = pgTable('test_provider_payments', {
  id: text('id').primaryKey(),
  idempotencyKey: text('idempotency_key').notNull(),
  // The merchant's reference (our order id), compared like the amount when a key is reused.
  reference: text('reference').notNull(),
  amountMinor: integer('amount_minor').notNull(),
  currency: text('currency').notNull(),
  status: text('status').notNull(),
  failureReason: text('failure_reason'),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [uniqueIndex('test_provider_payments_key').on(t.idempotencyKey)])

export const testProviderRefunds = pgTable('test_provider_refunds', {
  id: text('id').primaryKey(),
  idempotencyKey: text('idempotency_key').notNull(),
  paymentId: text('payment_id').notNull(),
  amountMinor: integer('amount_minor').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [uniqueIndex('test_provider_refunds_key').on(t.idempotencyKey)])
