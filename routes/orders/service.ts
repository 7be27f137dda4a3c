import { and, asc, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm'
import { couponRedemptions, coupons, inventoryMovements, orderItems, orders, productVariants } from '../../db/schema/index.js'
import type { Db, Tx } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import type { Outbox } from '../../src/outbox.js'
import { ORDER_WEBHOOK } from '../../src/side-effects.js'
import { ORDER_MAIL } from './order-mail.js'
import { newestFirst } from '../../src/pagination.js'
import { refreshProductAggregates } from '../products/service.js'
import type { OrderStatus } from './schemas.js'

type OrderRow = typeof orders.$inferSelect
type ItemRow = typeof orderItems.$inferSelect


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

/** 409 naming each cart line that cannot be bought as it is. */
export class CheckoutConflict extends Conflict {
  constructor(readonly lines: { variantId: string; message: string }[]) {
    super(`Some items cannot be bought as they are: ${lines.map((l) => `${l.variantId} (${l.message})`).join('; ')}`, 'checkout-unavailable')
    this.issues = lines.map((l) => ({ path: `/cart/lines/${l.variantId}`, message: l.message }))
  }
}

const iso = (d: Date | null) => (d ? d.toISOString() : null)
export function toOrder(row: OrderRow, items: ItemRow[]) {
  const a = row.shippingAddress
  return {
    id: row.id, number: row.number, userId: row.userId, status: row.status, currency: row.currency,
    subtotalMinor: row.subtotalMinor, discountMinor: row.discountMinor, shippingMinor: row.shippingMinor, taxMinor: row.taxMinor,
    totalMinor: row.totalMinor, refundedMinor: row.refundedMinor, couponCode: row.couponCode, pricesIncludeTax: row.pricesIncludeTax,
    shippingOption: row.shippingOption ? { id: row.shippingOption.optionId, name: row.shippingOption.name, zoneId: row.shippingOption.zoneId, zoneName: row.shippingOption.zoneName } : null,
    taxRate: row.taxRate ? { id: row.taxRate.rateId, name: row.taxRate.name, country: row.taxRate.country, region: row.taxRate.region, rateBps: row.taxRate.rateBps } : null,
    shippingAddress: { recipientName: a.recipientName, line1: a.line1, line2: a.line2 ?? null, city: a.city, region: a.region ?? null, postalCode: a.postalCode, country: a.country, phone: a.phone ?? null },
    items: items.map((i) => ({ id: i.id, variantId: i.variantId, productId: i.productId, sku: i.sku, name: i.name, options: i.options, unitPriceMinor: i.unitPriceMinor, quantity: i.quantity, lineTotalMinor: i.lineTotalMinor, discountMinor: i.discountMinor, taxMinor: i.taxMinor })),
    shipment: row.shippingCarrier || row.trackingNumber ? { carrier: row.shippingCarrier, trackingNumber: row.trackingNumber } : null,
    expiresAt: row.status === 'pending_payment' ? iso(row.expiresAt) : null, paidAt: iso(row.paidAt), deliveredAt: iso(row.deliveredAt), cancelledAt: iso(row.cancelledAt), createdAt: row.createdAt.toISOString(),
  }
}

/**
 * Puts an order's stock back and gives back its coupon use, once: the stock_released_at guard
 * makes a second call (double cancel, cancel racing expiry, refund after cancel) do nothing.
 * Returns what it touched, for the cache events (null when already released).
 */
export async function releaseOrder(tx: Tx, orderId: string, reason: 'cancellation' | 'return'): Promise<{ productIds: string[]; listsChanged: boolean } | null> {
  const [claimed] = await tx.update(orders).set({ stockReleasedAt: new Date() })
    .where(and(eq(orders.id, orderId), isNull(orders.stockReleasedAt))).returning({ id: orders.id, couponId: orders.couponId })
  if (!claimed) return null
  const items = await tx.select().from(orderItems).where(eq(orderItems.orderId, orderId)).orderBy(asc(orderItems.variantId))
  const touched = new Set<string>()
  for (const item of items) {
    if (!item.variantId) continue
    const [variant] = await tx.update(productVariants).set({ stock: sql`${productVariants.stock} + ${item.quantity}`, updatedAt: new Date() })
      .where(eq(productVariants.id, item.variantId)).returning({ stock: productVariants.stock, productId: productVariants.productId })
    if (!variant) continue
    await tx.insert(inventoryMovements).values({ variantId: item.variantId, delta: item.quantity, stockAfter: variant.stock, reason, note: `order ${orderId}` })
    touched.add(variant.productId)
  }
  let listsChanged = false
  for (const productId of touched) listsChanged = (await refreshProductAggregates(tx, productId)) || listsChanged
  if (claimed.couponId) {
    const gone = await tx.delete(couponRedemptions).where(eq(couponRedemptions.orderId, orderId)).returning({ id: couponRedemptions.id })
    if (gone.length) await tx.update(coupons).set({ timesRedeemed: sql`${coupons.timesRedeemed} - 1` }).where(eq(coupons.id, claimed.couponId))
  }
  return { productIds: [...touched], listsChanged }
}

/**
 * Moves an order along the state machine (TRANSITIONS), the only writer of an order's status.
 * Returns the updated row, or null when the move is not allowed (or the order is not in `from`).
 */
export async function tryTransition(tx: Tx, orderId: string, to: OrderStatus, extra: Partial<typeof orders.$inferInsert> = {}, from?: OrderStatus) {
  const [row] = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update')
  if (!row) throw new NotFound('order', orderId)
  if (!TRANSITIONS[row.status].includes(to) || (from !== undefined && row.status !== from)) return null
  const [updated] = await tx.update(orders).set({ status: to, updatedAt: new Date(), ...extra }).where(eq(orders.id, orderId)).returning()
  return updated!
}

/** Moves an order along the state machine, or 409. */
export async function transition(tx: Tx, orderId: string, to: OrderStatus, extra: Partial<typeof orders.$inferInsert> = {}) {
  const moved = await tryTransition(tx, orderId, to, extra)
  if (moved) return moved
  const [row] = await tx.select({ status: orders.status }).from(orders).where(eq(orders.id, orderId))
  throw new Conflict(`An order cannot go from ${row!.status} to ${to}`, 'invalid-transition')
}

export interface OrderDeps { db: Db; outbox: Outbox }

/** Orders as customers and admins read them; the changes are workflows (./workflows). */
export function createOrderService({ db, outbox }: OrderDeps) {
  async function itemsOf(orderIds: string[]) {
    if (!orderIds.length) return new Map<string, ItemRow[]>()
    const rows = await db.select().from(orderItems).where(inArray(orderItems.orderId, orderIds)).orderBy(asc(orderItems.sku))
    const byOrder = new Map<string, ItemRow[]>()
    for (const r of rows) byOrder.set(r.orderId, [...(byOrder.get(r.orderId) ?? []), r])
    return byOrder
  }
  async function view(row: OrderRow) { return toOrder(row, (await itemsOf([row.id])).get(row.id) ?? []) }

  async function requireVisible(viewer: Viewer, orderId: string) {
    const [row] = await db.select().from(orders).where(eq(orders.id, orderId))
    // Someone else's order does not exist for a customer.
    if (!row || (!viewer.isAdmin && row.userId !== viewer.userId)) throw new NotFound('order', orderId)
    return row
  }

  return {
    view,
    requireVisible,
    async get(viewer: Viewer, orderId: string) { return view(await requireVisible(viewer, orderId)) },

    async list(viewer: Viewer, query: { limit: number; cursor?: string; status?: OrderStatus; userId?: string }) {
      const filters: SQL[] = []
      if (!viewer.isAdmin) filters.push(eq(orders.userId, viewer.userId))
      else if (query.userId) filters.push(eq(orders.userId, query.userId))
      if (query.status) filters.push(eq(orders.status, query.status))
      const keyset = newestFirst(orders.createdAt, orders.id)
      const rows = await db.select().from(orders).where(and(...filters, keyset.after(query.cursor))).orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      const items = await itemsOf(page.items.map((r) => r.id))
      return { items: page.items.map((r) => toOrder(r, items.get(r.id) ?? [])), nextCursor: page.nextCursor }
    },

    /** Admin moves along the machine: fulfilled, shipped (mailed, with carrier and tracking), delivered. Cancelling is its own workflow. */
    async advance(orderId: string, to: 'fulfilled' | 'shipped' | 'delivered', shipment: { carrier?: string; trackingNumber?: string } = {}) {
      if (to !== 'shipped' && (shipment.carrier || shipment.trackingNumber)) throw new BadRequest('carrier and trackingNumber go with status shipped', 'shipment-without-shipping')
      let eventIds: string[] = []
      const row = await db.transaction(async (tx) => {
        const moved = await transition(tx, orderId, to, to === 'shipped' ? { shippingCarrier: shipment.carrier ?? null, trackingNumber: shipment.trackingNumber ?? null } : to === 'delivered' ? { deliveredAt: new Date() } : {})
        if (to === 'shipped') eventIds = await outbox.add(tx, [ORDER_MAIL(orderId, 'shipped'), ORDER_WEBHOOK('order.shipped', moved)])
        return moved
      })
      await outbox.runNow(eventIds)
      return view(row)
    },
  }
}
export type OrderService = ReturnType<typeof createOrderService>
export interface Viewer { userId: string; isAdmin: boolean }
