import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, pgEnum, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'
import { productVariants, products } from './catalog.js'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

/**
 * A region: countries sold to in one currency, with its tax mode. Carts belong to one. The
 * default region (the one 0011 made from STORE_CURRENCY) serves a cart that named no country.
 */
export const regions = pgTable('regions', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  currency: text('currency').notNull(),
  pricesIncludeTax: boolean('prices_include_tax').notNull().default(false),
  isDefault: boolean('is_default').notNull().default(false),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  uniqueIndex('regions_name_key').on(t.name),
  uniqueIndex('regions_one_default').on(t.isDefault).where(sql`is_default`),
  check('regions_currency_check', sql`${t.currency} ~ '^[A-Z]{3}$'`),
])

/** A country (ISO 3166-1 alpha-2) belongs to at most one region: the primary key says so. */
export const regionCountries = pgTable('region_countries', {
  country: text('country').primaryKey(),
  regionId: uuid('region_id').notNull().references(() => regions.id, { onDelete: 'cascade' }),
}, (t) => [
  index('region_countries_region_idx').on(t.regionId),
  check('region_countries_country_check', sql`${t.country} ~ '^[A-Z]{2}$'`),
])

/** A variant's base price in one currency, in that currency's minor units. No row: not sold in it. */
export const variantPrices = pgTable('variant_prices', {
  variantId: uuid('variant_id').notNull().references(() => productVariants.id, { onDelete: 'cascade' }),
  currency: text('currency').notNull(),
  amountMinor: integer('amount_minor').notNull(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  primaryKey({ columns: [t.variantId, t.currency] }),
  check('variant_prices_amount_check', sql`${t.amountMinor} >= 0`),
])

/**
 * A product's base price range in each currency it is sold in (its active variants', else all),
 * kept with variant_prices by refreshProductAggregates: what listings in that currency filter and sort by.
 */
export const productPriceRanges = pgTable('product_price_ranges', {
  productId: uuid('product_id').notNull().references(() => products.id, { onDelete: 'cascade' }),
  currency: text('currency').notNull(),
  minMinor: integer('min_minor').notNull(),
  maxMinor: integer('max_minor').notNull(),
}, (t) => [
  primaryKey({ columns: [t.productId, t.currency] }),
  index('product_price_ranges_listing_idx').on(t.currency, t.minMinor, t.productId),
])

export const customerGroups = pgTable('customer_groups', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
}, (t) => [uniqueIndex('customer_groups_name_key').on(t.name)])

export const customerGroupMembers = pgTable('customer_group_members', {
  groupId: uuid('group_id').notNull().references(() => customerGroups.id, { onDelete: 'cascade' }),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  addedAt: ts('added_at').notNull().defaultNow(),
}, (t) => [
  primaryKey({ columns: [t.groupId, t.userId] }),
  index('customer_group_members_user_idx').on(t.userId),
])

export const priceListKind = pgEnum('price_list_kind', ['sale', 'override'])
export const priceListStatus = pgEnum('price_list_status', ['draft', 'active'])

/**
 * Prices that replace base prices for some variants while the list applies: status active,
 * now within [starts_at, ends_at), the shopper a member of its group (if it names one), and the
 * line's quantity at least min_quantity. See src/prices.ts for which price wins.
 */
export const priceLists = pgTable('price_lists', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  kind: priceListKind('kind').notNull(),
  status: priceListStatus('status').notNull().default('draft'),
  startsAt: ts('starts_at'),
  endsAt: ts('ends_at'),
  customerGroupId: uuid('customer_group_id').references(() => customerGroups.id, { onDelete: 'restrict' }),
  minQuantity: integer('min_quantity').notNull().default(1),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  index('price_lists_active_idx').on(t.startsAt, t.endsAt).where(sql`status = 'active'`),
  check('price_lists_check', sql`${t.minQuantity} >= 1 and (${t.startsAt} is null or ${t.endsAt} is null or ${t.startsAt} < ${t.endsAt})`),
])

export const priceListPrices = pgTable('price_list_prices', {
  priceListId: uuid('price_list_id').notNull().references(() => priceLists.id, { onDelete: 'cascade' }),
  variantId: uuid('variant_id').notNull().references(() => productVariants.id, { onDelete: 'cascade' }),
  currency: text('currency').notNull(),
  amountMinor: integer('amount_minor').notNull(),
}, (t) => [
  primaryKey({ columns: [t.priceListId, t.variantId, t.currency] }),
  index('price_list_prices_variant_idx').on(t.variantId, t.currency),
  check('price_list_prices_amount_check', sql`${t.amountMinor} >= 0`),
])

/**
 * A product's lowest price at quantity 1 in a currency under one price list taken as a sale and
 * alone: the least of its active variants' base prices there and the list's prices for them (a
 * variant without a base price in the currency is not sold in it). A row exists when the list
 * prices one of those variants. Kept by src/prices.ts refreshListLowestPrices on every list price,
 * base price and variant write: a listing sorted or bounded by price while only sales apply reads
 * it (the least over the lists that apply) instead of pricing every product a sale touches.
 */
export const priceListLowestPrices = pgTable('price_list_lowest_prices', {
  priceListId: uuid('price_list_id').notNull().references(() => priceLists.id, { onDelete: 'cascade' }),
  currency: text('currency').notNull(),
  productId: uuid('product_id').notNull().references(() => products.id, { onDelete: 'cascade' }),
  minMinor: integer('min_minor').notNull(),
}, (t) => [
  primaryKey({ columns: [t.priceListId, t.currency, t.productId] }),
  index('price_list_lowest_prices_product_idx').on(t.productId),
])
