import { sql, type SQL } from 'drizzle-orm'
import { check, customType, index, integer, jsonb, numeric, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid, boolean, type AnyPgColumn } from 'drizzle-orm/pg-core'

const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' })

export const categories = pgTable('categories', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  // RESTRICT: a category with children cannot disappear from under them.
  parentId: uuid('parent_id').references((): AnyPgColumn => categories.id, { onDelete: 'restrict' }),
  name: text('name').notNull(),
  slug: text('slug').notNull(),
  description: text('description'),
  position: integer('position').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('categories_slug_key').on(t.slug),
  index('categories_parent_position_idx').on(t.parentId, t.position),
])

export const productStatus = pgEnum('product_status', ['draft', 'active', 'archived'])

export const products = pgTable('products', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  slug: text('slug').notNull(),
  name: text('name').notNull(),
  description: text('description').notNull().default(''),
  status: productStatus('status').notNull().default('draft'),
  categoryId: uuid('category_id').references(() => categories.id, { onDelete: 'restrict' }),
  attributes: jsonb('attributes').$type<Record<string, string>>().notNull().default({}),
  imageIds: uuid('image_ids').array().notNull().default(sql`'{}'::uuid[]`),
  // Kept by the service in the same transaction as every variant or stock write
  // (refreshProductAggregates): the lowest and highest price of the active variants (of all
  // variants when none is active), whether any active variant has stock, and whether it has an
  // active variant at all (without one it has no page for customers, so it is not listed).
  minPriceMinor: integer('min_price_minor').notNull().default(0),
  maxPriceMinor: integer('max_price_minor').notNull().default(0),
  inStock: boolean('in_stock').notNull().default(false),
  hasActiveVariant: boolean('has_active_variant').notNull().default(false),
  // Exact review aggregates, kept in the review's transaction; the average is derived.
  ratingCount: integer('rating_count').notNull().default(0),
  ratingSum: integer('rating_sum').notNull().default(0),
  ratingAvg: numeric('rating_avg', { precision: 3, scale: 2 }).notNull()
    .generatedAlwaysAs((): SQL => sql`case when rating_count > 0 then round(rating_sum::numeric / rating_count, 2) else 0 end`),
  searchVector: tsvector('search_vector').notNull()
    .generatedAlwaysAs((): SQL => sql`setweight(to_tsvector('english', name), 'A') || setweight(to_tsvector('english', description), 'B')`),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('products_slug_key').on(t.slug),
  index('products_search_idx').using('gin', t.searchVector),
  // One index per listing order, over the rows customers can see; each ends in id for keyset paging.
  index('products_active_newest_idx').on(t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`status = 'active'`),
  index('products_active_price_idx').on(t.minPriceMinor, t.id).where(sql`status = 'active'`),
  index('products_active_name_idx').on(t.name, t.id).where(sql`status = 'active'`),
  index('products_active_rating_idx').on(t.ratingAvg.desc().nullsFirst(), t.id.desc().nullsFirst()).where(sql`status = 'active'`),
  index('products_category_idx').on(t.categoryId, t.createdAt.desc().nullsFirst(), t.id.desc().nullsFirst()),
  check('products_prices_check', sql`${t.minPriceMinor} >= 0 and ${t.maxPriceMinor} >= ${t.minPriceMinor}`),
])

export const productVariants = pgTable('product_variants', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  productId: uuid('product_id').notNull().references(() => products.id, { onDelete: 'cascade' }),
  sku: text('sku').notNull(),
  options: jsonb('options').$type<Record<string, string>>().notNull().default({}),
  priceMinor: integer('price_minor').notNull(),
  compareAtPriceMinor: integer('compare_at_price_minor'),
  // What can be sold: the sum over locations of on_hand - reserved (stock_levels). Kept by the
  // inventory module (src/inventory.ts) in the same statement order as the levels, never by hand.
  stock: integer('stock').notNull().default(0),
  // For weight-banded shipping; unknown counts as 0.
  weightGrams: integer('weight_grams'),
  isActive: boolean('is_active').notNull().default(true),
  position: integer('position').notNull().default(0),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('product_variants_sku_key').on(t.sku),
  index('product_variants_product_idx').on(t.productId, t.position),
  // The last line of defence for "stock never goes negative", whatever the code does.
  check('product_variants_stock_check', sql`${t.stock} >= 0`),
  check('product_variants_price_check', sql`${t.priceMinor} >= 0 and (${t.compareAtPriceMinor} is null or ${t.compareAtPriceMinor} >= 0)`),
  check('product_variants_weight_check', sql`${t.weightGrams} is null or ${t.weightGrams} >= 0`),
])

