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
  // percentage: 1-100; fixed: minor units of the store currency.
  value: integer('value').notNull(),
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
  check('coupons_value_check', sql`(${t.kind} = 'percentage' and ${t.value} between 1 and 100) or (${t.kind} = 'fixed' and ${t.value} > 0)`),
  check('coupons_redeemed_check', sql`${t.timesRedeemed} >= 0 and (${t.usageLimit} is null or ${t.timesRedeemed} <= ${t.usageLimit})`),
])

export const orderStatus = pgEnum('order_status', ['pending_payment', 'paid', 'fulfilled', 'shipped', 'delivered', 'cancelled', 'refunded'])
export const orderNumberSeq = pgSequence('order_number_seq', { startWith: 1000 })

export interface ShippingAddress {
  recipientName: string; line1: string; line2?: string | null; city: string; region?: string | null; postalCode: string; country: string; phone?: string | null
}

export const orders = pgTable('orders', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  number: text('number').notNull(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'restrict' }),
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
  expiresAt: ts('expires_at'),
  paidAt: ts('paid_at'),
  cancelledAt: ts('cancelled_at'),
  // Set once when the order's stock goes back (cancel, expiry, full refund): never twice.
  stockReleasedAt: ts('stock_released_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('orders_number_key').on(t.number),
  index('orders_user_created_idx').on(t.userId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('orders_created_idx').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('orders_pending_expiry_idx').on(t.expiresAt).where(sql`status = 'pending_payment'`),
  index('orders_paid_at_idx').on(t.paidAt).where(sql`paid_at is not null`),
  check('orders_money_check', sql`${t.subtotalMinor} >= 0 and ${t.discountMinor} >= 0 and ${t.shippingMinor} >= 0 and ${t.taxMinor} >= 0
    and ${t.totalMinor} = ${t.subtotalMinor} - ${t.discountMinor} + ${t.shippingMinor} + ${t.taxMinor}
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
}, (t) => [
  index('order_items_order_idx').on(t.orderId),
  index('order_items_variant_idx').on(t.variantId),
  check('order_items_check', sql`${t.quantity} > 0 and ${t.unitPriceMinor} >= 0 and ${t.lineTotalMinor} = ${t.unitPriceMinor} * ${t.quantity}`),
])

export const couponRedemptions = pgTable('coupon_redemptions', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  couponId: uuid('coupon_id').notNull().references(() => coupons.id, { onDelete: 'cascade' }),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'cascade' }),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('coupon_redemptions_order_key').on(t.orderId),
  index('coupon_redemptions_coupon_user_idx').on(t.couponId, t.userId),
])

export const paymentStatus = pgEnum('payment_status', ['requires_confirmation', 'succeeded', 'failed'])

export const payments = pgTable('payments', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'restrict' }),
  provider: text('provider').notNull(),
  providerPaymentId: text('provider_payment_id').notNull(),
  status: paymentStatus('status').notNull(),
  amountMinor: integer('amount_minor').notNull(),
  currency: text('currency').notNull(),
  refundedMinor: integer('refunded_minor').notNull().default(0),
  failureReason: text('failure_reason'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('payments_provider_id_key').on(t.provider, t.providerPaymentId),
  index('payments_order_idx').on(t.orderId),
  index('payments_created_idx').on(t.createdAt),
  check('payments_refund_check', sql`${t.amountMinor} > 0 and ${t.refundedMinor} >= 0 and ${t.refundedMinor} <= ${t.amountMinor}`),
])

export const refunds = pgTable('refunds', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  paymentId: uuid('payment_id').notNull().references(() => payments.id, { onDelete: 'restrict' }),
  amountMinor: integer('amount_minor').notNull(),
  reason: text('reason'),
  providerRefundId: text('provider_refund_id').notNull(),
  actorId: uuid('actor_id').references(() => users.id, { onDelete: 'set null' }),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [index('refunds_payment_idx').on(t.paymentId), check('refunds_amount_check', sql`${t.amountMinor} > 0`)])

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
}, (t) => [primaryKey({ columns: [t.userId, t.scope, t.key] }), index('idempotency_keys_created_idx').on(t.createdAt)])
