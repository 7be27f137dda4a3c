import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { Email } from '../users/schemas.js'

export const LINE_ISSUES = ['unavailable', 'not_sold_in_currency', 'out_of_stock', 'insufficient_stock', 'price_increased', 'price_decreased'] as const
export type LineIssue = (typeof LINE_ISSUES)[number]

export const CartLine = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  productId: Type.String({ format: 'uuid' }),
  sku: Type.Union([Type.Null(), Type.String()], { description: 'null when the variant no longer exists' }),
  name: Type.Union([Type.Null(), Type.String()]),
  options: Type.Record(Type.String(), Type.String()),
  quantity: Type.Integer({ minimum: 1 }),
  unitPriceMinor: Type.Union([Type.Null(), Type.Integer()], { description: 'the current catalog price; null when unavailable' }),
  addedUnitPriceMinor: Type.Integer({ description: 'the price when added, for comparison only' }),
  lineTotalMinor: Type.Integer({ description: 'unit price x quantity; 0 when unavailable' }),
  stock: Type.Integer({ minimum: 0 }),
  available: Type.Boolean({ description: 'can be checked out as it is' }),
  issues: Type.Array(StringEnum(LINE_ISSUES)),
}, { $id: 'CartLine', additionalProperties: false })

export const Cart = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: StringEnum(['user', 'guest']),
  lines: Type.Array(Type.Ref(CartLine)),
  itemCount: Type.Integer({ minimum: 0, description: 'sum of quantities of available lines' }),
  subtotalMinor: Type.Integer({ minimum: 0, description: 'sum of available line totals, priced now' }),
  currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'every price of the cart is in it; checkout charges in it' }),
  regionId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })], { description: 'the region chosen (PUT /cart/region); null: the store currency' }),
  couponCode: Type.Union([Type.Null(), Type.String()], { description: 'applied code; its discount is computed at checkout (see POST /coupons/validate)' }),
  email: Type.Union([Type.Null(), Type.String()], { description: 'the contact email a guest checks out with (PUT /cart/contact)' }),
  updatedAt: Type.String({ format: 'date-time' }),
}, { $id: 'Cart', additionalProperties: false })

export const GuestCart = Type.Object({
  cartToken: Type.String({ description: 'send as X-Cart-Token; shown once, stored only as a hash' }),
  cart: Type.Ref(Cart),
}, { $id: 'GuestCart', additionalProperties: false })

const Quantity = Type.Integer({ minimum: 1, maximum: 10_000 })
export const CartItemAdd = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  quantity: Type.Optional(Quantity),
}, { $id: 'CartItemAdd', additionalProperties: false, description: 'adds to the quantity already in the cart' })
export const CartItemUpdate = Type.Object({ quantity: Quantity }, { $id: 'CartItemUpdate', additionalProperties: false })
export const CartMerge = Type.Object({ cartToken: Type.String({ minLength: 20, maxLength: 200 }) }, { $id: 'CartMerge', additionalProperties: false })
export const CartCoupon = Type.Object({ code: Type.String({ pattern: '^[A-Za-z0-9_-]{3,40}$' }) }, { $id: 'CartCoupon', additionalProperties: false })
export const CartContact = Type.Object({ email: Email }, { $id: 'CartContact', additionalProperties: false })
export const CartRegion = Type.Object({
  regionId: Type.Optional(Type.String({ format: 'uuid' })),
  country: Type.Optional(Type.String({ pattern: '^[A-Za-z]{2}$', description: 'ISO 3166-1 alpha-2: the region that lists it' })),
}, { $id: 'CartRegion', additionalProperties: false, minProperties: 1, maxProperties: 1, description: 'a region by id, or the region of a shipping country' })
export const CartLineParams = Type.Object({ variantId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const CartTokenHeader = Type.Object({
  'x-cart-token': Type.Optional(Type.String({ minLength: 20, maxLength: 200, description: 'a guest cart token; ignored when signed in' })),
})

export const schemas = [CartLine, Cart, GuestCart, CartItemAdd, CartItemUpdate, CartMerge, CartCoupon, CartContact, CartRegion]
