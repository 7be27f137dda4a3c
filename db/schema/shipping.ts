import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, jsonb, pgEnum, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core'

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

/**
 * A set of destination countries (ISO 3166-1 alpha-2). A zone with no countries is a fallback:
 * it serves any country that no other zone lists.
 */
export const shippingZones = pgTable('shipping_zones', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  countries: text('countries').array().notNull().default(sql`'{}'::text[]`),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [index('shipping_zones_countries_idx').using('gin', t.countries)])

export const shippingBandBasis = pgEnum('shipping_band_basis', ['weight', 'subtotal'])
/** A band applies up to and including `upTo` (grams, or minor units of goods after discount). */
export interface ShippingBand { upTo: number; priceMinor: number }

export const shippingOptions = pgTable('shipping_options', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  zoneId: uuid('zone_id').notNull().references(() => shippingZones.id, { onDelete: 'cascade' }),
  name: text('name').notNull(),
  // The currency of the price, bands and free-over amount: the option is offered to carts in it only.
  currency: text('currency').notNull(),
  priceMinor: integer('price_minor').notNull(),
  // Free from this amount of goods after discount; null: never free.
  freeOverMinor: integer('free_over_minor'),
  // With bands the price is the first band's whose upTo covers the cart; beyond the last band
  // the option does not apply (too heavy, or too large an order for it).
  bandBasis: shippingBandBasis('band_basis'),
  bands: jsonb('bands').$type<ShippingBand[]>().notNull().default([]),
  isActive: boolean('is_active').notNull().default(true),
  position: integer('position').notNull().default(0),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  index('shipping_options_zone_idx').on(t.zoneId, t.position),
  check('shipping_options_money_check', sql`${t.priceMinor} >= 0 and (${t.freeOverMinor} is null or ${t.freeOverMinor} > 0)`),
])

/** Tax by destination: a country (and region) rate; country null is the rate of every other destination. */
export const taxRates = pgTable('tax_rates', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  country: text('country'),
  region: text('region'),
  rateBps: integer('rate_bps').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
}, (t) => [
  unique('tax_rates_destination_key').on(t.country, t.region).nullsNotDistinct(),
  check('tax_rates_check', sql`${t.rateBps} between 0 and 10000 and (${t.region} is null or ${t.country} is not null)`),
])
