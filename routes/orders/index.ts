import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { IdempotencyHeader, sendStored, viewerOf } from '../shared.js'
import { Payment, PaymentCreate } from '../payments/schemas.js'
import { toPayment } from '../payments/service.js'
import guestOrderRoutes from './guest.js'
import { CheckoutBody, GuestOrderLookupAccepted, Order, OrderListQuery, OrderPage, OrderParams, OrderStatusChange } from './schemas.js'

const actorOf = (req: FastifyRequest) => ({ ...viewerOf(req), ip: req.ip })

const ordersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { idempotency, orders, checkout, cancel, pay } = app.services
  const admin = app.requireRole('admin')
  await app.register(guestOrderRoutes, { prefix: '/guest' })

  app.post('', {
    onRequest: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'checkout', summary: 'Check out my cart into an order',
      description: 'Stock is reserved and totals computed by the server in one transaction. 409 names each line that cannot be bought. Send an Idempotency-Key to make retries safe: a retry returns the first answer, and one cart makes at most one order.',
      security: BEARER, headers: IdempotencyHeader, body: Type.Ref(CheckoutBody),
      response: { 201: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: 'checkout', key: req.headers['idempotency-key'], request: req.body },
    (attempt) => checkout(actorOf(req), { kind: 'user', userId: req.user.sub }, req.body, attempt),
  )))

  app.get('', {
    onRequest: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'listOrders', summary: 'My orders, newest first (admins: all, with filters)', security: BEARER,
      querystring: OrderListQuery, response: { 200: Type.Ref(OrderPage), 400: ProblemRef, 401: ProblemRef },
    },
  }, (req) => orders.list(viewerOf(req), paged(req.query)))

  app.get('/:orderId', {
    onRequest: app.authenticate,
    schema: { tags: ['orders'], operationId: 'getOrder', summary: 'Read one of my orders', security: BEARER, params: OrderParams, response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, (req) => orders.get(viewerOf(req), req.params.orderId))

  app.post('/:orderId/cancel', {
    onRequest: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'cancelOrder', summary: 'Cancel my order while unpaid or paid (a paid one is refunded)', description: 'A payment still in flight is cancelled at the provider, so it is never captured; one the provider captured first is refunded.', security: BEARER,
      params: OrderParams, response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    await orders.requireVisible(viewerOf(req), req.params.orderId)
    await cancel.cancel(actorOf(req), req.params.orderId)
    return orders.get(viewerOf(req), req.params.orderId)
  })

  app.patch('/:orderId/status', {
    onRequest: admin,
    schema: {
      tags: ['orders'], operationId: 'changeOrderStatus', summary: 'Move an order along its state machine (admin)',
      description: 'pending_payment -> paid -> fulfilled -> shipped -> delivered; cancelled from pending_payment or paid. Anything else is 409.', security: BEARER,
      params: OrderParams, body: Type.Ref(OrderStatusChange), response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    const { orderId } = req.params
    if (req.body.status === 'cancelled') {
      await orders.requireVisible(viewerOf(req), orderId)
      await cancel.cancel(actorOf(req), orderId)
      return orders.get(viewerOf(req), orderId)
    }
    const order = await orders.advance(orderId, req.body.status, { carrier: req.body.carrier, trackingNumber: req.body.trackingNumber })
    app.activity.record(req, 'order_status_change', { orderId: order.id, status: order.status })
    return order
  })

  app.post('/:orderId/guest-link', {
    onRequest: admin,
    schema: {
      tags: ['orders'], operationId: 'resendGuestOrderLink', summary: 'Mail a guest order\'s link to its email again (admin)',
      description: 'A fresh order token, in a mail to the email the order was placed with (never to another address). 409 for an order placed from an account.',
      security: BEARER, params: OrderParams, response: { 202: Type.Ref(GuestOrderLookupAccepted), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await orders.resendGuestLink(req.params.orderId)
    app.activity.record(req, 'admin_action', { action: 'guest_link_resend', orderId: req.params.orderId })
    return reply.code(202).send({ message: 'The order\'s link is on its way to the email it was placed with.' })
  })

  app.post('/:orderId/payments', {
    onRequest: app.authenticate,
    schema: {
      tags: ['payments'], operationId: 'createPayment', summary: 'Start paying for my order',
      description: 'One payment in flight or captured per order (409 otherwise). Send an Idempotency-Key: a retry resumes the same payment.',
      security: BEARER, headers: IdempotencyHeader, params: OrderParams, body: Type.Ref(PaymentCreate),
      response: { 201: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef, 502: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: `payment:${req.params.orderId}`, key: req.headers['idempotency-key'], request: req.body },
    async (attempt) => ({ status: 201, body: toPayment(await pay.pay(actorOf(req), req.params.orderId, req.body, attempt)) }),
  )))
}
export default ordersRoutes
