import { randomUUID } from 'node:crypto'
import { PassThrough, Readable } from 'node:stream'
import { stringify } from 'csv-stringify'
import { and, asc, eq, gt, gte, inArray, lte, or, sql, type Column, type SQL } from 'drizzle-orm'
import { Type } from '@sinclair/typebox'
import { AjvCompiler } from '@fastify/ajv-compiler'
import {
  catalogImportKeys, catalogJobs, categories, productVariants, products, stockLevels, stockLocations, uploadedFiles, variantPrices, type ExportFilters, type RowError,
} from '../../db/schema/index.js'
import { arrayParam, type Db, type Tx } from '../../db/client.js'
import type { Cache } from '../../src/cache.js'
import { CATALOG_CACHE, categoryAndDescendants, refreshManyProducts } from '../../src/catalog.js'
import { BadRequest, ContentTooLarge, NotFound, Conflict } from '../../src/errors.js'
import { setLevels } from '../../src/inventory.js'
import { requireCurrency } from '../../src/prices.js'
import { checkRange } from '../analytics/service.js'
import { ORDER_COLUMNS, countOrders, orderRecords } from './orders-export.js'
import { claimLeased } from '../../src/leases.js'
import { failureText } from '../../src/log-errors.js'
import type { FileStorage } from '../../src/storage.js'
import { ProductCreate, ProductStatus, VariantCreate } from '../products/schemas.js'
import { CLEAR_CELL, FIXED_COLUMNS, IMAGE_SEPARATOR, LATER_COLUMNS, formatMoney, parseMoney, peekFirstLine, readHeader, readRecords, safeCell, sniffDelimiter, unsafeCell, type Header } from './csv.js'

// Catalog imports and exports as job resources (docs/import-export.md). The API stores the
// uploaded file and a pending row; the worker (plugins/background.ts: a BullMQ work queue, and a
// sweep for rows whose job was lost) takes the row under a lease and runs it:
//
// Import, two streamed passes over the file, in batches of BATCH rows:
//   1. Validate: every row against the API's TypeBox schemas, across rows (a SKU twice, one handle
//      with two sets of product fields) and against the catalog (a SKU of another product, a new
//      variant without a store-currency price, a count below what is reserved). Each row is
//      classified as would-create / would-update / unchanged: that is the dry run's answer.
//      Bad rows in mode `all`: the job fails with its report, nothing written.
//   2. Write (not for a dry run): each batch in one transaction, an upsert by handle and SKU that
//      writes only what differs (so the same file again writes nothing); stock through the
//      inventory module. One catalog cache invalidation when the job ends.
// A worker that dies mid-way leaves committed batches; the next run starts again from the top and,
// since every write is an upsert to the file's values, ends where one clean run ends.

const BATCH = 500

// A batch's keys and rows go to PostgreSQL as one parameter each: drizzle's inArray and multi-row
// values() build one parameter per value or cell, which cost the worker about 7 s of CPU per
// 30,000 imported rows (a CPU profile of the import bench), more than everything else it does.
const anyText = (column: Column, values: string[]) => sql`${column} = any(${arrayParam(values, 'text')})`
const anyUuid = (column: Column, values: string[]) => sql`${column} = any(${arrayParam(values, 'uuid')})`
/** Rows as one JSON parameter, read back as a relation `x` with these columns (`name type, ...`). */
const recordset = (rows: object[], columns: string) => sql`jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(${sql.raw(columns)})`
const MAX_ATTEMPTS = 3
const MAX_REPORTED_ERRORS = 1000

type JobRow = typeof catalogJobs.$inferSelect
type Status = 'draft' | 'active' | 'archived'

export interface CatalogIoDeps {
  db: Db
  cache: Cache
  /** Private storage of uploaded and exported files (never the public uploads). */
  storage: FileStorage
  /** The store currency: every variant has a price in it. */
  currency: string
  /** Hands job ids to the worker's queue. */
  enqueue(ids: string[]): Promise<void>
  /** signedUrlTtlSeconds: life of the store's presigned link an export download redirects to (object storage only). */
  settings: { maxBytes: number; leaseSeconds: number; fileRetentionDays: number; signedUrlTtlSeconds: number }
}

// The rows are checked against the API's own product and variant schemas (the subset a CSV carries).
const ProductFields = Type.Pick(ProductCreate, ['slug', 'name', 'description', 'status', 'attributes', 'imageIds'])
const VariantFields = Type.Pick(VariantCreate, ['sku', 'options', 'weightGrams', 'priceMinor', 'compareAtPriceMinor', 'isActive'])
// Compiled as the API compiles request bodies (the same Ajv, no coercion: "12" is not a number).
type Validate = ((value: unknown) => boolean) & { errors?: { instancePath: string; message?: string }[] | null }
const compileBody = AjvCompiler()({ ProductStatus }, { customOptions: { coerceTypes: false, allErrors: true } } as never)
const compileSchema = (schema: object) => compileBody({ schema, method: 'POST', url: '/imports/products', httpPart: 'body' } as never) as unknown as Validate
const validateProduct = compileSchema(ProductFields)
const validateVariant = compileSchema(Type.Partial(VariantFields))
const errorsOf = (validate: Validate, value: unknown) => (validate(value) ? [] : (validate.errors ?? []).map((e) => ({ path: e.instancePath, message: e.message ?? 'is not valid' })))
const PATH_TO_COLUMN: Record<string, string> = { slug: 'handle', name: 'name', description: 'description', status: 'status', sku: 'sku', weightGrams: 'weight_grams', imageIds: 'images', isActive: 'active' }

/** One data row, read and checked on its own. Undefined fields: the cell was empty (leave as is; a new record takes the default). */
interface Row {
  line: number
  handle: string
  name: string
  description?: string
  status?: Status
  /** null: [clear], no category. */
  categoryId?: string | null
  sku: string
  /** null: [clear], no weight. */
  weightGrams?: number | null
  /** Undefined when the file has no option columns. */
  options?: Record<string, string>
  /** Product attributes: undefined when the file has no attribute columns. */
  attributes?: Record<string, string>
  /** Upload ids of product images, in order; undefined when the cell is empty or absent; [] for [clear]. */
  imageIds?: string[]
  /** null: [clear], no compare-at price. */
  compareAtMinor?: number | null
  isActive?: boolean
  prices: Map<string, number>
  stock: Map<string, number>
}

interface Lookups {
  header: Header
  /** Category slug -> id and parent. */
  categories: Map<string, { id: string; parentId: string | null }>
  categoryById: Map<string, { slug: string; parentId: string | null }>
  /** stock_<name> column -> location id. */
  locationOf: Map<string, string>
}

const cell = (cells: string[], index: number | undefined) => (index === undefined ? '' : unsafeCell((cells[index] ?? '').trim()))
/** The cell holds the clear marker (before unsafeCell: an exported '[clear] is that text, not a clear). */
const clears = (cells: string[], index: number | undefined) => index !== undefined && (cells[index] ?? '').trim() === CLEAR_CELL
/** Columns whose value is optional, so [clear] empties it (options and attributes: [clear] is an empty cell). */
const CLEARABLE = new Set(['description', 'category', 'weight_grams', 'images'])

function resolveCategory(path: string, lookups: Lookups): string | null {
  const slugs = path.split(/\s*[/>]\s*/).filter(Boolean)
  const last = lookups.categories.get(slugs[slugs.length - 1] ?? '')
  if (!last) return null
  // Every slug of the path must be the next ancestor up.
  let parentId = last.parentId
  for (let i = slugs.length - 2; i >= 0; i--) {
    const parent = parentId ? lookups.categoryById.get(parentId) : undefined
    if (!parent || parent.slug !== slugs[i]) return null
    parentId = parent.parentId
  }
  return last.id
}

function categoryPath(categoryId: string | null, lookups: Lookups): string {
  const slugs: string[] = []
  for (let id = categoryId; id; ) {
    const c = lookups.categoryById.get(id)
    if (!c) break
    slugs.unshift(c.slug)
    id = c.parentId
  }
  return slugs.join('/')
}

/** A record as a Row, or the reasons it is not one. */
function readRow(line: number, cells: string[], lookups: Lookups): { row?: Row; errors: RowError[] } {
  const { header } = lookups
  const errors: RowError[] = []
  const bad = (column: string | null, reason: string) => errors.push({ line, column, reason })
  if (cells.length !== header.width) {
    bad(null, `has ${cells.length} cells; the header has ${header.width}`)
    return { errors }
  }
  const f = header.fixed
  // [clear] empties an optional value; in a column that always has a value it is a bad cell.
  const cleared = new Set<string>()
  header.names.forEach((name, index) => {
    if (!clears(cells, index)) return
    const column = name.toLowerCase()
    if (CLEARABLE.has(column) || (header.compareAt && index === header.compareAt.index)) cleared.add(column)
    else if (!header.options.some((o) => o.index === index) && !header.attributes.some((a) => a.index === index)) {
      bad(name, `cannot be cleared (${CLEAR_CELL} empties description, category, weight_grams, images, compare_at_*, option_* and attribute_* cells; an empty cell leaves a value as it is)`)
    }
  })
  if (errors.length) return { errors }
  // Options and attributes: [clear] is the empty cell it already means (not one of the record's).
  const optional = (index: number) => (clears(cells, index) ? '' : cell(cells, index))
  const description = cleared.has('description') ? '' : cell(cells, f.description)
  const status = cell(cells, f.status)
  const images = cleared.has('images') ? '' : cell(cells, f.images)
  const imageIds = cleared.has('images') ? [] : images ? images.split(IMAGE_SEPARATOR).map((x) => x.trim()).filter(Boolean) : undefined
  const attributes = header.attributes.length ? Object.fromEntries(header.attributes.map((a) => [a.name, optional(a.index)]).filter(([, v]) => v)) : undefined
  const product = {
    slug: cell(cells, f.handle), name: cell(cells, f.name), ...(f.description !== undefined ? { description } : {}), ...(status ? { status } : {}),
    ...(attributes ? { attributes } : {}), ...(imageIds?.length ? { imageIds } : {}),
  }
  for (const e of errorsOf(validateProduct, product)) {
    const [, field, key] = e.path.split('/')
    const column = field === 'attributes' ? (key ? `attribute_${key}` : header.attributes[0]?.column ?? null) : PATH_TO_COLUMN[field ?? ''] ?? null
    if (!errors.some((x) => x.column === column)) bad(column, e.message)
  }
  const variant: Record<string, unknown> = { sku: cell(cells, f.sku) }
  const weight = cleared.has('weight_grams') ? '' : cell(cells, f.weight_grams)
  if (cleared.has('weight_grams')) variant.weightGrams = null
  else if (weight) {
    if (/^\d{1,9}$/.test(weight)) variant.weightGrams = Number(weight)
    else bad('weight_grams', 'must be a whole number of grams')
  }
  const active = cell(cells, f.active).toLowerCase()
  if (active) {
    if (active === 'true' || active === 'false') variant.isActive = active === 'true'
    else bad('active', 'must be true or false')
  }
  if (header.compareAt && cleared.has(header.compareAt.column.toLowerCase())) variant.compareAtPriceMinor = null
  else if (header.compareAt) {
    const text = cell(cells, header.compareAt.index)
    const minor = text ? parseMoney(text, header.compareAt.currency) : undefined
    if (minor === null) bad(header.compareAt.column, `must be an amount in ${header.compareAt.currency} such as ${formatMoney(1299, header.compareAt.currency)}`)
    else if (minor !== undefined) variant.compareAtPriceMinor = minor
  }
  if (header.options.length) {
    variant.options = Object.fromEntries(header.options.map((o) => [o.name, optional(o.index)]).filter(([, v]) => v))
  }
  // null is the clear, checked above; the schemas check the values.
  const checked = Object.fromEntries(Object.entries(variant).filter(([, v]) => v !== null))
  for (const e of errorsOf(validateVariant, checked)) {
    const [, field, key] = e.path.split('/')
    const column = field === 'options' ? (key ? `option_${key}` : header.options[0]?.column ?? 'options') : PATH_TO_COLUMN[field ?? ''] ?? null
    if (!errors.some((x) => x.column === column)) bad(column, e.message)
  }
  const prices = new Map<string, number>()
  for (const p of header.prices) {
    const text = cell(cells, p.index)
    if (!text) continue
    const minor = parseMoney(text, p.currency)
    if (minor === null || !validateVariant({ priceMinor: minor })) bad(p.column, `must be an amount in ${p.currency} such as ${formatMoney(1299, p.currency)} (at most ${formatMoney(100_000_000, p.currency)})`)
    else prices.set(p.currency, minor)
  }
  const stock = new Map<string, number>()
  for (const s of header.stocks) {
    const text = cell(cells, s.index)
    if (!text) continue
    if (/^\d{1,8}$/.test(text) && Number(text) <= 10_000_000) stock.set(lookups.locationOf.get(s.column)!, Number(text))
    else bad(s.column, 'must be a whole number of units on hand, 0 to 10000000')
  }
  const categoryText = cleared.has('category') ? '' : cell(cells, f.category)
  let categoryId: string | null | undefined = cleared.has('category') ? null : undefined
  if (categoryText) {
    categoryId = resolveCategory(categoryText, lookups) ?? undefined
    if (!categoryId) bad('category', `no category at the path ${categoryText} (category slugs from the top, separated by /)`)
  }
  if (errors.length) return { errors }
  return {
    errors,
    row: {
      line, handle: product.slug, name: product.name, description: f.description !== undefined ? description : undefined,
      status: (status || undefined) as Status | undefined, categoryId, sku: variant.sku as string,
      weightGrams: variant.weightGrams as number | null | undefined, options: variant.options as Record<string, string> | undefined, prices, stock,
      attributes, imageIds, compareAtMinor: variant.compareAtPriceMinor as number | null | undefined, isActive: variant.isActive as boolean | undefined,
    },
  }
}

type ProductChange = Partial<{ name: string; description: string; status: Status; categoryId: string | null; attributes: Record<string, string>; imageIds: string[] }>
type Outcome = 'created' | 'updated' | 'unchanged'

/** What one batch would write, and each good row's outcome; rows the catalog refuses get errors. */
interface Plan {
  outcomes: Map<number, Outcome>
  errors: RowError[]
  newProducts: Map<string, Row>
  productUpdates: Map<string, { id: string; set: ProductChange }>
  newVariants: Row[]
  variantUpdates: { id: string; productId: string; set: Partial<{ options: Record<string, string>; weightGrams: number | null; priceMinor: number; compareAtPriceMinor: number | null; isActive: boolean }> }[]
  prices: { sku: string; currency: string; amountMinor: number }[]
  levels: { sku: string; locationId: string; onHand: number; isNew: boolean }[]
  touchedProducts: Set<string>
}

const sameOptions = (a: Record<string, string>, b: Record<string, string>) => {
  const ka = Object.keys(a).sort()
  const kb = Object.keys(b).sort()
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k])
}

async function planBatch(db: Db | Tx, rows: Row[], storeCurrency: string, plannedProducts?: Set<string>): Promise<Plan> {
  const plan: Plan = {
    outcomes: new Map(), errors: [], newProducts: new Map(), productUpdates: new Map(), newVariants: [], variantUpdates: [], prices: [], levels: [], touchedProducts: new Set(),
  }
  if (!rows.length) return plan
  const handles = [...new Set(rows.map((r) => r.handle))]
  const skus = rows.map((r) => r.sku)
  const productRows = await db.select({ id: products.id, slug: products.slug, name: products.name, description: products.description, status: products.status, categoryId: products.categoryId, attributes: products.attributes, imageIds: products.imageIds })
    .from(products).where(anyText(products.slug, handles))
  // Images are uploads made for products (POST /uploads, purpose product_image), as the product routes require.
  const imageIds = [...new Set(rows.flatMap((r) => r.imageIds ?? []))]
  const uploaded = new Set(imageIds.length ? (await db.select({ id: uploadedFiles.id }).from(uploadedFiles)
    .where(and(inArray(uploadedFiles.id, imageIds), eq(uploadedFiles.purpose, 'product_image')))).map((u) => u.id) : [])
  const productBySlug = new Map(productRows.map((p) => [p.slug, p]))
  const variantRows = await db.select({ id: productVariants.id, sku: productVariants.sku, productId: productVariants.productId, options: productVariants.options, weightGrams: productVariants.weightGrams, priceMinor: productVariants.priceMinor, compareAtPriceMinor: productVariants.compareAtPriceMinor, isActive: productVariants.isActive, slug: products.slug })
    .from(productVariants).innerJoin(products, eq(products.id, productVariants.productId)).where(anyText(productVariants.sku, skus))
  const variantBySku = new Map(variantRows.map((v) => [v.sku, v]))
  const ids = variantRows.map((v) => v.id)
  const priceRows = ids.length ? await db.select().from(variantPrices).where(anyUuid(variantPrices.variantId, ids)) : []
  const priceOf = new Map(priceRows.map((p) => [`${p.variantId}:${p.currency}`, p.amountMinor]))
  const levelRows = ids.length ? await db.select().from(stockLevels).where(anyUuid(stockLevels.variantId, ids)) : []
  const levelOf = new Map(levelRows.map((l) => [`${l.variantId}:${l.locationId}`, l]))

  for (const row of rows) {
    const bad = (column: string | null, reason: string) => plan.errors.push({ line: row.line, column, reason })
    const existing = variantBySku.get(row.sku)
    if (existing && existing.slug !== row.handle) { bad('sku', `belongs to the product ${existing.slug}`); continue }
    if (!existing && !row.prices.has(storeCurrency)) { bad(`price_${storeCurrency}`, `a new variant needs a price in ${storeCurrency}, the store currency`); continue }
    const notUploaded = (row.imageIds ?? []).filter((id) => !uploaded.has(id))
    if (notUploaded.length) { bad('images', `not uploaded product images: ${notUploaded.join(', ')}`); continue }
    const product = productBySlug.get(row.handle)
    let changed = false
    if (!product) {
      if (!plannedProducts?.has(row.handle) && !plan.newProducts.has(row.handle)) plan.newProducts.set(row.handle, row)
    } else if (!plannedProducts?.has(row.handle)) {
      const set: ProductChange = {}
      if (row.name !== product.name) set.name = row.name
      if (row.description !== undefined && row.description !== product.description) set.description = row.description
      if (row.status !== undefined && row.status !== product.status) set.status = row.status
      if (row.categoryId !== undefined && row.categoryId !== product.categoryId) set.categoryId = row.categoryId
      if (row.attributes !== undefined && !sameOptions(row.attributes, product.attributes)) set.attributes = row.attributes
      if (row.imageIds !== undefined && row.imageIds.join() !== product.imageIds.join()) set.imageIds = row.imageIds
      if (Object.keys(set).length) {
        changed = true
        plan.productUpdates.set(row.handle, { id: product.id, set: { ...plan.productUpdates.get(row.handle)?.set, ...set } })
      } else if (plan.productUpdates.has(row.handle)) changed = true
    }
    if (!existing) {
      plan.newVariants.push(row)
      for (const [currency, amountMinor] of row.prices) plan.prices.push({ sku: row.sku, currency, amountMinor })
      for (const [locationId, onHand] of row.stock) if (onHand > 0) plan.levels.push({ sku: row.sku, locationId, onHand, isNew: true })
      plan.outcomes.set(row.line, 'created')
      continue
    }
    const set: Plan['variantUpdates'][number]['set'] = {}
    if (row.options !== undefined && !sameOptions(row.options, existing.options)) set.options = row.options
    if (row.weightGrams !== undefined && row.weightGrams !== existing.weightGrams) set.weightGrams = row.weightGrams
    if (row.compareAtMinor !== undefined && row.compareAtMinor !== existing.compareAtPriceMinor) set.compareAtPriceMinor = row.compareAtMinor
    if (row.isActive !== undefined && row.isActive !== existing.isActive) set.isActive = row.isActive
    const storePrice = row.prices.get(storeCurrency)
    if (storePrice !== undefined && storePrice !== existing.priceMinor) set.priceMinor = storePrice
    if (Object.keys(set).length) { plan.variantUpdates.push({ id: existing.id, productId: existing.productId, set }); changed = true }
    for (const [currency, amountMinor] of row.prices) {
      if (priceOf.get(`${existing.id}:${currency}`) !== amountMinor) { plan.prices.push({ sku: row.sku, currency, amountMinor }); changed = true }
    }
    for (const [locationId, onHand] of row.stock) {
      const level = levelOf.get(`${existing.id}:${locationId}`)
      if ((level?.onHand ?? 0) === onHand) continue
      if (level && onHand < level.reserved) { bad(`stock_${locationId}`, `${level.reserved} units are reserved there; on hand cannot go below that`); changed = false; break }
      plan.levels.push({ sku: row.sku, locationId, onHand, isNew: false })
      changed = true
    }
    if (plan.errors.some((e) => e.line === row.line)) continue
    if (changed) plan.touchedProducts.add(existing.productId)
    plan.outcomes.set(row.line, changed ? 'updated' : 'unchanged')
  }
  return plan
}

/** Writes a batch's plan in the caller's transaction. */
async function applyPlan(tx: Tx, plan: Plan, storeCurrency: string, jobId: string, actorId: string | null) {
  const productIdOf = new Map<string, string>()
  if (plan.newProducts.size) {
    const rows = [...plan.newProducts.values()].map((r) => ({
      slug: r.handle, name: r.name, description: r.description ?? '', status: r.status ?? 'draft', category_id: r.categoryId ?? null,
      attributes: r.attributes ?? {}, image_ids: r.imageIds ?? [],
    }))
    const inserted = await tx.execute<{ id: string; slug: string }>(sql`insert into ${products} (slug, name, description, status, category_id, attributes, image_ids)
      select slug, name, description, status, category_id, attributes, image_ids
      from ${recordset(rows, 'slug text, name text, description text, status product_status, category_id uuid, attributes jsonb, image_ids uuid[]')}
      returning id, slug`)
    for (const p of inserted.rows) { productIdOf.set(p.slug, p.id); plan.touchedProducts.add(p.id) }
  }
  for (const { id, set } of plan.productUpdates.values()) {
    await tx.update(products).set({ ...set, updatedAt: new Date() }).where(eq(products.id, id))
  }
  const variantIdOf = new Map<string, string>()
  if (plan.newVariants.length) {
    const missing = [...new Set(plan.newVariants.map((r) => r.handle).filter((h) => !productIdOf.has(h)))]
    if (missing.length) {
      for (const p of await tx.select({ id: products.id, slug: products.slug }).from(products).where(anyText(products.slug, missing))) productIdOf.set(p.slug, p.id)
    }
    const productIds = [...new Set(plan.newVariants.map((r) => productIdOf.get(r.handle)!))]
    const next = new Map((await tx.select({ productId: productVariants.productId, next: sql<number>`max(${productVariants.position}) + 1` }).from(productVariants)
      .where(anyUuid(productVariants.productId, productIds)).groupBy(productVariants.productId)).map((r) => [r.productId, Number(r.next)]))
    const rows = plan.newVariants.map((r) => {
      const productId = productIdOf.get(r.handle)!
      const position = next.get(productId) ?? 0
      next.set(productId, position + 1)
      plan.touchedProducts.add(productId)
      return {
        product_id: productId, sku: r.sku, options: r.options ?? {}, price_minor: r.prices.get(storeCurrency)!, weight_grams: r.weightGrams ?? null, position,
        compare_at_price_minor: r.compareAtMinor ?? null, is_active: r.isActive ?? true,
      }
    })
    const inserted = await tx.execute<{ id: string; sku: string }>(sql`insert into ${productVariants} (product_id, sku, options, price_minor, weight_grams, position, compare_at_price_minor, is_active)
      select product_id, sku, options, price_minor, weight_grams, position, compare_at_price_minor, is_active
      from ${recordset(rows, 'product_id uuid, sku text, options jsonb, price_minor int, weight_grams int, position int, compare_at_price_minor int, is_active boolean')}
      returning id, sku`)
    for (const v of inserted.rows) variantIdOf.set(v.sku, v.id)
  }
  for (const { id, set } of plan.variantUpdates) {
    await tx.update(productVariants).set({ ...set, updatedAt: new Date() }).where(eq(productVariants.id, id))
  }
  const needIds = [...new Set([...plan.prices, ...plan.levels].map((x) => x.sku).filter((s) => !variantIdOf.has(s)))]
  if (needIds.length) {
    for (const v of await tx.select({ id: productVariants.id, sku: productVariants.sku }).from(productVariants).where(anyText(productVariants.sku, needIds))) variantIdOf.set(v.sku, v.id)
  }
  if (plan.prices.length) {
    const rows = plan.prices.map((p) => ({ variant_id: variantIdOf.get(p.sku)!, currency: p.currency, amount_minor: p.amountMinor }))
    await tx.execute(sql`insert into ${variantPrices} (variant_id, currency, amount_minor)
      select variant_id, currency, amount_minor from ${recordset(rows, 'variant_id uuid, currency text, amount_minor int')}
      on conflict (variant_id, currency) do update set amount_minor = excluded.amount_minor, updated_at = now()`)
  }
  // Stock is the inventory module's to write: new variants' stock as a restock, the rest as a stock take.
  const note = `catalog import ${jobId}`
  const levels = (isNew: boolean) => plan.levels.filter((l) => l.isNew === isNew).map((l) => ({ variantId: variantIdOf.get(l.sku)!, locationId: l.locationId, onHand: l.onHand }))
  await setLevels(tx, levels(true), { reason: 'restock', note, actorId })
  await setLevels(tx, levels(false), { reason: 'correction', note, actorId })
  await refreshManyProducts(tx, plan.touchedProducts)
}

export function toCatalogJob(row: JobRow) {
  const passes = row.kind === 'import' && !row.dryRun ? 2 : 1
  const total = (row.sizeBytes ?? 0) * passes
  const percentage = row.status === 'completed' ? 100 : total > 0 ? Math.min(99, Math.floor((row.bytesDone * 100) / total)) : 0
  return {
    id: row.id, kind: row.kind, subject: row.subject, status: row.status, mode: row.mode as 'all' | 'good-rows', dryRun: row.dryRun, percentage,
    rowsRead: row.rowsRead, created: row.created, updated: row.updated, unchanged: row.unchanged, failed: row.failed,
    errors: row.errors, errorsTruncated: row.errors.length >= MAX_REPORTED_ERRORS, lastError: row.lastError,
    downloadUrl: row.kind === 'export' && row.status === 'completed' && row.storageKey ? `/exports/${row.id}/file` : null,
    createdAt: row.createdAt.toISOString(), startedAt: row.startedAt?.toISOString() ?? null, completedAt: row.completedAt?.toISOString() ?? null,
  }
}

/** Thrown inside a job when its row says it was cancelled (or taken by another worker). */
class Stopped extends Error {}

export function createCatalogIoService(deps: CatalogIoDeps) {
  const { db, storage, currency, settings } = deps

  async function requireJob(id: string, kind: 'import' | 'export') {
    const [row] = await db.select().from(catalogJobs).where(and(eq(catalogJobs.id, id), eq(catalogJobs.kind, kind)))
    if (!row) throw new NotFound(kind, id)
    return row
  }

  /** Saves progress and renews the lease; stops the job when it is no longer running (cancelled). */
  async function progress(id: string, set: Partial<typeof catalogJobs.$inferInsert>) {
    const [row] = await db.update(catalogJobs).set({ ...set, lockedUntil: sql`now() + make_interval(secs => ${settings.leaseSeconds})` })
      .where(and(eq(catalogJobs.id, id), eq(catalogJobs.status, 'running'))).returning({ id: catalogJobs.id })
    if (!row) throw new Stopped()
  }

  async function finish(id: string, set: Partial<typeof catalogJobs.$inferInsert>) {
    await db.update(catalogJobs).set({ ...set, lockedUntil: null, completedAt: new Date() }).where(and(eq(catalogJobs.id, id), eq(catalogJobs.status, 'running')))
  }

  async function lookups(header: Header): Promise<{ lookups: Lookups; problems: RowError[] }> {
    const cats = await db.select({ id: categories.id, slug: categories.slug, parentId: categories.parentId }).from(categories)
    const locations = await db.select({ id: stockLocations.id, name: stockLocations.name }).from(stockLocations)
    const byName = new Map(locations.map((l) => [l.name.toLowerCase(), l.id]))
    const locationOf = new Map<string, string>()
    const problems: RowError[] = []
    for (const s of header.stocks) {
      const id = byName.get(s.location.toLowerCase())
      if (id) locationOf.set(s.column, id)
      else problems.push({ line: 1, column: s.column, reason: `no stock location named ${s.location}` })
    }
    return {
      problems,
      lookups: {
        header, locationOf,
        categories: new Map(cats.map((c) => [c.slug, { id: c.id, parentId: c.parentId }])),
        categoryById: new Map(cats.map((c) => [c.id, { slug: c.slug, parentId: c.parentId }])),
      },
    }
  }

  /** The file's records after the header, with the header read and checked. */
  async function open(storageKey: string) {
    const { firstLine, stream } = await peekFirstLine(storage.read(storageKey))
    return { delimiter: sniffDelimiter(firstLine), stream }
  }

  async function runImport(job: JobRow) {
    const key = job.storageKey!
    const size = job.sizeBytes ?? 0
    const columnName = (c: string | null, lk: Lookups) => {
      // Stock errors name the column as the file does.
      if (c?.startsWith('stock_')) for (const [column, id] of lk.locationOf) if (c === `stock_${id}`) return column
      return c
    }

    // Pass 1: validate and classify.
    const { delimiter, stream } = await open(key)
    let bytes = 0
    const records = readRecords(stream, delimiter, (b) => { bytes = b })
    const first = await records.next()
    if (first.done) { await finish(job.id, { status: 'failed', lastError: 'the file is empty: it needs a header row' }); return }
    const { header, problems } = readHeader(first.value.cells)
    if (!problems.length && !header.prices.some((p) => p.currency === currency) && header.fixed.sku !== undefined) {
      // Without it no new variant can be priced; existing ones could, but a file that cannot create is refused whole.
      problems.push({ column: `price_${currency}`, reason: `required column is missing (${currency} is the store currency)` })
    }
    // The "was" price sits beside the variant's store-currency price (compareAtPriceMinor).
    if (header.compareAt && header.compareAt.currency !== currency) problems.push({ column: header.compareAt.column, reason: `the compare-at price is in ${currency}, the store currency` })
    const found = problems.length ? { lookups: undefined, problems: [] as RowError[] } : await lookups(header)
    const headerErrors = [...problems.map((p) => ({ line: 1, column: p.column, reason: p.reason })), ...found.problems]
    if (headerErrors.length || !found.lookups) {
      stream.destroy()
      await finish(job.id, { status: 'failed', errors: headerErrors, lastError: 'the header is not one this import reads' })
      return
    }
    const lk = found.lookups
    const errors: RowError[] = []
    let failed = 0
    let rowsRead = 0
    const counts = { created: 0, updated: 0, unchanged: 0 }
    // What earlier batches saw lives in catalog_import_keys (memory holds one batch); a re-run starts it afresh.
    await db.delete(catalogImportKeys).where(eq(catalogImportKeys.jobId, job.id))
    // Bad lines of the current window, written to the table when the window is flushed.
    let badLines = new Set<number>()
    const report = (rowErrors: RowError[]) => {
      if (!rowErrors.length) return
      const line = rowErrors[0]!.line
      if (!badLines.has(line)) { badLines.add(line); failed++ }
      for (const e of rowErrors) if (errors.length < MAX_REPORTED_ERRORS) errors.push({ ...e, column: columnName(e.column, lk) })
    }
    let batch: Row[] = []
    // The lookups by key below are fast only when the planner knows the table is large: statistics
    // taken while it was small led it to scan every key of the job per batch (4 s a batch at
    // 400,000 keys, measured). Analysed each time the job's keys double, from 4,000.
    let keysWritten = 0
    let analyseAt = 4000
    const validateBatch = async () => {
      // Across rows: a SKU seen on an earlier line, a handle whose product fields differ from its first line.
      const skus = [...new Set(batch.map((r) => r.sku))]
      const handles = [...new Set(batch.map((r) => r.handle))]
      const earlier = batch.length ? await db.select().from(catalogImportKeys).where(and(eq(catalogImportKeys.jobId, job.id), or(
        and(eq(catalogImportKeys.kind, 'sku'), anyText(catalogImportKeys.key, skus)),
        and(eq(catalogImportKeys.kind, 'handle'), anyText(catalogImportKeys.key, handles)),
      ))) : []
      const skuLine = new Map(earlier.filter((k) => k.kind === 'sku').map((k) => [k.key, k.line]))
      const productOf = new Map(earlier.filter((k) => k.kind === 'handle').map((k) => [k.key, { line: k.line, key: k.fields ?? '', planned: k.planned }]))
      const planned = new Set([...productOf].filter(([, p]) => p.planned).map(([handle]) => handle))
      const newSkus: { sku: string; line: number }[] = []
      const newHandles = new Map<string, { line: number; fields: string }>()
      const candidates: Row[] = []
      for (const row of batch) {
        const seenSku = skuLine.get(row.sku)
        if (seenSku !== undefined) { report([{ line: row.line, column: 'sku', reason: `the SKU is on line ${seenSku} already` }]); continue }
        skuLine.set(row.sku, row.line)
        newSkus.push({ sku: row.sku, line: row.line })
        const fields = JSON.stringify([row.name, row.description, row.status, row.categoryId, row.attributes && Object.entries(row.attributes).sort(), row.imageIds])
        const seenProduct = productOf.get(row.handle)
        if (seenProduct && seenProduct.key !== fields) { report([{ line: row.line, column: 'handle', reason: `the product's name, description, status, category, attributes or images differ from line ${seenProduct.line}` }]); continue }
        if (!seenProduct) { productOf.set(row.handle, { line: row.line, key: fields, planned: false }); newHandles.set(row.handle, { line: row.line, fields }) }
        candidates.push(row)
      }
      const plan = await planBatch(db, candidates, currency, planned)
      for (const e of plan.errors) report([e])
      for (const [, outcome] of plan.outcomes) counts[outcome]++
      const nowPlanned = new Set(candidates.filter((r) => !badLines.has(r.line)).map((r) => r.handle))
      const keyRows = [
        ...newSkus.map((k) => ({ jobId: job.id, kind: 'sku' as const, key: k.sku, line: k.line })),
        ...[...newHandles].map(([handle, h]) => ({ jobId: job.id, kind: 'handle' as const, key: handle, line: h.line, fields: h.fields, planned: nowPlanned.has(handle) })),
        ...[...badLines].map((line) => ({ jobId: job.id, kind: 'bad' as const, key: String(line), line })),
      ]
      if (keyRows.length) {
        await db.execute(sql`insert into ${catalogImportKeys} (job_id, kind, key, line, fields, planned)
          select job_id, kind, key, line, fields, coalesce(planned, false) from ${recordset(keyRows.map((k) => ({ job_id: k.jobId, kind: k.kind, key: k.key, line: k.line, fields: 'fields' in k ? k.fields : null, planned: 'planned' in k ? k.planned : false })), 'job_id uuid, kind text, key text, line int, fields text, planned boolean')}
          on conflict do nothing`)
      }
      keysWritten += keyRows.length
      if (keysWritten >= analyseAt) { analyseAt *= 2; await db.execute(sql`analyze ${catalogImportKeys}`) }
      const plannedNow = [...nowPlanned].filter((h) => !newHandles.has(h) && !planned.has(h))
      if (plannedNow.length) {
        await db.update(catalogImportKeys).set({ planned: true })
          .where(and(eq(catalogImportKeys.jobId, job.id), eq(catalogImportKeys.kind, 'handle'), anyText(catalogImportKeys.key, plannedNow)))
      }
      batch = []
      badLines = new Set()
      await progress(job.id, { rowsRead, failed, bytesDone: bytes, ...counts, errors })
    }
    for await (const record of records) {
      rowsRead++
      const { row, errors: rowErrors } = readRow(record.line, record.cells, lk)
      if (!row) report(rowErrors)
      else batch.push(row)
      if (batch.length + badLines.size >= BATCH) await validateBatch()
    }
    await validateBatch()

    if (job.dryRun || (failed > 0 && job.mode === 'all') || rowsRead === failed) {
      const refused = failed > 0 && job.mode === 'all'
      await db.delete(catalogImportKeys).where(eq(catalogImportKeys.jobId, job.id))
      await finish(job.id, {
        status: refused ? 'failed' : 'completed', rowsRead, failed, errors, bytesDone: size, ...counts,
        lastError: refused ? `${failed} bad rows: nothing was imported (send mode=good-rows to import the others)` : null,
      })
      return
    }

    // Pass 2: write, batch by batch, the good rows only.
    const counted = { created: 0, updated: 0, unchanged: 0 }
    let changedAny = false
    const second = await open(key)
    const rows2 = readRecords(second.stream, second.delimiter, (b) => { bytes = size + b })
    await rows2.next()
    let writeBatch: Row[] = []
    const writeOne = async () => {
      if (!writeBatch.length) return
      // The bad lines of the batch's range, found by the validation pass, are skipped.
      const bad = new Set((await db.select({ line: catalogImportKeys.line }).from(catalogImportKeys).where(and(eq(catalogImportKeys.jobId, job.id), eq(catalogImportKeys.kind, 'bad'),
        gte(catalogImportKeys.line, writeBatch[0]!.line), lte(catalogImportKeys.line, writeBatch[writeBatch.length - 1]!.line)))).map((b) => b.line))
      const rows = writeBatch.filter((r) => !bad.has(r.line))
      writeBatch = []
      if (!rows.length) return
      await db.transaction(async (tx) => {
        const plan = await planBatch(tx, rows, currency)
        if (plan.errors.length) throw new Conflict(`line ${plan.errors[0]!.line}: ${plan.errors[0]!.reason} (the catalog changed during the import)`)
        for (const [, outcome] of plan.outcomes) { counted[outcome]++; if (outcome !== 'unchanged') changedAny = true }
        if (plan.newProducts.size || plan.productUpdates.size) changedAny = true
        await applyPlan(tx, plan, currency, job.id, job.createdBy)
      })
      await progress(job.id, { bytesDone: bytes, ...counted })
    }
    for await (const record of rows2) {
      const { row } = readRow(record.line, record.cells, lk)
      if (!row) continue
      writeBatch.push(row)
      if (writeBatch.length >= BATCH) await writeOne()
    }
    await writeOne()
    // One invalidation for the whole import; also after a re-run of a job that may have died
    // between its last commit and this line.
    if (changedAny || job.attempts > 1) await deps.cache.invalidate(CATALOG_CACHE)
    await db.delete(catalogImportKeys).where(eq(catalogImportKeys.jobId, job.id))
    await finish(job.id, { status: 'completed', bytesDone: 2 * size, ...counted })
  }

  async function runExport(job: JobRow) {
    const filters: SQL[] = []
    if (job.filters.status) filters.push(eq(products.status, job.filters.status as Status))
    if (job.filters.category) filters.push(sql`${products.categoryId} in ${categoryAndDescendants(job.filters.category)}`)
    const where = filters.length ? and(...filters) : undefined
    const [{ total }] = await db.select({ total: sql<number>`count(*)::int` }).from(products).where(where) as [{ total: number }]
    const currencies = (await db.selectDistinct({ currency: variantPrices.currency }).from(variantPrices)).map((r) => r.currency)
      .sort((a, b) => (a === currency ? -1 : b === currency ? 1 : a < b ? -1 : 1))
    if (!currencies.includes(currency)) currencies.unshift(currency)
    const locations = await db.select({ id: stockLocations.id, name: stockLocations.name }).from(stockLocations).orderBy(asc(stockLocations.name))
    const optionNames = (await db.execute<{ k: string }>(sql`select distinct jsonb_object_keys(${productVariants.options}) as k from ${productVariants} order by k`)).rows.map((r) => r.k)
    const cats = await db.select({ id: categories.id, slug: categories.slug, parentId: categories.parentId }).from(categories)
    const lk = { categoryById: new Map(cats.map((c) => [c.id, { slug: c.slug, parentId: c.parentId }])) } as Lookups
    const attributeNames = (await db.execute<{ k: string }>(sql`select distinct jsonb_object_keys(${products.attributes}) as k from ${products} order by k`)).rows.map((r) => r.k)
    const columns = [
      ...FIXED_COLUMNS, ...optionNames.map((o) => `option_${o}`), ...currencies.map((c) => `price_${c}`), ...locations.map((l) => `stock_${l.name}`),
      ...LATER_COLUMNS, `compare_at_${currency}`, ...attributeNames.map((a) => `attribute_${a}`),
    ]

    await writeCsv(job, columns, async (write) => {
      let rows = 0
      let done = 0
      let after: string | null = null
      for (;;) {
        const page = await db.select({ id: products.id, slug: products.slug, name: products.name, description: products.description, status: products.status, categoryId: products.categoryId, attributes: products.attributes, imageIds: products.imageIds })
          .from(products).where(and(where, after === null ? undefined : gt(products.slug, after))).orderBy(asc(products.slug)).limit(BATCH)
        if (!page.length) break
        after = page[page.length - 1]!.slug
        const ids = page.map((p) => p.id)
        const variants = await db.select().from(productVariants).where(inArray(productVariants.productId, ids))
          .orderBy(asc(productVariants.position), asc(productVariants.createdAt), asc(productVariants.id))
        const vIds = variants.map((v) => v.id)
        const prices = vIds.length ? await db.select().from(variantPrices).where(inArray(variantPrices.variantId, vIds)) : []
        const priceOf = new Map(prices.map((p) => [`${p.variantId}:${p.currency}`, p.amountMinor]))
        const levels = vIds.length ? await db.select().from(stockLevels).where(inArray(stockLevels.variantId, vIds)) : []
        const levelOf = new Map(levels.map((l) => [`${l.variantId}:${l.locationId}`, l.onHand]))
        for (const p of page) {
          for (const v of variants.filter((x) => x.productId === p.id)) {
            await write([
              p.slug, p.name, p.description, p.status, categoryPath(p.categoryId, lk), v.sku, v.weightGrams === null ? '' : String(v.weightGrams),
              ...optionNames.map((o) => v.options[o] ?? ''),
              ...currencies.map((c) => { const m = priceOf.get(`${v.id}:${c}`); return m === undefined ? '' : formatMoney(m, c) }),
              ...locations.map((l) => { const n = levelOf.get(`${v.id}:${l.id}`); return n === undefined ? '' : String(n) }),
              String(v.isActive), p.imageIds.join(IMAGE_SEPARATOR), v.compareAtPriceMinor === null ? '' : formatMoney(v.compareAtPriceMinor, currency),
              ...attributeNames.map((a) => p.attributes[a] ?? ''),
            ])
            rows++
          }
        }
        done += page.length
        await progress(job.id, { rowsRead: rows, bytesDone: done, sizeBytes: Math.max(total, 1) })
      }
      return rows
    })
  }

  /** Orders for accounting, one row per order line (orders-export.ts). */
  async function runOrderExport(job: JobRow) {
    const total = await countOrders(db, job.filters)
    await writeCsv(job, [...ORDER_COLUMNS], async (write) => {
      let rows = 0
      let done = 0
      for await (const page of orderRecords(db, job.filters, BATCH)) {
        for (const record of page.records) await write(record)
        rows += page.records.length
        done += page.orders
        await progress(job.id, { rowsRead: rows, bytesDone: done, sizeBytes: Math.max(total, 1) })
      }
      return rows
    })
  }

  /**
   * Streams an export's records into its file in the private storage (a BOM, then the CSV with
   * every cell guarded against formula injection) and completes the job; on failure the partial
   * file is removed. `produce` writes the records (waiting on back-pressure) and returns how many.
   */
  async function writeCsv(job: JobRow, columns: string[], produce: (write: (record: string[]) => Promise<void>) => Promise<number>) {
    const csv = stringify({ header: true, columns, cast: { string: safeCell } })
    const out = new PassThrough()
    out.write('\ufeff') // Excel reads UTF-8 only with a BOM; the import takes it or not.
    csv.pipe(out)
    const key = `${job.id}.csv`
    await storage.remove(key)
    const writing = storage.write(key, out)
    writing.catch(() => {})
    const write = async (record: string[]) => { if (!csv.write(record)) await new Promise((r) => csv.once('drain', r)) }
    try {
      const rows = await produce(write)
      csv.end()
      const size = await writing
      await finish(job.id, { status: 'completed', storageKey: key, rowsRead: rows, bytesDone: size, sizeBytes: size })
    } catch (err) {
      csv.destroy()
      out.destroy()
      await writing.catch(() => {})
      await storage.remove(key)
      throw err
    }
  }

  async function run(job: JobRow) {
    try {
      if (job.attempts > MAX_ATTEMPTS) {
        await finish(job.id, { status: 'failed', lastError: job.lastError ?? 'gave up after retries' })
        return 'failed'
      }
      await db.update(catalogJobs).set({ status: 'running', startedAt: job.startedAt ?? new Date() }).where(and(eq(catalogJobs.id, job.id), inArray(catalogJobs.status, ['pending', 'running'])))
      if (job.kind === 'import') await runImport({ ...job, status: 'running' })
      else if (job.subject === 'orders') await runOrderExport({ ...job, status: 'running' })
      else await runExport({ ...job, status: 'running' })
      return 'done'
    } catch (err) {
      if (err instanceof Stopped) return 'stopped'
      // The lease passes and a later run tries again (MAX_ATTEMPTS in all).
      const parseError = (err as { code?: string }).code?.startsWith('CSV_')
      const message = failureText(err)
      if (parseError || job.attempts >= MAX_ATTEMPTS) await finish(job.id, { status: 'failed', lastError: parseError ? `the file is not valid CSV: ${message}` : message })
      else await db.update(catalogJobs).set({ lastError: message }).where(eq(catalogJobs.id, job.id))
      return 'failed'
    }
  }

  async function queueExport(subject: 'products' | 'orders', filters: ExportFilters, actorId: string) {
    const [row] = await db.insert(catalogJobs).values({ kind: 'export', subject, filters, createdBy: actorId }).returning()
    await deps.enqueue([row!.id]).catch(() => {})
    return toCatalogJob(row!)
  }

  const ready = (extra?: SQL): SQL => and(inArray(catalogJobs.status, ['pending', 'running']), extra)!

  return {
    /**
     * Stores an uploaded CSV (streamed to disk, at most maxBytes: 413 beyond) and queues its import.
     * Nothing is read here: the worker reads and reports.
     */
    async startImport(source: Readable, input: { mode: 'all' | 'good-rows'; dryRun: boolean; actorId: string }) {
      const id = randomUUID()
      const key = `${id}.csv`
      // Counted as it streams to disk; past the limit the rest is drained unread, and the answer is 413.
      const it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]()
      async function* limited() {
        let seen = 0
        for (;;) {
          const { value, done } = await it.next()
          if (done) return
          seen += value.length
          if (seen > settings.maxBytes) { source.resume(); throw new ContentTooLarge(`A catalog import is at most ${settings.maxBytes} bytes`) }
          yield value
        }
      }
      let size: number
      try {
        size = await storage.write(key, Readable.from(limited()))
      } catch (err) {
        await storage.remove(key)
        throw err
      }
      if (size === 0) { await storage.remove(key); throw new BadRequest('The file is empty', 'empty-file') }
      const [row] = await db.insert(catalogJobs).values({ id, kind: 'import', mode: input.mode, dryRun: input.dryRun, storageKey: key, sizeBytes: size, createdBy: input.actorId }).returning()
      await deps.enqueue([id]).catch(() => {}) // the sweep queues it when Redis does not take it now
      return toCatalogJob(row!)
    },

    async startExport(filters: { status?: Status; category?: string }, actorId: string) {
      return queueExport('products', filters, actorId)
    },

    /** Orders created in [from, to) (at most 366 days), optionally of one status and currency, for accounting. */
    async startOrderExport(filters: { from: string; to: string; status?: string; currency?: string }, actorId: string) {
      checkRange(filters)
      if (filters.currency) requireCurrency(filters.currency)
      // Stored as instants, so the job exports the range asked whatever the zone it was written in.
      return queueExport('orders', { ...filters, from: new Date(filters.from).toISOString(), to: new Date(filters.to).toISOString() }, actorId)
    },

    async get(id: string, kind: 'import' | 'export') { return toCatalogJob(await requireJob(id, kind)) },

    /** Cancels a job that has not ended; the worker stops after its current batch (batches already written stay). */
    async cancel(id: string, kind: 'import' | 'export') {
      const [row] = await db.update(catalogJobs).set({ status: 'cancelled', completedAt: new Date(), lockedUntil: null })
        .where(and(eq(catalogJobs.id, id), eq(catalogJobs.kind, kind), inArray(catalogJobs.status, ['pending', 'running']))).returning()
      if (row) return toCatalogJob(row)
      const existing = await requireJob(id, kind)
      throw new Conflict(`The job is ${existing.status} already`, 'job-ended')
    },

    /**
     * A completed export's file. Object storage answers the download itself, through a presigned
     * link (the caller has passed the admin check); on local disk the API streams it.
     */
    async exportFile(id: string) {
      const row = await requireJob(id, 'export')
      if (row.status !== 'completed' || !row.storageKey) throw new NotFound('export file', id)
      const key = row.storageKey
      const filename = `${row.subject}-${row.createdAt.toISOString().slice(0, 10)}.csv`
      const signedUrl = await storage.signedUrl(key, { expiresInSeconds: settings.signedUrlTtlSeconds, filename, contentType: 'text/csv; charset=utf-8' })
      return { row, filename, signedUrl, stream: () => storage.read(key) }
    },

    /** The queue's run for one job id: claims it under a lease (nobody else runs it meanwhile) and runs it. */
    async runJob(id: string) {
      const job = await claimLeased(db, catalogJobs, ready(eq(catalogJobs.id, id)), settings.leaseSeconds)
      return job ? run(job) : 'not-due'
    },

    /** Runs due jobs one after the other (tests, and the embedded mode's safety net). */
    async runDue(limit = 10) {
      const results: string[] = []
      for (let i = 0; i < limit; i++) {
        const job = await claimLeased(db, catalogJobs, ready(), settings.leaseSeconds)
        if (!job) break
        results.push(await run(job))
      }
      return results
    },

    /**
     * Retention (hourly): the files of jobs that ended more than fileRetentionDays ago are deleted
     * (uploads hold the shop's data, order exports its customers'). The row lets go of its key
     * first, then the file goes: a crash in between leaves a file no row refers to, which the
     * second step deletes, as it does any file left by an upload whose row was never written.
     */
    async purgeFiles() {
      const cutoff = sql`now() - make_interval(days => ${settings.fileRetentionDays})`
      let files = 0
      for (;;) {
        const { rows: ended } = await db.execute<{ key: string }>(sql`
          with due as (
            select id, storage_key from catalog_jobs
            where status in ('completed', 'failed', 'cancelled') and storage_key is not null and completed_at < ${cutoff}
            limit 500 for update skip locked
          )
          update catalog_jobs j set storage_key = null from due where j.id = due.id returning due.storage_key as key`)
        for (const { key } of ended) if (key) { await storage.remove(key); files++ }
        if (ended.length < 500) break
      }
      const old = await storage.listOlderThan(new Date(Date.now() - settings.fileRetentionDays * 86_400_000))
      let orphans = 0
      for (let i = 0; i < old.length; i += 500) {
        const keys = old.slice(i, i + 500)
        const kept = new Set((await db.select({ key: catalogJobs.storageKey }).from(catalogJobs).where(inArray(catalogJobs.storageKey, keys))).map((r) => r.key))
        for (const key of keys) if (!kept.has(key)) { await storage.remove(key); orphans++ }
      }
      // The validation pass's keys of jobs that ended without cleaning up (cancelled, failed after retries).
      await db.execute(sql`delete from catalog_import_keys k using catalog_jobs j where j.id = k.job_id and j.status not in ('pending', 'running')`)
      return { files, orphans }
    },

    /** Jobs waiting, or whose worker died (lease passed): queued again (their job in the queue may be lost). */
    async sweep() {
      const due = await db.select({ id: catalogJobs.id }).from(catalogJobs)
        .where(ready(or(sql`${catalogJobs.lockedUntil} is null`, sql`${catalogJobs.lockedUntil} < now()`))).limit(100)
      await deps.enqueue(due.map((d) => d.id))
      return { queued: due.length }
    },
  }
}
export type CatalogIoService = ReturnType<typeof createCatalogIoService>
