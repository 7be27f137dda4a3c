import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { CART_TOKEN, ORDER_TOKEN } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { sha256 } from '../../src/sessions.js'
import { IdempotencyHeader, sendStored } from '../shared.js'
import { Payment, PaymentConfirm, PaymentCreate } from '../payments/schemas.js'
import { Return, ReturnCreate } from '../returns/schemas.js'
import { toPayment } from '../payments/service.js'
import { ownerOf } from '../cart/service.js'
import { normalizeEmail } from '../users/service.js'
import { GuestCheckoutBody, GuestOrderLookup, GuestOrderLookupAccepted, GuestOrderPlaced, Order, OrderParams, OrderTokenHeader } from './schemas.js'

// Guest orders: checkout from a guest cart (X-Cart-Token) through the same workflow as a
// customer's, then the order's own capability token (X-Order-Token) reads, pays, confirms and
// cancels (while unpaid) that one order and asks for its returns, through the same workflows. A token that does not open
// the order in the path is a 404, as for an order that does not exist.

/** Guests have no user id; their Idempotency-Keys are kept under this one, scoped by cart or order. */
const GUEST = '00000000-0000-0000-0000-000000000000'
const CartTokenRequired = Type.Object({ 'x-cart-token': Type.String({ minLength: 20, maxLength: 200, description: 'the guest cart to check out' }) })
const GuestPaymentParams = Type.Object({ orderId: Type.String({ format: 'uuid' }), paymentId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
const errors = { 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }

const guestOrderRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { idempotency, orders, checkout, cancel, pay, confirm, payments, orderAccess, returns } = app.services
  const guest = (req: FastifyRequest) => ({ userId: null, ip: req.ip })
  const tokenOf = (req: FastifyRequest) => req.headers['x-order-token'] as string | undefined
  /** The order the request's token opens (the path's), else 404. */
  const opened = (req: FastifyRequest) => orderAccess.resolve((req.params as { orderId: string }).orderId, tokenOf(req))

  app.post('', {
    schema: {
      tags: ['orders'], operationId: 'guestCheckout', summary: 'Check out a guest cart into an order, without an account',
      description: 'The cart needs a contact email (PUT /cart/contact). The same checkout as a customer\'s: stock reserved and totals computed in one transaction, 409 naming each line that cannot be bought, one order per cart generation. Answers the order and its order token (X-Order-Token), also mailed to the contact email. Send an Idempotency-Key: a retry returns the same order, with a fresh token.',
      security: CART_TOKEN, headers: Type.Composite([CartTokenRequired, IdempotencyHeader]), body: Type.Ref(GuestCheckoutBody),
      response: { 201: Type.Ref(GuestOrderPlaced), ...errors, 409: ProblemRef, 422: ProblemRef },
    },
  }, async (req, reply) => {
    const cartToken = req.headers['x-cart-token']
    const stored = await idempotency.run(
      { userId: GUEST, scope: `guest-checkout:${sha256(cartToken)}`, key: req.headers['idempotency-key'], request: req.body },
      (attempt) => checkout(guest(req), ownerOf(null, cartToken), req.body, attempt),
    )
    // The stored answer never holds the secret: each answer (first or replayed) gets its own token.
    const order = stored.body as { id: string }
    const { token, expiresAt } = await orderAccess.issue(order.id)
    return sendStored(reply, { ...stored, body: { order, orderToken: token, orderTokenExpiresAt: expiresAt.toISOString() } })
  })

  app.post('/lookup', {
    // It sends mail: limited per address as the reset-password request is.
    config: { rateLimit: { max: app.config.auth.rateLimitPerIp, timeWindow: 60_000 } },
    schema: {
      tags: ['orders'], operationId: 'requestGuestOrderLink', summary: 'Mail the link of a guest order again (order number and email)',
      description: 'When a guest order of this number was placed with this email, its link (a fresh order token) is mailed to that email. The answer is the same whether or not such an order exists.',
      body: Type.Ref(GuestOrderLookup), response: { 202: Type.Ref(GuestOrderLookupAccepted), 400: ProblemRef },
    },
  }, async (req, reply) => {
    await orders.requestGuestLink(req.body.number, normalizeEmail(req.body.email))
    return reply.code(202).send({ message: 'If an order of that number was placed with that email, its link is on its way there.' })
  })

  app.get('/:orderId', {
    schema: {
      tags: ['orders'], operationId: 'getGuestOrder', summary: 'Read a guest order with its order token',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: OrderParams, response: { 200: Type.Ref(Order), ...errors },
    },
  }, async (req) => orders.view(await opened(req)))

  app.post('/:orderId/cancel', {
    schema: {
      tags: ['orders'], operationId: 'cancelGuestOrder', summary: 'Cancel a guest order while it is unpaid',
      description: 'Its stock and coupon use go back. 409 once it is paid (a paid order is refunded by the shop, not cancelled here).',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: OrderParams, response: { 200: Type.Ref(Order), ...errors, 409: ProblemRef },
    },
  }, async (req) => {
    const order = await opened(req)
    await cancel.cancel({ ...guest(req), isAdmin: false }, order.id, { onlyUnpaid: true })
    return orders.view(await opened(req))
  })

  app.post('/:orderId/returns', {
    schema: {
      tags: ['returns'], operationId: 'requestGuestReturn', summary: 'Ask to return items of a delivered guest order',
      description: 'As requestReturn, with the order token: within RETURN_WINDOW_DAYS of delivery, a reason per line, never more of a line than was bought (409).',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: OrderParams, body: Type.Ref(ReturnCreate), response: { 201: Type.Ref(Return), ...errors, 409: ProblemRef },
    },
  }, async (req, reply) => {
    const order = await opened(req)
    return reply.code(201).send(await returns.request(guest(req), order.id, req.body.items, { byOrderToken: true }))
  })

  app.get('/:orderId/returns', {
    schema: {
      tags: ['returns'], operationId: 'listGuestReturns', summary: 'The returns of a guest order, oldest first',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: OrderParams, response: { 200: Type.Array(Type.Ref(Return)), ...errors },
    },
  }, async (req) => returns.ofOrder((await opened(req)).id))

  app.delete('/:orderId/token', {
    schema: {
      tags: ['orders'], operationId: 'revokeGuestOrderToken', summary: 'Revoke this order token (others of the order, e.g. a mailed link, stay valid)',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: OrderParams, response: { 204: Type.Null(), ...errors },
    },
  }, async (req, reply) => {
    await orderAccess.revoke(req.params.orderId, req.headers['x-order-token'])
    return reply.code(204).send(null)
  })

  app.post('/:orderId/payments', {
    schema: {
      tags: ['payments'], operationId: 'createGuestPayment', summary: 'Start paying for a guest order',
      description: 'As createPayment: one payment in flight or captured per order (409 otherwise). Send an Idempotency-Key: a retry resumes the same payment.',
      security: ORDER_TOKEN, headers: Type.Composite([OrderTokenHeader, IdempotencyHeader]), params: OrderParams, body: Type.Ref(PaymentCreate),
      response: { 201: Type.Ref(Payment), ...errors, 409: ProblemRef, 422: ProblemRef, 502: ProblemRef },
    },
  }, async (req, reply) => {
    const order = await opened(req)
    return sendStored(reply, await idempotency.run(
      { userId: GUEST, scope: `guest-payment:${order.id}`, key: req.headers['idempotency-key'], request: req.body },
      async (attempt) => ({ status: 201, body: toPayment(await pay.pay({ ...guest(req), orderAccess: order.id }, order.id, req.body, attempt)) }),
    ))
  })

  app.post('/:orderId/payments/:paymentId/confirm', {
    schema: {
      tags: ['payments'], operationId: 'confirmGuestPayment', summary: 'Confirm a payment of a guest order; success marks the order paid',
      security: ORDER_TOKEN, headers: OrderTokenHeader, params: GuestPaymentParams, body: Type.Ref(PaymentConfirm),
      response: { 200: Type.Ref(Payment), ...errors, 409: ProblemRef, 502: ProblemRef },
    },
  }, async (req) => {
    const order = await opened(req)
    const payment = await payments.requireOfOrder(order.id, req.params.paymentId)
    return toPayment(await confirm.confirm(guest(req), payment, req.body.paymentMethod))
  })
}
export default guestOrderRoutes
