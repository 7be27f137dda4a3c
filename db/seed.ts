// A deterministic demo catalog: the same flags always give the same categories, products,
// variants, prices and stock. Used by `npm run db:seed`, by the embedded `npm start` on an empty
// database, and by tests and benchmarks.
//   npm run db:seed -- [--categories 50] [--products 1000] [--variants 3] [--seed 42] [--reset]
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { Faker, en } from '@faker-js/faker'
import { sql, type SQL } from 'drizzle-orm'
import { categories, productVariants, products, shippingOptions, shippingZones, taxRates } from './schema/index.js'
import { openDb, type Db, type Tx } from './client.js'
import { loadConfig } from '../src/config.js'
import { bulkRestock } from '../src/inventory.js'

export interface SeedOptions { categories: number; products: number; variantsPerProduct: number; seed: number }
export const DEFAULT_SEED: SeedOptions = { categories: 50, products: 1000, variantsPerProduct: 3, seed: 42 }

const SIZES = ['XS', 'S', 'M', 'L', 'XL', 'XXL']
const BATCH = 500
const slugify = (text: string) => text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')

export async function catalogIsEmpty(db: Db) {
  const { rows } = await db.execute<{ empty: boolean }>(sql`select not exists (select 1 from ${products}) and not exists (select 1 from ${categories}) as empty`)
  return rows[0]!.empty
}

/**
 * Inserts the demo catalog into an empty catalog; returns what it made. Prices are in `currency`
 * (STORE_CURRENCY), by default the default region's.
 */
export async function seedCatalog(db: Db, options: SeedOptions = DEFAULT_SEED, currency?: string) {
  const faker = new Faker({ locale: [en] })
  faker.seed(options.seed)

  return db.transaction(async (tx) => {
    // Roots first (a fifth of the total, at least one), then children under earlier categories.
    const rootCount = Math.max(1, Math.min(options.categories, Math.ceil(options.categories / 5)))
    const categoryIds: string[] = []
    for (let i = 0; i < options.categories; i++) {
      const name = `${faker.commerce.department()} ${faker.word.adjective()}`.replace(/^\w/, (c) => c.toUpperCase())
      const parentId = i < rootCount ? null : categoryIds[faker.number.int({ min: 0, max: Math.min(categoryIds.length, rootCount * 3) - 1 })]!
      const [row] = await tx.insert(categories).values({ name, slug: `${slugify(name)}-${i + 1}`, parentId, position: i }).returning({ id: categories.id })
      categoryIds.push(row!.id)
    }

    let variantCount = 0
    for (let start = 0; start < options.products; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, options.products - start) }, (_, k) => {
        const n = start + k + 1
        const name = faker.commerce.productName()
        const roll = faker.number.int({ min: 1, max: 100 })
        return {
          name,
          slug: `${slugify(name)}-${n}`,
          description: faker.commerce.productDescription(),
          status: roll <= 90 ? 'active' as const : roll <= 95 ? 'draft' as const : 'archived' as const,
          categoryId: categoryIds.length ? faker.helpers.arrayElement(categoryIds) : null,
          attributes: { material: faker.commerce.productMaterial(), colour: faker.color.human() },
          // Spread over the last year, so "newest" has a meaningful order.
          createdAt: new Date(Date.UTC(2026, 0, 1) + n * 60_000),
        }
      })
      const rows = await tx.insert(products).values(batch).returning({ id: products.id, slug: products.slug })
      const variants = rows.flatMap((product, k) => {
        const base = faker.number.int({ min: 5, max: 500 }) * 100 - 1
        return Array.from({ length: options.variantsPerProduct }, (_, j) => ({
          productId: product.id,
          sku: `SKU-${String(start + k + 1).padStart(6, '0')}-${j + 1}`,
          options: { size: SIZES[j % SIZES.length]! },
          priceMinor: base + j * 200,
          compareAtPriceMinor: faker.datatype.boolean({ probability: 0.2 }) ? base + j * 200 + 1000 : null,
          stock: faker.datatype.boolean({ probability: 0.85 }) ? faker.number.int({ min: 1, max: 100 }) : 0,
          // Not drawn from faker, so the rest of the catalog stays what it was before weights.
          weightGrams: 100 + ((start + k + 1) * 37 + j * 113) % 2900,
          position: j,
        }))
      })
      if (variants.length) {
        const made = await tx.insert(productVariants).values(variants.map(({ stock: _stock, ...v }) => v)).returning({ id: productVariants.id })
        // The stock is the inventory module's to write: levels at the default location, with their movements.
        await bulkRestock(tx, made.map((m, i) => ({ id: m.id, stock: variants[i]!.stock })), 'seed')
      }
      variantCount += variants.length
    }

    // Aggregates, in SQL, as the product service would keep them.
    await tx.execute(sql`
      update ${products} p set min_price_minor = r.min_price, max_price_minor = r.max_price, in_stock = r.in_stock, has_active_variant = r.has_active_variant
      from (select product_id, min(price_minor) min_price, max(price_minor) max_price, bool_or(is_active and stock > 0) in_stock, bool_or(is_active) has_active_variant
            from ${productVariants} group by product_id) r
      where r.product_id = p.id`)
    // Every price is the store currency's (variant_prices), with each product's range in it.
    const inCurrency = currency ?? sql`coalesce((select currency from regions where is_default), 'EUR')`
    await tx.execute(sql`
      insert into variant_prices (variant_id, currency, amount_minor) select id, ${inCurrency}, price_minor from ${productVariants}
      on conflict (variant_id, currency) do update set amount_minor = excluded.amount_minor`)
    await tx.execute(sql`
      insert into product_price_ranges (product_id, currency, min_minor, max_minor) select id, ${inCurrency}, min_price_minor, max_price_minor from ${products}
      on conflict (product_id, currency) do update set min_minor = excluded.min_minor, max_minor = excluded.max_minor`)
    const shipping = await seedShippingAndTax(tx, inCurrency)
    return { categories: categoryIds.length, products: options.products, variants: variantCount, ...shipping }
  })
}

/**
 * Demo shipping zones and tax rates, when the shop has none: Germany (Standard, or Express by
 * weight: the checkout must choose), the EU, the UK and Switzerland, and the rest of the world by
 * order value; VAT for Germany and a few EU countries, none elsewhere. Priced in the catalog's currency.
 */
async function seedShippingAndTax(tx: Tx, currency: string | SQL) {
  const made = { shippingZones: 0, taxRates: 0 }
  if (!(await tx.select({ id: shippingZones.id }).from(shippingZones).limit(1)).length) {
    const zones: { name: string; countries: string[]; options: Omit<typeof shippingOptions.$inferInsert, 'zoneId' | 'currency'>[] }[] = [
      { name: 'Germany', countries: ['DE'], options: [
        { name: 'Standard', priceMinor: 499, freeOverMinor: 5000 },
        { name: 'Express', priceMinor: 0, bandBasis: 'weight', bands: [{ upTo: 2000, priceMinor: 990 }, { upTo: 10_000, priceMinor: 1990 }], position: 1 },
      ] },
      { name: 'EU', countries: ['AT', 'BE', 'DK', 'ES', 'FI', 'FR', 'IE', 'IT', 'LU', 'NL', 'PL', 'PT', 'SE'], options: [{ name: 'EU Standard', priceMinor: 899, freeOverMinor: 10_000 }] },
      { name: 'UK and Switzerland', countries: ['GB', 'CH'], options: [{ name: 'International', priceMinor: 1499 }] },
      { name: 'Rest of the world', countries: [], options: [{ name: 'Worldwide', priceMinor: 0, bandBasis: 'subtotal', bands: [{ upTo: 10_000, priceMinor: 2499 }, { upTo: 100_000, priceMinor: 3999 }] }] },
    ]
    for (const zone of zones) {
      const [row] = await tx.insert(shippingZones).values({ name: zone.name, countries: zone.countries }).returning({ id: shippingZones.id })
      await tx.insert(shippingOptions).values(zone.options.map((o) => ({ ...o, currency, zoneId: row!.id })))
      made.shippingZones++
    }
  }
  if (!(await tx.select({ id: taxRates.id }).from(taxRates).limit(1)).length) {
    const rates = [
      { name: 'No tax', country: null, rateBps: 0 }, { name: 'DE VAT', country: 'DE', rateBps: 1900 }, { name: 'AT VAT', country: 'AT', rateBps: 2000 },
      { name: 'FR VAT', country: 'FR', rateBps: 2000 }, { name: 'IT VAT', country: 'IT', rateBps: 2200 }, { name: 'NL VAT', country: 'NL', rateBps: 2100 },
      { name: 'ES VAT', country: 'ES', rateBps: 2100 }, { name: 'ES Canary Islands IGIC', country: 'ES', region: 'CANARIAS', rateBps: 700 },
    ]
    await tx.insert(taxRates).values(rates)
    made.taxRates = rates.length
  }
  return made
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      categories: { type: 'string', default: String(DEFAULT_SEED.categories) },
      products: { type: 'string', default: String(DEFAULT_SEED.products) },
      variants: { type: 'string', default: String(DEFAULT_SEED.variantsPerProduct) },
      seed: { type: 'string', default: String(DEFAULT_SEED.seed) },
      reset: { type: 'boolean', default: false },
    },
  })
  const options = {
    categories: Number(values.categories), products: Number(values.products),
    variantsPerProduct: Number(values.variants), seed: Number(values.seed),
  }
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isInteger(value) || value < 0 || value > 1_000_000) {
      console.error(`--${name} must be a whole number from 0 to 1000000`)
      process.exit(2)
    }
  }
  if (options.variantsPerProduct < 1 && options.products > 0) {
    console.error('--variants must be at least 1: every product has a variant')
    process.exit(2)
  }
  // Seeding large catalogs runs long statements: no API statement timeout here.
  const config = loadConfig()
  const handle = await openDb({ ...config.postgres, statementTimeoutMs: undefined })
  try {
    await handle.migrate()
    if (!(await catalogIsEmpty(handle.db))) {
      if (!values.reset) {
        console.error('The catalog is not empty; pass --reset to delete it first')
        process.exit(1)
      }
      await handle.db.execute(sql`truncate ${productVariants}, ${products}, ${categories} cascade`)
    }
    const started = Date.now()
    const made = await seedCatalog(handle.db, options, config.currency)
    console.log(`seeded ${made.categories} categories, ${made.products} products, ${made.variants} variants, ${made.shippingZones} shipping zones, ${made.taxRates} tax rates into ${handle.kind} (${handle.location}) in ${Date.now() - started} ms`)
  } finally {
    await handle.close()
  }
}
