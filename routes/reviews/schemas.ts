import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'

export const REVIEW_STATUSES = ['pending', 'approved', 'rejected'] as const
export const Review = Type.Object({
  id: Type.String({ format: 'uuid' }),
  productId: Type.String({ format: 'uuid' }),
  userId: Type.String({ format: 'uuid' }),
  authorName: Type.String(),
  rating: Type.Integer({ minimum: 1, maximum: 5 }),
  title: Type.String(),
  body: Type.String(),
  status: StringEnum(REVIEW_STATUSES),
  helpfulCount: Type.Integer({ minimum: 0 }),
  verifiedPurchase: Type.Literal(true),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
}, { $id: 'Review', additionalProperties: false })
export const ReviewPage = pageOf(Type.Ref(Review), 'ReviewPage')

export const ReviewCreate = Type.Object({
  rating: Type.Integer({ minimum: 1, maximum: 5 }),
  title: Type.String({ minLength: 1, maxLength: 120 }),
  body: Type.Optional(Type.String({ maxLength: 5000 })),
}, { $id: 'ReviewCreate', additionalProperties: false })
export const ReviewUpdate = Type.Partial(ReviewCreate, { $id: 'ReviewUpdate', additionalProperties: false, minProperties: 1 })
export const ReviewModeration = Type.Object({ status: StringEnum(REVIEW_STATUSES) }, { $id: 'ReviewModeration', additionalProperties: false })

export const REVIEW_SORTS = ['newest', 'rating_desc', 'rating_asc', 'helpful'] as const
export const ProductReviewsQuery = Type.Object({
  ...PageQuery,
  sort: Type.Optional(StringEnum(REVIEW_SORTS, { default: 'newest' })),
}, { additionalProperties: false })
export const ModerationQuery = Type.Object({ ...PageQuery, status: Type.Optional(StringEnum(REVIEW_STATUSES)) }, { additionalProperties: false })
export const ReviewParams = Type.Object({ reviewId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const ProductReviewParams = Type.Object({ productId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [Review, ReviewPage, ReviewCreate, ReviewUpdate, ReviewModeration]
