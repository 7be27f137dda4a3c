import { Type } from '@sinclair/typebox'
import { ProductSummary } from '../products/schemas.js'

export const WishlistItem = Type.Object({
  productId: Type.String({ format: 'uuid' }),
  addedAt: Type.String({ format: 'date-time' }),
  product: Type.Union([Type.Null(), Type.Ref(ProductSummary)], { description: 'null when the product is no longer sold, or not sold in this currency' }),
}, { $id: 'WishlistItem', additionalProperties: false })

export const Wishlist = Type.Object({ items: Type.Array(Type.Ref(WishlistItem)) }, { $id: 'Wishlist', additionalProperties: false })

export const WishlistParams = Type.Object({ productId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const MoveToCart = Type.Object({
  variantId: Type.Optional(Type.String({ format: 'uuid', description: 'required when the product has more than one variant' })),
  quantity: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
}, { $id: 'MoveToCart', additionalProperties: false })

export const schemas = [WishlistItem, Wishlist, MoveToCart]
