import { and, asc, eq, sql } from 'drizzle-orm'
import { addresses, couponRedemptions, orderItems, orders, productVariants, products, regions, type ShippingAddress } from '../../../db/schema/index.js'
import { idsForPlan, isUniqueViolation, prepareOnce, type Db, type Tx } from '../../../db/client.js'
import { BadRequest, Conflict, NotFound, Overloaded } from '../../../src/errors.js'
import { createGate } from '../../../src/gate.js'
import type { Faults } from '../../../src/faults.js'
import type { IdempotentAttempt, StoredResponse } from '../../../src/idempotency.js'
import type { Outbox } from '../../../src/outbox.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import { step } from '../../../src/tracing.js'
import { ACTIVITY, CART_CONSUMED, GUEST_CART_CONSUMED, ORDER_MAIL, ORDER_WEBHOOK, STOCK_CHANGED, cartKey, guestCartKey, type Actor } from '../../../src/side-effects.js'
import { redeemInCheckout } from '../../coupons/service.js'
import { lowStockEvents, reserve } from '../../../src/inventory.js'
import { ownerKey, type CartOwner, type CartService } from '../../cart/service.js'
import { computeTotals, discountFor, type PricedLine } from '../../../src/pricing.js'
import { priceOf, variantPricingJson } from '../../../src/prices.js'
import type { ShippingService } from '../../shipping/service.js'
import { CheckoutConflict, toOrder } from '../service.js'

// Checkout workflow: the user's cart becomes an order. In commit order:
//   1. settle the cart: an earlier checkout's cart clear still waiting in the outbox runs, so this
//      checkout reads the cart as the shopper sees it. Only when one waits: the transaction's
//      first statement says whether an order already took the generation read (the clear of that
//      order is then pending), before any check can refuse the stale lines; it rolls back, the
//      clear runs, and 2-3 run once more. Best effort; the fence in 3 holds anyway.
//   2. read the cart from MongoDB: lines, coupon, and the checkout generation it is at. Writes nothing.
//   3. ONE PostgreSQL transaction: read the variants and turn away what cannot be bought, price from the
//      catalog, redeem the coupon under its lock, pick the shipping option and the tax rate of
//      the destination (both kept on the order as they are now), write the order with item
//      snapshots, stamped with (cart id, generation) under a unique index: a second order from
//      the same generation (a retry, a second instance, a checkout that outlived any lock) is a
//      409. Last, reserve the stock at the locations serving the chosen option's zone
//      (src/inventory.ts: a conditional update per level, so a
//      level's row lock is held only from there to the commit; a line that cannot be filled is a
//      409 naming it). The cart clear, cache invalidation, activity and mails (the customer's, and the
//      admins' when stock fell low) go into the outbox, and the
//      Idempotency-Key's response is stored, all in this transaction. Nothing to undo: it
//      commits whole or not at all, and a retry after the commit replays the stored response.
//   4. after the commit, the outbox events run at once; what fails is retried by the drain job.
//
// A guest (the holder of a guest cart's token) checks out through the same steps: the buyer is
// the cart, the order has no user and carries the cart's contact email, and a per-customer
// coupon limit counts that email. Its access token is issued by the route, outside the stored
// answer (a secret is never kept in idempotency_keys): see routes/orders/guest.ts.

export interface CheckoutConfig {
  pricesIncludeTax: boolean; paymentTimeoutMinutes: number; lowStockThreshold: number; guestMaxUnpaidOrders: number; guestMaxUnpaidOrdersPerClient: number
  /** Checkouts run at once, and waiting their turn at most (src/gate.ts). */
  concurrency: number; queue: number
}
/** The next order number, SO- and at least six digits, drawn by the order's insert itself. */
const ORDER_NUMBER = sql`(select 'SO-' || case when length(n) >= 6 then n else lpad(n, 6, '0') end from (select nextval('order_number_seq')::text as n) next)`

// The order's insert, built once and prepared: every column but its number is a parameter.
const insertOrder = prepareOnce((tx: Tx) => tx.insert(orders).values({
  number: ORDER_NUMBER,
  userId: sql.placeholder('userId'), guestEmail: sql.placeholder('guestEmail'), guestClient: sql.placeholder('guestClient'), currency: sql.placeholder('currency'), shippingAddress: sql.placeholder('shippingAddress'),
  subtotalMinor: sql.placeholder('subtotalMinor'), discountMinor: sql.placeholder('discountMinor'), shippingMinor: sql.placeholder('shippingMinor'), taxMinor: sql.placeholder('taxMinor'), totalMinor: sql.placeholder('totalMinor'),
  shippingOption: sql.placeholder('shippingOption'), taxRate: sql.placeholder('taxRate'), pricesIncludeTax: sql.placeholder('pricesIncludeTax'), couponId: sql.placeholder('couponId'), couponCode: sql.placeholder('couponCode'),
  expiresAt: sql.placeholder('expiresAt'), cartId: sql.placeholder('cartId'), cartGeneration: sql.placeholder('cartGeneration'),
}).returning().prepare('checkout_insert_order'))

/** The cart read has an order already (its clear is pending): settle it and read it again. */
class CartNotSettled extends Error {}

export interface CheckoutDeps {
  db: Db
  outbox: Outbox
  faults: Faults
  cart: Pick<CartService, 'forCheckout'>
  shipping: Pick<ShippingService, 'ready' | 'choose'>
  metrics: MoneyMetrics
  checkout: CheckoutConfig
  /** A client address as stored with an unpaid guest order: keyed, so it cannot be read back. */
  guestClientKey: (ip: string) => string
}
export interface CheckoutInput {
  shippingAddress?: ShippingAddress; addressId?: string; couponCode?: string | null; shippingOptionId?: string
  /** The currency the client believes it pays in: anything but the cart's is refused before any write. */
  currency?: string
}

/**
 * The unpaid guest orders that hold this email or client address (`column`), counted under a lock
 * of that key held to the end of the transaction, so two checkouts cannot both pass one bound.
 */
async function unpaidGuestOrders(tx: Tx, column: typeof orders.guestEmail | typeof orders.guestClient, value: string): Promise<number> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${`guest-unpaid:${column.name}:${value}`}))`)
  const [{ n }] = (await tx.execute<{ n: number }>(sql`select count(*)::int as n from ${orders} where ${column} = ${value} and ${orders.userId} is null and ${orders.status} = 'pending_payment'`)).rows as [{ n: number }]
  return n
}

// The variants of a cart as checkout reads them, and whether an order already took this generation
// of the cart (its clear is pending: step 1); built once and prepared (db/client.ts prepareOnce).
const checkoutVariants = prepareOnce((tx: Tx) => tx.select({
  id: productVariants.id, productId: productVariants.productId, sku: productVariants.sku, options: productVariants.options,
  stock: productVariants.stock, isActive: productVariants.isActive,
  weightGrams: productVariants.weightGrams, name: products.name, status: products.status, categoryId: products.categoryId,
  alreadyOrdered: sql<boolean>`exists (select 1 from ${orders} o where o.cart_id = ${sql.placeholder('cartId')} and o.cart_generation = ${sql.placeholder('generation')})`,
  // Its base price in the cart's currency and the lists that apply to the buyer now.
  pricing: variantPricingJson(sql`${productVariants}.id`),
}).from(productVariants).innerJoin(products, eq(products.id, productVariants.productId))
  .where(sql`${productVariants.id} = any(${sql.placeholder('ids')}::uuid[])`).orderBy(asc(productVariants.id)).prepare('checkout_variants'))

export function createCheckoutWorkflow({ db, outbox, faults, cart, shipping, checkout, metrics, guestClientKey }: CheckoutDeps) {
  async function resolveAddress(userId: string | null, input: CheckoutInput): Promise<ShippingAddress> {
    if (input.shippingAddress && input.addressId) throw new Conflict('Send shippingAddress or addressId, not both', 'address-ambiguous')
    if (input.addressId) {
      if (userId === null) throw new BadRequest('addressId names a saved address: send shippingAddress', 'address-required')
      const [saved] = await db.select().from(addresses).where(and(eq(addresses.id, input.addressId), eq(addresses.userId, userId)))
      if (!saved) throw new NotFound('address', input.addressId)
      return { recipientName: saved.recipientName, line1: saved.line1, line2: saved.line2, city: saved.city, region: saved.region, postalCode: saved.postalCode, country: saved.country, phone: saved.phone }
    }
    if (!input.shippingAddress) throw new Conflict('A shipping address is required (shippingAddress or addressId)', 'address-required')
    const { isDefault: _ignored, ...address } = input.shippingAddress as ShippingAddress & { isDefault?: boolean }
    return address
  }

  // Checkouts are admitted in arrival order, about a pool's worth at a time, from start to side
  // effects: each takes the pool about ten times, and unbounded they all advance together, all
  // answer late, and under load some wait past the pool's connect timeout.
  const admit = createGate(checkout.concurrency, checkout.queue,
    () => new Overloaded('Too many checkouts at once; retry in a second'))

  return (actor: Actor, buyer: CartOwner, input: CheckoutInput, attempt: IdempotentAttempt): Promise<StoredResponse> =>
    admit(() => placeOrder(actor, buyer, input, attempt))

  async function placeOrder(actor: Actor, buyer: CartOwner, input: CheckoutInput, attempt: IdempotentAttempt): Promise<StoredResponse> {
    const userId = buyer.kind === 'user' ? buyer.userId : null
    const shippingAddress = await resolveAddress(userId, input)
    const owned = ownerKey(buyer)
    try {
      return await orderFromCart(actor, buyer, owned, shippingAddress, input, attempt, false)
    } catch (err) {
      if (!(err instanceof CartNotSettled)) throw err
      // 1. settle the cart, then read it again
      await step('checkout.settle-cart', () => outbox.drain({ key: userId ? cartKey(userId) : guestCartKey(owned) })).catch(() => { /* the fence below holds regardless */ })
      return orderFromCart(actor, buyer, owned, shippingAddress, input, attempt, true)
    }
  }

  async function orderFromCart(actor: Actor, buyer: CartOwner, owned: string, shippingAddress: ShippingAddress, input: CheckoutInput, attempt: IdempotentAttempt, settled: boolean): Promise<StoredResponse> {
    const userId = buyer.kind === 'user' ? buyer.userId : null
    // 2. read the cart
    const contents = await step('checkout.read-cart', () => cart.forCheckout(buyer))
    if (!contents.lines.length) throw new Conflict('The cart is empty', 'cart-empty')
    // The order is in the cart's currency, never in one the client names (it would pay unconverted amounts).
    const { currency } = contents
    if (input.currency !== undefined && input.currency !== currency) {
      throw new Conflict(`The cart is in ${currency}, not ${input.currency}: review it (GET /cart) and check out in ${currency}`, 'currency-mismatch')
    }
    const guestEmail = userId ? null : contents.email
    const guestClient = guestEmail && actor.ip ? guestClientKey(actor.ip) : null
    if (!userId && !guestEmail) throw new Conflict('A guest cart needs a contact email first (PUT /cart/contact)', 'contact-required')
    const couponCode = input.couponCode !== undefined ? input.couponCode : contents.couponCode
    await shipping.ready()

    // 3. one transaction, then 4. its side effects
    try {
      return await outbox.transaction(async (tx, emit): Promise<StoredResponse> => {
        // Read, not locked: this check only turns buyers away early (a sold-out variant costs no
        // lock). The stock is taken by inventory.reserve as the last write, which checks again.
        const variantIds = [...new Set(contents.lines.map((l) => l.variantId))].sort()
        const locked = await checkoutVariants(tx).execute({ ids: idsForPlan(variantIds), cartId: contents.cartId, generation: contents.generation, currency, at: new Date(), userId })
        // An order took this generation: its clear is pending (step 1). No variant left to say so: settle to be sure.
        if (!settled && (locked.length === 0 || locked[0]!.alreadyOrdered)) throw new CartNotSettled()
        // A guest's unpaid orders hold stock and coupon uses: one email holds a bounded number at
        // once, counted under a lock of that email (taken before any row lock, so in one order).
        // The client address's bound is checked last (below).
        if (guestEmail) {
          const n = await unpaidGuestOrders(tx, orders.guestEmail, guestEmail)
          if (n >= checkout.guestMaxUnpaidOrders) throw new Conflict(`This email already has ${n} unpaid orders: pay or cancel one first`, 'too-many-unpaid-orders')
        }
        const byId = new Map(locked.map((v) => [v.id, v]))

        // Priced by the one pricing rule, from what the variants' read found in this transaction:
        // the buyer's customer groups, the price lists and the base prices in the cart's currency.
        const prices = new Map(contents.lines.flatMap((l) => { const p = byId.get(l.variantId)?.pricing; return p ? [[l.variantId, priceOf(p, l.quantity)] as const] : [] }))
        const problems: { variantId: string; message: string }[] = []
        for (const line of contents.lines) {
          const v = byId.get(line.variantId)
          if (!v || !v.isActive || v.status !== 'active') problems.push({ variantId: line.variantId, message: 'no longer available' })
          else if (!prices.has(line.variantId)) problems.push({ variantId: line.variantId, message: `not sold in ${currency}` })
          else if (v.stock < line.quantity) problems.push({ variantId: line.variantId, message: v.stock === 0 ? 'out of stock' : `only ${v.stock} left` })
        }
        if (problems.length) throw new CheckoutConflict(problems)
        // The cart's region decides whether its prices include tax; a cart without one has the store's mode.
        const [region] = contents.regionId ? await tx.select({ pricesIncludeTax: regions.pricesIncludeTax }).from(regions).where(eq(regions.id, contents.regionId)) : []
        const pricesIncludeTax = region?.pricesIncludeTax ?? checkout.pricesIncludeTax

        const priced: PricedLine[] = contents.lines.map((l) => {
          const v = byId.get(l.variantId)!
          return { variantId: v.id, productId: v.productId, categoryId: v.categoryId, unitPriceMinor: prices.get(v.id)!.unitPriceMinor, quantity: l.quantity }
        })
        const unitPrice = new Map(priced.map((l) => [l.variantId, l.unitPriceMinor]))
        const redeemed = couponCode ? await redeemInCheckout(tx, couponCode, userId ? { userId } : { email: guestEmail! }, priced, currency) : null
        const rule = redeemed?.rule ?? null
        const goodsMinor = priced.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0) - discountFor(priced, rule).discountMinor
        const weightGrams = priced.reduce((s, l) => s + (byId.get(l.variantId)!.weightGrams ?? 0) * l.quantity, 0)
        const destination = { country: shippingAddress.country, region: shippingAddress.region ?? null }
        const chosen = await shipping.choose(tx, destination, { goodsMinor, weightGrams, currency }, input.shippingOptionId)
        const taxRate = chosen.taxRate
        const totals = computeTotals(priced, rule, chosen.rule, taxRate.rateBps, pricesIncludeTax)

        const [order] = await insertOrder(tx).execute({
          userId, guestEmail, guestClient, currency, shippingAddress,
          subtotalMinor: totals.subtotalMinor, discountMinor: totals.discountMinor, shippingMinor: totals.shippingMinor,
          taxMinor: totals.taxMinor, totalMinor: totals.totalMinor,
          shippingOption: chosen.snapshot, taxRate, pricesIncludeTax,
          couponId: redeemed?.coupon.id ?? null, couponCode: redeemed?.coupon.code ?? null,
          expiresAt: new Date(Date.now() + checkout.paymentTimeoutMinutes * 60_000),
          cartId: contents.cartId, cartGeneration: contents.generation,
        } satisfies Omit<typeof orders.$inferInsert, 'number'>)

        // Every line in one statement (a statement per line was a round trip per line).
        const items = await tx.insert(orderItems).values(priced.map((line) => {
          const v = byId.get(line.variantId)!
          return {
            orderId: order!.id, variantId: v.id, productId: v.productId, sku: v.sku, name: v.name, options: v.options,
            unitPriceMinor: unitPrice.get(v.id)!, quantity: line.quantity, lineTotalMinor: unitPrice.get(v.id)! * line.quantity,
            discountMinor: totals.lineDiscounts.get(v.id) ?? 0, taxMinor: totals.lineTaxes.get(v.id) ?? 0,
          }
        })).returning()
        if (redeemed) await tx.insert(couponRedemptions).values({ couponId: redeemed.coupon.id, userId, email: redeemed.email, orderId: order!.id })
        await emit([
          userId ? CART_CONSUMED(userId, contents.generation, contents.lines, contents.seen) : GUEST_CART_CONSUMED(owned, contents.generation, contents.lines, contents.seen),
          ...STOCK_CHANGED(priced.map((l) => l.productId), false),
          ACTIVITY(actor, 'checkout', { orderId: order!.id, number: order!.number, totalMinor: order!.totalMinor }),
          ORDER_MAIL(order!.id, 'placed'),
          ORDER_WEBHOOK('order.created', order!),
        ])
        const placed: StoredResponse = { status: 201, body: toOrder(order!, items.sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0))) }
        faults.at('checkout.before-idempotency-complete')
        await attempt.complete(tx, placed)

        // Last write: the stock, at the locations that serve the chosen option's zone. Buyers of one variant queue on its level row from here to the
        // commit, so nothing else comes after it but the rare events it causes (sold out, low stock).
        const stock = await step('checkout.reserve-stock', () => reserve(tx, { id: order!.id, number: order!.number, zoneId: chosen.snapshot.zoneId }, priced, checkout.lowStockThreshold, (problems) => new CheckoutConflict(problems)))
        const caused = [...(stock.listsChanged ? STOCK_CHANGED([], true) : []), ...lowStockEvents(stock, checkout.lowStockThreshold)]
        if (caused.length) await emit(caused)
        // One client address holds a bounded number of unpaid guest orders, this one included,
        // counted under a lock of the address. Taken last, so it is held only up to the commit:
        // guests behind one address (an office, a carrier's NAT) do not queue whole checkouts.
        if (guestClient) {
          const held = await unpaidGuestOrders(tx, orders.guestClient, guestClient)
          if (held > checkout.guestMaxUnpaidOrdersPerClient) throw new Conflict(`Too many unpaid guest orders from this address (${held - 1}): pay or cancel one first`, 'too-many-unpaid-orders')
        }
        return placed
      }, {
        span: 'checkout.transaction',
        afterCommit: async (placed, runEvents) => {
          metrics.order('placed', currency, (placed.body as { totalMinor: number }).totalMinor)
          faults.at('checkout.after-order-commit')
          await step('checkout.side-effects', runEvents)
        },
      })
    } catch (err) {
      if (isUniqueViolation(err, 'orders_cart_generation_key')) {
        throw new Conflict('This cart has just been checked out by another request; review the cart and try again', 'cart-already-checked-out')
      }
      throw err
    }
  }
}
export type CheckoutWorkflow = ReturnType<typeof createCheckoutWorkflow>
