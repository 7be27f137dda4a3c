import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { LevelParams, StockLevel, StockLevelSet, StockLocation, StockLocationCreate, StockLocationList, StockTransfer, VariantParams, VariantStock } from './schemas.js'

const actorOf = (req: FastifyRequest) => ({ userId: req.user.sub, ip: req.ip })

const inventoryRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { inventory: service } = app.services
  const admin = app.requireRole('admin')
  const adminErrors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }

  app.post('/locations', {
    onRequest: admin,
    schema: { tags: ['inventory'], operationId: 'createStockLocation', summary: 'Create a stock location (admin)', security: BEARER, body: Type.Ref(StockLocationCreate), response: { 201: Type.Ref(StockLocation), ...adminErrors } },
  }, async (req, reply) => reply.code(201).send(await service.createLocation(req.body)))

  app.get('/locations', {
    onRequest: admin,
    schema: { tags: ['inventory'], operationId: 'listStockLocations', summary: 'Stock locations in allocation order (admin)', security: BEARER, response: { 200: Type.Ref(StockLocationList), 401: ProblemRef, 403: ProblemRef } },
  }, () => service.listLocations())

  app.get('/variants/:variantId/levels', {
    onRequest: admin,
    schema: { tags: ['inventory'], operationId: 'listStockLevels', summary: "A variant's stock at each location (admin)", security: BEARER, params: VariantParams, response: { 200: Type.Ref(VariantStock), ...adminErrors } },
  }, (req) => service.levels(req.params.variantId))

  app.put('/variants/:variantId/levels/:locationId', {
    onRequest: admin,
    schema: {
      tags: ['inventory'], operationId: 'setStockLevel', summary: 'Set what is on hand at a location, a stock take (admin)',
      description: 'Recorded as a correction movement of the difference. 409 below what is reserved there.',
      security: BEARER, params: LevelParams, body: Type.Ref(StockLevelSet), response: { 200: Type.Ref(StockLevel), ...adminErrors },
    },
  }, (req) => service.setLevel(actorOf(req), req.params.variantId, req.params.locationId, req.body))

  app.post('/transfers', {
    onRequest: admin,
    schema: {
      tags: ['inventory'], operationId: 'transferStock', summary: 'Move units on hand between two locations (admin)',
      description: 'Atomic: both levels change in one transaction, with a transfer movement on each side. 409 when the source has fewer available.',
      security: BEARER, body: Type.Ref(StockTransfer), response: { 200: Type.Ref(VariantStock), ...adminErrors },
    },
  }, (req) => service.transfer(actorOf(req), req.body))
}
export default inventoryRoutes
