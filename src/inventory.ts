import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import { inventoryMovements, orderItems, productVariants, shippingZoneLocations, stockLevels, stockLocations, stockReservations } from '../db/schema/index.js'
import { arrayParam, executeNamed, type Db, type Tx } from '../db/client.js'
import { Conflict, NotFound } from './errors.js'
import { refreshManyProducts, refreshProductsAggregates } from './catalog.js'
import { LOW_STOCK_MAIL, WEBHOOK, type OutboxEvent } from './side-effects.js'

// The inventory module: the ONLY writer of stock (stock_levels, product_variants.stock, the
// reservations and the movements). Everything runs in the caller's transaction.
//
// Quantities: per (variant, location) a level has on_hand and reserved; available = on_hand -
// reserved, never negative (CHECK constraints on stock_levels). product_variants.stock is the sum
// of available over all locations, what listings and carts show as `stock`; it moves in the
// same statements as the levels, so the two never disagree after a commit.
//
// Lock order, so writers cannot deadlock each other: variants by id, and for one variant its
// level rows before its product_variants row.
//
// Serving locations: an order reserves only at the active locations that serve its shipping zone
// (shipping_zone_locations); a zone that names none is served by every active location.
//
// Allocation rule (reserve), among the serving locations: for each line, the first by (priority,
// name) that can fill the whole line (fewest locations first: one parcel when one can); when none
// can, the line is split across them in that same order, taking what each has. Not enough in all
// of them together: the line cannot be bought for that destination (a 409), even when a location
// that does not serve it has stock.
//
// Hot SKU: reserve is one conditional UPDATE per level (no read-then-lock), and checkout calls it
// as its last write, so a level's row lock is held only from that statement to the commit.
// The product row is refreshed only when a variant's availability crosses zero (sold out or back
// in stock), since a sale changes nothing else a listing shows: buyers of one product do not also
// queue on its row.

export interface StockChange {
  /** Products whose stock changed: their caches are stale. */
  productIds: Set<string>
  /** Whether what catalog listings show changed (a product went in or out of stock). */
  listsChanged: boolean
  /** Variants this change took to the low-stock threshold or below (from above it). */
  lowStock: { variantId: string; productId: string; sku: string; stock: number }[]
}

export const emptyChange = (): StockChange => ({ productIds: new Set(), listsChanged: false, lowStock: [] })

interface Movement {
  variantId: string; locationId: string; delta: number; stockAfter: number; onHandDelta: number; reservedDelta: number
  reason: typeof inventoryMovements.$inferInsert['reason']; reference?: string | null; note?: string | null; actorId?: string | null
}

/** The location stock goes to when none is named (created by migration 0010). */
export async function defaultLocationId(tx: Tx): Promise<string> {
  const [row] = await tx.select({ id: stockLocations.id }).from(stockLocations).where(eq(stockLocations.isDefault, true))
  if (!row) throw new Error('No default stock location: migration 0010 creates one')
  return row.id
}

async function activeLocation(tx: Tx, locationId: string | undefined): Promise<string> {
  if (!locationId) return defaultLocationId(tx)
  const [row] = await tx.select({ id: stockLocations.id, isActive: stockLocations.isActive }).from(stockLocations).where(eq(stockLocations.id, locationId))
  if (!row) throw new NotFound('stock location', locationId)
  return row.id
}

/**
 * Moves product_variants.stock (what can be sold) by delta, after the levels have moved, and
 * folds the result into `change`: low-stock crossings and, when it crossed zero, the product's
 * aggregates. Returns the new stock.
 */
async function moveSellable(tx: Tx, variantId: string, delta: number, change: StockChange, lowStockThreshold?: number): Promise<number> {
  const [v] = await tx.update(productVariants).set({ stock: sql`${productVariants.stock} + ${delta}`, updatedAt: new Date() })
    .where(eq(productVariants.id, variantId)).returning({ stock: productVariants.stock, productId: productVariants.productId, sku: productVariants.sku })
  if (!v) throw new NotFound('variant', variantId)
  await noteSellable(tx, { variantId, ...v }, delta, change, lowStockThreshold)
  return v.stock
}

/** Folds a variant's new stock into `change`: the product's aggregates when it crossed zero, a low-stock crossing. */
async function noteSellable(tx: Tx, v: { variantId: string; productId: string; sku: string; stock: number }, delta: number, change: StockChange, lowStockThreshold?: number) {
  const before = v.stock - delta
  change.productIds.add(v.productId)
  if ((before > 0) !== (v.stock > 0)) change.listsChanged = (await refreshProductsAggregates(tx, [v.productId])) || change.listsChanged
  if (lowStockThreshold !== undefined && delta < 0 && v.stock <= lowStockThreshold && before > lowStockThreshold) {
    change.lowStock.push({ variantId: v.variantId, productId: v.productId, sku: v.sku, stock: v.stock })
  }
}

async function record(tx: Tx, rows: Movement[]) {
  if (rows.length) await tx.insert(inventoryMovements).values(rows)
}

/** The admins' mail and the stock.low webhook for the variants a change took low. */
export function lowStockEvents(change: StockChange, threshold: number): OutboxEvent[] {
  if (!change.lowStock.length) return []
  return [LOW_STOCK_MAIL(change.lowStock.map((v) => v.variantId)), WEBHOOK('stock.low', { threshold, variants: change.lowStock })]
}

/**
 * Adds (delta > 0) or removes (delta < 0) units on hand at a location (the default one when none
 * is named), in one statement that cannot take available below zero: admin adjustments, initial
 * stock, returns received. 409 when it would.
 */
export async function adjust(tx: Tx, input: {
  variantId: string; locationId?: string; delta: number; reason: 'restock' | 'correction' | 'damage' | 'return' | 'cancellation'
  reference?: string | null; note?: string | null; actorId?: string | null; lowStockThreshold?: number
}, change: StockChange = emptyChange()): Promise<{ stock: number; change: StockChange }> {
  const locationId = await activeLocation(tx, input.locationId)
  const { delta } = input
  const moved = delta > 0
    ? await tx.insert(stockLevels).values({ variantId: input.variantId, locationId, onHand: delta })
      .onConflictDoUpdate({ target: [stockLevels.variantId, stockLevels.locationId], set: { onHand: sql`${stockLevels.onHand} + ${delta}`, updatedAt: new Date() } })
      .returning({ onHand: stockLevels.onHand })
    : await tx.update(stockLevels).set({ onHand: sql`${stockLevels.onHand} + ${delta}`, updatedAt: new Date() })
      .where(and(eq(stockLevels.variantId, input.variantId), eq(stockLevels.locationId, locationId), sql`${stockLevels.onHand} - ${stockLevels.reserved} + ${delta} >= 0`))
      .returning({ onHand: stockLevels.onHand })
  if (!moved.length) {
    const [level] = await tx.select().from(stockLevels).where(and(eq(stockLevels.variantId, input.variantId), eq(stockLevels.locationId, locationId)))
    const available = level ? level.onHand - level.reserved : 0
    throw new Conflict(`Stock is ${available}; removing ${-delta} would take it below zero`, 'insufficient-stock')
  }
  const stock = await moveSellable(tx, input.variantId, delta, change, input.lowStockThreshold)
  await record(tx, [{ variantId: input.variantId, locationId, delta, stockAfter: stock, onHandDelta: delta, reservedDelta: 0, reason: input.reason, reference: input.reference ?? null, note: input.note ?? null, actorId: input.actorId ?? null }])
  return { stock, change }
}

/** Sets a level's on-hand count (a stock take). 409 below what is reserved there. */
export async function setLevel(tx: Tx, input: { variantId: string; locationId: string; onHand: number; note?: string | null; actorId: string | null }) {
  const locationId = await activeLocation(tx, input.locationId)
  await tx.insert(stockLevels).values({ variantId: input.variantId, locationId, onHand: 0 }).onConflictDoNothing()
  const [level] = await tx.select().from(stockLevels).where(and(eq(stockLevels.variantId, input.variantId), eq(stockLevels.locationId, locationId))).for('update')
  const delta = input.onHand - level!.onHand
  if (input.onHand < level!.reserved) throw new Conflict(`${level!.reserved} units are reserved at this location; on hand cannot go below that`, 'insufficient-stock')
  const change = emptyChange()
  if (delta === 0) return { level: level!, change }
  const [updated] = await tx.update(stockLevels).set({ onHand: input.onHand, updatedAt: new Date() })
    .where(and(eq(stockLevels.variantId, input.variantId), eq(stockLevels.locationId, locationId))).returning()
  const stock = await moveSellable(tx, input.variantId, delta, change)
  await record(tx, [{ variantId: input.variantId, locationId, delta, stockAfter: stock, onHandDelta: delta, reservedDelta: 0, reason: 'correction', note: input.note ?? 'level set', actorId: input.actorId }])
  return { level: updated!, change }
}

/**
 * Moves units on hand from one location to another, both sides in the caller's transaction:
 * it commits whole or not at all. What can be sold does not change; a movement on each side.
 */
export async function transfer(tx: Tx, input: { variantId: string; fromLocationId: string; toLocationId: string; quantity: number; note?: string | null; actorId: string | null }) {
  const { variantId, quantity } = input
  if (input.fromLocationId === input.toLocationId) throw new Conflict('A transfer goes between two different locations', 'same-location')
  const from = await activeLocation(tx, input.fromLocationId)
  const to = await activeLocation(tx, input.toLocationId)
  // The two level rows are written in location id order: two opposite transfers cannot deadlock.
  const take = async () => {
    const taken = await tx.update(stockLevels).set({ onHand: sql`${stockLevels.onHand} - ${quantity}`, updatedAt: new Date() })
      .where(and(eq(stockLevels.variantId, variantId), eq(stockLevels.locationId, from), sql`${stockLevels.onHand} - ${stockLevels.reserved} >= ${quantity}`))
      .returning({ onHand: stockLevels.onHand })
    if (!taken.length) throw new Conflict(`Fewer than ${quantity} units are available to move at the source location`, 'insufficient-stock')
  }
  const put = () => tx.insert(stockLevels).values({ variantId, locationId: to, onHand: quantity })
    .onConflictDoUpdate({ target: [stockLevels.variantId, stockLevels.locationId], set: { onHand: sql`${stockLevels.onHand} + ${quantity}`, updatedAt: new Date() } })
  if (from < to) { await take(); await put() } else { await put(); await take() }
  const [v] = await tx.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId))
  if (!v) throw new NotFound('variant', variantId)
  const reference = `transfer ${from} -> ${to}`
  await record(tx, [
    { variantId, locationId: from, delta: -quantity, stockAfter: v.stock, onHandDelta: -quantity, reservedDelta: 0, reason: 'transfer', reference, note: input.note ?? null, actorId: input.actorId },
    { variantId, locationId: to, delta: quantity, stockAfter: v.stock, onHandDelta: quantity, reservedDelta: 0, reason: 'transfer', reference, note: input.note ?? null, actorId: input.actorId },
  ])
  return tx.select().from(stockLevels).where(and(eq(stockLevels.variantId, variantId), inArray(stockLevels.locationId, [from, to])))
}

/**
 * Whether the location `locationId` (an SQL expression) serves the zone: always when no zone is
 * given or the zone names no locations, else when it is one of those named. Activeness is checked
 * by the callers, as before.
 */
function serves(zoneId: string | null | undefined, locationId: SQL): SQL {
  if (!zoneId) return sql`true`
  return sql`(not exists (select 1 from ${shippingZoneLocations} z where z.zone_id = ${zoneId}::uuid)
    or exists (select 1 from ${shippingZoneLocations} z where z.zone_id = ${zoneId}::uuid and z.location_id = ${locationId}))`
}

/** Whether the zone names the locations that serve it (otherwise every active location does). */
async function namesLocations(q: Db | Tx, zoneId: string | null | undefined): Promise<boolean> {
  if (!zoneId) return false
  const [row] = await q.select({ zoneId: shippingZoneLocations.zoneId }).from(shippingZoneLocations).where(eq(shippingZoneLocations.zoneId, zoneId)).limit(1)
  return Boolean(row)
}

/**
 * What each variant has available at the active locations serving a zone (a read, no lock): what
 * a quote for that zone may promise. Variants with none there are absent.
 */
export async function availableIn(q: Db | Tx, zoneId: string | null, variantIds: string[]): Promise<Map<string, number>> {
  if (!variantIds.length) return new Map()
  const rows = await q.select({ variantId: stockLevels.variantId, available: sql<number>`sum(${stockLevels.onHand} - ${stockLevels.reserved})::int` })
    .from(stockLevels).innerJoin(stockLocations, eq(stockLocations.id, stockLevels.locationId))
    .where(and(inArray(stockLevels.variantId, variantIds), eq(stockLocations.isActive, true), serves(zoneId, sql`${stockLocations.id}`)))
    .groupBy(stockLevels.variantId)
  return new Map(rows.map((r) => [r.variantId, r.available]))
}

/** Reserves up to `need` at one level in one statement; how many it took. */
async function takeAt(tx: Tx, variantId: string, locationId: string, need: number): Promise<number> {
  const { rows } = await tx.execute<{ take: number }>(sql`
    with cur as (
      select variant_id, location_id, least(${need}::int, on_hand - reserved) as take from ${stockLevels}
      where variant_id = ${variantId} and location_id = ${locationId} and on_hand > reserved for update)
    update ${stockLevels} s set reserved = s.reserved + cur.take, updated_at = now() from cur
    where s.variant_id = cur.variant_id and s.location_id = cur.location_id returning cur.take`)
  return rows[0]?.take ?? 0
}

/**
 * Reserves each line for an order by the allocation rule above, at the locations serving the
 * order's shipping zone (`order.zoneId`; every active location when none); the caller's transaction holds
 * the reservations (state held) until a payment claims them or a cancellation or expiry releases
 * them. Throws when a line cannot be filled (problems name each), so the caller rolls back
 * whatever was reserved. Call it as the transaction's last write: it is where buyers of one
 * variant queue.
 */
export async function reserve(tx: Tx, order: { id: string; number: string; zoneId?: string | null }, lines: { variantId: string; quantity: number }[], lowStockThreshold: number, fail: (problems: { variantId: string; message: string }[]) => Error): Promise<StockChange> {
  const change = emptyChange()
  const problems: { variantId: string; message: string }[] = []
  const byVariant = new Map<string, number>()
  for (const l of lines) byVariant.set(l.variantId, (byVariant.get(l.variantId) ?? 0) + l.quantity)
  const served = serves(order.zoneId, sql`l.id`)
  const servedHere = serves(order.zoneId, sql`${stockLocations.id}`)
  for (const variantId of [...byVariant.keys()].sort()) {
    const quantity = byVariant.get(variantId)!
    // The common case in one statement (one round trip under the row locks): one location fills
    // the line; the level, the variant, the reservation and its movement are written together.
    if (!problems.length) {
      const [fast] = await executeNamed<{ location_id: string; stock: number; product_id: string; sku: string }>(tx, order.zoneId ? 'reserve_line_in_zone' : 'reserve_line', sql`
        with pick as (
          select sl.location_id from ${stockLevels} sl join ${stockLocations} l on l.id = sl.location_id
          where sl.variant_id = ${variantId} and l.is_active and ${served} and sl.on_hand - sl.reserved >= ${quantity}
          order by l.priority, l.name limit 1),
        lvl as (
          update ${stockLevels} s set reserved = s.reserved + ${quantity}, updated_at = now() from pick
          where s.variant_id = ${variantId} and s.location_id = pick.location_id and s.on_hand - s.reserved >= ${quantity}
          returning s.location_id),
        var as (
          update ${productVariants} set stock = stock - ${quantity}, updated_at = now()
          where id = ${variantId} and exists (select 1 from lvl) returning stock, product_id, sku),
        res as (
          insert into ${stockReservations} (order_id, variant_id, location_id, quantity)
          select ${order.id}, ${variantId}, location_id, ${quantity} from lvl returning 1),
        mov as (
          insert into ${inventoryMovements} (variant_id, location_id, delta, stock_after, on_hand_delta, reserved_delta, reason, reference)
          select ${variantId}, lvl.location_id, ${-quantity}, var.stock, 0, ${quantity}, 'sale', ${`order ${order.number}`} from lvl, var returning 1)
        select lvl.location_id, var.stock, var.product_id, var.sku from lvl, var`)
      if (fast) {
        await noteSellable(tx, { variantId, productId: fast.product_id, sku: fast.sku, stock: fast.stock }, -quantity, change, lowStockThreshold)
        continue
      }
    }
    const pieces: { locationId: string; quantity: number }[] = []
    // One location that can fill the line; a concurrent buyer may get there first, so try again
    // while one still can.
    for (let attempt = 0; attempt < 3 && !pieces.length; attempt++) {
      const { rows } = await tx.execute<{ location_id: string }>(sql`
        update ${stockLevels} s set reserved = s.reserved + ${quantity}, updated_at = now()
        from (select sl.location_id from ${stockLevels} sl join ${stockLocations} l on l.id = sl.location_id
              where sl.variant_id = ${variantId} and l.is_active and ${served} and sl.on_hand - sl.reserved >= ${quantity}
              order by l.priority, l.name limit 1) pick
        where s.variant_id = ${variantId} and s.location_id = pick.location_id and s.on_hand - s.reserved >= ${quantity}
        returning s.location_id`)
      if (rows[0]) pieces.push({ locationId: rows[0].location_id, quantity })
      else if (attempt === 0) {
        const [any] = await tx.select({ n: sql<number>`count(*)::int` }).from(stockLevels).innerJoin(stockLocations, eq(stockLocations.id, stockLevels.locationId))
          .where(and(eq(stockLevels.variantId, variantId), eq(stockLocations.isActive, true), servedHere, sql`${stockLevels.onHand} - ${stockLevels.reserved} >= ${quantity}`))
        if (!any || any.n === 0) break
      }
    }
    if (!pieces.length) {
      // Split: what each serving location has, in priority order.
      const candidates = await tx.select({ locationId: stockLevels.locationId }).from(stockLevels).innerJoin(stockLocations, eq(stockLocations.id, stockLevels.locationId))
        .where(and(eq(stockLevels.variantId, variantId), eq(stockLocations.isActive, true), servedHere, sql`${stockLevels.onHand} > ${stockLevels.reserved}`))
        .orderBy(asc(stockLocations.priority), asc(stockLocations.name))
      let need = quantity
      for (const c of candidates) {
        if (need === 0) break
        const took = await takeAt(tx, variantId, c.locationId, need)
        if (took > 0) { pieces.push({ locationId: c.locationId, quantity: took }); need -= took }
      }
      if (need > 0) {
        const left = quantity - need
        const where = (await namesLocations(tx, order.zoneId)) ? ' for this destination' : ''
        problems.push({ variantId, message: left === 0 ? `out of stock${where}` : `only ${left} left${where}` })
        continue
      }
    }
    if (problems.length) continue
    const stock = await moveSellable(tx, variantId, -quantity, change, lowStockThreshold)
    await tx.insert(stockReservations).values(pieces.map((p) => ({ orderId: order.id, variantId, locationId: p.locationId, quantity: p.quantity })))
    await record(tx, pieces.map((p) => ({ variantId, locationId: p.locationId, delta: -p.quantity, stockAfter: stock, onHandDelta: 0, reservedDelta: p.quantity, reason: 'sale' as const, reference: `order ${order.number}` })))
  }
  if (problems.length) throw fail(problems)
  return change
}

/**
 * A captured payment claims its order's held reservations: they leave on_hand and reserved both
 * (available is unchanged). Exactly once: the state moves held -> claimed in one conditional UPDATE.
 */
export async function claim(tx: Tx, orderId: string): Promise<number> {
  const claimed = await tx.update(stockReservations).set({ state: 'claimed', updatedAt: new Date() })
    .where(and(eq(stockReservations.orderId, orderId), eq(stockReservations.state, 'held'))).returning()
  for (const r of claimed.sort((a, b) => (a.variantId + a.locationId < b.variantId + b.locationId ? -1 : 1))) {
    await tx.update(stockLevels).set({ onHand: sql`${stockLevels.onHand} - ${r.quantity}`, reserved: sql`${stockLevels.reserved} - ${r.quantity}`, updatedAt: new Date() })
      .where(and(eq(stockLevels.variantId, r.variantId), eq(stockLevels.locationId, r.locationId)))
    const [v] = await tx.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, r.variantId))
    await record(tx, [{ variantId: r.variantId, locationId: r.locationId, delta: 0, stockAfter: v?.stock ?? 0, onHandDelta: -r.quantity, reservedDelta: -r.quantity, reason: 'claim', reference: `order ${orderId}` }])
  }
  return claimed.length
}

/**
 * Gives an order's stock back, each reservation once: held -> released (unreserved), claimed ->
 * returned (back on hand where it was taken). The caller guards the order as a whole too
 * (orders.stock_released_at). Orders placed before migration 0010 hold no reservations: their
 * units come back on hand at the default location.
 */
export async function releaseOrder(tx: Tx, orderId: string, reason: 'cancellation' | 'return'): Promise<StockChange> {
  const change = emptyChange()
  const reference = `order ${orderId}`
  const [{ n }] = await tx.select({ n: sql<number>`count(*)::int` }).from(stockReservations).where(eq(stockReservations.orderId, orderId)) as [{ n: number }]
  if (n === 0) {
    const items = await tx.select().from(orderItems).where(eq(orderItems.orderId, orderId)).orderBy(asc(orderItems.variantId))
    const locationId = await defaultLocationId(tx)
    for (const item of items) {
      if (!item.variantId) continue
      const [exists] = await tx.select({ id: productVariants.id }).from(productVariants).where(eq(productVariants.id, item.variantId))
      if (!exists) continue
      await adjust(tx, { variantId: item.variantId, locationId, delta: item.quantity, reason, reference, note: 'order placed before stock locations' }, change)
    }
    return change
  }
  const released = await tx.update(stockReservations).set({ state: sql`case when ${stockReservations.state} = 'held' then 'released' else 'returned' end::reservation_state`, updatedAt: new Date() })
    .where(and(eq(stockReservations.orderId, orderId), inArray(stockReservations.state, ['held', 'claimed'])))
    .returning()
  for (const r of released.sort((a, b) => (a.variantId + a.locationId < b.variantId + b.locationId ? -1 : 1))) {
    const wasHeld = r.state === 'released'
    await tx.update(stockLevels).set(wasHeld
      ? { reserved: sql`${stockLevels.reserved} - ${r.quantity}`, updatedAt: new Date() }
      : { onHand: sql`${stockLevels.onHand} + ${r.quantity}`, updatedAt: new Date() })
      .where(and(eq(stockLevels.variantId, r.variantId), eq(stockLevels.locationId, r.locationId)))
    const stock = await moveSellable(tx, r.variantId, r.quantity, change)
    await record(tx, [{ variantId: r.variantId, locationId: r.locationId, delta: r.quantity, stockAfter: stock, onHandDelta: wasHeld ? 0 : r.quantity, reservedDelta: wasHeld ? -r.quantity : 0, reason, reference }])
  }
  return change
}

/**
 * Stock for variants just created (the product's or variant's initial stock), at the default
 * location, as restock movements. Variants are inserted with stock 0; this is what sets it.
 */
export async function initialStock(tx: Tx, variants: { id: string; stock: number }[], actorId: string | null): Promise<StockChange> {
  const change = emptyChange()
  for (const v of variants.filter((x) => x.stock > 0)) {
    await adjust(tx, { variantId: v.id, delta: v.stock, reason: 'restock', note: 'initial stock', actorId }, change)
  }
  return change
}

/**
 * Adds units on hand at the default location for many variants at once, in three statements
 * (the seed's thousands of variants, a benchmark's restock): levels, what can be sold, and a
 * restock movement each.
 */
export async function bulkRestock(tx: Tx, variants: { id: string; stock: number }[], note: string) {
  const stocked = variants.filter((v) => v.stock > 0)
  if (!stocked.length) return
  const ids = arrayParam(stocked.map((v) => v.id), 'uuid')
  const qty = arrayParam(stocked.map((v) => v.stock), 'int')
  const locationId = await defaultLocationId(tx)
  await tx.execute(sql`insert into ${stockLevels} (variant_id, location_id, on_hand) select id, ${locationId}, n from unnest(${ids}, ${qty}) as t(id, n)
    on conflict (variant_id, location_id) do update set on_hand = ${stockLevels}.on_hand + excluded.on_hand, updated_at = now()`)
  await tx.execute(sql`update ${productVariants} v set stock = v.stock + t.n, updated_at = now() from unnest(${ids}, ${qty}) as t(id, n) where v.id = t.id`)
  await tx.execute(sql`insert into ${inventoryMovements} (variant_id, location_id, delta, stock_after, on_hand_delta, reason, note)
    select v.id, ${locationId}, t.n, v.stock, t.n, 'restock', ${note} from unnest(${ids}, ${qty}) as t(id, n) join ${productVariants} v on v.id = t.id`)
}

/**
 * Sets on hand at many (variant, location) levels at once, a stock take of a whole file (catalog
 * imports): levels that already hold the count are left alone, the others move in a few
 * statements (levels, what can be sold, one movement per moved level with `reason`). A count
 * below what is reserved at a location is refused by the levels' CHECK constraint: callers check
 * it first to say which row. Returns the products whose stock moved.
 */
export async function setLevels(tx: Tx, levels: { variantId: string; locationId: string; onHand: number }[], input: { reason: 'restock' | 'correction'; note: string; actorId: string | null }): Promise<StockChange> {
  const change = emptyChange()
  if (!levels.length) return change
  // Lock order as everywhere in this module: variants by id, a variant's levels before its row.
  const sorted = [...levels].sort((a, b) => (a.variantId === b.variantId ? (a.locationId < b.locationId ? -1 : 1) : a.variantId < b.variantId ? -1 : 1))
  const ids = arrayParam(sorted.map((l) => l.variantId), 'uuid')
  const locations = arrayParam(sorted.map((l) => l.locationId), 'uuid')
  const counts = arrayParam(sorted.map((l) => l.onHand), 'int')
  await tx.execute(sql`insert into ${stockLevels} (variant_id, location_id, on_hand)
    select v, l, 0 from unnest(${ids}, ${locations}) as t(v, l) order by v, l on conflict (variant_id, location_id) do nothing`)
  const moved = await tx.execute<{ variant_id: string; location_id: string; delta: number }>(sql`
    with old as (
      select s.variant_id, s.location_id, s.on_hand as before, t.n
      from ${stockLevels} s join unnest(${ids}, ${locations}, ${counts}) as t(v, l, n) on s.variant_id = t.v and s.location_id = t.l
      where s.on_hand <> t.n order by s.variant_id, s.location_id for update of s
    )
    update ${stockLevels} s set on_hand = old.n, updated_at = now() from old
    where s.variant_id = old.variant_id and s.location_id = old.location_id
    returning s.variant_id, s.location_id, (old.n - old.before)::int as delta`)
  if (!moved.rows.length) return change
  const byVariant = new Map<string, number>()
  for (const m of moved.rows) byVariant.set(m.variant_id, (byVariant.get(m.variant_id) ?? 0) + m.delta)
  const vIds = arrayParam([...byVariant.keys()], 'uuid')
  const vDeltas = arrayParam([...byVariant.values()], 'int')
  const after = await tx.execute<{ id: string; product_id: string; stock: number }>(sql`
    update ${productVariants} v set stock = v.stock + t.d, updated_at = now() from unnest(${vIds}, ${vDeltas}) as t(id, d)
    where v.id = t.id returning v.id, v.product_id, v.stock`)
  const stockAfter = new Map(after.rows.map((r) => [r.id, r.stock]))
  for (const r of after.rows) change.productIds.add(r.product_id)
  await record(tx, moved.rows.map((m) => ({
    variantId: m.variant_id, locationId: m.location_id, delta: m.delta, stockAfter: stockAfter.get(m.variant_id) ?? 0,
    onHandDelta: m.delta, reservedDelta: 0, reason: input.reason, note: input.note, actorId: input.actorId,
  })))
  // Aggregates (in stock) of many products at once: the caller's batch may hold hundreds.
  await refreshManyProducts(tx, change.productIds)
  change.listsChanged = true
  return change
}
