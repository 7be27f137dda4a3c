import { and, asc, desc, eq, getTableColumns, inArray, sql, type Placeholder, type SQL, type Subquery, type WithSubquery } from 'drizzle-orm'
import { unionAll, type AnyPgColumn } from 'drizzle-orm/pg-core'
import { inventoryMovements, productPriceRanges, productVariants, products, regions, variantPrices } from '../../db/schema/index.js'
import { idsForPlan, isForeignKeyViolation, isUniqueViolation, prepareOnce, prepareRows, type Db, type Tx } from '../../db/client.js'
import { replicasCaughtUp } from '../../db/replicas.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import { PAGE_LIMIT_MAX, decodeCursor, newestFirst, toPage, type CursorPart } from '../../src/pagination.js'
import { fromJson, type Cache, type CacheResult } from '../../src/cache.js'
import type { Emit, Outbox } from '../../src/outbox.js'
import { WEBHOOK } from '../../src/side-effects.js'
import { CATALOG_CACHE, categoryAndDescendants, productCache, refreshPriceRanges, refreshProductAggregates } from '../../src/catalog.js'
import { adjust, initialStock } from '../../src/inventory.js'
import type { ProductSort } from './schemas.js'
import type { ProductImage } from '../uploads/service.js'
import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { applyingListIds, groupsOf, listedLowestPrices, listedPriceRanges, listedRangeOf, loadSchedule, requireCurrency, priceVariants, priceOf, pricedVariantsJson, pricingMoment, type PricingContext, type ScheduledList } from '../../src/prices.js'

// What reads select of a product: everything but the search vector, which only the WHERE of a
// search uses (it is the largest column; reading it was most of a listing's bytes), and whether
// it has an active variant, which only the WHERE of a customer's listing uses.
const { searchVector: _searchVector, hasActiveVariant: _hasActiveVariant, ...readColumns } = getTableColumns(products)
export const productColumns = readColumns
// What a list item shows, and the keys its cursor needs.
const summaryColumns = {
  id: products.id, slug: products.slug, name: products.name, status: products.status, categoryId: products.categoryId,
  minPriceMinor: products.minPriceMinor, maxPriceMinor: products.maxPriceMinor, inStock: products.inStock,
  ratingAvg: products.ratingAvg, ratingCount: products.ratingCount, imageIds: products.imageIds, createdAt: products.createdAt,
}
type ProductRow = Omit<typeof products.$inferSelect, 'searchVector' | 'hasActiveVariant'>
type SummaryRow = Pick<ProductRow, keyof typeof summaryColumns>

/**
 * A listing item as its answer carries it, written by PostgreSQL from these columns: row_to_json
 * writes compact JSON with the keys in the order given here, ProductSummary's, the bytes
 * JSON.stringify writes (test/product-listing.test.ts holds every value to the product page's).
 * A page is sent as the text it is read as: no row mapping and no serialising in Node (#29).
 * `images` is empty: a product's images come from the uploads domain, added in Node when it has some.
 */
/** A listed product's priceRange, as JSON. */
const rangeJson = (min: AnyPgColumn | SQL | SQL.Aliased, max: AnyPgColumn | SQL | SQL.Aliased) =>
  sql`(select row_to_json(r) from (select ${min} as "minMinor", ${max} as "maxMinor", ${sql.placeholder('shownCurrency')}::text as currency) r)`
function summaryJson(c: Record<keyof typeof summaryColumns, AnyPgColumn | SQL | SQL.Aliased>, priceRange = rangeJson(c.minPriceMinor, c.maxPriceMinor)) {
  return sql<string>`(select row_to_json(s)::text from (select ${c.id} as id, ${c.slug} as slug, ${c.name} as name, ${c.status} as status, ${c.categoryId} as "categoryId",
    ${priceRange} as "priceRange",
    ${c.inStock} as "inStock", (select row_to_json(g) from (select ${c.ratingAvg}::float8 as average, ${c.ratingCount} as count) g) as rating,
    ${c.imageIds} as "imageIds", '[]'::json as images, to_char(${c.createdAt} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as "createdAt") s)`
}
/**
 * A listed row's columns, named for Node (the statement's rows are read raw, db/client.ts
 * prepareRows): the item's JSON, what its cursor is made of, and its image ids.
 */
const listedColumns = (c: Record<keyof typeof summaryColumns, AnyPgColumn | SQL | SQL.Aliased>, rank: SQL | SQL.Aliased, priceRange?: SQL) => ({
  item: summaryJson(c, priceRange).as('item'), id: sql`${c.id}`.as('id'), createdAt: sql`${c.createdAt}`.as('createdAt'), minPriceMinor: sql`${c.minPriceMinor}`.as('minPriceMinor'),
  ratingAvg: sql`${c.ratingAvg}`.as('ratingAvg'), name: sql`${c.name}`.as('name'), imageIds: sql`${c.imageIds}`.as('imageIds'), rank: sql`${rank}`.as('rank'),
})
/** A listed row as the driver parses it: the timestamp as text. */
type ListedRow = Pick<SummaryRow, 'id' | 'minPriceMinor' | 'ratingAvg' | 'name' | 'imageIds'> & { item: string; createdAt: string; rank: number }
type VariantRow = typeof productVariants.$inferSelect
type Status = ProductRow['status']

export interface VariantInput {
  sku: string; options?: Record<string, string>; priceMinor: number; compareAtPriceMinor?: number | null; stock?: number; isActive?: boolean; weightGrams?: number | null
}
export interface ProductInput {
  name: string; slug: string; description?: string; status?: Status; categoryId?: string | null
  attributes?: Record<string, string>; imageIds?: string[]; variants: VariantInput[]
}
export interface ListQuery {
  limit: number; cursor?: string; q?: string; category?: string; minPrice?: number; maxPrice?: number
  inStock?: boolean; sort?: ProductSort; status?: Status
  /** The currency to list, filter and sort prices in (default: the store currency). */
  currency?: string
}

export interface CartVariant {
  variantId: string; productId: string; sku: string; options: Record<string, string>
  /** The shopper's price (src/prices.ts) in the cart's currency; null: not sold in that currency. */
  priceMinor: number | null; stock: number
  variantActive: boolean; productStatus: Status; name: string; slug: string; imageIds: string[]; weightGrams: number | null
  /** Active variant of an active product: can be put in a cart and bought. */
  purchasable: boolean
}

/**
 * Who is looking: customers see active products and variants only, priced for them (userId: a
 * signed-in shopper, whose customer groups may have prices); admins see base prices.
 */
export interface Viewer { isAdmin: boolean; userId?: string | null }


// Each sort: its ORDER BY, the keyset comparison for "after this row", and the row's key.
// Directions match the partial indexes in db/schema/catalog.ts.
interface SortSpec { order: SQL[]; after: (key: [Placeholder, Placeholder]) => SQL; kinds: readonly CursorPart[] }
function sortSpec(sort: ProductSort, rank: SQL, price: AnyPgColumn | SQL): SortSpec {
  switch (sort) {
    case 'relevance': return {
      order: [sql`${rank} desc`, desc(products.id)], kinds: ['number', 'uuid'],
      after: ([r, id]) => sql`(${rank}, ${products.id}) < (${r}::real, ${id}::uuid)`,
    }
    case 'newest': return {
      order: [desc(products.createdAt), desc(products.id)], kinds: ['date', 'uuid'],
      after: ([c, id]) => sql`(${products.createdAt}, ${products.id}) < (${c}::timestamptz, ${id}::uuid)`,
    }
    case 'price_asc': return {
      order: [asc(price), asc(products.id)], kinds: ['integer', 'uuid'],
      after: ([p, id]) => sql`(${price}, ${products.id}) > (${p}::int, ${id}::uuid)`,
    }
    case 'price_desc': return {
      order: [desc(price), desc(products.id)], kinds: ['integer', 'uuid'],
      after: ([p, id]) => sql`(${price}, ${products.id}) < (${p}::int, ${id}::uuid)`,
    }
    case 'rating': return {
      order: [desc(products.ratingAvg), desc(products.id)], kinds: ['decimal', 'uuid'],
      after: ([r, id]) => sql`(${products.ratingAvg}, ${products.id}) < (${r}::numeric, ${id}::uuid)`,
    }
    case 'name': return {
      order: [asc(products.name), asc(products.id)], kinds: ['string', 'uuid'],
      after: ([n, id]) => sql`(${products.name}, ${products.id}) > (${n}::text, ${id}::uuid)`,
    }
  }
}

function keyOf(sort: ProductSort, row: { id: string; createdAt: Date; minPriceMinor: number; ratingAvg: string; name: string; rank: number }): (string | number)[] {
  switch (sort) {
    case 'relevance': return [row.rank, row.id]
    case 'newest': return [row.createdAt.toISOString(), row.id]
    case 'price_asc': case 'price_desc': return [row.minPriceMinor, row.id]
    case 'rating': return [row.ratingAvg, row.id]
    case 'name': return [row.name, row.id]
  }
}

/**
 * Whether the price decides a listing's page (a price sort or bound). With price lists applying,
 * such a query prices as the shopper pays, so it needs the lists before it runs; otherwise the
 * page is found as without lists and its prices are the pricing function's (cheaper: the lists'
 * products are not all priced).
 */
export const decidedByPrice = (query: Pick<ListQuery, 'sort' | 'minPrice' | 'maxPrice'>) =>
  query.sort === 'price_asc' || query.sort === 'price_desc' || query.minPrice !== undefined || query.maxPrice !== undefined

/**
 * The listing query, unexecuted, so tests can EXPLAIN exactly what the API runs. Filters are
 * bound parameters; the sort is an enum mapped to fixed SQL, never client text. Every value is a
 * placeholder, filled from `params`, so one listing shape (its sort and which filters it has) is
 * one prepared statement, named by `shape`: PostgreSQL parses it once per connection, and the
 * query builder runs once per shape rather than once per request.
 *
 * `lists`: the price lists that apply to the shopper now (src/prices.ts pricingMoment). With
 * any, prices (shown, filtered and sorted by) are the shopper's: the products those lists price
 * are listed at listedPriceRanges, the rest at their base range, as two ordered and limited
 * halves merged; the base half still reads its index in order, skipping the (few) listed products.
 * `salesOnly` (pricingMoment's): every one of them that prices quantity 1 is a sale, so the
 * listed products' lowest prices are read from price_list_lowest_prices rather than computed.
 */
export function buildProductListQuery(db: Db, query: ListQuery, viewer: Viewer, storeCurrency = query.currency, lists: string[] | 'find' = [], salesOnly = false) {
  const status: Status = viewer.isAdmin && query.status ? query.status : 'active'
  if (query.sort === 'relevance' && !query.q) throw new BadRequest('sort=relevance needs a search query (q)', 'invalid-sort')
  if (query.minPrice !== undefined && query.maxPrice !== undefined && query.minPrice > query.maxPrice) throw new BadRequest('minPrice is above maxPrice')
  const sort: ProductSort = query.sort ?? (query.q ? 'relevance' : 'newest')
  const has = { q: Boolean(query.q), category: Boolean(query.category), minPrice: query.minPrice !== undefined, maxPrice: query.maxPrice !== undefined, inStock: Boolean(query.inStock), cursor: Boolean(query.cursor) }
  const tsquery = sql`websearch_to_tsquery('english', ${sql.placeholder('q')})`
  const rank = has.q ? sql`ts_rank(${products.searchVector}, ${tsquery})` : sql`0::real`
  // The store currency's range is on the product row (its indexes serve the bench's listings);
  // another currency's comes from product_price_ranges, and a product without it is not listed.
  const foreign = query.currency !== undefined && query.currency !== storeCurrency
  // 'find': the lists are not known (no cache keeps the price schedule); the statement finds those
  // that apply to the shopper (placeholders `at`, `userId`) itself.
  const findLists = lists === 'find'
  const byPrice = decidedByPrice(query)
  if (findLists && byPrice) throw new Error('a listing decided by price needs its lists before it runs')
  const listsKnown = !findLists && lists.length > 0 && query.currency !== undefined
  // Decided by price: the lists decide which products are on the page. Otherwise the page is found
  // at base prices and its items' ranges are the lists' (`ranged`).
  const priced = listsKnown && byPrice
  const ranged = findLists || (listsKnown && !byPrice)
  const minPrice = foreign ? productPriceRanges.minMinor : products.minPriceMinor
  const maxPrice = foreign ? productPriceRanges.maxMinor : products.maxPriceMinor
  const spec = sortSpec(sort, rank, minPrice)
  const params: Record<string, unknown> = { status, q: query.q, category: query.category, minPrice: query.minPrice, maxPrice: query.maxPrice, currency: query.currency, limit: query.limit + 1 }
  if (query.cursor) [params.after0, params.after1] = decodeCursor(query.cursor, spec.kinds)
  if (listsKnown) params.lists = lists
  params.shownCurrency = query.currency ?? storeCurrency
  const shape = `product_list_${sort}_${Object.values(has).map(Number).join('')}${foreign ? '_fx' : ''}${priced ? (salesOnly ? '_ps' : '_pl') : ''}${listsKnown && !byPrice ? '_pr' : ''}${findLists ? '_al' : ''}${status === 'active' ? '' : '_status'}`
  /**
   * The WHERE of a listing whose price (filtered, and the keyset's for the price sorts) is `price`;
   * null for both: the product's own conditions only (the caller bounds the price and pages).
   */
  const where = (price: AnyPgColumn | SQL | null, after: SortSpec['after'] | null) => {
    // 'active' (every customer's listing) is written in the statement: PostgreSQL then sees that
    // the partial indexes on active products serve it and keeps one generic plan for it; with a
    // parameter it planned every run again (0.15 ms of planning against 0.13 ms of execution).
    const filters: SQL[] = [status === 'active' ? sql`${products.status} = 'active'` : eq(products.status, sql.placeholder('status'))]
    // A customer sees a product only where its page is: it has an active variant (and, in another
    // currency, one sold in it: product_price_ranges holds only those).
    if (!viewer.isAdmin) filters.push(sql`${products.hasActiveVariant}`)
    if (has.q) filters.push(sql`${products.searchVector} @@ ${tsquery}`)
    if (has.category) filters.push(sql`${products.categoryId} in ${categoryAndDescendants(sql.placeholder('category'))}`)
    if (has.minPrice && price) filters.push(sql`${price} >= ${sql.placeholder('minPrice')}`)
    if (has.maxPrice && price) filters.push(sql`${price} <= ${sql.placeholder('maxPrice')}`)
    if (has.inStock) filters.push(eq(products.inStock, true))
    if (has.cursor && after) filters.push(after([sql.placeholder('after0'), sql.placeholder('after1')]))
    return filters
  }
  return {
    sort, shape, params,
    get select() {
      const columns = (min: AnyPgColumn | SQL, max: AnyPgColumn | SQL) => ({
        ...summaryColumns, minPriceMinor: sql<number>`${min}`.as('price_min'), maxPriceMinor: sql<number>`${max}`.as('price_max'), rank: sql<number>`${rank}`.as('rank'),
      })
      // A listing whose plan depends on no value (no search, no price bounds) limits its rows by a
      // constant, the most a page can ask for: with the page's limit a parameter, PostgreSQL costs
      // a generic plan for a tenth of the rows and planned every execution anew (0.15 ms of a
      // newest page's 0.49 ms). The page's own limit is the outer query's, and rows are pulled
      // from here only as it asks for them. A search's or a price range's best plan depends on
      // how many rows match: those keep the page's limit, and PostgreSQL plans them for the values.
      // (Written into the statement: drizzle would send a number as a parameter.)
      const rowsLimit = has.q || has.minPrice || has.maxPrice ? sql.placeholder('limit') : sql.raw(String(PAGE_LIMIT_MAX + 1)) as unknown as Placeholder
      // The products listed at their base range: all of them but those an applying list prices.
      const baseRows = db.select(columns(minPrice, maxPrice)).from(products)
      const baseHalf = (except?: SQL) => (foreign
        ? baseRows.innerJoin(productPriceRanges, and(eq(productPriceRanges.productId, products.id), eq(productPriceRanges.currency, sql.placeholder('currency'))))
        : baseRows)
        .where(and(...where(minPrice, spec.after), except)).orderBy(...spec.order).limit(rowsLimit)
      // (The cast keeps the found lists one array: `= any((select …))` would compare with each row.)
      if (!priced) return pageOf(baseHalf().as('u'), ranged ? (findLists ? sql`${applyingListIds}::uuid[]` : sql`${sql.placeholder('lists')}::uuid[]`) : undefined)
      const inCurrency = sql.placeholder('currency')
      const listIds = sql`${sql.placeholder('lists')}::uuid[]`
      // Only sales apply: each product's lowest is read from price_list_lowest_prices, and the
      // highest is priced for the page's rows only (pageOf). Otherwise every product the lists
      // touch is priced to find the page.
      const listed = db.$with('listed', {
        productId: sql<string>`product_id`.as('product_id'), minMinor: sql<number>`listed_min_minor`.as('listed_min_minor'), maxMinor: sql<number>`listed_max_minor`.as('listed_max_minor'),
      }).as(salesOnly ? listedLowestPrices(inCurrency, listIds) : listedPriceRanges(inCurrency, listIds))
      const listedMax = salesOnly ? sql`null::int` : sql`${listed.maxMinor}`
      const priceSorted = sort === 'price_asc' || sort === 'price_desc'
      const listedHalf = priceSorted ? listedInPriceOrder() : (() => {
        const listedPrice = sql`${listed.minMinor}`
        const listedSpec = sortSpec(sort, rank, listedPrice)
        return db.select(columns(listedPrice, listedMax)).from(listed).innerJoin(products, eq(products.id, listed.productId))
          .where(and(...where(listedPrice, listedSpec.after))).orderBy(...listedSpec.order).limit(rowsLimit)
      })()
      /**
       * Sorted by price, the listed products are taken in their price order and each one's product
       * row read by its key as the page pulls them (a lateral lookup, limit 1, so PostgreSQL cannot
       * turn it into a join of every listed product: it hashed the whole products table for them).
       */
      function listedInPriceOrder() {
        const descending = sort === 'price_desc'
        const inOrder = [descending ? desc(listed.minMinor) : asc(listed.minMinor), descending ? desc(listed.productId) : asc(listed.productId)]
        const afterKey = has.cursor ? sql`(${listed.minMinor}, ${listed.productId}) ${sql.raw(descending ? '<' : '>')} (${sql.placeholder('after0')}::int, ${sql.placeholder('after1')}::uuid)` : undefined
        const bounds = [has.minPrice ? sql`${listed.minMinor} >= ${sql.placeholder('minPrice')}` : undefined, has.maxPrice ? sql`${listed.minMinor} <= ${sql.placeholder('maxPrice')}` : undefined]
        const l = db.select({ productId: listed.productId, minMinor: listed.minMinor, maxMinor: sql<number | null>`${listedMax}`.as('l_max') }).from(listed)
          .where(and(afterKey, ...bounds)).orderBy(...inOrder).as('l')
        const { minPriceMinor: _min, maxPriceMinor: _max, ...productSide } = summaryColumns
        const p = db.select({ ...productSide, rank: sql<number>`${rank}`.as('rank') }).from(products)
          .where(and(sql`${products.id} = l.product_id`, ...where(null, null))).limit(sql.raw('1') as unknown as Placeholder).as('p')
        return db.select({
          id: p.id, slug: p.slug, name: p.name, status: p.status, categoryId: p.categoryId, minPriceMinor: sql<number>`${l.minMinor}`.as('price_min'), maxPriceMinor: sql<number>`${l.maxMinor}`.as('price_max'),
          inStock: p.inStock, ratingAvg: p.ratingAvg, ratingCount: p.ratingCount, imageIds: p.imageIds, createdAt: p.createdAt, rank: p.rank,
        }).from(l).innerJoinLateral(p, sql`true`).orderBy(...(descending ? [sql`l.listed_min_minor desc`, sql`l.product_id desc`] : [sql`l.listed_min_minor`, sql`l.product_id`])).limit(rowsLimit)
      }
      // In another currency the ranges' index finds the base half's rows: they are skipped there,
      // before their products are read (skipped on products, PostgreSQL's generic plan scanned
      // them all and joined them to each range by a filter: 1.25 of 1.84 ms at 1,000 products).
      const u = unionAll(baseHalf(sql`${foreign ? productPriceRanges.productId : products.id} not in (select product_id from ${listed})`), listedHalf).as('u')
      // A listed row's highest price, null from the listed half when only sales apply: priced here,
      // for the page's rows (coalesce reads its second argument only when the first is null).
      const maxOf = salesOnly ? sql`coalesce(${u.maxPriceMinor}, (select r.listed_max_minor from (${listedRangeOf(inCurrency, listIds, sql`${u.id}`)}) r))` : undefined
      return pageOf(u, undefined, listed, maxOf)
    },
  }

  /**
   * The page read from `u` (the listed rows, in the sort's order): the items' JSON, `limit` of
   * them. `rangesOf`: the lists (uuid[]) whose prices the items show, each item's range priced for
   * the page's rows only, in the statement (none applying: the pricing is not run).
   */
  function pageOf(u: ListedRows, rangesOf?: SQL, listed?: WithSubquery, maxOf?: SQL) {
    const product = {
      id: u.id, slug: u.slug, name: u.name, status: u.status, categoryId: u.categoryId, minPriceMinor: u.minPriceMinor, maxPriceMinor: maxOf ?? u.maxPriceMinor,
      inStock: u.inStock, ratingAvg: u.ratingAvg, ratingCount: u.ratingCount, imageIds: u.imageIds, createdAt: u.createdAt,
    }
    // (A product with no active variant sold in the currency keeps its stored range.) The lists are
    // looked at once per statement: with none applying, a row costs what it costs without them.
    const stored = rangeJson(u.minPriceMinor, product.maxPriceMinor)
    const listedRange = rangesOf && sql`case when cardinality(${rangesOf}) > 0 then coalesce((select ${rangeJson(sql`x.listed_min_minor`, sql`x.listed_max_minor`)}
      from (${listedRangeOf(sql.placeholder('currency'), rangesOf, sql`${u.id}`)}) x where x.listed_min_minor is not null), ${stored}) else ${stored} end`
    return (listed ? db.with(listed) : db).select(listedColumns(product, u.rank, listedRange)).from(u).orderBy(...mergedOrder(sort, u)).limit(sql.placeholder('limit'))
  }
}

/** A listing's rows before the page is written from them: the summary's columns and the sort's rank, as subquery `u`. */
type ListedRows = Subquery<'u', Record<string, unknown>> & Record<Exclude<keyof typeof summaryColumns, 'minPriceMinor' | 'maxPriceMinor'>, AnyPgColumn>
  & { minPriceMinor: SQL.Aliased<number>; maxPriceMinor: SQL.Aliased<number>; rank: SQL.Aliased<number> }

/** The ORDER BY of a page read from its listed rows: the sort's, on their output columns. */
function mergedOrder(sort: ProductSort, u: ListedRows): SQL[] {
  switch (sort) {
    case 'relevance': return [sql`${u.rank} desc`, desc(u.id)]
    case 'newest': return [desc(u.createdAt), desc(u.id)]
    case 'price_asc': return [sql`${u.minPriceMinor} asc`, asc(u.id)]
    case 'price_desc': return [sql`${u.minPriceMinor} desc`, desc(u.id)]
    case 'rating': return [desc(u.ratingAvg), desc(u.id)]
    case 'name': return [asc(u.name), asc(u.id)]
  }
}

/** What an admin's product view reads, on the primary. */
function prepareReads(db: Db) {
  return {
    findById: db.select(productColumns).from(products).where(eq(products.id, sql.placeholder('id'))).limit(1).prepare('product_by_id'),
    variantsOf: db.select().from(productVariants).where(eq(productVariants.productId, sql.placeholder('productId')))
      .orderBy(asc(productVariants.position), asc(productVariants.createdAt)).prepare('variants_of_product'),
  }
}

/**
 * `dbRead` (app.dbRead, replicas when configured) serves the customers' catalog reads, which
 * tolerate replication lag; admin views, the product returned after a write and what carts,
 * coupons and checkout read stay on `db`, the primary.
 */
/** The product images of upload ids as products show them (the uploads service's productImages). */
export type ImagesOf = (ids: string[], on: Db) => Promise<Map<string, ProductImage>>
const NO_IMAGES: ImagesOf = async () => new Map()

export function createProductService({ db, dbRead = db, cache, currency, outbox, images = NO_IMAGES }: { db: Db; dbRead?: Db; cache: Cache; currency: string; outbox: Pick<Outbox, 'transaction'>; images?: ImagesOf }) {
  const fresh = prepareReads(db)
  // By slug: an admin's view on the primary, a customer's slug lookup on dbRead.
  const bySlug = prepareOnce((on: Db) => on.select(productColumns).from(products).where(eq(products.slug, sql.placeholder('slug'))).limit(1).prepare('product_by_slug'))
  // A cart's variants, prepared (a cart read's statements were built on every read, #29).
  const cartVariants = db.select({
    variantId: productVariants.id, productId: products.id, sku: productVariants.sku, options: productVariants.options,
    stock: productVariants.stock, variantActive: productVariants.isActive, weightGrams: productVariants.weightGrams,
    productStatus: products.status, name: products.name, slug: products.slug, imageIds: products.imageIds,
  }).from(productVariants).innerJoin(products, eq(products.id, productVariants.productId))
    .where(sql`${productVariants.id} = any(${sql.placeholder('ids')}::uuid[])`).prepare('cart_variants')
  const { findById } = fresh
  // A customer's product page (on dbRead: it may lag): the product and its priced variants, one statement.
  const pricedProduct = prepareOnce((on: Db) => on.select({ ...productColumns, variants: pricedVariantsJson(sql`${products}.id`) })
    .from(products).where(eq(products.id, sql.placeholder('id'))).limit(1).prepare('product_page'))

  // What admins see and write: base prices in the store currency (product_variants.price_minor
  // mirrors that currency's row of variant_prices); other currencies through the price operations.
  const toVariant = (v: Pick<VariantRow, 'id' | 'sku' | 'options' | 'priceMinor' | 'compareAtPriceMinor' | 'stock' | 'isActive' | 'weightGrams'>) => ({
    id: v.id, sku: v.sku, options: v.options, priceMinor: v.priceMinor, compareAtPriceMinor: v.compareAtPriceMinor,
    currency, stock: v.stock, isActive: v.isActive, weightGrams: v.weightGrams,
  })

  /** The images of these rows (one query for all), for toSummary. */
  const imagesOf = (rows: Pick<SummaryRow, 'imageIds'>[], on: Db) => images([...new Set(rows.flatMap((r) => r.imageIds))], on)

  function toSummary(row: SummaryRow, shown: Map<string, ProductImage>, inCurrency = currency) {
    return {
      id: row.id, slug: row.slug, name: row.name, status: row.status, categoryId: row.categoryId,
      priceRange: { minMinor: row.minPriceMinor, maxMinor: row.maxPriceMinor, currency: inCurrency },
      inStock: row.inStock, rating: { average: Number(row.ratingAvg), count: row.ratingCount },
      imageIds: row.imageIds, images: row.imageIds.flatMap((id) => shown.get(id) ?? []), createdAt: row.createdAt.toISOString(),
    }
  }

  type Summary = ReturnType<typeof toSummary>
  type SummaryPage = { items: Summary[]; nextCursor: string | null }

  // Keys in the schema's order: a cache hit sends the stored text, which must be the bytes a miss serialises.
  const detailOf = (row: ProductRow, summary: ReturnType<typeof toSummary>, range: ReturnType<typeof toSummary>['priceRange'], shown: ReturnType<typeof toVariant>[]) => ({
    ...summary, priceRange: range, description: row.description, attributes: row.attributes, variants: shown, updatedAt: row.updatedAt.toISOString(),
  })

  /** A product as an admin sees it, from the primary: every variant, base prices in the store currency. */
  async function toDetail(row: ProductRow) {
    const variants = await fresh.variantsOf.execute({ productId: row.id })
    const summary = toSummary(row, await imagesOf([row], db))
    return detailOf(row, summary, summary.priceRange, variants.map(toVariant))
  }

  /**
   * A customer's product page, read in one statement (the product row with its priced variants,
   * src/prices.ts pricedVariantsJson): active variants at the price the pricing function gives
   * ctx's shopper in ctx.currency; those without a price there are not shown.
   */
  async function pricedDetail(id: string, viewer: Viewer, ctx: PricingContext) {
    const [found] = await pricedProduct(dbRead).execute({ id, currency: ctx.currency, at: ctx.at ?? new Date(), userId: ctx.userId })
    const row = visibleOr404(found, viewer, id) as NonNullable<typeof found>
    const summary = toSummary(row, await imagesOf([row], dbRead))
    const priced = row.variants.map((v) => {
      const p = priceOf(v, 1)
      // A list price shows the base price struck through; the stored "was" price is the store currency's.
      const compareAt = p.unitPriceMinor < p.baseMinor ? p.baseMinor : ctx.currency === currency ? v.compareAtPriceMinor : null
      return { ...toVariant(v), priceMinor: p.unitPriceMinor, compareAtPriceMinor: compareAt, currency: ctx.currency }
    })
    if (!priced.length) throw new NotFound('product', `${row.id} in ${ctx.currency}`)
    const amounts = priced.map((v) => v.priceMinor)
    return detailOf(row, summary, { minMinor: Math.min(...amounts), maxMinor: Math.max(...amounts), currency: ctx.currency }, priced)
  }

  /** A currency, or the currency of a region, as a catalog read asks for it; the store currency by default. */
  async function currencyOf(ask: { currency?: string; region?: string }) {
    if (ask.currency && ask.region) throw new BadRequest('Send currency or region, not both', 'currency-ambiguous')
    if (ask.region) {
      const { value } = await cache.wrap(CATALOG_CACHE, `region-currency:${ask.region}`, async () =>
        (await dbRead.select({ currency: regions.currency }).from(regions).where(eq(regions.id, ask.region!)))[0]?.currency ?? null)
      if (!value) throw new NotFound('region', ask.region)
      return value
    }
    const asked = ask.currency?.toUpperCase()
    if (asked) requireCurrency(asked)
    return asked ?? currency
  }

  // What a shopper's pricing moment costs on a cached read, once per schedule rather than per read:
  // the schedule parsed from its cached text (kept while that text is the same), and per set of
  // groups the lists in force with their hashed key part, until the next start or end. Parsing,
  // filtering and hashing on every read were 5-10% of a cached priced listing's CPU (profiled
  // under the bench, #26).
  type Moment = { listsKey: string; lists: string[]; salesOnly: boolean; computedAt: number; nextChangeAt: number }
  let known: { json: string; schedule: ScheduledList[]; moments: LRUCache<string, Moment> } | undefined
  function computeMoment(schedule: ScheduledList[], groups: string[], now: number): Moment {
    const m = pricingMoment(schedule, groups, now)
    const listsKey = m.key === '-' ? '-' : createHash('sha256').update(m.key).digest('base64url').slice(0, 16)
    return { listsKey, lists: m.lists, salesOnly: m.salesOnly, computedAt: now, nextChangeAt: m.msToNextChange === null ? Infinity : now + m.msToNextChange }
  }
  function momentOf(cached: CacheResult<ScheduledList[]>, groups: string[], now: number) {
    // Loaded, not from the cache (a miss, CACHE=off): no text to know it by again.
    if (cached.json === undefined) return computeMoment(cached.value, groups, now)
    if (known?.json !== cached.json) known = { json: cached.json, schedule: cached.value, moments: new LRUCache({ max: 1000 }) }
    const groupsKey = groups.join(',')
    let moment = known.moments.get(groupsKey)
    // A clock set back (now before computedAt) computes it again too.
    if (!moment || now >= moment.nextChangeAt || now < moment.computedAt) known.moments.set(groupsKey, moment = computeMoment(known.schedule, groups, now))
    return moment
  }

  /**
   * The pricing context of a customer's catalog read, and what its cache entry depends on: the
   * currency and the price lists that apply to this shopper now (so a sale that starts or ends
   * moves the key at that moment), with a lifetime that never reaches past the next start or end.
   */
  async function pricingFor(viewer: Viewer, inCurrency: string) {
    const now = Date.now()
    const groups = viewer.userId ? await groupsOf(dbRead, viewer.userId) : []
    const schedule = await cache.wrap(CATALOG_CACHE, 'price-schedule', () => loadSchedule(dbRead))
    const moment = momentOf(schedule, groups, now)
    const ttl = moment.nextChangeAt === Infinity ? cache.ttlSeconds : Math.max(1, Math.min(cache.ttlSeconds, Math.ceil((moment.nextChangeAt - now) / 1000)))
    return { ctx: { currency: inCurrency, userId: viewer.userId ?? null, at: new Date(now) }, key: `${inCurrency}:${moment.listsKey}`, ttl, lists: moment.lists, salesOnly: moment.salesOnly }
  }

  /**
   * The range of each product's active variants' prices for ctx's shopper (the pricing function:
   * price lists, groups); a product with no active variant priced in ctx.currency is absent.
   */
  async function shopperRanges(productIds: string[], ctx: PricingContext, on: Db = dbRead) {
    const ranges = new Map<string, { minMinor: number; maxMinor: number; currency: string }>()
    if (!productIds.length) return ranges
    const variants = await on.select({ id: productVariants.id, productId: productVariants.productId }).from(productVariants)
      .where(and(inArray(productVariants.productId, productIds), eq(productVariants.isActive, true)))
    const prices = await priceVariants(on, ctx, variants.map((v) => ({ variantId: v.id, quantity: 1 })))
    for (const v of variants) {
      const p = prices.get(v.id)
      if (!p) continue
      const r = ranges.get(v.productId)
      ranges.set(v.productId, r ? { ...r, minMinor: Math.min(r.minMinor, p.unitPriceMinor), maxMinor: Math.max(r.maxMinor, p.unitPriceMinor) } : { minMinor: p.unitPriceMinor, maxMinor: p.unitPriceMinor, currency: ctx.currency })
    }
    return ranges
  }

  function visibleOr404(row: ProductRow | undefined, viewer: Viewer, ref: string): ProductRow {
    // A draft or archived product does not exist for customers.
    if (!row || (!viewer.isAdmin && row.status !== 'active')) throw new NotFound('product', ref)
    return row
  }

  async function insertVariants(tx: Tx, productId: string, variants: VariantInput[], actorId: string | null, firstPosition = 0) {
    const rows = await tx.insert(productVariants).values(variants.map((v, i) => ({
      productId, sku: v.sku, options: v.options ?? {}, priceMinor: v.priceMinor, compareAtPriceMinor: v.compareAtPriceMinor ?? null,
      isActive: v.isActive ?? true, weightGrams: v.weightGrams ?? null, position: firstPosition + i,
    }))).returning()
    await tx.insert(variantPrices).values(rows.map((r) => ({ variantId: r.id, currency, amountMinor: r.priceMinor })))
    // The stock itself is the inventory module's to write: a level at the default location.
    await initialStock(tx, rows.map((r, i) => ({ id: r.id, stock: variants[i]!.stock ?? 0 })), actorId)
    return rows.map((r, i) => ({ ...r, stock: variants[i]!.stock ?? 0 }))
  }

  function translateWriteError(err: unknown): never {
    if (isUniqueViolation(err, 'products_slug_key')) throw new Conflict('Another product uses that slug', 'slug-taken')
    if (isUniqueViolation(err, 'product_variants_sku_key')) throw new Conflict('A variant with that SKU exists', 'sku-taken')
    if (isForeignKeyViolation(err)) throw new NotFound('category')
    throw err
  }

  async function requireVariant(productId: string, variantId: string, on: Db | Tx = db) {
    const [variant] = await on.select({ id: productVariants.id }).from(productVariants).where(and(eq(productVariants.id, variantId), eq(productVariants.productId, productId)))
    if (!variant) throw new NotFound('variant', variantId)
  }

  /** Runs a catalog write in a transaction and, once committed, makes cached reads stale, then runs its events. */
  async function write<T>(work: (tx: Tx, emit: Emit) => Promise<T>): Promise<T> {
    try {
      return await outbox.transaction(work, {
        afterCommit: async () => {
          // Cache entries of the new version must not be filled from a replica that lacks the write.
          await replicasCaughtUp(dbRead)
          await cache.invalidate(CATALOG_CACHE)
        },
      })
    } catch (err) {
      translateWriteError(err)
    }
  }

  /** A catalog write that changed an existing product: its product.updated event, in the same transaction. */
  async function productUpdated(tx: Tx, emit: Emit, productId: string, change: 'details' | 'variant-added' | 'variant-updated' | 'variant-removed' | 'stock-adjusted', variantId?: string) {
    const [p] = await tx.select().from(products).where(eq(products.id, productId))
    if (!p) return
    await emit([WEBHOOK('product.updated', {
      change, ...(variantId ? { variantId } : {}),
      product: { id: p.id, slug: p.slug, name: p.name, status: p.status, categoryId: p.categoryId, minPriceMinor: p.minPriceMinor, maxPriceMinor: p.maxPriceMinor, currency, inStock: p.inStock, updatedAt: p.updatedAt.toISOString() },
    })])
  }

  async function getById(id: string, viewer: Viewer, ask: { currency?: string; region?: string } = {}) {
    if (viewer.isAdmin) return { value: await toDetail(visibleOr404((await findById.execute({ id }))[0], viewer, id)), hit: false }
    const inCurrency = await currencyOf(ask)
    // The price schedule decides only a cache entry's key and lifetime (the statement finds the
    // lists that apply itself): without a cache it is not read.
    if (!cache.enabled) return { value: await pricedDetail(id, viewer, { currency: inCurrency, userId: viewer.userId ?? null, at: new Date() }), hit: false }
    const pricing = await pricingFor(viewer, inCurrency)
    // A sale changes this product's stock: it bumps the product's namespace, not the catalog's.
    return cache.wrap([CATALOG_CACHE, productCache(id)], `detail:${pricing.key}`, () => pricedDetail(id, viewer, pricing.ctx), pricing.ttl)
  }

  // One prepared statement per listing shape and pool (at most 6 sorts x 64 filter sets).
  const listStatements = new Map<Db, Map<string, { execute(params: Record<string, unknown>): Promise<ListedRow[]> }>>()
  /**
   * A listing page as the JSON text of its answer (items written by PostgreSQL, summaryJson).
   * `ctx.lists` undefined: not known (no cache); a page not decided by price finds them with its rows.
   */
  async function list(query: ListQuery, viewer: Viewer, ctx?: PricingContext & { lists?: string[]; salesOnly?: boolean }): Promise<string> {
    const on = viewer.isAdmin ? db : dbRead
    const known = ctx ? ctx.lists ?? 'find' : []
    const listing = buildProductListQuery(on, { ...query, currency: ctx?.currency }, viewer, currency, known, ctx?.salesOnly)
    const statements = listStatements.get(on) ?? listStatements.set(on, new Map()).get(on)!
    let statement = statements.get(listing.shape)
    if (!statement) statements.set(listing.shape, statement = prepareRows<ListedRow>(on, listing.shape, listing.select))
    const { sort } = listing
    const params = known === 'find' ? { ...listing.params, at: ctx!.at ?? new Date(), userId: ctx!.userId } : listing.params
    const rows = await statement.execute(params)
    const page = toPage(rows, query.limit, (r) => keyOf(sort, { ...r, createdAt: new Date(r.createdAt) }))
    const shown = await imagesOf(page.items, on)
    // An item Node adds images to is parsed and written again: the same keys in the same order,
    // so the same bytes but for what changed.
    const items = page.items.map(({ imageIds, item }) => {
      if (!imageIds.length) return item
      const summary = JSON.parse(item) as Summary
      return JSON.stringify({ ...summary, images: imageIds.flatMap((image) => shown.get(image) ?? []) })
    })
    return `{"items":[${items.join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)}}`
  }

  return {
    /** Active products by id, as list items, for other domains (wishlist). Missing or hidden ones are absent. */
    async summariesByIds(ids: string[]) {
      if (!ids.length) return new Map<string, ReturnType<typeof toSummary>>()
      const rows = await db.select(summaryColumns).from(products).where(and(inArray(products.id, ids), eq(products.status, 'active')))
      const shown = await imagesOf(rows, db)
      return new Map(rows.map((r) => [r.id, toSummary(r, shown)]))
    },

    /**
     * Active products by id as list items priced for a signed-in shopper in a currency (wishlist):
     * the prices the pricing function gives them; a product not sold in that currency is absent.
     */
    async pricedSummaries(ids: string[], ctx: PricingContext) {
      if (!ids.length) return new Map<string, ReturnType<typeof toSummary>>()
      const rows = await db.select(summaryColumns).from(products).where(and(inArray(products.id, ids), eq(products.status, 'active')))
      const ranges = await shopperRanges(rows.map((r) => r.id), ctx, db)
      const shown = await imagesOf(rows, db)
      return new Map(rows.flatMap((r) => { const range = ranges.get(r.id); return range ? [[r.id, { ...toSummary(r, shown), priceRange: range }] as const] : [] }))
    },

    /** The currency a catalog read asks for (a currency, or a region's), the store currency by default. */
    currencyOf,

    /**
     * Variants with what a cart needs to price and check them, read at this moment, priced by
     * the pricing function for ctx (a line's quantity decides quantity tiers; 1 when not given).
     */
    async variantsForCart(variantIds: string[], ctx: PricingContext, quantities: Map<string, number> = new Map()) {
      if (!variantIds.length) return new Map<string, CartVariant>()
      const rows = await cartVariants.execute({ ids: idsForPlan(variantIds) })
      const prices = await priceVariants(db, ctx, rows.map((r) => ({ variantId: r.variantId, quantity: quantities.get(r.variantId) ?? 1 })))
      return new Map(rows.map((r) => [r.variantId, { ...r, priceMinor: prices.get(r.variantId)?.unitPriceMinor ?? null, purchasable: r.variantActive && r.productStatus === 'active' }]))
    },

    /** Each product's category, for coupon eligibility. */
    async categoriesOf(productIds: string[]) {
      if (!productIds.length) return new Map<string, string | null>()
      const rows = await db.select({ id: products.id, categoryId: products.categoryId }).from(products).where(inArray(products.id, productIds))
      return new Map(rows.map((r) => [r.id, r.categoryId]))
    },

    /** The active variants of an active product, for picking one (wishlist to cart). */
    async activeVariantIds(productId: string) {
      const rows = await db.select({ id: productVariants.id }).from(productVariants).innerJoin(products, eq(products.id, productVariants.productId))
        .where(and(eq(productVariants.productId, productId), eq(productVariants.isActive, true), eq(products.status, 'active')))
        .orderBy(asc(productVariants.position))
      return rows.map((r) => r.id)
    },

    /** Public reads go through the cache; admin views are always fresh. */
    async list(query: ListQuery & { region?: string }, viewer: Viewer) {
      const { currency: askedCurrency, region, ...rest } = query
      if (viewer.isAdmin) return fromJson<SummaryPage>(await list(rest, viewer), false)
      const inCurrency = await currencyOf({ currency: askedCurrency, region })
      // Without a cache the schedule only says which lists apply: a page not decided by price
      // finds them in its own statement (one round trip, as the product page).
      if (!cache.enabled && !decidedByPrice(rest)) return fromJson<SummaryPage>(await list(rest, viewer, { currency: inCurrency, userId: viewer.userId ?? null, at: new Date() }), false)
      const pricing = await pricingFor(viewer, inCurrency)
      const key = `list:${pricing.key}:${JSON.stringify(Object.entries(rest).filter(([k, v]) => v !== undefined && k !== 'status').sort())}`
      return cache.wrapJson<SummaryPage>(CATALOG_CACHE, key, () => list(rest, viewer, { ...pricing.ctx, lists: pricing.lists, salesOnly: pricing.salesOnly }), pricing.ttl)
    },

    getById,

    async getBySlug(slug: string, viewer: Viewer, ask: { currency?: string; region?: string } = {}) {
      if (viewer.isAdmin) return { value: await toDetail(visibleOr404((await bySlug(db).execute({ slug }))[0], viewer, slug)), hit: false }
      // Slugs change only with catalog writes: the slug's id is cached with the catalog, the detail with the product.
      const { value: id } = await cache.wrap(CATALOG_CACHE, `slug-id:${slug}`, async () => visibleOr404((await bySlug(dbRead).execute({ slug }))[0], viewer, slug).id)
      return getById(id, viewer, ask)
    },

    /** A variant's base prices in every currency (admin). */
    async variantPrices(productId: string, variantId: string) {
      await requireVariant(productId, variantId)
      const rows = await db.select().from(variantPrices).where(eq(variantPrices.variantId, variantId)).orderBy(asc(variantPrices.currency))
      return rows.map((r) => ({ currency: r.currency, amountMinor: r.amountMinor }))
    },

    /** Sets a variant's base price in a currency (the store currency's is also the variant's priceMinor). */
    async setVariantPrice(productId: string, variantId: string, inCurrency: string, amountMinor: number) {
      requireCurrency(inCurrency)
      await write(async (tx, emit) => {
        await requireVariant(productId, variantId, tx)
        await tx.insert(variantPrices).values({ variantId, currency: inCurrency, amountMinor })
          .onConflictDoUpdate({ target: [variantPrices.variantId, variantPrices.currency], set: { amountMinor, updatedAt: new Date() } })
        if (inCurrency === currency) await tx.update(productVariants).set({ priceMinor: amountMinor, updatedAt: new Date() }).where(eq(productVariants.id, variantId))
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'variant-updated', variantId)
      })
      return { currency: inCurrency, amountMinor }
    },

    /** Stops selling a variant in a currency; the store currency's price cannot go. */
    async removeVariantPrice(productId: string, variantId: string, inCurrency: string) {
      if (inCurrency === currency) throw new Conflict(`${currency} is the store currency: every variant has a price in it`, 'store-currency-price')
      await write(async (tx, emit) => {
        await requireVariant(productId, variantId, tx)
        const deleted = await tx.delete(variantPrices).where(and(eq(variantPrices.variantId, variantId), eq(variantPrices.currency, inCurrency))).returning({ currency: variantPrices.currency })
        if (!deleted.length) throw new NotFound('price', `${variantId} in ${inCurrency}`)
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'variant-updated', variantId)
      })
    },

    async create(input: ProductInput, actorId: string) {
      const id = await write(async (tx) => {
        const { variants, ...fields } = input
        const [row] = await tx.insert(products).values(fields).returning({ id: products.id })
        await insertVariants(tx, row!.id, variants, actorId)
        await refreshProductAggregates(tx, row!.id)
        await refreshPriceRanges(tx, row!.id)
        return row!.id
      })
      return toDetail((await findById.execute({ id }))[0]!)
    },

    async update(id: string, input: Partial<Omit<ProductInput, 'variants'>>) {
      await write(async (tx, emit) => {
        const updated = await tx.update(products).set({ ...input, updatedAt: new Date() }).where(eq(products.id, id)).returning({ id: products.id })
        if (!updated.length) throw new NotFound('product', id)
        await productUpdated(tx, emit, id, 'details')
      })
      return toDetail((await findById.execute({ id }))[0]!)
    },

    async remove(id: string) {
      await write(async (tx) => {
        const deleted = await tx.delete(products).where(eq(products.id, id)).returning({ id: products.id })
        if (!deleted.length) throw new NotFound('product', id)
      })
    },

    async addVariant(productId: string, input: VariantInput, actorId: string) {
      const row = await write(async (tx, emit) => {
        const [product] = await tx.select({ id: products.id }).from(products).where(eq(products.id, productId)).for('update')
        if (!product) throw new NotFound('product', productId)
        const [{ next }] = await tx.select({ next: sql<number>`coalesce(max(position) + 1, 0)::int` }).from(productVariants).where(eq(productVariants.productId, productId)) as [{ next: number }]
        const [variant] = await insertVariants(tx, productId, [input], actorId, next)
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'variant-added', variant!.id)
        return variant!
      })
      return toVariant(row)
    },

    async updateVariant(productId: string, variantId: string, input: Omit<Partial<VariantInput>, 'stock'>) {
      const row = await write(async (tx, emit) => {
        const [variant] = await tx.update(productVariants).set({ ...input, updatedAt: new Date() })
          .where(and(eq(productVariants.id, variantId), eq(productVariants.productId, productId))).returning()
        if (!variant) throw new NotFound('variant', variantId)
        if (input.priceMinor !== undefined) {
          await tx.insert(variantPrices).values({ variantId, currency, amountMinor: input.priceMinor })
            .onConflictDoUpdate({ target: [variantPrices.variantId, variantPrices.currency], set: { amountMinor: input.priceMinor, updatedAt: new Date() } })
        }
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'variant-updated', variantId)
        return variant
      })
      return toVariant(row)
    },

    async removeVariant(productId: string, variantId: string) {
      await write(async (tx, emit) => {
        // Lock the product so two deletes cannot each leave the other as "not the last".
        const [product] = await tx.select({ id: products.id }).from(products).where(eq(products.id, productId)).for('update')
        if (!product) throw new NotFound('product', productId)
        const [{ n }] = await tx.select({ n: sql<number>`count(*)::int` }).from(productVariants).where(eq(productVariants.productId, productId)) as [{ n: number }]
        const deleted = await tx.delete(productVariants).where(and(eq(productVariants.id, variantId), eq(productVariants.productId, productId))).returning({ id: productVariants.id })
        if (!deleted.length) throw new NotFound('variant', variantId)
        if (n <= 1) throw new Conflict('A product keeps at least one variant; delete the product instead', 'last-variant')
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'variant-removed', variantId)
      })
    },

    /** Changes stock by delta in one statement that cannot take it below zero, with its movement record. */
    async adjustStock(productId: string, variantId: string, input: { delta: number; reason: 'restock' | 'correction' | 'damage' | 'return'; note?: string; locationId?: string }, actorId: string) {
      const row = await write(async (tx, emit) => {
        const [exists] = await tx.select({ id: productVariants.id }).from(productVariants)
          .where(and(eq(productVariants.id, variantId), eq(productVariants.productId, productId)))
        if (!exists) throw new NotFound('variant', variantId)
        await adjust(tx, { variantId, locationId: input.locationId, delta: input.delta, reason: input.reason, note: input.note ?? null, actorId })
        await refreshProductAggregates(tx, productId)
        await refreshPriceRanges(tx, productId)
        await productUpdated(tx, emit, productId, 'stock-adjusted', variantId)
        const [variant] = await tx.select().from(productVariants).where(eq(productVariants.id, variantId))
        return variant!
      })
      return toVariant(row)
    },

    async listMovements(productId: string, variantId: string, query: { limit: number; cursor?: string }) {
      const [variant] = await db.select({ id: productVariants.id }).from(productVariants)
        .where(and(eq(productVariants.id, variantId), eq(productVariants.productId, productId)))
      if (!variant) throw new NotFound('variant', variantId)
      const keyset = newestFirst(inventoryMovements.createdAt, inventoryMovements.id)
      const rows = await db.select().from(inventoryMovements).where(and(eq(inventoryMovements.variantId, variantId), keyset.after(query.cursor)))
        .orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      return {
        items: page.items.map((m) => ({ ...m, createdAt: m.createdAt.toISOString() })),
        nextCursor: page.nextCursor,
      }
    },
  }
}
