import type { Model } from 'mongoose'
import type { WishlistItemDoc } from '../../db/models/wishlist.js'
import { BadRequest, NotFound } from '../../src/errors.js'
import type { CartService } from '../cart/service.js'
import type { createProductService } from '../products/service.js'

type Catalog = Pick<ReturnType<typeof createProductService>, 'summariesByIds' | 'pricedSummaries' | 'currencyOf' | 'activeVariantIds'>
/** What a wishlist read is priced in: a currency or a region asked for; the shopper's cart's currency by default. */
export interface CurrencyAsk { currency?: string; region?: string }

export const MAX_WISHLIST_ITEMS = 200

export function createWishlistService({ items, catalog, cart }: { items: Model<WishlistItemDoc>; catalog: Catalog; cart: CartService }) {
  async function list(userId: string, ask: CurrencyAsk = {}) {
    // The currency first: a bad code is a 400 before any read.
    const currency = ask.currency || ask.region ? await catalog.currencyOf(ask) : await cart.currencyOf(userId)
    const rows = await items.find({ userId }).sort({ addedAt: -1 }).limit(MAX_WISHLIST_ITEMS).lean<WishlistItemDoc[]>()
    // The prices this shopper would pay (price lists, customer groups), as the product pages show them.
    const products = await catalog.pricedSummaries(rows.map((r) => r.productId), { currency, userId })
    return { items: rows.map((r) => ({ productId: r.productId, addedAt: r.addedAt.toISOString(), product: products.get(r.productId) ?? null })) }
  }

  async function remove(userId: string, productId: string) {
    const { deletedCount } = await items.deleteOne({ userId, productId })
    if (!deletedCount) throw new NotFound('wishlist item', productId)
  }

  return {
    list,

    /** Idempotent: adding twice keeps one entry with the first date. */
    async add(userId: string, productId: string, ask: CurrencyAsk = {}) {
      if (!(await catalog.summariesByIds([productId])).has(productId)) throw new NotFound('product', productId)
      if (await items.countDocuments({ userId }) >= MAX_WISHLIST_ITEMS) throw new BadRequest(`A wishlist holds at most ${MAX_WISHLIST_ITEMS} products`, 'wishlist-full')
      try {
        await items.updateOne({ userId, productId }, { $setOnInsert: { userId, productId, addedAt: new Date() } }, { upsert: true })
      } catch (err) {
        // Two racing upserts of one pair: the unique index lets one insert; the other is the same add.
        if ((err as { code?: number }).code !== 11000) throw err
      }
      return list(userId, ask)
    },

    remove,

    /** Puts the product in the cart (its only variant, or the one named) and off the wishlist. */
    async moveToCart(userId: string, productId: string, input: { variantId?: string; quantity?: number }) {
      if (!(await items.exists({ userId, productId }))) throw new NotFound('wishlist item', productId)
      const variants = await catalog.activeVariantIds(productId)
      const variantId = input.variantId ?? (variants.length === 1 ? variants[0] : undefined)
      if (!variantId) throw new BadRequest('This product has several variants: name one with variantId', 'variant-required')
      if (!variants.includes(variantId)) throw new NotFound('variant', variantId)
      const updated = await cart.addItem({ kind: 'user', userId }, variantId, input.quantity ?? 1)
      await remove(userId, productId)
      return updated
    },
  }
}
