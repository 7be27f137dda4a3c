import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { IdempotencyHeader, sendStored, viewerOf } from '../shared.js'
import { Return, ReturnCreate, ReturnListQuery, ReturnOrderParams, ReturnPage, ReturnParams, ReturnReceive, ReturnReject } from './schemas.js'

const actorOf = (req: FastifyRequest) => ({ userId: req.user.sub, ip: req.ip })

const returnsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { idempotency, returns, refundReturn } = app.services
  const admin = app.requireRole('admin')
  const errors = { 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef }
  const adminErrors = { ...errors, 403: ProblemRef }

  app.post('/orders/:orderId/returns', {
    onRequest: app.authenticate,
    schema: {
      tags: ['returns'], operationId: 'requestReturn', summary: 'Ask to return items of my delivered order',
      description: 'Within RETURN_WINDOW_DAYS of delivery, a reason per line; never more of a line than was bought, counting earlier returns that were not rejected (409).',
      security: BEARER, params: ReturnOrderParams, body: Type.Ref(ReturnCreate), response: { 201: Type.Ref(Return), ...errors },
    },
  }, async (req, reply) => reply.code(201).send(await returns.request(actorOf(req), req.params.orderId, req.body.items)))

  app.get('/returns', {
    onRequest: app.authenticate,
    schema: { tags: ['returns'], operationId: 'listReturns', summary: 'My returns, newest first (admins: all)', security: BEARER, querystring: ReturnListQuery, response: { 200: Type.Ref(ReturnPage), 400: ProblemRef, 401: ProblemRef } },
  }, (req) => returns.list(viewerOf(req), paged(req.query)))

  app.get('/returns/:returnId', {
    onRequest: app.authenticate,
    schema: { tags: ['returns'], operationId: 'getReturn', summary: 'Read one of my returns', security: BEARER, params: ReturnParams, response: { 200: Type.Ref(Return), ...errors } },
  }, (req) => returns.get(viewerOf(req), req.params.returnId))

  app.post('/returns/:returnId/approve', {
    onRequest: admin,
    schema: { tags: ['returns'], operationId: 'approveReturn', summary: 'Approve a requested return (admin)', security: BEARER, params: ReturnParams, response: { 200: Type.Ref(Return), ...adminErrors } },
  }, (req) => returns.approve(actorOf(req), req.params.returnId))

  app.post('/returns/:returnId/reject', {
    onRequest: admin,
    schema: { tags: ['returns'], operationId: 'rejectReturn', summary: 'Reject a requested return (admin)', security: BEARER, params: ReturnParams, body: Type.Ref(ReturnReject), response: { 200: Type.Ref(Return), ...adminErrors } },
  }, (req) => returns.reject(actorOf(req), req.params.returnId, req.body.reason))

  app.post('/returns/:returnId/receive', {
    onRequest: admin,
    schema: {
      tags: ['returns'], operationId: 'receiveReturn', summary: 'Record what came back; resellable goods go back into stock (admin)',
      description: 'Once per return: a second call finds it received (409). Fixes the refund: the goods that came back, after their discount, with their tax.',
      security: BEARER, params: ReturnParams, body: Type.Ref(ReturnReceive), response: { 200: Type.Ref(Return), ...adminErrors },
    },
  }, (req) => returns.receive(actorOf(req), req.params.returnId, req.body.items, req.body.locationId))

  app.post('/returns/:returnId/refund', {
    onRequest: admin,
    schema: {
      tags: ['returns'], operationId: 'refundReturn', summary: 'Refund a received return to the order\'s payment (admin)',
      description: 'Once per return (409 after). Send an Idempotency-Key: a retry resumes the same refund. 502 when the provider did not answer: the refund stays pending and is retried.',
      security: BEARER, headers: IdempotencyHeader, params: ReturnParams,
      response: { 200: Type.Ref(Return), ...adminErrors, 422: ProblemRef, 502: ProblemRef },
    },
  }, async (req, reply) => sendStored(reply, await idempotency.run(
    { userId: req.user.sub, scope: `return-refund:${req.params.returnId}`, key: req.headers['idempotency-key'], request: null },
    async (attempt) => ({ status: 200, body: await refundReturn(actorOf(req), req.params.returnId, attempt) }),
  )))
}
export default returnsRoutes
