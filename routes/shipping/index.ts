import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import {
  OptionParams, ShippingOption, ShippingOptionCreate, ShippingOptionUpdate, ShippingZone, ShippingZoneCreate, ShippingZoneList, ShippingZoneUpdate,
  ShippingZoneLocations, ShippingZoneLocationsSet, TaxRate, TaxRateCreate, TaxRateList, TaxRateParams, TaxRateUpdate, ZoneLocationParams, ZoneParams,
} from './schemas.js'

// Admin management of shipping zones, their options, and tax rates. What applies to a cart is
// GET /cart/shipping-options; checkout charges it.
const shippingRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.shipping
  // The guard on each route (not a scope hook), so the contract states it (x-roles).
  const onRequest = app.requireRole('admin')
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }
  const zones = { tags: ['shipping'], security: BEARER }
  const tax = { tags: ['tax'], security: BEARER }

  app.get('/shipping/zones', { onRequest, schema: { ...zones, operationId: 'listShippingZones', summary: 'Shipping zones with their options (admin)', response: { 200: Type.Ref(ShippingZoneList), ...errors } } }, () => service.listZones())
  app.post('/shipping/zones', { onRequest, schema: { ...zones, operationId: 'createShippingZone', summary: 'Create a shipping zone (admin)', body: Type.Ref(ShippingZoneCreate), response: { 201: Type.Ref(ShippingZone), ...errors } } },
    async (req, reply) => reply.code(201).send(await service.createZone(req.body)))
  app.get('/shipping/zones/:zoneId', { onRequest, schema: { ...zones, operationId: 'getShippingZone', summary: 'Read a shipping zone (admin)', params: ZoneParams, response: { 200: Type.Ref(ShippingZone), ...errors } } }, (req) => service.getZone(req.params.zoneId))
  app.patch('/shipping/zones/:zoneId', { onRequest, schema: { ...zones, operationId: 'updateShippingZone', summary: 'Change a shipping zone (admin)', params: ZoneParams, body: Type.Ref(ShippingZoneUpdate), response: { 200: Type.Ref(ShippingZone), ...errors } } },
    (req) => service.updateZone(req.params.zoneId, req.body))
  app.delete('/shipping/zones/:zoneId', { onRequest, schema: { ...zones, operationId: 'deleteShippingZone', summary: 'Delete a shipping zone and its options (admin)', description: 'Placed orders keep their snapshot of the option they used.', params: ZoneParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeZone(req.params.zoneId); return reply.code(204).send(null) })

  // Which stock locations serve a zone: checkout reserves an order's units only there. None named:
  // every active location does (docs/inventory.md). Each write is idempotent.
  const served = 'Checkout reserves the units of an order shipped to this zone only at these locations, by the inventory allocation rule (docs/inventory.md). A zone that names none is served by every active location.'
  app.get('/shipping/zones/:zoneId/locations', { onRequest, schema: { ...zones, operationId: 'getShippingZoneLocations', summary: 'The stock locations that serve a shipping zone (admin)', description: served, params: ZoneParams, response: { 200: Type.Ref(ShippingZoneLocations), ...errors } } },
    (req) => service.zoneLocations(req.params.zoneId))
  app.put('/shipping/zones/:zoneId/locations', { onRequest, schema: { ...zones, operationId: 'setShippingZoneLocations', summary: 'Name the stock locations that serve a shipping zone (admin)', description: `${served} Replaces the set; an empty list gives the zone back to every active location. 404 names an unknown location.`, params: ZoneParams, body: Type.Ref(ShippingZoneLocationsSet), response: { 200: Type.Ref(ShippingZoneLocations), ...errors } } },
    (req) => service.setZoneLocations(req.params.zoneId, req.body.locationIds))
  app.put('/shipping/zones/:zoneId/locations/:locationId', { onRequest, schema: { ...zones, operationId: 'addShippingZoneLocation', summary: 'Add a stock location to those serving a shipping zone (admin)', description: `${served} Adding one already there changes nothing.`, params: ZoneLocationParams, response: { 200: Type.Ref(ShippingZoneLocations), ...errors } } },
    (req) => service.addZoneLocation(req.params.zoneId, req.params.locationId))
  app.delete('/shipping/zones/:zoneId/locations/:locationId', { onRequest, schema: { ...zones, operationId: 'removeShippingZoneLocation', summary: 'Remove a stock location from those serving a shipping zone (admin)', description: `${served} Removing one not there changes nothing; removing the last gives the zone back to every active location.`, params: ZoneLocationParams, response: { 200: Type.Ref(ShippingZoneLocations), ...errors } } },
    (req) => service.removeZoneLocation(req.params.zoneId, req.params.locationId))

  app.post('/shipping/zones/:zoneId/options', { onRequest, schema: { ...zones, operationId: 'createShippingOption', summary: 'Add a shipping option to a zone (admin)', params: ZoneParams, body: Type.Ref(ShippingOptionCreate), response: { 201: Type.Ref(ShippingOption), ...errors } } },
    async (req, reply) => reply.code(201).send(await service.createOption(req.params.zoneId, req.body)))
  app.patch('/shipping/options/:optionId', { onRequest, schema: { ...zones, operationId: 'updateShippingOption', summary: 'Change a shipping option (admin)', params: OptionParams, body: Type.Ref(ShippingOptionUpdate), response: { 200: Type.Ref(ShippingOption), ...errors } } },
    (req) => service.updateOption(req.params.optionId, req.body))
  app.delete('/shipping/options/:optionId', { onRequest, schema: { ...zones, operationId: 'deleteShippingOption', summary: 'Delete a shipping option (admin)', params: OptionParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeOption(req.params.optionId); return reply.code(204).send(null) })

  app.get('/tax-rates', { onRequest, schema: { ...tax, operationId: 'listTaxRates', summary: 'Tax rates by destination (admin)', response: { 200: Type.Ref(TaxRateList), ...errors } } }, () => service.listTaxRates())
  app.post('/tax-rates', { onRequest, schema: { ...tax, operationId: 'createTaxRate', summary: 'Create a tax rate for a country, a region, or the default (admin)', body: Type.Ref(TaxRateCreate), response: { 201: Type.Ref(TaxRate), ...errors } } },
    async (req, reply) => reply.code(201).send(await service.createTaxRate(req.body)))
  app.patch('/tax-rates/:taxRateId', { onRequest, schema: { ...tax, operationId: 'updateTaxRate', summary: 'Change a tax rate (admin)', description: 'Placed orders keep the rate they were charged.', params: TaxRateParams, body: Type.Ref(TaxRateUpdate), response: { 200: Type.Ref(TaxRate), ...errors } } },
    (req) => service.updateTaxRate(req.params.taxRateId, req.body))
  app.delete('/tax-rates/:taxRateId', { onRequest, schema: { ...tax, operationId: 'deleteTaxRate', summary: 'Delete a tax rate (admin)', params: TaxRateParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeTaxRate(req.params.taxRateId); return reply.code(204).send(null) })
}
export default shippingRoutes
