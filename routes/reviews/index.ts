import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { viewerRole } from '../../plugins/auth.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { ModerationQuery, ProductReviewParams, ProductReviewsQuery, Review, ReviewCreate, ReviewModeration, ReviewPage, ReviewParams, ReviewUpdate } from './schemas.js'

// Registered without a prefix: reviews hang off products (/products/:productId/reviews) and stand alone (/reviews/:reviewId).
const reviewsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.reviews
  const admin = app.requireRole('admin')
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }

  app.get('/products/:productId/reviews', {
    schema: {
      tags: ['reviews'], operationId: 'listProductReviews', summary: "A product's approved reviews",
      params: ProductReviewParams, querystring: ProductReviewsQuery, response: { 200: Type.Ref(ReviewPage), 400: ProblemRef },
    },
  }, (req) => service.listForProduct(req.params.productId, paged(req.query)))

  app.post('/products/:productId/reviews', {
    onRequest: app.authenticate,
    schema: {
      tags: ['reviews'], operationId: 'createReview', summary: 'Review a product I bought (once)', security: BEARER,
      params: ProductReviewParams, body: Type.Ref(ReviewCreate), response: { 201: Type.Ref(Review), ...errors },
    },
  }, async (req, reply) => reply.code(201).send(await service.create(req.user.sub, req.params.productId, req.body)))

  app.get('/reviews', {
    onRequest: admin,
    schema: {
      tags: ['reviews'], operationId: 'listReviewsForModeration', summary: 'Reviews by moderation status (admin)', security: BEARER,
      querystring: ModerationQuery, response: { 200: Type.Ref(ReviewPage), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef },
    },
  }, (req) => service.listForModeration(paged(req.query)))

  app.patch('/reviews/:reviewId', {
    onRequest: app.authenticate,
    schema: { tags: ['reviews'], operationId: 'updateReview', summary: 'Edit my review', security: BEARER, params: ReviewParams, body: Type.Ref(ReviewUpdate), response: { 200: Type.Ref(Review), ...errors } },
  }, (req) => service.update(req.user.sub, req.params.reviewId, req.body))

  app.delete('/reviews/:reviewId', {
    onRequest: app.authenticate,
    schema: { tags: ['reviews'], operationId: 'deleteReview', summary: 'Delete my review (admins: any)', security: BEARER, params: ReviewParams, response: { 204: Type.Null(), ...errors } },
  }, async (req, reply) => {
    await service.remove({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' }, req.params.reviewId)
    return reply.code(204).send(null)
  })

  app.patch('/reviews/:reviewId/moderation', {
    onRequest: admin,
    schema: { tags: ['reviews'], operationId: 'moderateReview', summary: 'Approve or reject a review (admin)', security: BEARER, params: ReviewParams, body: Type.Ref(ReviewModeration), response: { 200: Type.Ref(Review), ...errors } },
  }, (req) => service.moderate(req.params.reviewId, req.body.status))

  app.post('/reviews/:reviewId/helpful', {
    onRequest: app.authenticate,
    schema: { tags: ['reviews'], operationId: 'voteReviewHelpful', summary: 'Mark a review helpful (once per user)', security: BEARER, params: ReviewParams, response: { 200: Type.Ref(Review), ...errors } },
  }, (req) => service.voteHelpful(req.user.sub, req.params.reviewId))
}
export default reviewsRoutes
