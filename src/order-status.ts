import { and, eq, isNull, sql } from 'drizzle-orm'
import { couponRedemptions, coupons, orders } from '../db/schema/index.js'
import type { Tx } from '../db/client.js'
import { Conflict, NotFound } from './errors.js'
import { releaseOrder as releaseOrderStock } from './inventory.js'

// The order's state machine and the one release of its stock, shared by every workflow that
// moves an order (checkout, payment, cancel and expiry, refunds, returns): the only writers of
// an order's status.

export type OrderStatus = typeof orders.$inferSelect['status']

/** Where an order may go from each status. paid comes only from a payment, refunded only from refunds. */
export const TRANSITIONS: Record<OrderStatus, readonly OrderStatus[]> = {
  pending_payment: ['paid', 'cancelled'],
  paid: ['fulfilled', 'cancelled', 'refunded'],
  fulfilled: ['shipped', 'refunded'],
  shipped: ['delivered', 'refunded'],
  delivered: ['refunded'],
  cancelled: [],
  refunded: [],
}

/** Whether an order in `current` may move to `to`; with `from`, only when it is still in `from`. */
export const canTransition = (current: OrderStatus, to: OrderStatus, from?: OrderStatus) =>
  TRANSITIONS[current].includes(to) && (from === undefined || current === from)

/**
 * Puts an order's stock back (through the inventory module: each reservation released or
 * returned once) and gives back its coupon use, once: the stock_released_at guard
 * makes a second call (double cancel, cancel racing expiry, refund after cancel) do nothing.
 * Returns what it touched, for the cache events (null when already released).
 */
export async function releaseOrder(tx: Tx, orderId: string, reason: 'cancellation' | 'return'): Promise<{ productIds: string[]; listsChanged: boolean } | null> {
  const [claimed] = await tx.update(orders).set({ stockReleasedAt: new Date() })
    .where(and(eq(orders.id, orderId), isNull(orders.stockReleasedAt))).returning({ id: orders.id, couponId: orders.couponId })
  if (!claimed) return null
  const stock = await releaseOrderStock(tx, orderId, reason)
  if (claimed.couponId) {
    const gone = await tx.delete(couponRedemptions).where(eq(couponRedemptions.orderId, orderId)).returning({ id: couponRedemptions.id })
    if (gone.length) await tx.update(coupons).set({ timesRedeemed: sql`${coupons.timesRedeemed} - 1` }).where(eq(coupons.id, claimed.couponId))
  }
  return { productIds: [...stock.productIds], listsChanged: stock.listsChanged }
}

/**
 * Moves an order along the state machine (TRANSITIONS), the only writer of an order's status.
 * Returns the updated row, or null when the move is not allowed (or the order is not in `from`).
 */
export async function tryTransition(tx: Tx, orderId: string, to: OrderStatus, extra: Partial<typeof orders.$inferInsert> = {}, from?: OrderStatus) {
  const [row] = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update')
  if (!row) throw new NotFound('order', orderId)
  if (!canTransition(row.status, to, from)) return null
  // Out of pending_payment, the order no longer counts against its guest client's bound.
  const [updated] = await tx.update(orders).set({ status: to, updatedAt: new Date(), guestClient: null, ...extra }).where(eq(orders.id, orderId)).returning()
  return updated!
}

/** Moves an order along the state machine, or 409. */
export async function transition(tx: Tx, orderId: string, to: OrderStatus, extra: Partial<typeof orders.$inferInsert> = {}) {
  const moved = await tryTransition(tx, orderId, to, extra)
  if (moved) return moved
  const [row] = await tx.select({ status: orders.status }).from(orders).where(eq(orders.id, orderId))
  throw new Conflict(`An order cannot go from ${row!.status} to ${to}`, 'invalid-transition')
}
