import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import {
  DeliveryListQuery, DeliveryParams, EndpointListQuery, EndpointParams, WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint,
  WebhookEndpointCreate, WebhookEndpointPage, WebhookEndpointUpdate, WebhookEndpointWithSecret,
} from './schemas.js'

// Outbound webhook endpoints and their deliveries (admin). Signing, retries and disabling are
// described in docs/webhooks.md; the service is app.services.webhooks (plugins/services.ts).
const webhooksRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.webhooks
  const admin = app.requireRole('admin')
  const common = { tags: ['webhooks'], security: BEARER }
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }

  app.post('/endpoints', {
    onRequest: admin,
    schema: { ...common, operationId: 'createWebhookEndpoint', summary: 'Register an endpoint; answers its signing secret, shown this once (admin)', body: Type.Ref(WebhookEndpointCreate), response: { 201: Type.Ref(WebhookEndpointWithSecret), ...errors } },
  }, async (req, reply) => reply.code(201).send(await service.create(req.body)))

  app.get('/endpoints', {
    onRequest: admin,
    schema: { ...common, operationId: 'listWebhookEndpoints', summary: 'List endpoints, newest first (admin)', querystring: EndpointListQuery, response: { 200: Type.Ref(WebhookEndpointPage), ...errors } },
  }, (req) => service.list(paged(req.query)))

  app.get('/endpoints/:endpointId', {
    onRequest: admin,
    schema: { ...common, operationId: 'getWebhookEndpoint', summary: 'Read an endpoint (admin)', params: EndpointParams, response: { 200: Type.Ref(WebhookEndpoint), ...errors } },
  }, (req) => service.get(req.params.endpointId))

  app.patch('/endpoints/:endpointId', {
    onRequest: admin,
    schema: { ...common, operationId: 'updateWebhookEndpoint', summary: 'Change the URL, events or description; pause or re-enable (admin)', params: EndpointParams, body: Type.Ref(WebhookEndpointUpdate), response: { 200: Type.Ref(WebhookEndpoint), ...errors } },
  }, (req) => service.update(req.params.endpointId, req.body))

  app.delete('/endpoints/:endpointId', {
    onRequest: admin,
    schema: { ...common, operationId: 'deleteWebhookEndpoint', summary: 'Delete an endpoint with its deliveries (admin)', params: EndpointParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    await service.remove(req.params.endpointId)
    return reply.code(204).send(null)
  })

  app.post('/endpoints/:endpointId/rotate-secret', {
    onRequest: admin,
    schema: { ...common, operationId: 'rotateWebhookSecret', summary: 'Replace the signing secret; the new one is shown this once (admin)', params: EndpointParams, response: { 200: Type.Ref(WebhookEndpointWithSecret), ...errors } },
  }, (req) => service.rotateSecret(req.params.endpointId))

  app.get('/endpoints/:endpointId/deliveries', {
    onRequest: admin,
    schema: { ...common, operationId: 'listWebhookDeliveries', summary: 'Deliveries to an endpoint with their attempts, newest first (admin)', params: EndpointParams, querystring: DeliveryListQuery, response: { 200: Type.Ref(WebhookDeliveryPage), ...errors } },
  }, (req) => service.listDeliveries(req.params.endpointId, paged(req.query)))

  app.get('/deliveries/:deliveryId', {
    onRequest: admin,
    schema: { ...common, operationId: 'getWebhookDelivery', summary: 'A delivery with its attempts (admin)', params: DeliveryParams, response: { 200: Type.Ref(WebhookDelivery), ...errors } },
  }, (req) => service.getDelivery(req.params.deliveryId))

  app.post('/deliveries/:deliveryId/replay', {
    onRequest: admin,
    schema: { ...common, operationId: 'replayWebhookDelivery', summary: 'Send a delivery again: same event id and body, a fresh round of attempts (admin)', params: DeliveryParams, response: { 202: Type.Ref(WebhookDelivery), ...errors } },
  }, async (req, reply) => reply.code(202).send(await service.replay(req.params.deliveryId)))
}
export default webhooksRoutes
