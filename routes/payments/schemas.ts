import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'

export const Payment = Type.Object({
  id: Type.String({ format: 'uuid' }),
  orderId: Type.String({ format: 'uuid' }),
  provider: Type.String(),
  status: StringEnum(['pending', 'requires_confirmation', 'succeeded', 'failed'], { description: 'pending: recorded, the provider has not answered yet (settled by a retry with the same Idempotency-Key or by reconciliation)' }),
  amountMinor: Type.Integer({ description: 'the order total, set by the server' }),
  currency: Type.String(),
  refundedMinor: Type.Integer({ description: 'refunded or being refunded' }),
  failureReason: Type.Union([Type.Null(), Type.String()]),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'Payment', additionalProperties: false })

export const PaymentCreate = Type.Object({
  provider: StringEnum(['test', 'stripe']),
  paymentMethod: Type.String({ minLength: 1, maxLength: 200, description: 'test provider: tok_success, tok_decline, tok_insufficient_funds, tok_async; stripe: a PaymentMethod id' }),
}, { $id: 'PaymentCreate', additionalProperties: false, description: 'The amount is the order total; it cannot be sent.' })

export const PaymentConfirm = Type.Object({
  paymentMethod: Type.String({ minLength: 1, maxLength: 200 }),
}, { $id: 'PaymentConfirm', additionalProperties: false })

export const RefundCreate = Type.Object({
  amountMinor: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000_000, description: 'default: everything not yet refunded' })),
  reason: Type.Optional(Type.String({ maxLength: 500 })),
}, { $id: 'RefundCreate', additionalProperties: false })

export const Refund = Type.Object({
  id: Type.String({ format: 'uuid' }),
  paymentId: Type.String({ format: 'uuid' }),
  amountMinor: Type.Integer(),
  status: StringEnum(['pending', 'succeeded', 'failed'], { description: 'pending: sent or about to be sent to the provider; retried until it answers' }),
  reason: Type.Union([Type.Null(), Type.String()]),
  createdAt: Type.String({ format: 'date-time' }),
  payment: Type.Ref(Payment),
}, { $id: 'Refund', additionalProperties: false })

export const WebhookAck = Type.Object({ received: Type.Boolean(), duplicate: Type.Boolean() }, { $id: 'WebhookAck', additionalProperties: false })
export const PaymentParams = Type.Object({ paymentId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const WebhookParams = Type.Object({ provider: StringEnum(['test', 'stripe']) }, { additionalProperties: false })
/** What every provider's event has in common; the provider checks the signature over the raw bytes, then the rest. */
export const WebhookEvent = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 255, description: 'the provider\'s event id; each is applied once' }),
  type: Type.String({ minLength: 1, maxLength: 255, description: 'test provider: payment.succeeded or payment.failed (with data.paymentId); others are acknowledged and ignored' }),
}, { $id: 'WebhookEvent', additionalProperties: true })
export const WebhookHeaders = Type.Object({
  'x-shop-signature': Type.Optional(Type.String({ maxLength: 1000, description: 'test provider: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">' })),
  'stripe-signature': Type.Optional(Type.String({ maxLength: 1000, description: 'Stripe\'s signature header' })),
})

export const schemas = [Payment, PaymentCreate, PaymentConfirm, RefundCreate, Refund, WebhookAck, WebhookEvent]
