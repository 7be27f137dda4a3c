import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { LowStock, LowStockQuery, NewCustomers, PaymentStats, RangeQuery, ReturnStats, SalesSummary, ShippingTaxStats, TopProducts, TopProductsQuery } from './schemas.js'
import { createAnalyticsService } from './service.js'

const analyticsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  // Reports tolerate replication lag: they read from the replicas when there are any.
  const service = createAnalyticsService({ db: app.dbRead, currency: app.config.currency })
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef }
  const common = { tags: ['analytics'], security: BEARER }
  // On each route rather than a plugin hook, so the contract states the role (x-roles).
  const onRequest = app.requireRole('admin')

  app.get('/sales', { onRequest, schema: { ...common, operationId: 'getSalesSummary', summary: 'Revenue, orders and average order value, by day (admin)', querystring: RangeQuery, response: { 200: Type.Ref(SalesSummary), ...errors } } }, (req) => service.sales(req.query))
  app.get('/top-products', { onRequest, schema: { ...common, operationId: 'getTopProducts', summary: 'Best sellers by revenue or units (admin)', querystring: TopProductsQuery, response: { 200: Type.Ref(TopProducts), ...errors } } }, (req) => service.topProducts(req.query))
  app.get('/low-stock', { onRequest, schema: { ...common, operationId: 'getLowStock', summary: 'Active variants at or below a stock threshold (admin)', querystring: LowStockQuery, response: { 200: Type.Ref(LowStock), ...errors } } }, (req) => service.lowStock(req.query))
  app.get('/payments', { onRequest, schema: { ...common, operationId: 'getPaymentStats', summary: 'Payments by provider: success and refund rates (admin)', querystring: RangeQuery, response: { 200: Type.Ref(PaymentStats), ...errors } } }, (req) => service.payments(req.query))
  app.get('/shipping-tax', { onRequest, schema: { ...common, operationId: 'getShippingTaxStats', summary: 'Shipping and tax collected, by destination country (admin)', querystring: RangeQuery, response: { 200: Type.Ref(ShippingTaxStats), ...errors } } }, (req) => service.shippingTax(req.query))
  app.get('/returns', { onRequest, schema: { ...common, operationId: 'getReturnStats', summary: 'Returns, where they stand, refunds and reasons (admin)', querystring: RangeQuery, response: { 200: Type.Ref(ReturnStats), ...errors } } }, (req) => service.returns(req.query))
  app.get('/customers', { onRequest, schema: { ...common, operationId: 'getNewCustomers', summary: 'New customers by day (admin)', querystring: RangeQuery, response: { 200: Type.Ref(NewCustomers), ...errors } } }, (req) => service.newCustomers(req.query))
}
export default analyticsRoutes
