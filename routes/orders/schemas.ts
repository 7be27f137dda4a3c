import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'
import { AddressCreate, Email } from '../users/schemas.js'
import { CouponCode } from '../coupons/schemas.js'

export const ORDER_STATUSES = ['pending_payment', 'paid', 'fulfilled', 'shipped', 'delivered', 'cancelled', 'refunded'] as const
export type OrderStatus = (typeof ORDER_STATUSES)[number]
export const OrderStatusSchema = StringEnum(ORDER_STATUSES, { $id: 'OrderStatus' })

export const OrderItem = Type.Object({
  variantId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  productId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  sku: Type.String(), name: Type.String(), options: Type.Record(Type.String(), Type.String()),
  unitPriceMinor: Type.Integer(), quantity: Type.Integer(), lineTotalMinor: Type.Integer(), discountMinor: Type.Integer(),
  id: Type.String({ format: 'uuid', description: 'names the line in a return request' }),
  taxMinor: Type.Integer({ description: "this line's share of the order's tax" }),
}, { $id: 'OrderItem', additionalProperties: false })

export const ShippingAddress = Type.Object({
  recipientName: Type.String(), line1: Type.String(), line2: Type.Union([Type.Null(), Type.String()]), city: Type.String(),
  region: Type.Union([Type.Null(), Type.String()]), postalCode: Type.String(), country: Type.String(), phone: Type.Union([Type.Null(), Type.String()]),
}, { $id: 'ShippingAddress', additionalProperties: false })

export const Order = Type.Object({
  id: Type.String({ format: 'uuid' }),
  number: Type.String({ description: 'human-readable, e.g. SO-001042' }),
  userId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })], { description: 'null for a guest order not claimed into an account' }),
  guestEmail: Type.Union([Type.Null(), Type.String()], { description: 'the contact address of a guest order; null for a customer\'s' }),
  status: Type.Ref(OrderStatusSchema),
  currency: Type.String(),
  subtotalMinor: Type.Integer(), discountMinor: Type.Integer(), shippingMinor: Type.Integer(), taxMinor: Type.Integer(),
  totalMinor: Type.Integer({ description: 'subtotal - discount + shipping, + tax when prices exclude it' }),
  pricesIncludeTax: Type.Boolean({ description: 'true: subtotal and shipping include taxMinor, which the total does not add again' }),
  shippingOption: Type.Union([Type.Null(), Type.Object({
    id: Type.String({ format: 'uuid' }), name: Type.String(), zoneId: Type.String({ format: 'uuid' }), zoneName: Type.String(),
  }, { additionalProperties: false })], { description: 'the option charged, as it was at checkout (null on orders from before options)' }),
  taxRate: Type.Union([Type.Null(), Type.Object({
    id: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]), name: Type.String(), country: Type.Union([Type.Null(), Type.String()]),
    region: Type.Union([Type.Null(), Type.String()]), rateBps: Type.Integer(),
  }, { additionalProperties: false })], { description: 'the rate applied, as it was at checkout' }),
  refundedMinor: Type.Integer(),
  couponCode: Type.Union([Type.Null(), Type.String()]),
  shippingAddress: Type.Ref(ShippingAddress),
  items: Type.Array(Type.Ref(OrderItem)),
  shipment: Type.Union([Type.Null(), Type.Object({ carrier: Type.Union([Type.Null(), Type.String()]), trackingNumber: Type.Union([Type.Null(), Type.String()]) }, { additionalProperties: false })], { description: 'set when the order ships' }),
  expiresAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], { description: 'an unpaid order is cancelled after this' }),
  paidAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  deliveredAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], { description: 'returns may be requested for RETURN_WINDOW_DAYS after this' }),
  cancelledAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'Order', additionalProperties: false })
export const OrderPage = pageOf(Type.Ref(Order), 'OrderPage')

export const CheckoutBody = Type.Object({
  shippingAddress: Type.Optional(Type.Ref(AddressCreate)),
  addressId: Type.Optional(Type.String({ format: 'uuid', description: 'one of my saved addresses, instead of shippingAddress' })),
  couponCode: Type.Optional(Type.Union([Type.Null(), CouponCode], { description: "overrides the cart's code; null checks out without one" })),
  shippingOptionId: Type.Optional(Type.String({ format: 'uuid', description: 'from GET /cart/shipping-options; may be left out when exactly one option applies (409 when none or several do, or the one sent does not)' })),
  currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: "the currency the client shows: when sent, it must be the cart's (409 otherwise, and nothing is charged)" })),
}, { $id: 'CheckoutBody', additionalProperties: false, description: 'Prices and totals are computed by the server; none can be sent.' })

export const GuestCheckoutBody = Type.Object({
  shippingAddress: Type.Ref(AddressCreate),
  couponCode: Type.Optional(Type.Union([Type.Null(), CouponCode], { description: "overrides the cart's code; null checks out without one" })),
  shippingOptionId: Type.Optional(Type.String({ format: 'uuid', description: 'from GET /cart/shipping-options; may be left out when exactly one option applies' })),
  currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: "the currency the client shows: when sent, it must be the cart's (409 otherwise, and nothing is charged)" })),
}, { $id: 'GuestCheckoutBody', additionalProperties: false, description: 'The contact email comes from the cart (PUT /cart/contact). Prices and totals are computed by the server; none can be sent.' })

export const GuestOrderPlaced = Type.Object({
  order: Type.Ref(Order),
  orderToken: Type.String({ description: 'send as X-Order-Token to read, pay or cancel this order (and nothing else); shown here and mailed, stored only as a hash' }),
  orderTokenExpiresAt: Type.String({ format: 'date-time' }),
}, { $id: 'GuestOrderPlaced', additionalProperties: false })

export const GuestOrderLookup = Type.Object({
  number: Type.String({ minLength: 1, maxLength: 40, description: 'the order number, e.g. SO-001042' }),
  email: Email,
}, { $id: 'GuestOrderLookup', additionalProperties: false })
export const GuestOrderLookupAccepted = Type.Object({
  message: Type.String(),
}, { $id: 'GuestOrderLookupAccepted', additionalProperties: false, description: 'the same answer whether or not such an order exists' })

export const OrderTokenHeader = Type.Object({
  'x-order-token': Type.String({ minLength: 20, maxLength: 200, description: 'the order token of a guest order (checkout answer or order mail)' }),
})

export const OrderListQuery = Type.Object({
  ...PageQuery,
  status: Type.Optional(Type.Ref(OrderStatusSchema)),
  userId: Type.Optional(Type.String({ format: 'uuid', description: 'admins only' })),
}, { additionalProperties: false })
export const OrderParams = Type.Object({ orderId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const OrderStatusChange = Type.Object({
  status: StringEnum(['fulfilled', 'shipped', 'delivered', 'cancelled'], { description: 'paid comes from a payment, refunded from refunds' }),
  carrier: Type.Optional(Type.String({ minLength: 1, maxLength: 60, description: 'with status shipped: who carries it (shown to the customer and mailed)' })),
  trackingNumber: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9 ._/-]+$', description: 'with status shipped' })),
}, { $id: 'OrderStatusChange', additionalProperties: false })

export const schemas = [OrderStatusSchema, OrderItem, ShippingAddress, Order, OrderPage, CheckoutBody, OrderStatusChange, GuestCheckoutBody, GuestOrderPlaced, GuestOrderLookup, GuestOrderLookupAccepted]
