import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { BEARER, OPTIONAL_BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import type { CacheResult } from '../../src/cache.js'
import { viewerRole } from '../../plugins/auth.js'
import {
  CurrencyQuery, InventoryMovementPage, MovementListQuery, Product, ProductCreate, ProductIdParams, ProductListQuery, ProductPage,
  ProductSlugParams, ProductUpdate, StockAdjustment, Variant, VariantCreate, VariantParams, VariantUpdate,
} from './schemas.js'


const viewerOf = (req: FastifyRequest) => ({ isAdmin: viewerRole(req) === 'admin', userId: (req.user as { sub?: string } | null)?.sub ?? null })
/** Answers a cached read: a hit is sent as the JSON text it was stored as (the same bytes the serializer makes). */
function cached<T>(reply: FastifyReply, result: CacheResult<T>): T {
  reply.header('x-cache', result.hit ? 'hit' : 'miss')
  if (result.json !== undefined) return reply.type('application/json; charset=utf-8').send(result.json) as never
  return result.value
}

const productsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { products: service, uploads } = app.services
  const admin = app.requireRole('admin')
  // A product filled to every maximum of its schema (100 variants of 10 options, 50 attributes, a
  // long description) in a non-Latin script is about 350 KiB: over the small JSON limit, so
  // these two admin routes take up to 1 MiB.
  const CATALOG_BODY_LIMIT = Math.max(app.config.bodyLimit, 1024 * 1024)
  /** A product detail read: answered (with X-Cache) and recorded as a product view. */
  const viewed = <T extends { id: string }>(req: FastifyRequest, reply: FastifyReply, result: CacheResult<T>, productId?: string) => {
    app.activity.record(req, 'product_view', { productId: productId ?? result.value.id })
    return cached(reply, result)
  }

  app.get('', {
    onRequest: app.identify,
    schema: {
      tags: ['products'], operationId: 'listProducts', summary: 'List, search and filter products',
      description: 'Keyset-paged. Customers see active products; admins may pass status. X-Cache tells whether the answer came from the cache.',
      security: OPTIONAL_BEARER, querystring: ProductListQuery, response: { 200: Type.Ref(ProductPage), 400: ProblemRef, 401: ProblemRef },
    },
  }, async (req, reply) => cached(reply, await service.list(paged(req.query), viewerOf(req))))

  app.get('/by-slug/:slug', {
    onRequest: app.identify,
    schema: {
      tags: ['products'], operationId: 'getProductBySlug', summary: 'Read a product by its slug', security: OPTIONAL_BEARER,
      params: ProductSlugParams, querystring: CurrencyQuery, response: { 200: Type.Ref(Product), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => viewed(req, reply, await service.getBySlug(req.params.slug, viewerOf(req), req.query)))

  app.get('/:productId', {
    onRequest: app.identify,
    schema: {
      tags: ['products'], operationId: 'getProduct', summary: 'Read a product with its variants', security: OPTIONAL_BEARER,
      description: 'Customers see the prices they would pay (src/prices.ts: price lists, their customer groups) in the currency asked for.',
      params: ProductIdParams, querystring: CurrencyQuery, response: { 200: Type.Ref(Product), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => viewed(req, reply, await service.getById(req.params.productId, viewerOf(req), req.query), req.params.productId.toLowerCase()))

  app.post('', {
    onRequest: admin,
    bodyLimit: CATALOG_BODY_LIMIT,
    schema: {
      tags: ['products'], operationId: 'createProduct', summary: 'Create a product with its variants (admin)', security: BEARER,
      body: Type.Ref(ProductCreate), response: { 201: Type.Ref(Product), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await uploads.requireImages(req.body.imageIds ?? [], 'product_image')
    return reply.code(201).send(await service.create(req.body, req.user.sub))
  })

  app.patch('/:productId', {
    onRequest: admin,
    bodyLimit: CATALOG_BODY_LIMIT,
    schema: {
      tags: ['products'], operationId: 'updateProduct', summary: 'Change a product (admin)', security: BEARER,
      params: ProductIdParams, body: Type.Ref(ProductUpdate), response: { 200: Type.Ref(Product), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    await uploads.requireImages(req.body.imageIds ?? [], 'product_image')
    return service.update(req.params.productId, req.body)
  })

  app.delete('/:productId', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'deleteProduct', summary: 'Delete a product and its variants (admin)', security: BEARER,
      params: ProductIdParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => {
    await service.remove(req.params.productId)
    return reply.code(204).send(null)
  })

  app.post('/:productId/variants', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'createVariant', summary: 'Add a variant (admin)', security: BEARER,
      params: ProductIdParams, body: Type.Ref(VariantCreate), response: { 201: Type.Ref(Variant), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => reply.code(201).send(await service.addVariant(req.params.productId, req.body, req.user.sub)))

  app.patch('/:productId/variants/:variantId', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'updateVariant', summary: 'Change a variant (admin)', security: BEARER,
      params: VariantParams, body: Type.Ref(VariantUpdate), response: { 200: Type.Ref(Variant), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.updateVariant(req.params.productId, req.params.variantId, req.body))

  app.delete('/:productId/variants/:variantId', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'deleteVariant', summary: 'Delete a variant; not the last one (admin)', security: BEARER,
      params: VariantParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await service.removeVariant(req.params.productId, req.params.variantId)
    return reply.code(204).send(null)
  })

  app.post('/:productId/variants/:variantId/stock-adjustments', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'adjustStock', summary: 'Add or remove stock with a reason (admin)',
      description: 'Atomic; 409 when it would take stock below zero. Recorded as an inventory movement.', security: BEARER,
      params: VariantParams, body: Type.Ref(StockAdjustment), response: { 200: Type.Ref(Variant), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.adjustStock(req.params.productId, req.params.variantId, req.body, req.user.sub))

  app.get('/:productId/variants/:variantId/stock-adjustments', {
    onRequest: admin,
    schema: {
      tags: ['products'], operationId: 'listInventoryMovements', summary: "A variant's stock history, newest first (admin)", security: BEARER,
      params: VariantParams, querystring: MovementListQuery, response: { 200: Type.Ref(InventoryMovementPage), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef },
    },
  }, (req) => service.listMovements(req.params.productId, req.params.variantId, paged(req.query)))
}
export default productsRoutes
