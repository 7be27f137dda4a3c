import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'

export const RETURN_STATUSES = ['requested', 'approved', 'rejected', 'received', 'refunded'] as const
export const RETURN_REASONS = ['damaged', 'defective', 'wrong_item', 'not_as_described', 'no_longer_needed', 'other'] as const
export const ReturnStatusSchema = StringEnum(RETURN_STATUSES, { $id: 'ReturnStatus' })
export const ReturnReasonSchema = StringEnum(RETURN_REASONS, { $id: 'ReturnReason' })

export const ReturnItem = Type.Object({
  id: Type.String({ format: 'uuid' }),
  orderItemId: Type.String({ format: 'uuid' }),
  sku: Type.String(), name: Type.String(),
  quantity: Type.Integer({ description: 'asked to return' }),
  reason: Type.Ref(ReturnReasonSchema),
  note: Type.Union([Type.Null(), Type.String()]),
  receivedQuantity: Type.Union([Type.Null(), Type.Integer()], { description: 'set when the return is received' }),
  restockedQuantity: Type.Union([Type.Null(), Type.Integer()], { description: 'of those, put back on the shelf' }),
}, { $id: 'ReturnItem', additionalProperties: false })

export const Return = Type.Object({
  id: Type.String({ format: 'uuid' }),
  orderId: Type.String({ format: 'uuid' }),
  orderNumber: Type.String(),
  userId: Type.Union([Type.String({ format: 'uuid' }), Type.Null()], { description: 'the order\'s owner; null for a guest order' }),
  status: Type.Ref(ReturnStatusSchema),
  items: Type.Array(Type.Ref(ReturnItem)),
  currency: Type.String(),
  refundMinor: Type.Union([Type.Null(), Type.Integer()], { description: 'fixed when received: the goods that came back, after their discount, with their tax; shipping is not refunded' }),
  refund: Type.Union([Type.Null(), Type.Object({
    id: Type.String({ format: 'uuid' }), paymentId: Type.String({ format: 'uuid' }), amountMinor: Type.Integer(), status: StringEnum(['pending', 'succeeded', 'failed']),
  }, { additionalProperties: false })], { description: 'the payment refund made for it' }),
  rejectionReason: Type.Union([Type.Null(), Type.String()]),
  createdAt: Type.String({ format: 'date-time' }),
  approvedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  receivedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  refundedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
}, { $id: 'Return', additionalProperties: false })
export const ReturnPage = pageOf(Type.Ref(Return), 'ReturnPage')

const Note = Type.String({ minLength: 1, maxLength: 500 })
export const ReturnCreate = Type.Object({
  items: Type.Array(Type.Object({
    orderItemId: Type.String({ format: 'uuid', description: 'an item of the order (Order.items[].id)' }),
    quantity: Type.Integer({ minimum: 1, maximum: 10_000 }),
    reason: Type.Ref(ReturnReasonSchema),
    note: Type.Optional(Note),
  }, { additionalProperties: false }), { minItems: 1, maxItems: 100 }),
}, { $id: 'ReturnCreate', additionalProperties: false })

export const ReturnReject = Type.Object({ reason: Note }, { $id: 'ReturnReject', additionalProperties: false })

export const ReturnReceive = Type.Object({
  items: Type.Array(Type.Object({
    returnItemId: Type.String({ format: 'uuid' }),
    quantity: Type.Integer({ minimum: 0, maximum: 10_000, description: 'how many came back (at most those asked for)' }),
    resellable: Type.Boolean({ description: 'true: they go back into stock' }),
  }, { additionalProperties: false }), { maxItems: 100, description: 'the lines that came back; a line left out came back with none' }),
  locationId: Type.Optional(Type.String({ format: 'uuid', description: 'the stock location the resellable goods go back into; the default location when left out' })),
}, { $id: 'ReturnReceive', additionalProperties: false })

export const ReturnListQuery = Type.Object({
  ...PageQuery,
  status: Type.Optional(Type.Ref(ReturnStatusSchema)),
}, { additionalProperties: false })
export const ReturnParams = Type.Object({ returnId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const ReturnOrderParams = Type.Object({ orderId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [ReturnStatusSchema, ReturnReasonSchema, ReturnItem, Return, ReturnPage, ReturnCreate, ReturnReject, ReturnReceive]
