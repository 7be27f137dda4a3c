import { sql } from 'drizzle-orm'
import { check, index, integer, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'
import { orderItems, orders, refunds } from './orders.js'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

// requested -> approved | rejected; approved -> received (goods back, restocked); received -> refunded.
export const returnStatus = pgEnum('return_status', ['requested', 'approved', 'rejected', 'received', 'refunded'])
export const returnReason = pgEnum('return_reason', ['damaged', 'defective', 'wrong_item', 'not_as_described', 'no_longer_needed', 'other'])

export const returns = pgTable('returns', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'restrict' }),
  // The order's owner; null while it is a guest order (its return was asked for with the order token).
  userId: uuid('user_id').references(() => users.id, { onDelete: 'restrict' }),
  status: returnStatus('status').notNull().default('requested'),
  // Fixed when the goods are received: what the customer gets back for what came back.
  refundMinor: integer('refund_minor'),
  refundId: uuid('refund_id').references(() => refunds.id, { onDelete: 'set null' }),
  rejectionReason: text('rejection_reason'),
  approvedAt: ts('approved_at'),
  receivedAt: ts('received_at'),
  refundedAt: ts('refunded_at'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  index('returns_order_idx').on(t.orderId),
  index('returns_user_created_idx').on(t.userId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('returns_created_idx').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  check('returns_refund_check', sql`${t.refundMinor} is null or ${t.refundMinor} >= 0`),
])

export const returnItems = pgTable('return_items', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  returnId: uuid('return_id').notNull().references(() => returns.id, { onDelete: 'cascade' }),
  orderItemId: uuid('order_item_id').notNull().references(() => orderItems.id, { onDelete: 'restrict' }),
  quantity: integer('quantity').notNull(),
  reason: returnReason('reason').notNull(),
  note: text('note'),
  // Set when received: how many came back, and how many of those went back on the shelf.
  receivedQuantity: integer('received_quantity'),
  restockedQuantity: integer('restocked_quantity'),
}, (t) => [
  index('return_items_return_idx').on(t.returnId),
  index('return_items_order_item_idx').on(t.orderItemId),
  check('return_items_quantity_check', sql`${t.quantity} > 0
    and (${t.receivedQuantity} is null or ${t.receivedQuantity} between 0 and ${t.quantity})
    and (${t.restockedQuantity} is null or ${t.restockedQuantity} between 0 and coalesce(${t.receivedQuantity}, 0))`),
])
