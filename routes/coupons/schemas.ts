import { Type } from '@sinclair/typebox'
import { DateTimeInput, StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'

export const CouponCode = Type.String({ pattern: '^[A-Za-z0-9_-]{3,40}$', description: 'letters, digits, _ and -; compared case-insensitively' })
const Minor = Type.Integer({ minimum: 0, maximum: 100_000_000 })
const Ids = Type.Array(Type.String({ format: 'uuid' }), { maxItems: 500, uniqueItems: true })
const Timestamp = Type.Union([Type.Null(), Type.String({ format: 'date-time' })])

const couponFields = {
  code: CouponCode,
  kind: StringEnum(['percentage', 'fixed'], { description: 'percentage: value is 1-100; fixed: value is minor units' }),
  value: Type.Integer({ minimum: 1, maximum: 100_000_000 }),
  currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: 'fixed: the ISO 4217 currency of value (default the store currency); it applies to carts in that currency only. Ignored for percentages.' })),
  minSubtotalMinor: Type.Optional(Minor),
  maxDiscountMinor: Type.Optional(Type.Union([Type.Null(), Minor])),
  startsAt: Type.Optional(Type.Union([Type.Null(), DateTimeInput()])),
  endsAt: Type.Optional(Type.Union([Type.Null(), DateTimeInput()])),
  usageLimit: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 1_000_000_000 })])),
  perCustomerLimit: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 1_000_000 })])),
  productIds: Type.Optional(Ids),
  categoryIds: Type.Optional(Ids),
  isActive: Type.Optional(Type.Boolean()),
}

export const CouponCreate = Type.Object(couponFields, { $id: 'CouponCreate', additionalProperties: false })
export const CouponUpdate = Type.Partial(Type.Object(couponFields), { $id: 'CouponUpdate', additionalProperties: false, minProperties: 1 })

export const Coupon = Type.Object({
  id: Type.String({ format: 'uuid' }),
  code: Type.String(),
  kind: StringEnum(['percentage', 'fixed']),
  value: Type.Integer(),
  currency: Type.Union([Type.Null(), Type.String()], { description: 'the currency of a fixed amount; null for percentages' }),
  minSubtotalMinor: Type.Integer(),
  maxDiscountMinor: Type.Union([Type.Null(), Type.Integer()]),
  startsAt: Timestamp,
  endsAt: Timestamp,
  usageLimit: Type.Union([Type.Null(), Type.Integer()]),
  perCustomerLimit: Type.Union([Type.Null(), Type.Integer()]),
  timesRedeemed: Type.Integer(),
  productIds: Type.Array(Type.String()),
  categoryIds: Type.Array(Type.String()),
  isActive: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'Coupon', additionalProperties: false })
export const CouponPage = pageOf(Type.Ref(Coupon), 'CouponPage')
export const CouponListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })
export const CouponParams = Type.Object({ couponId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const CouponValidateBody = Type.Object({ code: CouponCode }, { $id: 'CouponValidateBody', additionalProperties: false })
export const CouponValidation = Type.Object({
  code: Type.String(),
  valid: Type.Boolean(),
  reason: Type.Union([Type.Null(), Type.String()], { description: 'why the code does not apply to my cart' }),
  discountMinor: Type.Integer({ minimum: 0, description: 'the discount on my cart as it is now' }),
  currency: Type.String(),
}, { $id: 'CouponValidation', additionalProperties: false })

export const schemas = [CouponCreate, CouponUpdate, Coupon, CouponPage, CouponValidateBody, CouponValidation]
