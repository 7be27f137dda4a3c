import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BEARER } from '../../plugins/openapi.js'
import { viewerRole } from '../../plugins/auth.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { createIdempotency, type StoredResponse } from '../../src/idempotency.js'
import { cartModel } from '../../db/models/cart.js'
import { CATALOG_CACHE } from '../categories/service.js'
import { createCartService } from '../cart/service.js'
import { createProductService } from '../products/service.js'
import { Payment, PaymentCreate } from '../payments/schemas.js'
import { createPaymentService } from '../payments/service.js'
import { providersFromConfig } from '../payments/providers.js'
import { CheckoutBody, IdempotencyHeader, Order, OrderListQuery, OrderPage, OrderParams, OrderStatusChange } from './schemas.js'
import { createOrderService } from './service.js'

/** Sends a (possibly replayed) idempotent response. */
export function sendStored(reply: FastifyReply, stored: StoredResponse & { replayed: boolean }) {
  if (stored.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(stored.status).send(stored.body)
}
const viewerOf = (req: FastifyRequest) => ({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' })

const ordersRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { cart: limits, currency, checkout } = app.config
  const catalog = createProductService({ db: app.db, cache: app.cache, currency })
  const cart = createCartService({ carts: cartModel(app.mongo), redis: app.redis, catalog, currency, limits })
  const payments = createPaymentService({ db: app.db, providers: providersFromConfig(app.config.payments), onStockChange: () => app.cache.invalidate(CATALOG_CACHE) })
  const service = createOrderService({ db: app.db, cache: app.cache, cart, currency, checkout, refundAll: payments.refundAll })
  const idempotency = createIdempotency(app.db)
  const admin = app.requireRole('admin')

  app.jobs.every('order-expiry', 60_000, () => service.expireUnpaid())
  app.jobs.every('idempotency-purge', 3_600_000, () => idempotency.purgeExpired())

  app.post('', {
    preHandler: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'checkout', summary: 'Check out my cart into an order',
      description: 'Stock is reserved and totals computed by the server in one transaction. 409 names each line that cannot be bought. Send an Idempotency-Key to make retries safe.',
      security: BEARER, headers: IdempotencyHeader, body: Type.Ref(CheckoutBody),
      response: { 201: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: 'checkout', key: req.headers['idempotency-key'], request: req.body },
    async () => {
      const order = await service.checkout(req.user.sub, req.body)
      app.activity.record(req, 'checkout', { orderId: order.id, number: order.number, totalMinor: order.totalMinor })
      return { status: 201, body: order }
    },
  )))

  app.get('', {
    preHandler: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'listOrders', summary: 'My orders, newest first (admins: all, with filters)', security: BEARER,
      querystring: OrderListQuery, response: { 200: Type.Ref(OrderPage), 400: ProblemRef, 401: ProblemRef },
    },
  }, (req) => service.list(viewerOf(req), paged(req.query)))

  app.get('/:orderId', {
    preHandler: app.authenticate,
    schema: { tags: ['orders'], operationId: 'getOrder', summary: 'Read one of my orders', security: BEARER, params: OrderParams, response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, (req) => service.get(viewerOf(req), req.params.orderId))

  app.post('/:orderId/cancel', {
    preHandler: app.authenticate,
    schema: {
      tags: ['orders'], operationId: 'cancelOrder', summary: 'Cancel my order while unpaid or paid (a paid one is refunded)', security: BEARER,
      params: OrderParams, response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    const order = await service.cancel(viewerOf(req), req.params.orderId)
    app.activity.record(req, 'order_status_change', { orderId: order.id, status: order.status })
    return order
  })

  app.patch('/:orderId/status', {
    preHandler: admin,
    schema: {
      tags: ['orders'], operationId: 'changeOrderStatus', summary: 'Move an order along its state machine (admin)',
      description: 'pending_payment -> paid -> fulfilled -> shipped -> delivered; cancelled from pending_payment or paid. Anything else is 409.', security: BEARER,
      params: OrderParams, body: Type.Ref(OrderStatusChange), response: { 200: Type.Ref(Order), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    const order = await service.setStatus(req.user.sub, req.params.orderId, req.body.status)
    app.activity.record(req, 'order_status_change', { orderId: order.id, status: order.status })
    return order
  })

  app.post('/:orderId/payments', {
    preHandler: app.authenticate,
    schema: {
      tags: ['payments'], operationId: 'createPayment', summary: 'Start paying for my order', security: BEARER,
      headers: IdempotencyHeader, params: OrderParams, body: Type.Ref(PaymentCreate),
      response: { 201: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: `payment:${req.params.orderId}`, key: req.headers['idempotency-key'], request: req.body },
    async () => {
      const payment = await payments.createForOrder(req.user.sub, req.params.orderId, req.body, req.headers['idempotency-key'])
      app.activity.record(req, 'payment', { paymentId: payment.id, orderId: payment.orderId, status: payment.status, provider: payment.provider })
      return { status: 201, body: payment }
    },
  )))
}
export default ordersRoutes
