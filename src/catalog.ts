import { sql, type Placeholder } from 'drizzle-orm'
import { categories, productPriceRanges, productVariants, products, variantPrices } from '../db/schema/index.js'
import { arrayParam, type Tx } from '../db/client.js'
import { refreshListLowestPrices } from './prices.js'

// Catalog pieces several domains share (products, categories, coupons, reviews, orders, returns,
// the outbox's side effects): the cache namespaces of catalog reads, the category subtree query,
// and the product aggregates every stock or variant write refreshes.

export const CATALOG_CACHE = 'catalog'
/** A product's own cache namespace: its detail depends on it and on the catalog's. */
export const productCache = (productId: string) => `product:${productId}`

/** The ids of a category and all its descendants, as a subquery. */
export const categoryAndDescendants = (categoryId: string | Placeholder) => sql`(
  with recursive sub(id) as (
    select id from ${categories} where id = ${categoryId}
    union all
    select c.id from ${categories} c join sub on c.parent_id = sub.id
  ) select id from sub)`

/**
 * Locks these products' rows in id order, in a statement of its own, and returns their ids sorted.
 * Every catalog write and checkout locks products in this order, so none deadlocks with another;
 * and a statement after it that reads their variants or prices sees every write to them that
 * committed while it waited (locked by that statement itself, PostgreSQL re-checks only the
 * locked row, and the statement keeps what it read of the others before waiting).
 */
export async function lockProducts(tx: Tx, productIds: Iterable<string>): Promise<string[]> {
  const ids = [...new Set(productIds)].sort()
  if (ids.length) await tx.execute(sql`select id from ${products} where id = any(${arrayParam(ids, 'uuid')}) order by id for update`)
  return ids
}

/**
 * refreshProductAggregates for several products, in id order: two transactions that touch the
 * same products (checkouts of different variants) then lock their rows in the same order and
 * cannot deadlock. True when what listings show of any of them changed.
 */
export async function refreshProductsAggregates(tx: Tx, productIds: Iterable<string>): Promise<boolean> {
  let listsChanged = false
  for (const productId of [...new Set(productIds)].sort()) listsChanged = (await refreshProductAggregates(tx, productId)) || listsChanged
  return listsChanged
}

/**
 * After refreshProductAggregates, which locks the product: recomputes the product's base price
 * range in each currency its active variants are sold in,
 * what listings in that currency filter and sort by (a currency none of them is sold in has no
 * row, and the product is not listed in it: its page is not there either), and its lowest prices under each
 * price list (src/prices.ts refreshListLowestPrices). Call in every variant or price write (stock
 * does not change them, so checkout does not).
 */
export async function refreshPriceRanges(tx: Tx, productId: string) {
  await refreshListLowestPrices(tx, [productId])
  await tx.execute(sql`
    with r as (
      select vp.currency, min(vp.amount_minor) as min_minor, max(vp.amount_minor) as max_minor
      from ${variantPrices} vp join ${productVariants} v on v.id = vp.variant_id
      where v.product_id = ${productId} and v.is_active group by vp.currency
    ), gone as (
      delete from ${productPriceRanges} where product_id = ${productId} and currency not in (select currency from r)
    )
    insert into ${productPriceRanges} (product_id, currency, min_minor, max_minor)
    select ${productId}, currency, min_minor, max_minor from r
    on conflict (product_id, currency) do update set min_minor = excluded.min_minor, max_minor = excluded.max_minor`)
}

/**
 * Recomputes price range and in-stock from the variants; call inside every variant or stock write.
 * True when what listings show of the product (in stock, price range) changed.
 */
export async function refreshProductAggregates(tx: Tx, productId: string): Promise<boolean> {
  // Locked first: locked by the update itself, a write that waited for another kept the variants
  // it read before waiting, and two concurrent variant writes could leave the product in stock,
  // or listed, with none left (test/multi-currency.test.ts, concurrent writes).
  await lockProducts(tx, [productId])
  const result = await tx.execute<{ changed: boolean }>(sql`
    with before as (select in_stock, has_active_variant, min_price_minor, max_price_minor from ${products} where id = ${productId})
    update ${products} p set
      min_price_minor = coalesce(r.active_min, r.any_min, 0),
      max_price_minor = coalesce(r.active_max, r.any_max, 0),
      in_stock = r.in_stock,
      has_active_variant = r.has_active_variant,
      updated_at = now()
    from (
      select min(price_minor) filter (where is_active) as active_min, max(price_minor) filter (where is_active) as active_max,
             min(price_minor) as any_min, max(price_minor) as any_max, coalesce(bool_or(is_active and stock > 0), false) as in_stock,
             coalesce(bool_or(is_active), false) as has_active_variant
      from ${productVariants} where product_id = ${productId}
    ) r
    where p.id = ${productId}
    returning (p.in_stock, p.has_active_variant, p.min_price_minor, p.max_price_minor)
      is distinct from (select (in_stock, has_active_variant, min_price_minor, max_price_minor) from before) as changed`)
  return result.rows[0]?.changed === true
}

/**
 * `outbox` is needed by the service that serves the admin's catalog writes (product.updated
 * webhooks); the read-only copies other domains build leave it out.
 */

/**
 * refreshProductAggregates and refreshPriceRanges (lowest list prices included) for many products in a few statements (catalog
 * imports: hundreds of products per batch). The products are locked in id order first, as
 * refreshProductsAggregates locks them, so a concurrent checkout cannot deadlock with it; a
 * product whose aggregates already match is not written.
 */
export async function refreshManyProducts(tx: Tx, productIds: Iterable<string>): Promise<void> {
  const ids = await lockProducts(tx, productIds)
  if (!ids.length) return
  const list = arrayParam(ids, 'uuid')
  await tx.execute(sql`
    update ${products} p set min_price_minor = r.min_minor, max_price_minor = r.max_minor, in_stock = r.in_stock, has_active_variant = r.has_active_variant, updated_at = now()
    from (
      select product_id,
             coalesce(min(price_minor) filter (where is_active), min(price_minor), 0) as min_minor,
             coalesce(max(price_minor) filter (where is_active), max(price_minor), 0) as max_minor,
             coalesce(bool_or(is_active and stock > 0), false) as in_stock,
             coalesce(bool_or(is_active), false) as has_active_variant
      from ${productVariants} where product_id = any(${list}) group by product_id
    ) r
    where p.id = r.product_id
      and (p.min_price_minor, p.max_price_minor, p.in_stock, p.has_active_variant) is distinct from (r.min_minor, r.max_minor, r.in_stock, r.has_active_variant)`)
  await tx.execute(sql`
    with r as (
      select v.product_id, vp.currency, min(vp.amount_minor) as min_minor, max(vp.amount_minor) as max_minor
      from ${variantPrices} vp join ${productVariants} v on v.id = vp.variant_id
      where v.product_id = any(${list}) and v.is_active group by v.product_id, vp.currency
    ), gone as (
      delete from ${productPriceRanges} pr where pr.product_id = any(${list})
        and not exists (select 1 from r where r.product_id = pr.product_id and r.currency = pr.currency)
    )
    insert into ${productPriceRanges} (product_id, currency, min_minor, max_minor)
    select product_id, currency, min_minor, max_minor from r
    on conflict (product_id, currency) do update set min_minor = excluded.min_minor, max_minor = excluded.max_minor
    where (${productPriceRanges}.min_minor, ${productPriceRanges}.max_minor) is distinct from (excluded.min_minor, excluded.max_minor)`)
  await refreshListLowestPrices(tx, ids)
}
