import { and, asc, eq, inArray, sql } from 'drizzle-orm'
import { customerGroupMembers, customerGroups, priceListPrices, priceLists, productVariants, regionCountries, regions, users } from '../../db/schema/index.js'
import { isCheckViolation, isForeignKeyViolation, isUniqueViolation, type Db, type Tx } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import { refreshListLowestPrices, requireCurrency } from '../../src/prices.js'
import { lockProducts } from '../../src/catalog.js'

// Regions (countries, currency, tax mode), customer groups and their members, and price lists
// with their prices: admin operations, and what a cart and checkout read of a region. Every write
// that can change a price shown in the catalog calls `changed` (the catalog cache moves on).

type RegionRow = typeof regions.$inferSelect
type ListRow = typeof priceLists.$inferSelect
export interface RegionInput { name?: string; currency?: string; pricesIncludeTax?: boolean; countries?: string[] }
export interface PriceListInput {
  name?: string; kind?: 'sale' | 'override'; status?: 'draft' | 'active'; startsAt?: string | null; endsAt?: string | null
  customerGroupId?: string | null; minQuantity?: number
}
export interface ListPrice { variantId: string; currency: string; amountMinor: number }

const iso = (d: Date | null) => (d ? d.toISOString() : null)
const toRegion = (r: RegionRow, countries: string[]) => ({
  id: r.id, name: r.name, currency: r.currency, pricesIncludeTax: r.pricesIncludeTax, isDefault: r.isDefault, countries: [...countries].sort(), createdAt: r.createdAt.toISOString(),
})
const toList = (l: ListRow) => ({
  id: l.id, name: l.name, kind: l.kind, status: l.status, startsAt: iso(l.startsAt), endsAt: iso(l.endsAt),
  customerGroupId: l.customerGroupId, minQuantity: l.minQuantity, createdAt: l.createdAt.toISOString(), updatedAt: l.updatedAt.toISOString(),
})

export function createPricingService({ db, changed }: { db: Db; changed: () => Promise<void> }) {
  async function write<T>(work: (tx: Tx) => Promise<T>, invalidate = true): Promise<T> {
    let result: T
    try {
      result = await db.transaction(work)
    } catch (err) {
      if (isUniqueViolation(err, 'region_countries_pkey')) throw new Conflict('A country belongs to one region only, and one of these is in another region', 'country-in-other-region')
      if (isUniqueViolation(err, 'regions_name_key')) throw new Conflict('Another region has that name', 'name-taken')
      if (isUniqueViolation(err, 'customer_groups_name_key')) throw new Conflict('Another customer group has that name', 'name-taken')
      if (isUniqueViolation(err)) throw new Conflict('It exists already', 'exists')
      if (isCheckViolation(err)) throw new BadRequest('The values are inconsistent (startsAt must come before endsAt; minQuantity at least 1)', 'invalid-values')
      if (isForeignKeyViolation(err)) throw new NotFound('customer group, user or variant')
      throw err
    }
    if (invalidate) await changed()
    return result
  }

  async function regionWithCountries(q: Db | Tx, row: RegionRow) {
    const countries = await q.select({ country: regionCountries.country }).from(regionCountries).where(eq(regionCountries.regionId, row.id))
    return toRegion(row, countries.map((c) => c.country))
  }

  async function setCountries(tx: Tx, regionId: string, countries: string[]) {
    await tx.delete(regionCountries).where(eq(regionCountries.regionId, regionId))
    if (countries.length) await tx.insert(regionCountries).values([...new Set(countries.map((c) => c.toUpperCase()))].map((country) => ({ country, regionId })))
  }

  return {
    // Regions
    async listRegions() {
      const rows = await db.select().from(regions).orderBy(asc(regions.createdAt))
      const countries = await db.select().from(regionCountries)
      return { items: rows.map((r) => toRegion(r, countries.filter((c) => c.regionId === r.id).map((c) => c.country))) }
    },
    async getRegion(id: string) {
      const [row] = await db.select().from(regions).where(eq(regions.id, id))
      if (!row) throw new NotFound('region', id)
      return regionWithCountries(db, row)
    },
    async createRegion(input: RegionInput & { name: string; currency: string }) {
      requireCurrency(input.currency)
      return write(async (tx) => {
        const [row] = await tx.insert(regions).values({ name: input.name, currency: input.currency, pricesIncludeTax: input.pricesIncludeTax ?? false }).returning()
        await setCountries(tx, row!.id, input.countries ?? [])
        return regionWithCountries(tx, row!)
      })
    },
    async updateRegion(id: string, input: RegionInput) {
      if (input.currency) requireCurrency(input.currency)
      return write(async (tx) => {
        const { countries, ...fields } = input
        const [row] = await tx.update(regions).set({ ...fields, updatedAt: new Date() }).where(eq(regions.id, id)).returning()
        if (!row) throw new NotFound('region', id)
        if (countries) await setCountries(tx, id, countries)
        return regionWithCountries(tx, row)
      })
    },
    async removeRegion(id: string) {
      await write(async (tx) => {
        const [row] = await tx.select().from(regions).where(eq(regions.id, id))
        if (!row) throw new NotFound('region', id)
        if (row.isDefault) throw new Conflict('The default region cannot be deleted', 'default-region')
        await tx.delete(regions).where(eq(regions.id, id))
      })
    },
    /** The region a cart names: by id, or the region that lists a shipping country. */
    async resolveRegion(by: { regionId?: string; country?: string }): Promise<{ id: string; currency: string; pricesIncludeTax: boolean }> {
      if (by.regionId) {
        const [row] = await db.select().from(regions).where(eq(regions.id, by.regionId))
        if (!row) throw new NotFound('region', by.regionId)
        return row
      }
      const country = by.country!.toUpperCase()
      const [row] = await db.select({ id: regions.id, currency: regions.currency, pricesIncludeTax: regions.pricesIncludeTax }).from(regionCountries)
        .innerJoin(regions, eq(regions.id, regionCountries.regionId)).where(eq(regionCountries.country, country))
      if (!row) throw new NotFound('region for country', country)
      return row
    },

    // Customer groups
    async listGroups() {
      const rows = await db.select().from(customerGroups).orderBy(asc(customerGroups.name))
      return { items: rows.map((g) => ({ id: g.id, name: g.name, createdAt: g.createdAt.toISOString() })) }
    },
    async createGroup(name: string) {
      const row = await write(async (tx) => (await tx.insert(customerGroups).values({ name }).returning())[0]!, false)
      return { id: row.id, name: row.name, createdAt: row.createdAt.toISOString() }
    },
    async removeGroup(id: string) {
      await write(async (tx) => {
        const [used] = await tx.select({ id: priceLists.id }).from(priceLists).where(eq(priceLists.customerGroupId, id)).limit(1)
        if (used) throw new Conflict('A price list names this group; change or delete it first', 'group-in-use')
        const deleted = await tx.delete(customerGroups).where(eq(customerGroups.id, id)).returning({ id: customerGroups.id })
        if (!deleted.length) throw new NotFound('customer group', id)
      })
    },
    async listMembers(groupId: string) {
      const [group] = await db.select({ id: customerGroups.id }).from(customerGroups).where(eq(customerGroups.id, groupId))
      if (!group) throw new NotFound('customer group', groupId)
      const rows = await db.select({ userId: customerGroupMembers.userId, email: users.email, addedAt: customerGroupMembers.addedAt }).from(customerGroupMembers)
        .innerJoin(users, eq(users.id, customerGroupMembers.userId)).where(eq(customerGroupMembers.groupId, groupId)).orderBy(asc(users.email))
      return { items: rows.map((r) => ({ userId: r.userId, email: r.email, addedAt: r.addedAt.toISOString() })) }
    },
    // Membership changes no cached entry: catalog reads key on the viewer's groups, read per request.
    async addMember(groupId: string, userId: string) {
      await write(async (tx) => { await tx.insert(customerGroupMembers).values({ groupId, userId }).onConflictDoNothing() }, false)
    },
    async removeMember(groupId: string, userId: string) {
      const deleted = await db.delete(customerGroupMembers).where(and(eq(customerGroupMembers.groupId, groupId), eq(customerGroupMembers.userId, userId))).returning({ userId: customerGroupMembers.userId })
      if (!deleted.length) throw new NotFound('member', userId)
    },

    // Price lists
    async listPriceLists() {
      const rows = await db.select().from(priceLists).orderBy(asc(priceLists.createdAt))
      return { items: rows.map(toList) }
    },
    async getPriceList(id: string) {
      const [row] = await db.select().from(priceLists).where(eq(priceLists.id, id))
      if (!row) throw new NotFound('price list', id)
      const prices = await db.select({ variantId: priceListPrices.variantId, currency: priceListPrices.currency, amountMinor: priceListPrices.amountMinor })
        .from(priceListPrices).where(eq(priceListPrices.priceListId, id)).orderBy(asc(priceListPrices.variantId), asc(priceListPrices.currency))
      return { ...toList(row), prices }
    },
    async createPriceList(input: PriceListInput & { name: string; kind: 'sale' | 'override' }, prices: ListPrice[] = []) {
      const id = await write(async (tx) => {
        const [row] = await tx.insert(priceLists).values(listValues(input) as typeof priceLists.$inferInsert).returning()
        await putPrices(tx, row!.id, prices)
        return row!.id
      })
      return this.getPriceList(id)
    },
    async updatePriceList(id: string, input: PriceListInput) {
      await write(async (tx) => {
        const [row] = await tx.update(priceLists).set({ ...listValues(input), updatedAt: new Date() }).where(eq(priceLists.id, id)).returning({ id: priceLists.id })
        if (!row) throw new NotFound('price list', id)
      })
      return this.getPriceList(id)
    },
    async removePriceList(id: string) {
      await write(async (tx) => {
        const deleted = await tx.delete(priceLists).where(eq(priceLists.id, id)).returning({ id: priceLists.id })
        if (!deleted.length) throw new NotFound('price list', id)
      })
    },
    /** Sets (adds or replaces) prices of a list. */
    async putPriceListPrices(id: string, prices: ListPrice[]) {
      await write(async (tx) => {
        const [row] = await tx.select({ id: priceLists.id }).from(priceLists).where(eq(priceLists.id, id)).for('update')
        if (!row) throw new NotFound('price list', id)
        await putPrices(tx, id, prices)
      })
      return this.getPriceList(id)
    },
    async removePriceListPrice(id: string, variantId: string, currency: string) {
      await write(async (tx) => {
        const deleted = await tx.delete(priceListPrices)
          .where(and(eq(priceListPrices.priceListId, id), eq(priceListPrices.variantId, variantId), eq(priceListPrices.currency, currency))).returning({ id: priceListPrices.priceListId })
        if (!deleted.length) throw new NotFound('price list price', `${variantId} in ${currency}`)
        const [variant] = await tx.select({ productId: productVariants.productId }).from(productVariants).where(eq(productVariants.id, variantId))
        if (variant) await refreshListLowestPrices(tx, await lockProducts(tx, [variant.productId]))
      })
    },
  }

  function listValues(input: PriceListInput) {
    const { startsAt, endsAt, ...rest } = input
    return {
      ...rest,
      ...(startsAt !== undefined ? { startsAt: startsAt ? new Date(startsAt) : null } : {}),
      ...(endsAt !== undefined ? { endsAt: endsAt ? new Date(endsAt) : null } : {}),
    }
  }

  async function putPrices(tx: Tx, priceListId: string, prices: ListPrice[]) {
    if (!prices.length) return
    for (const p of prices) requireCurrency(p.currency)
    const ids = [...new Set(prices.map((p) => p.variantId))]
    const found = await tx.select({ id: productVariants.id, productId: productVariants.productId }).from(productVariants).where(inArray(productVariants.id, ids))
    if (found.length !== ids.length) throw new NotFound('variant', ids.find((id) => !found.some((f) => f.id === id)))
    // One upsert for all of them (it was a statement per price: 1,000 for a full request). A
    // variant's price given twice in one request is set to the last one, as the request reads;
    // one statement cannot write a row twice, so the earlier ones are dropped first.
    const last = new Map(prices.map((p) => [`${p.variantId} ${p.currency}`, p]))
    await tx.insert(priceListPrices).values([...last.values()].map((p) => ({ priceListId, ...p })))
      .onConflictDoUpdate({ target: [priceListPrices.priceListId, priceListPrices.variantId, priceListPrices.currency], set: { amountMinor: sql`excluded.${sql.identifier(priceListPrices.amountMinor.name)}` } })
    await refreshListLowestPrices(tx, await lockProducts(tx, found.map((f) => f.productId)))
  }
}
export type PricingService = ReturnType<typeof createPricingService>
