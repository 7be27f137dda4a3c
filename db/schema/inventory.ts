import { sql } from 'drizzle-orm'
import { boolean, check, index, integer, pgEnum, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'
import { productVariants } from './catalog.js'
import { orders } from './orders.js'
import { shippingZones } from './shipping.js'

// Stock by location. Written only by src/inventory.ts; docs/inventory.md says why it is shaped so.

/** Where goods are kept. Allocation tries locations by priority (lower first), then name. */
export const stockLocations = pgTable('stock_locations', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  name: text('name').notNull(),
  priority: integer('priority').notNull().default(100),
  isDefault: boolean('is_default').notNull().default(false),
  isActive: boolean('is_active').notNull().default(true),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('stock_locations_name_key').on(t.name),
  // One default location: where stock without a location (legacy, returns without one) goes.
  uniqueIndex('stock_locations_default_key').on(t.isDefault).where(sql`is_default`),
])

/** On hand and reserved per (variant, location); available = on_hand - reserved, never negative. */
export const stockLevels = pgTable('stock_levels', {
  variantId: uuid('variant_id').notNull().references(() => productVariants.id, { onDelete: 'cascade' }),
  locationId: uuid('location_id').notNull().references(() => stockLocations.id, { onDelete: 'restrict' }),
  onHand: integer('on_hand').notNull().default(0),
  reserved: integer('reserved').notNull().default(0),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  primaryKey({ columns: [t.variantId, t.locationId] }),
  index('stock_levels_location_idx').on(t.locationId),
  // Held by the database whatever the code does: nothing below zero, nothing reserved that is not on hand.
  check('stock_levels_on_hand_check', sql`${t.onHand} >= 0`),
  check('stock_levels_reserved_check', sql`${t.reserved} >= 0 and ${t.reserved} <= ${t.onHand}`),
])

/**
 * The stock locations that serve a shipping zone: checkout reserves an order's units only at
 * those. A zone with no rows here is served by every active location (the behaviour before
 * zones named locations), so a shop that never names any keeps allocating as it did.
 */
export const shippingZoneLocations = pgTable('shipping_zone_locations', {
  zoneId: uuid('zone_id').notNull().references(() => shippingZones.id, { onDelete: 'cascade' }),
  locationId: uuid('location_id').notNull().references(() => stockLocations.id, { onDelete: 'cascade' }),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  primaryKey({ columns: [t.zoneId, t.locationId] }),
  index('shipping_zone_locations_location_idx').on(t.locationId),
])

export const reservationState = pgEnum('reservation_state', ['held', 'claimed', 'released', 'returned'])

/**
 * Units an order holds at a location. held -> claimed (payment captured) or released (cancel,
 * expiry); claimed -> returned (cancel or refund of a paid order). Each move is one conditional
 * UPDATE on the state, so a retry or a resumed job cannot apply it twice.
 */
export const stockReservations = pgTable('stock_reservations', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  orderId: uuid('order_id').notNull().references(() => orders.id, { onDelete: 'cascade' }),
  variantId: uuid('variant_id').notNull().references(() => productVariants.id, { onDelete: 'cascade' }),
  locationId: uuid('location_id').notNull().references(() => stockLocations.id, { onDelete: 'restrict' }),
  quantity: integer('quantity').notNull(),
  state: reservationState('state').notNull().default('held'),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('stock_reservations_line_key').on(t.orderId, t.variantId, t.locationId),
  index('stock_reservations_variant_idx').on(t.variantId).where(sql`state = 'held'`),
  check('stock_reservations_quantity_check', sql`${t.quantity} > 0`),
])

export const inventoryReason = pgEnum('inventory_reason', ['restock', 'correction', 'damage', 'return', 'sale', 'cancellation', 'claim', 'transfer'])

/**
 * Every stock change with its reason and reference: the audit trail behind the levels.
 * delta/stockAfter are in what can be sold of the variant (product_variants.stock, all
 * locations); onHandDelta/reservedDelta are the level's own change at locationId.
 */
export const inventoryMovements = pgTable('inventory_movements', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  variantId: uuid('variant_id').notNull().references(() => productVariants.id, { onDelete: 'cascade' }),
  locationId: uuid('location_id').references(() => stockLocations.id, { onDelete: 'restrict' }),
  delta: integer('delta').notNull(),
  stockAfter: integer('stock_after').notNull(),
  onHandDelta: integer('on_hand_delta').notNull().default(0),
  reservedDelta: integer('reserved_delta').notNull().default(0),
  reason: inventoryReason('reason').notNull(),
  reference: text('reference'),
  note: text('note'),
  actorId: uuid('actor_id').references(() => users.id, { onDelete: 'set null' }),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [index('inventory_movements_variant_idx').on(t.variantId, t.createdAt.desc().nullsFirst())])
