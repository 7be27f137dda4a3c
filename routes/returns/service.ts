import { and, asc, eq, inArray, ne, sql, type SQL } from 'drizzle-orm'
import { orderItems, orders, productVariants, refunds, returnItems, returns } from '../../db/schema/index.js'
import type { Db, Tx } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import type { Outbox } from '../../src/outbox.js'
import { newestFirst } from '../../src/pagination.js'
import { ACTIVITY, STOCK_CHANGED, type Actor, type OutboxEvent } from '../../src/side-effects.js'
import { allocate, roundHalfUp } from '../../src/pricing.js'
import type { Viewer } from '../../src/viewer.js'
import { adjust, emptyChange } from '../../src/inventory.js'
import type { RETURN_REASONS, RETURN_STATUSES } from './schemas.js'

// Returns of delivered goods. A customer asks (within RETURN_WINDOW_DAYS of delivery, a reason
// per line); an admin approves or rejects, receives what came back (restocking what can be sold
// again, each as an inventory movement) and refunds it through the refund workflow.
//
// Every change locks the order row first, then the return row, in one transaction, and checks
// the return's status under that lock: of several identical requests racing, one moves the
// return on and the others find it moved (409), so stock goes back and money is refunded once.
// The refund is a workflow of its own (workflows/refund-return.ts).

type ReturnRow = typeof returns.$inferSelect
type Status = (typeof RETURN_STATUSES)[number]
type Reason = (typeof RETURN_REASONS)[number]
export interface ReturnDeps { db: Db; outbox: Outbox; windowDays: number }

const iso = (d: Date | null) => (d ? d.toISOString() : null)

type OrderRow = typeof orders.$inferSelect
type OrderItemRow = typeof orderItems.$inferSelect

/**
 * What an order line is worth back, per order line: its total after discount, with its tax unless
 * prices include it. Orders placed before lines carried their tax share (no tax snapshot) get it
 * spread now, as checkout spreads it today.
 */
export function lineValues(order: Pick<OrderRow, 'taxRate' | 'taxMinor' | 'shippingMinor' | 'pricesIncludeTax'>, items: Pick<OrderItemRow, 'id' | 'lineTotalMinor' | 'discountMinor' | 'taxMinor'>[]) {
  const net = (i: (typeof items)[number]) => i.lineTotalMinor - i.discountMinor
  const legacy = order.taxRate === null && order.taxMinor > 0
    ? allocate(order.taxMinor, [...items.map((i): [string, number] => [i.id, net(i)]), ['~shipping', order.shippingMinor]])
    : null
  return new Map(items.map((i) => [i.id, net(i) + (order.pricesIncludeTax ? 0 : legacy ? legacy.get(i.id) ?? 0 : i.taxMinor)]))
}

/**
 * What `quantity` more units of a line worth `value` for its `ordered` units refund, when
 * `earlier` units of it were refunded before: the value of all units back so far less what the
 * earlier ones got, so a line returned in parts never pays back more (or less) than its value.
 */
export const refundForUnits = (value: number, ordered: number, earlier: number, quantity: number) =>
  roundHalfUp((earlier + quantity) * value, ordered) - roundHalfUp(earlier * value, ordered)

/** Locks the return's order, then the return, and checks the return is in `from`. */
export async function lockReturn(tx: Tx, returnId: string, from: Status, verb: string) {
  const [known] = await tx.select({ orderId: returns.orderId }).from(returns).where(eq(returns.id, returnId))
  if (!known) throw new NotFound('return', returnId)
  const [order] = await tx.select().from(orders).where(eq(orders.id, known.orderId)).for('update')
  const [row] = await tx.select().from(returns).where(eq(returns.id, returnId)).for('update')
  if (row!.status !== from) throw new Conflict(`A return that is ${row!.status} cannot be ${verb}`, `return-${row!.status}`)
  return { order: order!, row: row! }
}

export function createReturnService({ db, outbox, windowDays }: ReturnDeps) {
  async function views(rows: ReturnRow[]) {
    if (!rows.length) return []
    const ids = rows.map((r) => r.id)
    const items = await db.select({ item: returnItems, sku: orderItems.sku, name: orderItems.name }).from(returnItems)
      .innerJoin(orderItems, eq(orderItems.id, returnItems.orderItemId)).where(inArray(returnItems.returnId, ids)).orderBy(asc(orderItems.sku), asc(returnItems.id))
    const orderRows = await db.select({ id: orders.id, number: orders.number, currency: orders.currency }).from(orders).where(inArray(orders.id, [...new Set(rows.map((r) => r.orderId))]))
    const refundIds = rows.flatMap((r) => (r.refundId ? [r.refundId] : []))
    const refundRows = refundIds.length ? await db.select().from(refunds).where(inArray(refunds.id, refundIds)) : []
    return rows.map((r) => {
      const order = orderRows.find((o) => o.id === r.orderId)!
      const refund = refundRows.find((f) => f.id === r.refundId)
      return {
        id: r.id, orderId: r.orderId, orderNumber: order.number, userId: r.userId, status: r.status, currency: order.currency,
        items: items.filter((i) => i.item.returnId === r.id).map(({ item, sku, name }) => ({
          id: item.id, orderItemId: item.orderItemId, sku, name, quantity: item.quantity, reason: item.reason, note: item.note,
          receivedQuantity: item.receivedQuantity, restockedQuantity: item.restockedQuantity,
        })),
        refundMinor: r.refundMinor,
        refund: refund ? { id: refund.id, paymentId: refund.paymentId, amountMinor: refund.amountMinor, status: refund.status } : null,
        rejectionReason: r.rejectionReason, createdAt: r.createdAt.toISOString(), approvedAt: iso(r.approvedAt), receivedAt: iso(r.receivedAt), refundedAt: iso(r.refundedAt),
      }
    })
  }
  const view = async (row: ReturnRow) => (await views([row]))[0]!

  async function requireVisible(viewer: Viewer, returnId: string) {
    const [row] = await db.select().from(returns).where(eq(returns.id, returnId))
    // Someone else's return does not exist for a customer.
    if (!row || (!viewer.isAdmin && row.userId !== viewer.userId)) throw new NotFound('return', returnId)
    return row
  }

  /** Runs a change of one return and its outbox events in one transaction, then the events. */
  async function change(work: (tx: Tx) => Promise<{ row: ReturnRow; events: OutboxEvent[] }>) {
    const row = await outbox.transaction(async (tx, emit) => {
      const done = await work(tx)
      await emit(done.events)
      return done.row
    })
    return view(row)
  }

  return {
    requireVisible,
    view,
    async get(viewer: Viewer, returnId: string) { return view(await requireVisible(viewer, returnId)) },

    /** The returns of one order, oldest first (a guest follows them with the order's token). */
    async ofOrder(orderId: string) {
      return views(await db.select().from(returns).where(eq(returns.orderId, orderId)).orderBy(asc(returns.createdAt), asc(returns.id)))
    },

    async list(viewer: Viewer, query: { limit: number; cursor?: string; status?: Status }) {
      const filters: SQL[] = []
      if (!viewer.isAdmin) filters.push(eq(returns.userId, viewer.userId))
      if (query.status) filters.push(eq(returns.status, query.status))
      const keyset = newestFirst(returns.createdAt, returns.id)
      const rows = await db.select().from(returns).where(and(...filters, keyset.after(query.cursor))).orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      return { items: await views(page.items), nextCursor: page.nextCursor }
    },

    /** A customer asks to return delivered items of their order, within the window. */
    /**
     * A return of a delivered order. `byOrderToken`: the guest's order token has already opened
     * this order (routes/orders/guest.ts), so the actor need not own it; the return belongs to
     * whoever owns the order (nobody for a guest order not yet claimed).
     */
    async request(actor: Actor, orderId: string, lines: { orderItemId: string; quantity: number; reason: Reason; note?: string }[], opts: { byOrderToken?: boolean } = {}) {
      if (new Set(lines.map((l) => l.orderItemId)).size !== lines.length) throw new BadRequest('Each order item may appear once', 'return-duplicate-item')
      return change(async (tx) => {
        const [order] = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update')
        if (!order || (!opts.byOrderToken && (actor.userId === null || order.userId !== actor.userId))) throw new NotFound('order', orderId)
        if (order.status !== 'delivered') throw new Conflict(`Only a delivered order can be returned (this one is ${order.status})`, 'order-not-delivered')
        const deliveredAt = order.deliveredAt ?? order.updatedAt
        if (Date.now() > deliveredAt.getTime() + windowDays * 86_400_000) throw new Conflict(`Returns are accepted for ${windowDays} days after delivery`, 'return-window-closed')
        const items = await tx.select().from(orderItems).where(eq(orderItems.orderId, orderId))
        // What other returns of this order (not rejected) already ask for, per order item.
        const asked = await tx.select({ orderItemId: returnItems.orderItemId, quantity: sql<number>`sum(${returnItems.quantity})::int` }).from(returnItems)
          .innerJoin(returns, eq(returns.id, returnItems.returnId)).where(and(eq(returns.orderId, orderId), ne(returns.status, 'rejected'))).groupBy(returnItems.orderItemId)
        for (const line of lines) {
          const item = items.find((i) => i.id === line.orderItemId)
          if (!item) throw new BadRequest(`Order item ${line.orderItemId} is not part of order ${order.number}`, 'return-unknown-item')
          const left = item.quantity - (asked.find((a) => a.orderItemId === item.id)?.quantity ?? 0)
          if (line.quantity > left) throw new Conflict(`At most ${left} of ${item.sku} can still be returned`, 'return-exceeds-ordered')
        }
        const [row] = await tx.insert(returns).values({ orderId, userId: order.userId }).returning()
        await tx.insert(returnItems).values(lines.map((l) => ({ returnId: row!.id, orderItemId: l.orderItemId, quantity: l.quantity, reason: l.reason, note: l.note ?? null })))
        return { row: row!, events: [ACTIVITY(actor, 'order_status_change', { orderId, returnId: row!.id, status: 'return_requested' })] }
      })
    },

    async approve(actor: Actor, returnId: string) {
      return change(async (tx) => {
        await lockReturn(tx, returnId, 'requested', 'approved')
        const [row] = await tx.update(returns).set({ status: 'approved', approvedAt: new Date(), updatedAt: new Date() }).where(eq(returns.id, returnId)).returning()
        return { row: row!, events: [ACTIVITY(actor, 'admin_action', { action: 'return_approve', returnId })] }
      })
    },

    async reject(actor: Actor, returnId: string, reason: string) {
      return change(async (tx) => {
        await lockReturn(tx, returnId, 'requested', 'rejected')
        const [row] = await tx.update(returns).set({ status: 'rejected', rejectionReason: reason, updatedAt: new Date() }).where(eq(returns.id, returnId)).returning()
        return { row: row!, events: [ACTIVITY(actor, 'admin_action', { action: 'return_reject', returnId })] }
      })
    },

    /**
     * The goods are back: what is resellable goes back into stock (a `return` movement each), and
     * the refund is fixed. Each line's refund is its value for the units received so far across
     * all this order's returns less what earlier returns got, so rounding never pays a line twice.
     */
    async receive(actor: Actor, returnId: string, received: { returnItemId: string; quantity: number; resellable: boolean }[], locationId?: string) {
      if (new Set(received.map((r) => r.returnItemId)).size !== received.length) throw new BadRequest('Each return item may appear once', 'return-duplicate-item')
      return change(async (tx) => {
        const { order } = await lockReturn(tx, returnId, 'approved', 'received')
        const lines = await tx.select({ item: returnItems, orderItem: orderItems }).from(returnItems).innerJoin(orderItems, eq(orderItems.id, returnItems.orderItemId))
          .where(eq(returnItems.returnId, returnId)).orderBy(asc(orderItems.variantId), asc(returnItems.id))
        for (const r of received) {
          const line = lines.find((l) => l.item.id === r.returnItemId)
          if (!line) throw new BadRequest(`Return item ${r.returnItemId} is not part of this return`, 'return-unknown-item')
          if (r.quantity > line.item.quantity) throw new BadRequest(`At most ${line.item.quantity} of ${line.orderItem.sku} were to come back`, 'return-exceeds-requested')
        }
        const before = await tx.select({ orderItemId: returnItems.orderItemId, quantity: sql<number>`coalesce(sum(${returnItems.receivedQuantity}), 0)::int` }).from(returnItems)
          .innerJoin(returns, eq(returns.id, returnItems.returnId))
          .where(and(eq(returns.orderId, order.id), inArray(returns.status, ['received', 'refunded']))).groupBy(returnItems.orderItemId)

        const values = lineValues(order, await tx.select().from(orderItems).where(eq(orderItems.orderId, order.id)))
        let refundMinor = 0
        const stock = emptyChange()
        for (const { item, orderItem } of lines) {
          const got = received.find((r) => r.returnItemId === item.id)
          const quantity = got?.quantity ?? 0
          const restocked = got?.resellable && orderItem.variantId ? quantity : 0
          const earlier = before.find((b) => b.orderItemId === orderItem.id)?.quantity ?? 0
          const value = values.get(orderItem.id)!
          refundMinor += refundForUnits(value, orderItem.quantity, earlier, quantity)
          let restockedQuantity = 0
          if (restocked > 0) {
            // Once: the return moved approved -> received under its lock above, so a second receive is a 409.
            const [variant] = await tx.select({ id: productVariants.id }).from(productVariants).where(eq(productVariants.id, orderItem.variantId!))
            if (variant) {
              await adjust(tx, { variantId: variant.id, locationId, delta: restocked, reason: 'return', reference: `return ${returnId}`, note: `return ${returnId} of order ${order.number}`, actorId: actor.userId }, stock)
              restockedQuantity = restocked
            }
          }
          await tx.update(returnItems).set({ receivedQuantity: quantity, restockedQuantity }).where(eq(returnItems.id, item.id))
        }
        const [row] = await tx.update(returns).set({ status: 'received', refundMinor, receivedAt: new Date(), updatedAt: new Date() }).where(eq(returns.id, returnId)).returning()
        return { row: row!, events: [...STOCK_CHANGED(stock.productIds, stock.listsChanged), ACTIVITY(actor, 'admin_action', { action: 'return_receive', returnId, refundMinor })] }
      })
    },
  }
}
export type ReturnService = ReturnType<typeof createReturnService>
