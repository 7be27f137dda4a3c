import { and, asc, eq, inArray, type SQL } from 'drizzle-orm'
import { orderItems, orders } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import type { Outbox } from '../../src/outbox.js'
import { ORDER_MAIL, ORDER_WEBHOOK } from '../../src/side-effects.js'
import { transition } from '../../src/order-status.js'
import { newestFirst } from '../../src/pagination.js'
import type { Viewer } from '../../src/viewer.js'
import type { OrderStatus } from './schemas.js'

type OrderRow = typeof orders.$inferSelect
type ItemRow = typeof orderItems.$inferSelect


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
    id: row.id, number: row.number, userId: row.userId, guestEmail: row.guestEmail, status: row.status, currency: row.currency,
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

    /**
     * "I lost the mail": when an order of this number was placed as a guest with this email, its
     * link is mailed there again (fresh token). The caller learns nothing: the same answer either
     * way, and the mail is sent in the background after the commit, so the answer's timing does
     * not wait on SMTP for a real order.
     */
    async requestGuestLink(number: string, email: string) {
      await outbox.transaction(async (tx, emit) => {
        const [row] = await tx.select({ id: orders.id }).from(orders).where(and(eq(orders.number, number.trim().toUpperCase()), eq(orders.guestEmail, email)))
        if (row) await emit([ORDER_MAIL(row.id, 'link')])
      }, { afterCommit: (_, runEvents) => { void runEvents() } })
    },

    /** Mails a guest order's link (a fresh order token) to its email again, for an admin answering the guest. */
    async resendGuestLink(orderId: string) {
      await outbox.transaction(async (tx, emit) => {
        const [row] = await tx.select({ id: orders.id, guestEmail: orders.guestEmail }).from(orders).where(eq(orders.id, orderId))
        if (!row) throw new NotFound('order', orderId)
        if (!row.guestEmail) throw new Conflict('This order was not placed as a guest: its customer reads it in their account', 'not-a-guest-order')
        await emit([ORDER_MAIL(row.id, 'link')])
      }, { afterCommit: (_, runEvents) => { void runEvents() } })
    },

    /** Admin moves along the machine: fulfilled, shipped (mailed, with carrier and tracking), delivered. Cancelling is its own workflow. */
    async advance(orderId: string, to: 'fulfilled' | 'shipped' | 'delivered', shipment: { carrier?: string; trackingNumber?: string } = {}) {
      if (to !== 'shipped' && (shipment.carrier || shipment.trackingNumber)) throw new BadRequest('carrier and trackingNumber go with status shipped', 'shipment-without-shipping')
      const row = await outbox.transaction(async (tx, emit) => {
        const moved = await transition(tx, orderId, to, to === 'shipped' ? { shippingCarrier: shipment.carrier ?? null, trackingNumber: shipment.trackingNumber ?? null } : to === 'delivered' ? { deliveredAt: new Date() } : {})
        if (to === 'shipped') await emit([ORDER_MAIL(orderId, 'shipped'), ORDER_WEBHOOK('order.shipped', moved)])
        return moved
      })
      return view(row)
    },
  }
}
export type OrderService = ReturnType<typeof createOrderService>
