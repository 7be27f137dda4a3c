import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { paged } from '../../src/pagination.js'
import { Coupon, CouponCreate, CouponListQuery, CouponPage, CouponParams, CouponUpdate, CouponValidateBody, CouponValidation } from './schemas.js'

const couponsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { coupons: service, cart } = app.services
  const admin = app.requireRole('admin')
  const adminErrors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }

  app.post('/validate', {
    // Trying codes is guessing: limited per client as sign-in is.
    config: { rateLimit: { max: app.config.auth.rateLimitPerIp, timeWindow: 60_000 } },
    onRequest: app.authenticate,
    schema: {
      tags: ['coupons'], operationId: 'validateCoupon', summary: 'Would this code apply to my cart? Explains why not',
      security: BEARER, body: Type.Ref(CouponValidateBody), response: { 200: Type.Ref(CouponValidation), 400: ProblemRef, 401: ProblemRef, 429: ProblemRef },
    },
  }, async (req) => {
    // The cart priced for this shopper in its currency, by the one pricing function.
    const { lines, currency } = await cart.priced({ kind: 'user', userId: req.user.sub })
    return { ...(await service.validate(req.body.code, req.user.sub, lines, currency)), currency }
  })

  app.post('', {
    onRequest: admin,
    schema: { tags: ['coupons'], operationId: 'createCoupon', summary: 'Create a coupon (admin)', security: BEARER, body: Type.Ref(CouponCreate), response: { 201: Type.Ref(Coupon), ...adminErrors } },
  }, async (req, reply) => reply.code(201).send(await service.create(req.body)))

  app.get('', {
    onRequest: admin,
    schema: { tags: ['coupons'], operationId: 'listCoupons', summary: 'List coupons, newest first (admin)', security: BEARER, querystring: CouponListQuery, response: { 200: Type.Ref(CouponPage), ...adminErrors } },
  }, (req) => service.list(paged(req.query)))

  app.get('/:couponId', {
    onRequest: admin,
    schema: { tags: ['coupons'], operationId: 'getCoupon', summary: 'Read a coupon (admin)', security: BEARER, params: CouponParams, response: { 200: Type.Ref(Coupon), ...adminErrors } },
  }, (req) => service.get(req.params.couponId))

  app.patch('/:couponId', {
    onRequest: admin,
    schema: { tags: ['coupons'], operationId: 'updateCoupon', summary: 'Change a coupon (admin)', security: BEARER, params: CouponParams, body: Type.Ref(CouponUpdate), response: { 200: Type.Ref(Coupon), ...adminErrors } },
  }, (req) => service.update(req.params.couponId, req.body))

  app.delete('/:couponId', {
    onRequest: admin,
    schema: { tags: ['coupons'], operationId: 'deleteCoupon', summary: 'Delete a coupon never redeemed (admin)', security: BEARER, params: CouponParams, response: { 204: Type.Null(), ...adminErrors } },
  }, async (req, reply) => {
    await service.remove(req.params.couponId)
    return reply.code(204).send(null)
  })
}
export default couponsRoutes
