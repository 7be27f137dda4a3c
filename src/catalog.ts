import { sql } from 'drizzle-orm'
import { categories } from '../db/schema/index.js'

// Catalog pieces several domains share (products, categories, coupons, reviews, the outbox's
// side effects): the cache namespaces of catalog reads and the category subtree query.

export const CATALOG_CACHE = 'catalog'
/** A product's own cache namespace: its detail depends on it and on the catalog's. */
export const productCache = (productId: string) => `product:${productId}`

/** The ids of a category and all its descendants, as a subquery. */
export const categoryAndDescendants = (categoryId: string) => sql`(
  with recursive sub(id) as (
    select id from ${categories} where id = ${categoryId}
    union all
    select c.id from ${categories} c join sub on c.parent_id = sub.id
  ) select id from sub)`
