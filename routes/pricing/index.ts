import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import {
  CustomerGroup, CustomerGroupCreate, CustomerGroupList, GroupMemberAdd, GroupMemberList, GroupParams, MemberParams,
  PriceList, PriceListCreate, PriceListList, PriceListParams, PriceListPriceParams, PriceListPricesPut, PriceListUpdate,
  Region, RegionCreate, RegionList, RegionParams, RegionUpdate, VariantPrice, VariantPriceList, VariantPriceParams, VariantPriceSet,
} from './schemas.js'

// Admin operations of multi-currency selling: regions, a variant's price per currency, customer
// groups and their members, price lists and their prices. The rule that turns them into the price
// a shopper pays is in src/prices.ts.
const pricingRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { pricing: service, products } = app.services
  // The guard on each route, so the contract states it (x-roles).
  const onRequest = app.requireRole('admin')
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }
  const regions = { tags: ['regions'], security: BEARER }
  const prices = { tags: ['prices'], security: BEARER }
  const groups = { tags: ['customer-groups'], security: BEARER }

  app.get('/regions', { onRequest, schema: { ...regions, operationId: 'listRegions', summary: 'Regions with their countries and currency (admin)', response: { 200: Type.Ref(RegionList), ...errors } } }, () => service.listRegions())
  app.post('/regions', { onRequest, schema: { ...regions, operationId: 'createRegion', summary: 'Create a region (admin)', description: '409 when a country is in another region already.', body: Type.Ref(RegionCreate), response: { 201: Type.Ref(Region), ...errors } } },
    async (req, reply) => reply.code(201).send(await service.createRegion(req.body)))
  app.get('/regions/:regionId', { onRequest, schema: { ...regions, operationId: 'getRegion', summary: 'Read a region (admin)', params: RegionParams, response: { 200: Type.Ref(Region), ...errors } } }, (req) => service.getRegion(req.params.regionId))
  app.patch('/regions/:regionId', { onRequest, schema: { ...regions, operationId: 'updateRegion', summary: 'Change a region (admin)', description: 'countries replaces the list.', params: RegionParams, body: Type.Ref(RegionUpdate), response: { 200: Type.Ref(Region), ...errors } } },
    (req) => service.updateRegion(req.params.regionId, req.body))
  app.delete('/regions/:regionId', { onRequest, schema: { ...regions, operationId: 'deleteRegion', summary: 'Delete a region; not the default (admin)', params: RegionParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeRegion(req.params.regionId); return reply.code(204).send(null) })

  app.get('/products/:productId/variants/:variantId/prices', { onRequest, schema: { ...prices, operationId: 'listVariantPrices', summary: "A variant's base price in each currency (admin)", params: Type.Omit(VariantPriceParams, ['currency']), response: { 200: Type.Ref(VariantPriceList), ...errors } } },
    async (req) => ({ items: await products.variantPrices(req.params.productId, req.params.variantId) }))
  app.put('/products/:productId/variants/:variantId/prices/:currency', { onRequest, schema: { ...prices, operationId: 'setVariantPrice', summary: "Set a variant's base price in a currency (admin)", description: 'Explicit: no conversion. A variant without a price in a currency cannot be bought in it.', params: VariantPriceParams, body: Type.Ref(VariantPriceSet), response: { 200: Type.Ref(VariantPrice), ...errors } } },
    (req) => products.setVariantPrice(req.params.productId, req.params.variantId, req.params.currency, req.body.amountMinor))
  app.delete('/products/:productId/variants/:variantId/prices/:currency', { onRequest, schema: { ...prices, operationId: 'deleteVariantPrice', summary: 'Stop selling a variant in a currency; not the store currency (admin)', params: VariantPriceParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await products.removeVariantPrice(req.params.productId, req.params.variantId, req.params.currency); return reply.code(204).send(null) })

  app.get('/price-lists', { onRequest, schema: { ...prices, operationId: 'listPriceLists', summary: 'Price lists (admin)', response: { 200: Type.Ref(PriceListList), ...errors } } }, () => service.listPriceLists())
  app.post('/price-lists', { onRequest, schema: { ...prices, operationId: 'createPriceList', summary: 'Create a sale or override price list (admin)', body: Type.Ref(PriceListCreate), response: { 201: Type.Ref(PriceList), ...errors } } },
    async (req, reply) => { const { prices: listPrices, ...fields } = req.body; return reply.code(201).send(await service.createPriceList(fields, listPrices)) })
  app.get('/price-lists/:priceListId', { onRequest, schema: { ...prices, operationId: 'getPriceList', summary: 'Read a price list with its prices (admin)', params: PriceListParams, response: { 200: Type.Ref(PriceList), ...errors } } }, (req) => service.getPriceList(req.params.priceListId))
  app.patch('/price-lists/:priceListId', { onRequest, schema: { ...prices, operationId: 'updatePriceList', summary: 'Change a price list (admin)', params: PriceListParams, body: Type.Ref(PriceListUpdate), response: { 200: Type.Ref(PriceList), ...errors } } },
    (req) => service.updatePriceList(req.params.priceListId, req.body))
  app.delete('/price-lists/:priceListId', { onRequest, schema: { ...prices, operationId: 'deletePriceList', summary: 'Delete a price list (admin)', description: 'Placed orders keep the prices they were charged.', params: PriceListParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removePriceList(req.params.priceListId); return reply.code(204).send(null) })
  app.put('/price-lists/:priceListId/prices', { onRequest, schema: { ...prices, operationId: 'putPriceListPrices', summary: 'Add or replace prices of a price list (admin)', params: PriceListParams, body: Type.Ref(PriceListPricesPut), response: { 200: Type.Ref(PriceList), ...errors } } },
    (req) => service.putPriceListPrices(req.params.priceListId, req.body.prices))
  app.delete('/price-lists/:priceListId/prices/:variantId/:currency', { onRequest, schema: { ...prices, operationId: 'deletePriceListPrice', summary: 'Remove one price from a price list (admin)', params: PriceListPriceParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removePriceListPrice(req.params.priceListId, req.params.variantId, req.params.currency); return reply.code(204).send(null) })

  app.get('/customer-groups', { onRequest, schema: { ...groups, operationId: 'listCustomerGroups', summary: 'Customer groups (admin)', response: { 200: Type.Ref(CustomerGroupList), ...errors } } }, () => service.listGroups())
  app.post('/customer-groups', { onRequest, schema: { ...groups, operationId: 'createCustomerGroup', summary: 'Create a customer group (admin)', body: Type.Ref(CustomerGroupCreate), response: { 201: Type.Ref(CustomerGroup), ...errors } } },
    async (req, reply) => reply.code(201).send(await service.createGroup(req.body.name)))
  app.delete('/customer-groups/:groupId', { onRequest, schema: { ...groups, operationId: 'deleteCustomerGroup', summary: 'Delete a customer group no price list names (admin)', params: GroupParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeGroup(req.params.groupId); return reply.code(204).send(null) })
  app.get('/customer-groups/:groupId/members', { onRequest, schema: { ...groups, operationId: 'listCustomerGroupMembers', summary: "A group's members (admin)", params: GroupParams, response: { 200: Type.Ref(GroupMemberList), ...errors } } }, (req) => service.listMembers(req.params.groupId))
  app.post('/customer-groups/:groupId/members', { onRequest, schema: { ...groups, operationId: 'addCustomerGroupMember', summary: 'Put a customer in a group (admin)', params: GroupParams, body: Type.Ref(GroupMemberAdd), response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.addMember(req.params.groupId, req.body.userId); return reply.code(204).send(null) })
  app.delete('/customer-groups/:groupId/members/:userId', { onRequest, schema: { ...groups, operationId: 'removeCustomerGroupMember', summary: 'Take a customer out of a group (admin)', params: MemberParams, response: { 204: Type.Null(), ...errors } } },
    async (req, reply) => { await service.removeMember(req.params.groupId, req.params.userId); return reply.code(204).send(null) })
}
export default pricingRoutes
