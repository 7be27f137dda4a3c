import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { viewerRole } from '../../plugins/auth.js'
import { ProblemRef } from '../../src/errors.js'
import { createIdempotency } from '../../src/idempotency.js'
import { CATALOG_CACHE } from '../categories/service.js'
import { sendStored } from '../orders/index.js'
import { IdempotencyHeader } from '../orders/schemas.js'
import { Payment, PaymentConfirm, PaymentParams, Refund, RefundCreate, WebhookAck, WebhookParams } from './schemas.js'
import { createPaymentService } from './service.js'
import { providersFromConfig } from './providers.js'

const paymentsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = createPaymentService({ db: app.db, providers: providersFromConfig(app.config.payments), onStockChange: () => app.cache.invalidate(CATALOG_CACHE) })
  const idempotency = createIdempotency(app.db)

  app.get('/:paymentId', {
    preHandler: app.authenticate,
    schema: { tags: ['payments'], operationId: 'getPayment', summary: 'Read a payment of my order', security: BEARER, params: PaymentParams, response: { 200: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, (req) => service.get({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' }, req.params.paymentId))

  app.post('/:paymentId/confirm', {
    preHandler: app.authenticate,
    schema: {
      tags: ['payments'], operationId: 'confirmPayment', summary: 'Confirm a payment; success marks the order paid', security: BEARER,
      params: PaymentParams, body: Type.Ref(PaymentConfirm), response: { 200: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, async (req) => {
    const payment = await service.confirm(req.user.sub, req.params.paymentId, req.body.paymentMethod)
    app.activity.record(req, 'payment', { paymentId: payment.id, orderId: payment.orderId, status: payment.status, provider: payment.provider })
    return payment
  })

  app.post('/:paymentId/refunds', {
    preHandler: app.requireRole('admin'),
    schema: {
      tags: ['payments'], operationId: 'refundPayment', summary: 'Refund part or all of a captured payment (admin)',
      description: 'Never more than captured in total (409). A full refund moves the order to refunded. Send an Idempotency-Key.', security: BEARER,
      headers: IdempotencyHeader, params: PaymentParams, body: Type.Ref(RefundCreate),
      response: { 201: Type.Ref(Refund), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: `refund:${req.params.paymentId}`, key: req.headers['idempotency-key'], request: req.body },
    async () => ({ status: 201, body: await service.refund(req.user.sub, req.params.paymentId, req.body) }),
  )))

  // Webhooks verify a signature over the exact bytes sent, so this scope keeps the raw body.
  await app.register(async (scope) => {
    const raw = scope.withTypeProvider<TypeBoxTypeProvider>()
    raw.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
    raw.post('/webhooks/:provider', {
      config: { rateLimit: false },
      schema: {
        tags: ['payments'], operationId: 'receivePaymentWebhook', summary: 'Payment provider events (signed)',
        description: 'Test provider: header x-shop-signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">, 300 s tolerance. Stripe: stripe-signature. Each event id is applied once.',
        params: WebhookParams, response: { 200: Type.Ref(WebhookAck), 400: ProblemRef, 404: ProblemRef },
      },
    }, (req) => service.handleWebhook(req.params.provider, req.body as Buffer, req.headers))
  })
}
export default paymentsRoutes
