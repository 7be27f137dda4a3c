import type { Model } from 'mongoose'
import type { RedisClient } from '../../src/redis-client.js'
import { withLock } from '../../src/locks.js'
import { deleteOlderThan } from '../../src/mongo-retention.js'
import type { CartDoc, CartLineDoc } from '../../db/models/cart.js'
import { BadRequest, Conflict, NotFound, Unauthorized } from '../../src/errors.js'
import { randomToken, sha256 } from '../../src/sessions.js'
import type { CartVariant } from '../products/service.js'
import type { LineIssue } from './schemas.js'
import type { PricingContext } from '../../src/prices.js'
import type { CartSeen } from '../../src/side-effects.js'

/** A region as a cart needs it (routes/regions/service.ts). */
export interface CartRegionRef { id: string; currency: string }

export interface CartDeps {
  carts: Model<CartDoc>
  redis: RedisClient
  catalog: { variantsForCart(ids: string[], ctx: PricingContext, quantities?: Map<string, number>): Promise<Map<string, CartVariant>>; categoriesOf?(productIds: string[]): Promise<Map<string, string | null>> }
  /** The store currency: a cart's until it names a region. */
  currency: string
  limits: { maxLines: number; maxQuantity: number }
}

/** Who a cart belongs to: a signed-in user, or whoever holds a guest cart's token. */
export type CartOwner = { kind: 'user'; userId: string } | { kind: 'guest'; token: string }
/** A cart named by its stored owner key (what the outbox carries: never a guest's raw token). */
export type CartRef = CartOwner | { kind: 'owned'; owned: string }
export const ownerKey = (owner: CartRef) => (owner.kind === 'owned' ? owner.owned : owner.kind === 'user' ? `user:${owner.userId}` : `guest:${sha256(owner.token)}`)

const MAX_ATTEMPTS = 100
const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000
const pause = (attempt: number) => new Promise((r) => setTimeout(r, Math.random() * 5 * Math.min(attempt, 8)))

export function createCartService({ carts, redis, catalog, currency, limits }: CartDeps) {
  /** The owner's cart; a user's is created on first use, a guest's must exist. */
  async function load(owner: CartRef): Promise<CartDoc> {
    const owned = ownerKey(owner)
    // Read with the driver, not through mongoose's query (the same document as lean() gives, without
    // its casting and building: every cart read, change and checkout starts here).
    const found = await carts.collection.findOne<CartDoc>({ owner: owned })
    if (found) return found
    if (owner.kind !== 'user') throw new NotFound('cart')
    try {
      return (await carts.create({ owner: owned, kind: 'user' })).toObject() as CartDoc
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
      return (await carts.findOne({ owner: owned }).lean<CartDoc>())!
    }
  }

  /**
   * Applies `change` to the cart: one writer per cart at a time (a Redis lock), and the write
   * names the version it read (optimistic concurrency, for MongoDB itself). Parallel changes all
   * land; none is lost. `change` returns the fields to set, or null to leave the cart as it is.
   */
  async function mutateCart(owner: CartRef, change: (cart: CartDoc) => Partial<Pick<CartDoc, 'lines' | 'couponCode' | 'email' | 'checkoutGeneration' | 'regionId' | 'currency'>> | null): Promise<CartDoc> {
    return withLock(redis, `cart:${ownerKey(owner)}`, async () => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const cart = await load(owner)
        const fields = change({ ...cart, lines: cart.lines.map((l) => ({ ...l })) })
        if (!fields) return cart
        const set = { ...fields, version: cart.version + 1, updatedAt: new Date() }
        const result = await carts.updateOne({ _id: cart._id, version: cart.version }, { $set: set })
        if (result.matchedCount === 1) return { ...cart, ...set }
        await pause(attempt)
      }
      throw new Conflict('The cart is being changed by many requests at once; retry', 'cart-busy')
    })
  }
  const mutate = (owner: CartOwner, change: (lines: CartLineDoc[]) => CartLineDoc[], couponCode?: string | null) =>
    mutateCart(owner, (cart) => (couponCode === undefined ? { lines: change(cart.lines) } : { lines: change(cart.lines), couponCode }))

  /** Reads and deletes a guest cart as one step, under its lock: of two racing takers one gets the lines. */
  async function takeGuestCart(cartToken: string): Promise<CartDoc> {
    const owned = ownerKey({ kind: 'guest', token: cartToken })
    return withLock(redis, `cart:${owned}`, async () => {
      const guest = await carts.findOne({ owner: owned }).lean<CartDoc>()
      if (!guest || (await carts.deleteOne({ _id: guest._id, version: guest.version })).deletedCount !== 1) throw new NotFound('cart')
      return guest
    })
  }

  /** Whom and in what the cart is priced: its currency, and its owner when signed in (group prices). */
  const pricingOf = (cart: Pick<CartDoc, 'owner' | 'currency'>): PricingContext => ({
    currency: cart.currency ?? currency,
    userId: cart.owner.startsWith('user:') ? cart.owner.slice('user:'.length) : null,
  })
  const quantitiesOf = (lines: { variantId: string; quantity: number }[]) => new Map(lines.map((l) => [l.variantId, l.quantity]))

  async function view(cart: CartDoc) {
    const pricing = pricingOf(cart)
    const variants = await catalog.variantsForCart(cart.lines.map((l) => l.variantId), pricing, quantitiesOf(cart.lines))
    let subtotalMinor = 0
    let itemCount = 0
    const lines = cart.lines.map((line) => {
      const v = variants.get(line.variantId)
      const issues: LineIssue[] = []
      if (!v || !v.purchasable) issues.push('unavailable')
      else if (v.priceMinor === null) issues.push('not_sold_in_currency')
      else if (v.stock === 0) issues.push('out_of_stock')
      else if (v.stock < line.quantity) issues.push('insufficient_stock')
      const price = v?.priceMinor ?? null
      if (price !== null && price > line.addedUnitPriceMinor) issues.push('price_increased')
      if (price !== null && price < line.addedUnitPriceMinor) issues.push('price_decreased')
      const available = price !== null && !issues.some((i) => i === 'unavailable' || i === 'out_of_stock' || i === 'insufficient_stock')
      const lineTotalMinor = available ? price * line.quantity : 0
      if (available) { subtotalMinor += lineTotalMinor; itemCount += line.quantity }
      return {
        variantId: line.variantId, productId: line.productId, sku: v?.sku ?? null, name: v?.name ?? null, options: v?.options ?? {},
        quantity: line.quantity, unitPriceMinor: v?.purchasable ? price : null, addedUnitPriceMinor: line.addedUnitPriceMinor,
        lineTotalMinor, stock: v?.stock ?? 0, available, issues,
      }
    })
    return {
      id: cart._id, kind: cart.kind as 'user' | 'guest', lines, itemCount, subtotalMinor, currency: pricing.currency, regionId: cart.regionId ?? null,
      couponCode: cart.couponCode ?? null, email: cart.email ?? null, updatedAt: cart.updatedAt.toISOString(),
    }
  }

  /** The variant, purchasable and priced in the cart's currency at this quantity, or a 404/409. */
  async function requirePurchasable(cart: CartDoc, variantId: string, quantity: number) {
    const v = (await catalog.variantsForCart([variantId], pricingOf(cart), new Map([[variantId, quantity]]))).get(variantId)
    if (!v || !v.purchasable) throw new NotFound('variant', variantId)
    if (v.priceMinor === null) throw new Conflict(`${v.sku} has no price in ${pricingOf(cart).currency}: it cannot be bought in this cart's currency`, 'not-sold-in-currency')
    return v as CartVariant & { priceMinor: number }
  }

  /** Checks one line's quantity against the limits and the stock right now. */
  function checkQuantity(v: CartVariant, quantity: number) {
    if (quantity > limits.maxQuantity) throw new BadRequest(`At most ${limits.maxQuantity} of one item per order`, 'quantity-limit')
    if (quantity > v.stock) throw new Conflict(`Only ${v.stock} of ${v.sku} in stock`, 'insufficient-stock')
  }

  return {
    async createGuest() {
      const token = randomToken()
      const cart = (await carts.create({ owner: ownerKey({ kind: 'guest', token }), kind: 'guest' })).toObject() as CartDoc
      return { cartToken: token, cart: await view(cart) }
    },

    async get(owner: CartOwner) { return view(await load(owner)) },

    /** The currency a user's cart is priced in (its region's), without making a cart for a user who has none. */
    async currencyOf(userId: string): Promise<string> {
      const found = await carts.findOne({ owner: ownerKey({ kind: 'user', userId }) }, { currency: 1 }).lean<Pick<CartDoc, 'currency'>>()
      return found?.currency ?? currency
    },

    async addItem(owner: CartOwner, variantId: string, quantity: number) {
      const current = await load(owner)
      const v = await requirePurchasable(current, variantId, quantity + (current.lines.find((l) => l.variantId === variantId)?.quantity ?? 0))
      const cart = await mutate(owner, (lines) => {
        const line = lines.find((l) => l.variantId === variantId)
        if (line) {
          checkQuantity(v, line.quantity + quantity)
          line.quantity += quantity
          return lines
        }
        if (lines.length >= limits.maxLines) throw new Conflict(`A cart holds at most ${limits.maxLines} different items`, 'cart-full')
        checkQuantity(v, quantity)
        return [...lines, { variantId, productId: v.productId, quantity, addedUnitPriceMinor: v.priceMinor, addedAt: new Date() }]
      })
      return view(cart)
    },

    async setQuantity(owner: CartOwner, variantId: string, quantity: number) {
      const v = await requirePurchasable(await load(owner), variantId, quantity)
      checkQuantity(v, quantity)
      const cart = await mutate(owner, (lines) => {
        const line = lines.find((l) => l.variantId === variantId)
        if (!line) throw new NotFound('cart line', variantId)
        line.quantity = quantity
        return lines
      })
      return view(cart)
    },

    async removeItem(owner: CartOwner, variantId: string) {
      const cart = await mutate(owner, (lines) => {
        if (!lines.some((l) => l.variantId === variantId)) throw new NotFound('cart line', variantId)
        return lines.filter((l) => l.variantId !== variantId)
      })
      return view(cart)
    },

    async clear(owner: CartOwner) { return view(await mutate(owner, () => [], null)) },

    /** Stores a coupon code on the cart (null removes it); checkout validates it for real. */
    async setCoupon(owner: CartOwner, code: string | null) { return view(await mutate(owner, (lines) => lines, code)) },

    /** Stores the contact address a guest checks out with (guest checkout mails the order there). */
    async setEmail(owner: CartOwner, email: string) { return view(await mutateCart(owner, () => ({ email }))) },

    /**
     * Puts the cart in a region (by id, or the region of a shipping country) and re-prices every
     * line in its currency. A line without a price there makes it a 409 and the cart stays as it
     * was: a cart never holds lines of two currencies.
     */
    async setRegion(owner: CartOwner, region: CartRegionRef) {
      const current = await load(owner)
      const pricing = { ...pricingOf(current), currency: region.currency }
      const variants = await catalog.variantsForCart(current.lines.map((l) => l.variantId), pricing, quantitiesOf(current.lines))
      const unpriced = current.lines.filter((l) => variants.get(l.variantId)?.purchasable && variants.get(l.variantId)?.priceMinor === null)
      if (unpriced.length) {
        throw new Conflict(`${unpriced.map((l) => variants.get(l.variantId)!.sku).join(', ')} cannot be bought in ${region.currency}: remove them first`, 'not-sold-in-currency')
      }
      const cart = await mutateCart(owner, (c) => ({
        regionId: region.id, currency: region.currency,
        // The prices the shopper compares against become this currency's, so no line reads as "changed".
        lines: c.lines.map((l) => ({ ...l, addedUnitPriceMinor: variants.get(l.variantId)?.priceMinor ?? l.addedUnitPriceMinor })),
      }))
      return view(cart)
    },

    /**
     * The available lines priced now in the cart's currency, for quotes and coupon checks (checkout
     * prices again in its transaction).
     */
    async priced(owner: CartOwner) {
      const cart = await load(owner)
      const pricing = pricingOf(cart)
      const variants = await catalog.variantsForCart(cart.lines.map((l) => l.variantId), pricing, quantitiesOf(cart.lines))
      const categories = catalog.categoriesOf ? await catalog.categoriesOf([...variants.values()].map((v) => v.productId)) : new Map<string, string | null>()
      const lines = cart.lines.flatMap((l) => {
        const v = variants.get(l.variantId)
        return v?.purchasable && v.priceMinor !== null
          ? [{ variantId: v.variantId, productId: v.productId, categoryId: categories.get(v.productId) ?? null, unitPriceMinor: v.priceMinor, quantity: l.quantity, weightGrams: v.weightGrams ?? 0 }]
          : []
      })
      return { currency: pricing.currency, regionId: cart.regionId ?? null, couponCode: cart.couponCode ?? null, lines }
    },

    /** What checkout needs: the cart's id, the generation it would consume, its lines, code, contact email and currency. */
    async forCheckout(owner: CartOwner) {
      const cart = await load(owner)
      return {
        currency: cart.currency ?? currency, regionId: cart.regionId ?? null,
        cartId: cart._id, generation: cart.checkoutGeneration ?? 0, couponCode: cart.couponCode ?? null, email: cart.email ?? null,
        lines: cart.lines.map((l) => ({ variantId: l.variantId, quantity: l.quantity })),
        seen: { cartId: String(cart._id), version: cart.version } satisfies CartSeen,
      }
    },

    /**
     * After an order consumed generation `generation` of the user's cart: takes the ordered
     * quantities out (a line added meanwhile stays), drops the coupon and moves the generation
     * on. Idempotent: a cart already past that generation is left alone.
     *
     * `seen`: the cart as the checkout read it, when the order took all of its lines. Unchanged
     * since (the same version), it is emptied by one conditional write, without reading it first.
     */
    async consume(owner: CartRef, generation: number, ordered: { variantId: string; quantity: number }[], seen?: CartSeen) {
      if (seen) {
        const emptied = await withLock(redis, `cart:${ownerKey(owner)}`, () => carts.updateOne(
          { _id: seen.cartId, version: seen.version },
          { $set: { lines: [], couponCode: null, checkoutGeneration: generation + 1, version: seen.version + 1, updatedAt: new Date() } },
        ))
        if (emptied.matchedCount === 1) return { lines: 0 }
      }
      // A guest cart merged or removed since has nothing left to clear.
      if (owner.kind !== 'user' && !(await carts.exists({ owner: ownerKey(owner) }))) return { lines: 0 }
      const cart = await mutateCart(owner, (current) => {
        if ((current.checkoutGeneration ?? 0) > generation) return null
        const lines = current.lines
          .map((line) => ({ ...line, quantity: line.quantity - (ordered.find((o) => o.variantId === line.variantId)?.quantity ?? 0) }))
          .filter((line) => line.quantity > 0)
        return { lines, couponCode: null, checkoutGeneration: generation + 1 }
      })
      return { lines: cart.lines.length }
    },

    /**
     * Moves a guest cart into the user's cart: quantities add up, capped by stock and the line
     * limit. The guest cart is taken (deleted) first, so a repeated or racing merge cannot add it twice.
     */
    async merge(userId: string, cartToken: string) {
      const guest = await takeGuestCart(cartToken)
      // Priced in the user's cart's currency: a line not sold in it stays behind.
      const target = await load({ kind: 'user', userId })
      const variants = await catalog.variantsForCart(guest.lines.map((l) => l.variantId), pricingOf(target))
      const cart = await mutate({ kind: 'user', userId }, (lines) => {
        for (const incoming of guest.lines) {
          const v = variants.get(incoming.variantId)
          if (!v || !v.purchasable || v.stock === 0 || v.priceMinor === null) continue
          const cap = Math.min(v.stock, limits.maxQuantity)
          const line = lines.find((l) => l.variantId === incoming.variantId)
          if (line) line.quantity = Math.min(line.quantity + incoming.quantity, cap)
          else if (lines.length < limits.maxLines) lines.push({ ...incoming, addedUnitPriceMinor: v.priceMinor, quantity: Math.min(incoming.quantity, cap) })
        }
        return lines
      })
      return view(cart)
    },

    /** Removes guest carts untouched for `olderThanDays`, each delete within `budgetMs`. Idempotent; safe to run anywhere. */
    async removeAbandonedGuestCarts(olderThanDays: number, budgetMs: number) {
      const cutoff = new Date(Date.now() - olderThanDays * 86_400_000)
      const { removed } = await deleteOlderThan(carts, 'updatedAt', cutoff, { budgetMs, filter: { kind: 'guest' } })
      return { removed }
    },
  }
}
export type CartService = ReturnType<typeof createCartService>

export function ownerOf(user: { sub: string } | null, cartToken: string | undefined): CartOwner {
  if (user) return { kind: 'user', userId: user.sub }
  if (cartToken) return { kind: 'guest', token: cartToken }
  throw new Unauthorized('Sign in, or send the X-Cart-Token of a guest cart (POST /cart/guest)', 'cart-required')
}
