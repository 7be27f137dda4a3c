import { sql } from 'drizzle-orm'
import { check, index, integer, pgEnum, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'
import { products } from './catalog.js'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })
export const reviewStatus = pgEnum('review_status', ['pending', 'approved', 'rejected'])

export const reviews = pgTable('reviews', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  productId: uuid('product_id').notNull().references(() => products.id, { onDelete: 'cascade' }),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  rating: integer('rating').notNull(),
  title: text('title').notNull(),
  body: text('body').notNull().default(''),
  // Only approved reviews count in the product's rating aggregates.
  status: reviewStatus('status').notNull(),
  helpfulCount: integer('helpful_count').notNull().default(0),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('reviews_product_user_key').on(t.productId, t.userId),
  index('reviews_product_status_created_idx').on(t.productId, t.status, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  index('reviews_status_created_idx').on(t.status, t.createdAt),
  check('reviews_rating_check', sql`${t.rating} between 1 and 5`),
])

export const reviewVotes = pgTable('review_votes', {
  reviewId: uuid('review_id').notNull().references(() => reviews.id, { onDelete: 'cascade' }),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [primaryKey({ columns: [t.reviewId, t.userId] })])
