import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { Category, CategoryCreate, CategoryIdParams, CategoryNode, CategorySlugParams, CategoryTree, CategoryUpdate } from './schemas.js'
import { createCategoryService } from './service.js'


const categoriesRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = createCategoryService({ db: app.db, dbRead: app.dbRead, cache: app.cache })
  const admin = app.requireRole('admin')

  app.get('', {
    schema: { tags: ['categories'], operationId: 'getCategoryTree', summary: 'The whole category tree', response: { 200: Type.Ref(CategoryTree) } },
  }, async (_req, reply) => {
    const { value, hit } = await service.tree()
    reply.header('x-cache', hit ? 'hit' : 'miss')
    return value
  })

  app.get('/by-slug/:slug', {
    schema: {
      tags: ['categories'], operationId: 'getCategoryBySlug', summary: 'One category with its subtree',
      params: CategorySlugParams, response: { 200: Type.Ref(CategoryNode), 400: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => {
    const { value, hit } = await service.getBySlug(req.params.slug)
    reply.header('x-cache', hit ? 'hit' : 'miss')
    return value
  })

  app.post('', {
    onRequest: admin,
    schema: {
      tags: ['categories'], operationId: 'createCategory', summary: 'Create a category (admin)', security: BEARER,
      body: Type.Ref(CategoryCreate), response: { 201: Type.Ref(Category), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => reply.code(201).send(await service.create(req.body)))

  app.patch('/:categoryId', {
    onRequest: admin,
    schema: {
      tags: ['categories'], operationId: 'updateCategory', summary: 'Rename, re-slug or move a category (admin)', security: BEARER,
      params: CategoryIdParams, body: Type.Ref(CategoryUpdate),
      response: { 200: Type.Ref(Category), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.update(req.params.categoryId, req.body))

  app.delete('/:categoryId', {
    onRequest: admin,
    schema: {
      tags: ['categories'], operationId: 'deleteCategory', summary: 'Delete an empty category (admin)',
      description: '409 while it has subcategories or products.', security: BEARER,
      params: CategoryIdParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await service.remove(req.params.categoryId)
    return reply.code(204).send(null)
  })
}
export default categoriesRoutes
