import { and, asc, desc, eq, getTableColumns, inArray, sql, type Placeholder, type SQL } from 'drizzle-orm'
import { inventoryMovements, productVariants, products } from '../../db/schema/index.js'
import { isForeignKeyViolation, isUniqueViolation, type Db, type Tx } from '../../db/client.js'
import { replicasCaughtUp } from '../../db/replicas.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import { decodeCursor, newestFirst, toPage, type CursorPart } from '../../src/pagination.js'
import type { Cache } from '../../src/cache.js'
import type { Emit, Outbox } from '../../src/outbox.js'
import { WEBHOOK } from '../../src/side-effects.js'
import { CATALOG_CACHE, categoryAndDescendants, productCache, refreshProductAggregates } from '../../src/catalog.js'
import { adjust, initialStock } from '../../src/inventory.js'
import type { ProductSort } from './schemas.js'

// What reads select of a product: everything but the search vector, which only the WHERE of a
// search uses (it is the largest column; reading it was most of a listing's bytes).
const { searchVector: _searchVector, ...readColumns } = getTableColumns(products)
export const productColumns = readColumns
// What a list item shows, and the keys its cursor needs.
const summaryColumns = {
  id: products.id, slug: products.slug, name: products.name, status: products.status, categoryId: products.categoryId,
  minPriceMinor: products.minPriceMinor, maxPriceMinor: products.maxPriceMinor, inStock: products.inStock,
  ratingAvg: products.ratingAvg, ratingCount: products.ratingCount, imageIds: products.imageIds, createdAt: products.createdAt,
}
type ProductRow = Omit<typeof products.$inferSelect, 'searchVector'>
type SummaryRow = Pick<ProductRow, keyof typeof summaryColumns>
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
}

export interface CartVariant {
  variantId: string; productId: string; sku: string; options: Record<string, string>; priceMinor: number; stock: number
  variantActive: boolean; productStatus: Status; name: string; slug: string; imageIds: string[]; weightGrams: number | null
  /** Active variant of an active product: can be put in a cart and bought. */
  purchasable: boolean
}

/** Who is looking: customers see active products and variants only. */
export interface Viewer { isAdmin: boolean }


// Each sort: its ORDER BY, the keyset comparison for "after this row", and the row's key.
// Directions match the partial indexes in db/schema/catalog.ts.
interface SortSpec { order: SQL[]; after: (key: [Placeholder, Placeholder]) => SQL; kinds: readonly CursorPart[] }
function sortSpec(sort: ProductSort, rank: SQL): SortSpec {
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
      order: [asc(products.minPriceMinor), asc(products.id)], kinds: ['integer', 'uuid'],
      after: ([p, id]) => sql`(${products.minPriceMinor}, ${products.id}) > (${p}::int, ${id}::uuid)`,
    }
    case 'price_desc': return {
      order: [desc(products.minPriceMinor), desc(products.id)], kinds: ['integer', 'uuid'],
      after: ([p, id]) => sql`(${products.minPriceMinor}, ${products.id}) < (${p}::int, ${id}::uuid)`,
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
 * The listing query, unexecuted, so tests can EXPLAIN exactly what the API runs. Filters are
 * bound parameters; the sort is an enum mapped to fixed SQL, never client text. Every value is a
 * placeholder, filled from `params`, so one listing shape (its sort and which filters it has) is
 * one prepared statement, named by `shape`: PostgreSQL parses it once per connection, and the
 * query builder runs once per shape rather than once per request.
 */
export function buildProductListQuery(db: Db, query: ListQuery, viewer: Viewer) {
  const status: Status = viewer.isAdmin && query.status ? query.status : 'active'
  if (query.sort === 'relevance' && !query.q) throw new BadRequest('sort=relevance needs a search query (q)', 'invalid-sort')
  if (query.minPrice !== undefined && query.maxPrice !== undefined && query.minPrice > query.maxPrice) throw new BadRequest('minPrice is above maxPrice')
  const sort: ProductSort = query.sort ?? (query.q ? 'relevance' : 'newest')
  const has = { q: Boolean(query.q), category: Boolean(query.category), minPrice: query.minPrice !== undefined, maxPrice: query.maxPrice !== undefined, inStock: Boolean(query.inStock), cursor: Boolean(query.cursor) }
  const tsquery = sql`websearch_to_tsquery('english', ${sql.placeholder('q')})`
  const rank = has.q ? sql`ts_rank(${products.searchVector}, ${tsquery})` : sql`0::real`
  const spec = sortSpec(sort, rank)
  const params: Record<string, unknown> = { status, q: query.q, category: query.category, minPrice: query.minPrice, maxPrice: query.maxPrice, limit: query.limit + 1 }
  if (query.cursor) [params.after0, params.after1] = decodeCursor(query.cursor, spec.kinds)
  const shape = `product_list_${sort}_${Object.values(has).map(Number).join('')}`
  return {
    sort, shape, params,
    get select() {
      const filters: SQL[] = [eq(products.status, sql.placeholder('status'))]
      if (has.q) filters.push(sql`${products.searchVector} @@ ${tsquery}`)
      if (has.category) filters.push(sql`${products.categoryId} in ${categoryAndDescendants(sql.placeholder('category'))}`)
      if (has.minPrice) filters.push(sql`${products.minPriceMinor} >= ${sql.placeholder('minPrice')}`)
      if (has.maxPrice) filters.push(sql`${products.minPriceMinor} <= ${sql.placeholder('maxPrice')}`)
      if (has.inStock) filters.push(eq(products.inStock, true))
      if (has.cursor) filters.push(spec.after([sql.placeholder('after0'), sql.placeholder('after1')]))
      return db.select({ product: summaryColumns, rank: sql<number>`${rank}` }).from(products)
        .where(and(...filters)).orderBy(...spec.order).limit(sql.placeholder('limit'))
    },
  }
}

function prepareReads(db: Db) {
  return {
    findById: db.select(productColumns).from(products).where(eq(products.id, sql.placeholder('id'))).limit(1).prepare('product_by_id'),
    findBySlug: db.select(productColumns).from(products).where(eq(products.slug, sql.placeholder('slug'))).limit(1).prepare('product_by_slug'),
    variantsOf: db.select().from(productVariants).where(eq(productVariants.productId, sql.placeholder('productId')))
      .orderBy(asc(productVariants.position), asc(productVariants.createdAt)).prepare('variants_of_product'),
  }
}

/**
 * `dbRead` (app.dbRead, replicas when configured) serves the customers' catalog reads, which
 * tolerate replication lag; admin views, the product returned after a write and what carts,
 * coupons and checkout read stay on `db`, the primary.
 */
export function createProductService({ db, dbRead = db, cache, currency, outbox }: { db: Db; dbRead?: Db; cache: Cache; currency: string; outbox: Pick<Outbox, 'transaction'> }) {
  const fresh = prepareReads(db)
  const lagging = dbRead === db ? fresh : prepareReads(dbRead)
  const { findById, findBySlug } = fresh
  /** Admins see the primary; customers' reads may lag. */
  const readsFor = (viewer: Viewer) => (viewer.isAdmin ? fresh : lagging)

  const toVariant = (v: VariantRow) => ({
    id: v.id, sku: v.sku, options: v.options, priceMinor: v.priceMinor, compareAtPriceMinor: v.compareAtPriceMinor,
    currency, stock: v.stock, isActive: v.isActive, weightGrams: v.weightGrams,
  })

  function toSummary(row: SummaryRow) {
    return {
      id: row.id, slug: row.slug, name: row.name, status: row.status, categoryId: row.categoryId,
      priceRange: { minMinor: row.minPriceMinor, maxMinor: row.maxPriceMinor, currency },
      inStock: row.inStock, rating: { average: Number(row.ratingAvg), count: row.ratingCount },
      imageIds: row.imageIds, createdAt: row.createdAt.toISOString(),
    }
  }

  async function toDetail(row: ProductRow, viewer: Viewer) {
    const variants = (await readsFor(viewer).variantsOf.execute({ productId: row.id })).filter((v) => viewer.isAdmin || v.isActive)
    return {
      ...toSummary(row),
      description: row.description, attributes: row.attributes, variants: variants.map(toVariant), updatedAt: row.updatedAt.toISOString(),
    }
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

  async function getById(id: string, viewer: Viewer) {
    const load = async () => toDetail(visibleOr404((await readsFor(viewer).findById.execute({ id }))[0], viewer, id), viewer)
    // A sale changes this product's stock: it bumps the product's namespace, not the catalog's.
    return viewer.isAdmin ? { value: await load(), hit: false } : cache.wrap([CATALOG_CACHE, productCache(id)], 'detail', load)
  }

  // One prepared statement per listing shape and pool (at most 6 sorts x 64 filter sets).
  const listStatements = new Map<Db, Map<string, { execute(params: Record<string, unknown>): Promise<{ product: SummaryRow; rank: number }[]> }>>()
  async function list(query: ListQuery, viewer: Viewer) {
    const on = viewer.isAdmin ? db : dbRead
    const listing = buildProductListQuery(on, query, viewer)
    const statements = listStatements.get(on) ?? listStatements.set(on, new Map()).get(on)!
    let statement = statements.get(listing.shape)
    if (!statement) statements.set(listing.shape, statement = listing.select.prepare(listing.shape))
    const { sort } = listing
    const rows = await statement.execute(listing.params)
    const page = toPage(rows, query.limit, (r) => keyOf(sort, { ...r.product, rank: r.rank }))
    return { items: page.items.map((r) => toSummary(r.product)), nextCursor: page.nextCursor }
  }

  return {
    /** Active products by id, as list items, for other domains (wishlist). Missing or hidden ones are absent. */
    async summariesByIds(ids: string[]) {
      if (!ids.length) return new Map<string, ReturnType<typeof toSummary>>()
      const rows = await db.select(summaryColumns).from(products).where(and(inArray(products.id, ids), eq(products.status, 'active')))
      return new Map(rows.map((r) => [r.id, toSummary(r)]))
    },

    /** Variants with what a cart needs to price and check them, read at this moment. */
    async variantsForCart(variantIds: string[]) {
      if (!variantIds.length) return new Map<string, CartVariant>()
      const rows = await db.select({
        variantId: productVariants.id, productId: products.id, sku: productVariants.sku, options: productVariants.options,
        priceMinor: productVariants.priceMinor, stock: productVariants.stock, variantActive: productVariants.isActive, weightGrams: productVariants.weightGrams,
        productStatus: products.status, name: products.name, slug: products.slug, imageIds: products.imageIds,
      }).from(productVariants).innerJoin(products, eq(products.id, productVariants.productId)).where(inArray(productVariants.id, variantIds))
      return new Map(rows.map((r) => [r.variantId, { ...r, purchasable: r.variantActive && r.productStatus === 'active' }]))
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
    async list(query: ListQuery, viewer: Viewer) {
      if (viewer.isAdmin) return { value: await list(query, viewer), hit: false }
      const key = `list:${JSON.stringify(Object.entries(query).filter(([k, v]) => v !== undefined && k !== 'status').sort())}`
      return cache.wrap(CATALOG_CACHE, key, () => list(query, viewer))
    },

    getById,

    async getBySlug(slug: string, viewer: Viewer) {
      if (viewer.isAdmin) return { value: await toDetail(visibleOr404((await findBySlug.execute({ slug }))[0], viewer, slug), viewer), hit: false }
      // Slugs change only with catalog writes: the slug's id is cached with the catalog, the detail with the product.
      const { value: id } = await cache.wrap(CATALOG_CACHE, `slug-id:${slug}`, async () => visibleOr404((await lagging.findBySlug.execute({ slug }))[0], viewer, slug).id)
      return getById(id, viewer)
    },

    async create(input: ProductInput, actorId: string) {
      const id = await write(async (tx) => {
        const { variants, ...fields } = input
        const [row] = await tx.insert(products).values(fields).returning({ id: products.id })
        await insertVariants(tx, row!.id, variants, actorId)
        await refreshProductAggregates(tx, row!.id)
        return row!.id
      })
      return toDetail((await findById.execute({ id }))[0]!, { isAdmin: true })
    },

    async update(id: string, input: Partial<Omit<ProductInput, 'variants'>>) {
      await write(async (tx, emit) => {
        const updated = await tx.update(products).set({ ...input, updatedAt: new Date() }).where(eq(products.id, id)).returning({ id: products.id })
        if (!updated.length) throw new NotFound('product', id)
        await productUpdated(tx, emit, id, 'details')
      })
      return toDetail((await findById.execute({ id }))[0]!, { isAdmin: true })
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
        await refreshProductAggregates(tx, productId)
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
