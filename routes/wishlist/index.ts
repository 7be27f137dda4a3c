import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { Cart } from '../cart/schemas.js'
import { CurrencyQuery } from '../products/schemas.js'
import { MoveToCart, Wishlist, WishlistParams } from './schemas.js'

const wishlistRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.wishlist
  app.addHook('onRequest', app.authenticate)

  app.get('', {
    schema: { tags: ['wishlist'], operationId: 'getWishlist', summary: 'My wishlist, newest first', security: BEARER,
      description: 'Each product priced as I would pay for it (price lists, my customer groups) in the currency asked for, else my cart\'s.',
      querystring: CurrencyQuery, response: { 200: Type.Ref(Wishlist), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, (req) => service.list(req.user.sub, req.query))

  app.put('/items/:productId', {
    schema: {
      tags: ['wishlist'], operationId: 'addWishlistItem', summary: 'Save a product (idempotent)', security: BEARER,
      params: WishlistParams, querystring: CurrencyQuery, response: { 200: Type.Ref(Wishlist), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, (req) => service.add(req.user.sub, req.params.productId, req.query))

  app.delete('/items/:productId', {
    schema: {
      tags: ['wishlist'], operationId: 'removeWishlistItem', summary: 'Remove a saved product', security: BEARER,
      params: WishlistParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => {
    await service.remove(req.user.sub, req.params.productId)
    return reply.code(204).send(null)
  })

  app.post('/items/:productId/move-to-cart', {
    schema: {
      tags: ['wishlist'], operationId: 'moveWishlistItemToCart', summary: 'Move a saved product into my cart', security: BEARER,
      params: WishlistParams, body: Type.Ref(MoveToCart), response: { 200: Type.Ref(Cart), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, (req) => service.moveToCart(req.user.sub, req.params.productId, req.body ?? {}))
}
export default wishlistRoutes
