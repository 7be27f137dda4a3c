import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { BadRequest, ProblemRef } from '../../src/errors.js'
import type { FastifyRequest } from 'fastify'
import { IdempotencyHeader, sendStored, viewerOf } from '../shared.js'
import { Payment, PaymentConfirm, PaymentParams, Refund, RefundCreate, WebhookAck, WebhookEvent, WebhookHeaders, WebhookParams } from './schemas.js'
import { toPayment } from './service.js'

const paymentsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { idempotency, payments, confirm, refunds } = app.services

  app.get('/:paymentId', {
    onRequest: app.authenticate,
    schema: { tags: ['payments'], operationId: 'getPayment', summary: 'Read a payment of my order', security: BEARER, params: PaymentParams, response: { 200: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef } },
  }, (req) => payments.get(viewerOf(req), req.params.paymentId))

  app.post('/:paymentId/confirm', {
    onRequest: app.authenticate,
    schema: {
      tags: ['payments'], operationId: 'confirmPayment', summary: 'Confirm a payment; success marks the order paid', security: BEARER,
      params: PaymentParams, body: Type.Ref(PaymentConfirm), response: { 200: Type.Ref(Payment), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 502: ProblemRef },
    },
  }, async (req) => {
    // Only the customer whose order it is confirms it (an admin reads, never pays).
    const payment = await payments.requireVisible({ userId: req.user.sub, isAdmin: false }, req.params.paymentId)
    return toPayment(await confirm.confirm({ userId: req.user.sub, ip: req.ip }, payment, req.body.paymentMethod))
  })

  app.post('/:paymentId/refunds', {
    onRequest: app.requireRole('admin'),
    schema: {
      tags: ['payments'], operationId: 'refundPayment', summary: 'Refund part or all of a captured payment (admin)',
      description: 'Never more than captured in total (409). A full refund moves the order to refunded. Send an Idempotency-Key: a retry resumes the same refund. 502 when the provider did not answer: the refund stays pending and is retried.', security: BEARER,
      headers: IdempotencyHeader, params: PaymentParams, body: Type.Ref(RefundCreate),
      response: { 201: Type.Ref(Refund), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef, 502: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: `refund:${req.params.paymentId}`, key: req.headers['idempotency-key'], request: req.body },
    async (attempt) => {
      const refund = await refunds.refundPayment(req.user.sub, req.params.paymentId, req.body, attempt)
      return { status: 201, body: await payments.refundView(refund.id) }
    },
  )))

  // Webhooks verify a signature over the exact bytes sent: this scope parses the JSON for the
  // schema and keeps the bytes beside it for the provider.
  await app.register(async (scope) => {
    const raw = scope.withTypeProvider<TypeBoxTypeProvider>()
    const rawBodies = new WeakMap<FastifyRequest, Buffer>()
    raw.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
      rawBodies.set(req, body as Buffer)
      try { done(null, JSON.parse((body as Buffer).toString('utf8'))) } catch { done(new BadRequest('The body is not JSON', 'invalid-webhook'), undefined) }
    })
    raw.post('/webhooks/:provider', {
      config: { rateLimit: false },
      schema: {
        tags: ['payments'], operationId: 'receivePaymentWebhook', summary: 'Payment provider events (signed)',
        description: 'Test provider: header x-shop-signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">, 300 s tolerance. Stripe: stripe-signature. Each event id is applied once; 404 for a payment not known yet (the provider sends it again).',
        params: WebhookParams, headers: WebhookHeaders, body: Type.Ref(WebhookEvent), response: { 200: Type.Ref(WebhookAck), 400: ProblemRef, 404: ProblemRef },
      },
    }, (req) => confirm.webhook(req.params.provider, rawBodies.get(req)!, req.headers))
  })
}
export default paymentsRoutes
