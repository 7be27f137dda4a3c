import { and, asc, eq, inArray, isNull, lt, sql, type SQL } from 'drizzle-orm'
import { addresses, couponRedemptions, coupons, inventoryMovements, orderItems, orders, productVariants, products, type ShippingAddress } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { Conflict, NotFound } from '../../src/errors.js'
import { newestFirst } from '../../src/pagination.js'
import type { Cache } from '../../src/cache.js'
import { CATALOG_CACHE } from '../categories/service.js'
import { refreshProductAggregates, type Tx } from '../products/service.js'
import { redeemInCheckout } from '../coupons/service.js'
import type { CartService } from '../cart/service.js'
import { computeTotals, type PricedLine } from './pricing.js'
import type { OrderStatus } from './schemas.js'

type OrderRow = typeof orders.$inferSelect
type ItemRow = typeof orderItems.$inferSelect

export interface CheckoutConfig { shippingFlatMinor: number; shippingFreeOverMinor: number; taxRateBps: number; paymentTimeoutMinutes: number }

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
    totalMinor: row.totalMinor, refundedMinor: row.refundedMinor, couponCode: row.couponCode,
    shippingAddress: { recipientName: a.recipientName, line1: a.line1, line2: a.line2 ?? null, city: a.city, region: a.region ?? null, postalCode: a.postalCode, country: a.country, phone: a.phone ?? null },
    items: items.map((i) => ({ variantId: i.variantId, productId: i.productId, sku: i.sku, name: i.name, options: i.options, unitPriceMinor: i.unitPriceMinor, quantity: i.quantity, lineTotalMinor: i.lineTotalMinor, discountMinor: i.discountMinor })),
    expiresAt: row.status === 'pending_payment' ? iso(row.expiresAt) : null, paidAt: iso(row.paidAt), cancelledAt: iso(row.cancelledAt), createdAt: row.createdAt.toISOString(),
  }
}

/**
 * Puts an order's stock back and gives back its coupon use, once: the stock_released_at guard
 * makes a second call (double cancel, cancel racing expiry, refund after cancel) do nothing.
 */
export async function releaseOrder(tx: Tx, orderId: string, reason: 'cancellation' | 'return') {
  const [claimed] = await tx.update(orders).set({ stockReleasedAt: new Date() })
    .where(and(eq(orders.id, orderId), isNull(orders.stockReleasedAt))).returning({ id: orders.id, couponId: orders.couponId })
  if (!claimed) return false
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
  for (const productId of touched) await refreshProductAggregates(tx, productId)
  if (claimed.couponId) {
    const gone = await tx.delete(couponRedemptions).where(eq(couponRedemptions.orderId, orderId)).returning({ id: couponRedemptions.id })
    if (gone.length) await tx.update(coupons).set({ timesRedeemed: sql`${coupons.timesRedeemed} - 1` }).where(eq(coupons.id, claimed.couponId))
  }
  return true
}

/** Moves an order along the state machine, or 409. Returns the updated row. */
export async function transition(tx: Tx, orderId: string, to: OrderStatus, extra: Partial<typeof orders.$inferInsert> = {}) {
  const [row] = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update')
  if (!row) throw new NotFound('order', orderId)
  if (!TRANSITIONS[row.status].includes(to)) throw new Conflict(`An order cannot go from ${row.status} to ${to}`, 'invalid-transition')
  const [updated] = await tx.update(orders).set({ status: to, updatedAt: new Date(), ...extra }).where(eq(orders.id, orderId)).returning()
  return updated!
}

export interface OrderDeps {
  db: Db
  cache: Cache
  cart: Pick<CartService, 'checkoutWith'>
  currency: string
  checkout: CheckoutConfig
  /** Refunds whatever was captured for the order (used when a paid order is cancelled). */
  refundAll: (tx: Tx, orderId: string, actorId: string | null) => Promise<void>
}

export function createOrderService(deps: OrderDeps) {
  const { db, cache, cart, currency, checkout } = deps

  async function itemsOf(orderIds: string[]) {
    if (!orderIds.length) return new Map<string, ItemRow[]>()
    const rows = await db.select().from(orderItems).where(inArray(orderItems.orderId, orderIds)).orderBy(asc(orderItems.sku))
    const byOrder = new Map<string, ItemRow[]>()
    for (const r of rows) byOrder.set(r.orderId, [...(byOrder.get(r.orderId) ?? []), r])
    return byOrder
  }
  async function view(row: OrderRow) { return toOrder(row, (await itemsOf([row.id])).get(row.id) ?? []) }

  async function resolveAddress(userId: string, input: { shippingAddress?: ShippingAddress; addressId?: string }): Promise<ShippingAddress> {
    if (input.shippingAddress && input.addressId) throw new Conflict('Send shippingAddress or addressId, not both', 'address-ambiguous')
    if (input.addressId) {
      const [saved] = await db.select().from(addresses).where(and(eq(addresses.id, input.addressId), eq(addresses.userId, userId)))
      if (!saved) throw new NotFound('address', input.addressId)
      return { recipientName: saved.recipientName, line1: saved.line1, line2: saved.line2, city: saved.city, region: saved.region, postalCode: saved.postalCode, country: saved.country, phone: saved.phone }
    }
    if (!input.shippingAddress) throw new Conflict('A shipping address is required (shippingAddress or addressId)', 'address-required')
    const { isDefault: _ignored, ...address } = input.shippingAddress as ShippingAddress & { isDefault?: boolean }
    return address
  }

  async function requireVisible(viewer: { userId: string; isAdmin: boolean }, orderId: string) {
    const [row] = await db.select().from(orders).where(eq(orders.id, orderId))
    // Someone else's order does not exist for a customer.
    if (!row || (!viewer.isAdmin && row.userId !== viewer.userId)) throw new NotFound('order', orderId)
    return row
  }

  return {
    /**
     * Turns the user's cart into an order in ONE transaction: lock the variants in id order,
     * check stock, price from the catalog, redeem the coupon under its lock, decrement stock,
     * write the order with item snapshots. The cart is cleared only after the commit.
     */
    async checkout(userId: string, input: { shippingAddress?: ShippingAddress; addressId?: string; couponCode?: string | null }) {
      const shippingAddress = await resolveAddress(userId, input)
      const orderId = await cart.checkoutWith({ kind: 'user', userId }, (contents) => {
        if (!contents.lines.length) throw new Conflict('The cart is empty', 'cart-empty')
        const couponCode = input.couponCode !== undefined ? input.couponCode : contents.couponCode
        return db.transaction(async (tx) => {
          const variantIds = [...new Set(contents.lines.map((l) => l.variantId))].sort()
          const locked = await tx.select({
            id: productVariants.id, productId: productVariants.productId, sku: productVariants.sku, options: productVariants.options,
            priceMinor: productVariants.priceMinor, stock: productVariants.stock, isActive: productVariants.isActive,
            name: products.name, status: products.status, categoryId: products.categoryId,
          }).from(productVariants).innerJoin(products, eq(products.id, productVariants.productId))
            .where(inArray(productVariants.id, variantIds)).orderBy(asc(productVariants.id)).for('update', { of: productVariants })
          const byId = new Map(locked.map((v) => [v.id, v]))

          const problems: { variantId: string; message: string }[] = []
          for (const line of contents.lines) {
            const v = byId.get(line.variantId)
            if (!v || !v.isActive || v.status !== 'active') problems.push({ variantId: line.variantId, message: 'no longer available' })
            else if (v.stock < line.quantity) problems.push({ variantId: line.variantId, message: v.stock === 0 ? 'out of stock' : `only ${v.stock} left` })
          }
          if (problems.length) throw new CheckoutConflict(problems)

          const priced: PricedLine[] = contents.lines.map((l) => {
            const v = byId.get(l.variantId)!
            return { variantId: v.id, productId: v.productId, categoryId: v.categoryId, unitPriceMinor: v.priceMinor, quantity: l.quantity }
          })
          const redeemed = couponCode ? await redeemInCheckout(tx, couponCode, userId, priced) : null
          const totals = computeTotals(priced, redeemed?.rule ?? null, { flatMinor: checkout.shippingFlatMinor, freeOverMinor: checkout.shippingFreeOverMinor }, checkout.taxRateBps)

          const [{ n }] = (await tx.execute<{ n: string }>(sql`select nextval('order_number_seq') as n`)).rows as [{ n: string }]
          const [order] = await tx.insert(orders).values({
            number: `SO-${String(n).padStart(6, '0')}`, userId, currency, shippingAddress,
            subtotalMinor: totals.subtotalMinor, discountMinor: totals.discountMinor, shippingMinor: totals.shippingMinor,
            taxMinor: totals.taxMinor, totalMinor: totals.totalMinor,
            couponId: redeemed?.coupon.id ?? null, couponCode: redeemed?.coupon.code ?? null,
            expiresAt: new Date(Date.now() + checkout.paymentTimeoutMinutes * 60_000),
          }).returning()

          for (const line of priced) {
            const v = byId.get(line.variantId)!
            const [after] = await tx.update(productVariants).set({ stock: sql`${productVariants.stock} - ${line.quantity}`, updatedAt: new Date() })
              .where(eq(productVariants.id, line.variantId)).returning({ stock: productVariants.stock })
            await tx.insert(inventoryMovements).values({ variantId: line.variantId, delta: -line.quantity, stockAfter: after!.stock, reason: 'sale', note: `order ${order!.number}` })
            await tx.insert(orderItems).values({
              orderId: order!.id, variantId: v.id, productId: v.productId, sku: v.sku, name: v.name, options: v.options,
              unitPriceMinor: v.priceMinor, quantity: line.quantity, lineTotalMinor: v.priceMinor * line.quantity,
              discountMinor: totals.lineDiscounts.get(v.id) ?? 0,
            })
          }
          for (const productId of new Set(priced.map((l) => l.productId))) await refreshProductAggregates(tx, productId)
          if (redeemed) await tx.insert(couponRedemptions).values({ couponId: redeemed.coupon.id, userId, orderId: order!.id })
          return order!.id
        })
      })
      await cache.invalidate(CATALOG_CACHE)
      const [row] = await db.select().from(orders).where(eq(orders.id, orderId))
      return view(row!)
    },

    async get(viewer: { userId: string; isAdmin: boolean }, orderId: string) { return view(await requireVisible(viewer, orderId)) },

    async list(viewer: { userId: string; isAdmin: boolean }, query: { limit: number; cursor?: string; status?: OrderStatus; userId?: string }) {
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

    /** A customer cancels its own order while unpaid or paid; a paid one is refunded. Stock goes back once. */
    async cancel(viewer: { userId: string; isAdmin: boolean }, orderId: string) {
      await requireVisible(viewer, orderId)
      await db.transaction(async (tx) => {
        const updated = await transition(tx, orderId, 'cancelled', { cancelledAt: new Date() })
        if (updated.paidAt) await deps.refundAll(tx, orderId, viewer.isAdmin ? viewer.userId : null)
        await releaseOrder(tx, orderId, 'cancellation')
      })
      await cache.invalidate(CATALOG_CACHE)
      return view(await requireVisible(viewer, orderId))
    },

    /** Admin moves along the machine: fulfilled, shipped, delivered, or cancelled (which refunds and restocks). */
    async setStatus(adminId: string, orderId: string, to: 'fulfilled' | 'shipped' | 'delivered' | 'cancelled') {
      if (to === 'cancelled') return this.cancel({ userId: adminId, isAdmin: true }, orderId)
      const row = await db.transaction((tx) => transition(tx, orderId, to))
      return view(row)
    },

    /** Cancels unpaid orders past their time and puts their stock back. Safe to run anywhere, any time. */
    async expireUnpaid(now = new Date()) {
      const due = await db.select({ id: orders.id }).from(orders).where(and(eq(orders.status, 'pending_payment'), lt(orders.expiresAt, now))).limit(500)
      let expired = 0
      for (const { id } of due) {
        const done = await db.transaction(async (tx) => {
          const [row] = await tx.select().from(orders).where(eq(orders.id, id)).for('update')
          if (row?.status !== 'pending_payment') return false
          await tx.update(orders).set({ status: 'cancelled', cancelledAt: now, updatedAt: now }).where(eq(orders.id, id))
          await releaseOrder(tx, id, 'cancellation')
          return true
        })
        if (done) expired++
      }
      if (expired) await cache.invalidate(CATALOG_CACHE)
      return { expired }
    },
  }
}
export type OrderService = ReturnType<typeof createOrderService>
