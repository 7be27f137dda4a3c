import { asc, eq } from 'drizzle-orm'
import { productVariants, stockLevels, stockLocations } from '../../db/schema/index.js'
import { isUniqueViolation, type Db, type Tx } from '../../db/client.js'
import { Conflict, NotFound } from '../../src/errors.js'
import type { Outbox } from '../../src/outbox.js'
import { setLevel, transfer, type StockChange } from '../../src/inventory.js'
import { ACTIVITY, STOCK_CHANGED, type Actor } from '../../src/side-effects.js'

// Stock locations and levels for admins. The writes go through src/inventory.ts, the only
// writer of stock; this service adds the transaction, the cache events and the audit trail.

type LevelRow = typeof stockLevels.$inferSelect
const toLevel = (l: LevelRow) => ({
  variantId: l.variantId, locationId: l.locationId, onHand: l.onHand, reserved: l.reserved, available: l.onHand - l.reserved, updatedAt: l.updatedAt.toISOString(),
})
const toLocation = (l: typeof stockLocations.$inferSelect) => ({ ...l, createdAt: l.createdAt.toISOString() })

export function createInventoryService({ db, outbox }: { db: Db; outbox: Pick<Outbox, 'transaction'> }) {
  async function variantExists(tx: Tx | Db, variantId: string) {
    const [v] = await tx.select({ id: productVariants.id }).from(productVariants).where(eq(productVariants.id, variantId))
    if (!v) throw new NotFound('variant', variantId)
  }
  const events = (change: StockChange) => STOCK_CHANGED(change.productIds, change.listsChanged)

  return {
    async createLocation(input: { name: string; priority?: number }) {
      try {
        const [row] = await db.insert(stockLocations).values({ name: input.name, priority: input.priority ?? 100 }).returning()
        return toLocation(row!)
      } catch (err) {
        if (isUniqueViolation(err, 'stock_locations_name_key')) throw new Conflict('A stock location with that name exists', 'location-name-taken')
        throw err
      }
    },

    async listLocations() {
      const rows = await db.select().from(stockLocations).orderBy(asc(stockLocations.priority), asc(stockLocations.name))
      return { items: rows.map(toLocation) }
    },

    async levels(variantId: string) {
      const [v] = await db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId))
      if (!v) throw new NotFound('variant', variantId)
      const rows = await db.select().from(stockLevels).innerJoin(stockLocations, eq(stockLocations.id, stockLevels.locationId))
        .where(eq(stockLevels.variantId, variantId)).orderBy(asc(stockLocations.priority), asc(stockLocations.name))
      return { variantId, stock: v.stock, levels: rows.map((r) => toLevel(r.stock_levels)) }
    },

    async setLevel(actor: Actor, variantId: string, locationId: string, input: { onHand: number; note?: string }) {
      return toLevel(await outbox.transaction(async (tx, emit) => {
        await variantExists(tx, variantId)
        const { level, change } = await setLevel(tx, { variantId, locationId, onHand: input.onHand, note: input.note ?? null, actorId: actor.userId })
        await emit([...events(change), ACTIVITY(actor, 'admin_action', { action: 'stock_level_set', variantId, locationId, onHand: input.onHand })])
        return level
      }))
    },

    /** Both sides in one transaction: the units are at one location or the other, never both or neither. */
    async transfer(actor: Actor, input: { variantId: string; fromLocationId: string; toLocationId: string; quantity: number; note?: string }) {
      const rows = await outbox.transaction(async (tx, emit) => {
        await variantExists(tx, input.variantId)
        const levels = await transfer(tx, { ...input, note: input.note ?? null, actorId: actor.userId })
        await emit([ACTIVITY(actor, 'admin_action', { action: 'stock_transfer', ...input })])
        return levels
      })
      return this.levels(input.variantId).then((all) => ({ ...all, levels: all.levels.filter((l) => rows.some((r) => r.locationId === l.locationId)) }))
    },
  }
}
export type InventoryService = ReturnType<typeof createInventoryService>
