import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import { addresses, shippingOptions, shippingZoneLocations, shippingZones, stockLocations, taxRates, type ShippingSnapshot, type TaxSnapshot } from '../../db/schema/index.js'
import { isCheckViolation, isUniqueViolation, prepareOnce, type Db, type Tx } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import { shippingRuleFor, type ShippingRule } from '../../src/pricing.js'
import { requireCurrency } from '../../src/prices.js'
import { availableIn } from '../../src/inventory.js'

// Shipping zones and options, and tax rates by destination: admin CRUD, what applies to a
// destination, and the defaults seeded from SHIPPING_FLAT_MINOR / SHIPPING_FREE_OVER_MINOR /
// TAX_RATE_BPS when none exist.

type ZoneRow = typeof shippingZones.$inferSelect
type OptionRow = typeof shippingOptions.$inferSelect
type RateRow = typeof taxRates.$inferSelect
type Reader = Db | Tx

/** The tax rates that may apply in the `country` placeholder's country: its own, and the default (no country). */
const ratesOfCountry = (rate: SQL) => sql`${rate}.country = ${sql.placeholder('country')} or ${rate}.country is null`

// What every checkout and shipping quote reads, built once and prepared (db/client.ts prepareOnce).
// The active options in a currency of the zones that serve a country (those listing it, else the
// fallback zones, which list none), with their zones: one round trip for a checkout. An option
// priced in another currency never reaches the cart: its amounts would be charged unconverted.
const optionsFor = prepareOnce((q: Reader) => {
  const lists = sql`${shippingZones.countries} @> array[${sql.placeholder('country')}::text]::text[]`
  const serving = sql`(${lists} or (cardinality(${shippingZones.countries}) = 0
    and not exists (select 1 from ${shippingZones} listing where listing.countries @> array[${sql.placeholder('country')}::text]::text[])))`
  // The destination country's tax rates (and the default) ride along: a checkout chooses its
  // option and rate in one round trip.
  const rates = sql<TaxRateChoice[]>`(select coalesce(json_agg(json_build_object('id', r.id, 'name', r.name, 'country', r.country, 'region', r.region, 'rateBps', r.rate_bps)), '[]'::json)
    from ${taxRates} r where ${ratesOfCountry(sql`r`)})`
  return q.select({ option: shippingOptions, zone: shippingZones, rates }).from(shippingOptions)
    .innerJoin(shippingZones, eq(shippingZones.id, shippingOptions.zoneId))
    .where(and(serving, eq(shippingOptions.isActive, true), eq(shippingOptions.currency, sql.placeholder('currency'))))
    .orderBy(asc(shippingOptions.position), asc(shippingOptions.name), asc(shippingOptions.id)).prepare('shipping_options_for')
})
type TaxRateChoice = Pick<RateRow, 'id' | 'name' | 'country' | 'region' | 'rateBps'>
const taxRatesOf = prepareOnce((q: Reader) => q.select().from(taxRates)
  .where(ratesOfCountry(sql`${taxRates}`)).prepare('tax_rates_of'))
export interface Band { upTo: number; priceMinor: number }
export interface OptionInput { name?: string; currency?: string; priceMinor?: number; freeOverMinor?: number | null; bandBasis?: 'weight' | 'subtotal' | null; bands?: Band[]; isActive?: boolean; position?: number }
export interface RateInput { name?: string; country?: string | null; region?: string | null; rateBps?: number }

const iso = (d: Date) => d.toISOString()
export const toOption = (o: OptionRow) => ({
  id: o.id, zoneId: o.zoneId, name: o.name, currency: o.currency, priceMinor: o.priceMinor, freeOverMinor: o.freeOverMinor, bandBasis: o.bandBasis,
  bands: o.bands, isActive: o.isActive, position: o.position, createdAt: iso(o.createdAt),
})
const toZone = (z: ZoneRow, options: OptionRow[]) => ({ id: z.id, name: z.name, countries: z.countries, options: options.map(toOption), createdAt: iso(z.createdAt) })
const toRate = (r: RateRow) => ({ id: r.id, name: r.name, country: r.country, region: r.region, rateBps: r.rateBps, createdAt: iso(r.createdAt) })
const normRegion = (region: string | null | undefined) => (region ? region.trim().toUpperCase() : null)

function checkBands(input: OptionInput, current?: OptionRow) {
  const basis = input.bandBasis !== undefined ? input.bandBasis : current?.bandBasis ?? null
  const bands = input.bands ?? current?.bands ?? []
  if (basis && !bands.length) throw new BadRequest('bandBasis needs at least one band', 'shipping-bands-missing')
  if (!basis && bands.length) throw new BadRequest('bands need a bandBasis (weight or subtotal)', 'shipping-bands-without-basis')
  if (new Set(bands.map((b) => b.upTo)).size !== bands.length) throw new BadRequest('Two bands have the same upTo', 'shipping-bands-duplicate')
}

/** An option chosen for an order: its price rule and what the order keeps of it. */
export interface ShippingChoice { rule: ShippingRule; snapshot: ShippingSnapshot }
export interface Destination { country: string; region?: string | null }
/** What an option's price depends on: the goods after discount and their weight, in the cart's currency. */
export interface ShippedCart { goodsMinor: number; weightGrams: number; currency: string }

export interface ShippingDefaults { shippingFlatMinor: number; shippingFreeOverMinor: number; taxRateBps: number }

export function createShippingService({ db, defaults, currency: storeCurrency }: { db: Db; defaults: ShippingDefaults; currency: string }) {

  async function write<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (isUniqueViolation(err, 'tax_rates_destination_key')) throw new Conflict('A tax rate for that country and region exists already', 'tax-rate-exists')
      if (isCheckViolation(err)) throw new BadRequest('The values are inconsistent (a region needs a country)', 'invalid-values')
      throw err
    }
  }

  /**
   * Active options of the zones that serve the destination that reach this cart, with what each
   * charges it; and the destination's tax rates when any option serves it (else undefined).
   */
  async function applicable(q: Reader, dest: Destination, cart: ShippedCart) {
    const options = await optionsFor(q).execute({ country: dest.country, currency: cart.currency })
    const found = options.flatMap(({ option: o, zone }) => {
      const rule = shippingRuleFor(o, cart)
      if (!rule) return []
      const priceMinor = rule.freeOverMinor > 0 && cart.goodsMinor >= rule.freeOverMinor ? 0 : rule.flatMinor
      return [{ option: o, zone, rule, priceMinor }]
    })
    return { found, rates: options[0]?.rates }
  }

  /** The destination's rate: its region's, else its country's, else the default (country null), else none. */
  async function taxRateFor(q: Reader, dest: Destination, rates?: TaxRateChoice[]): Promise<TaxSnapshot> {
    const region = normRegion(dest.region)
    const rows = rates ?? await taxRatesOf(q).execute({ country: dest.country })
    const pick = (region ? rows.find((r) => r.country === dest.country && r.region !== null && r.region === region) : undefined)
      ?? rows.find((r) => r.country === dest.country && r.region === null)
      ?? rows.find((r) => r.country === null)
    return pick ? { rateId: pick.id, name: pick.name, country: pick.country, region: pick.region, rateBps: pick.rateBps } : { rateId: null, name: 'No tax', country: null, region: null, rateBps: 0 }
  }

  /**
   * A shop without zones gets one fallback zone with one option from the
   * SHIPPING_* settings; without tax rates, a default rate of TAX_RATE_BPS. Instances take
   * turns under an advisory lock, so two starting together make one set.
   */
  async function ensureDefaults(settings: ShippingDefaults) {
    return db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(hashtext('shop:shipping-defaults'))`)
      const made = { zone: false, taxRate: false }
      if (!(await tx.select({ id: shippingZones.id }).from(shippingZones).limit(1)).length) {
        const [zone] = await tx.insert(shippingZones).values({ name: 'Everywhere', countries: [] }).returning()
        await tx.insert(shippingOptions).values({ zoneId: zone!.id, name: 'Standard', currency: storeCurrency, priceMinor: settings.shippingFlatMinor, freeOverMinor: settings.shippingFreeOverMinor || null })
        made.zone = true
      }
      if (!(await tx.select({ id: taxRates.id }).from(taxRates).limit(1)).length) {
        await tx.insert(taxRates).values({ name: 'Default', country: null, region: null, rateBps: settings.taxRateBps })
        made.taxRate = true
      }
      return made
    })
  }
  // Seeded once per process, before the first read that needs them (not at start-up: the
  // OpenAPI generator builds the app without migrating), and tried again after a failure.
  let seeded: Promise<unknown> | null = null
  function ready() {
    seeded ??= ensureDefaults(defaults).catch((err: unknown) => { seeded = null; throw err })
    return seeded
  }

  /** The stock locations that serve a zone (none named: every active location). */
  async function zoneLocations(zoneId: string, q: Reader = db) {
    const [zone] = await q.select({ id: shippingZones.id }).from(shippingZones).where(eq(shippingZones.id, zoneId))
    if (!zone) throw new NotFound('shipping zone', zoneId)
    const rows = await q.select({ id: stockLocations.id }).from(shippingZoneLocations).innerJoin(stockLocations, eq(stockLocations.id, shippingZoneLocations.locationId))
      .where(eq(shippingZoneLocations.zoneId, zoneId)).orderBy(asc(stockLocations.priority), asc(stockLocations.name))
    return { zoneId, locationIds: rows.map((r) => r.id), allLocations: rows.length === 0 }
  }

  /** 404 naming the first of these that is not a stock location. */
  async function requireLocations(q: Reader, ids: string[]) {
    if (!ids.length) return
    const found = new Set((await q.select({ id: stockLocations.id }).from(stockLocations).where(inArray(stockLocations.id, ids))).map((r) => r.id))
    const missing = ids.find((id) => !found.has(id))
    if (missing) throw new NotFound('stock location', missing)
  }

  async function getZone(id: string) {
    const [zone] = await db.select().from(shippingZones).where(eq(shippingZones.id, id))
    if (!zone) throw new NotFound('shipping zone', id)
    return toZone(zone, await db.select().from(shippingOptions).where(eq(shippingOptions.zoneId, id)).orderBy(asc(shippingOptions.position), asc(shippingOptions.name)))
  }

  return {
    ready,
    applicable,
    taxRateFor,

    /** The country and region of one of the user's saved addresses. */
    async destinationOf(userId: string, addressId: string): Promise<Destination> {
      const [row] = await db.select({ country: addresses.country, region: addresses.region }).from(addresses).where(and(eq(addresses.id, addressId), eq(addresses.userId, userId)))
      // Not named back: whether someone else's address id exists is not the caller's to learn.
      if (!row) throw new NotFound('address')
      return row
    },

    /**
     * What each applicable option charges this cart at this destination, and the destination's
     * tax rate. With the cart's lines, an option is left out when the locations serving its zone
     * cannot fill them (a read: checkout's reservation decides).
     */
    async quote(dest: Destination, cart: ShippedCart, lines?: { variantId: string; quantity: number }[]) {
      await ready()
      const applying = await applicable(db, dest, cart)
      let found = applying.found
      if (lines?.length && found.length) {
        const wanted = new Map<string, number>()
        for (const l of lines) wanted.set(l.variantId, (wanted.get(l.variantId) ?? 0) + l.quantity)
        const fills = new Map<string, boolean>()
        for (const zoneId of new Set(found.map((f) => f.zone.id))) {
          const available = await availableIn(db, zoneId, [...wanted.keys()])
          fills.set(zoneId, [...wanted].every(([variantId, quantity]) => (available.get(variantId) ?? 0) >= quantity))
        }
        found = found.filter((f) => fills.get(f.zone.id))
      }
      const rate = await taxRateFor(db, dest, applying.rates)
      return {
        country: dest.country, region: dest.region ?? null, goodsMinor: cart.goodsMinor, weightGrams: cart.weightGrams, taxRateBps: rate.rateBps,
        options: found.map((f) => ({ id: f.option.id, name: f.option.name, zoneId: f.zone.id, zoneName: f.zone.name, priceMinor: f.priceMinor })),
      }
    },

    /**
     * In the checkout transaction: the chosen option if it applies to this destination and cart
     * (409 otherwise); without a choice, the one option that applies (409 when none or several).
     * With the destination's tax rate, read by the same statement.
     */
    async choose(tx: Tx, dest: Destination, cart: ShippedCart, optionId: string | undefined): Promise<ShippingChoice & { taxRate: TaxSnapshot }> {
      const { found, rates } = await applicable(tx, dest, cart)
      const ids = found.map((f) => f.option.id).join(', ')
      let pick = found[0]
      if (optionId) {
        pick = found.find((f) => f.option.id === optionId)
        if (!pick) throw new Conflict(`Shipping option ${optionId} does not apply to this cart and destination (${dest.country})${ids ? `; these do: ${ids}` : ''}`, 'shipping-option-not-applicable')
      }
      else if (!found.length) throw new Conflict(`No shipping option reaches ${dest.country} for this cart`, 'no-shipping-option')
      else if (found.length > 1) throw new Conflict(`Choose a shippingOptionId: several apply (${ids}); GET /cart/shipping-options lists them`, 'shipping-option-required')
      return {
        rule: pick!.rule, snapshot: { optionId: pick!.option.id, name: pick!.option.name, zoneId: pick!.zone.id, zoneName: pick!.zone.name },
        taxRate: await taxRateFor(tx, dest, rates),
      }
    },


    zoneLocations,
    /** Names the locations that serve a zone, replacing those named before; [] gives it back to every active location. */
    async setZoneLocations(zoneId: string, locationIds: string[]) {
      return db.transaction(async (tx) => {
        // The zone row locked: two admins setting the same zone apply one after the other.
        const [zone] = await tx.select({ id: shippingZones.id }).from(shippingZones).where(eq(shippingZones.id, zoneId)).for('update')
        if (!zone) throw new NotFound('shipping zone', zoneId)
        await requireLocations(tx, locationIds)
        await tx.delete(shippingZoneLocations).where(eq(shippingZoneLocations.zoneId, zoneId))
        if (locationIds.length) await tx.insert(shippingZoneLocations).values(locationIds.map((locationId) => ({ zoneId, locationId })))
        return zoneLocations(zoneId, tx)
      })
    },
    /** Adds one location to those serving a zone (nothing when it is there already). */
    async addZoneLocation(zoneId: string, locationId: string) {
      return db.transaction(async (tx) => {
        const [zone] = await tx.select({ id: shippingZones.id }).from(shippingZones).where(eq(shippingZones.id, zoneId)).for('update')
        if (!zone) throw new NotFound('shipping zone', zoneId)
        await requireLocations(tx, [locationId])
        await tx.insert(shippingZoneLocations).values({ zoneId, locationId }).onConflictDoNothing()
        return zoneLocations(zoneId, tx)
      })
    },
    /** Removes one location from those serving a zone (nothing when it was not there). Removing the last gives the zone back to every active location. */
    async removeZoneLocation(zoneId: string, locationId: string) {
      return db.transaction(async (tx) => {
        const [zone] = await tx.select({ id: shippingZones.id }).from(shippingZones).where(eq(shippingZones.id, zoneId)).for('update')
        if (!zone) throw new NotFound('shipping zone', zoneId)
        await requireLocations(tx, [locationId])
        await tx.delete(shippingZoneLocations).where(and(eq(shippingZoneLocations.zoneId, zoneId), eq(shippingZoneLocations.locationId, locationId)))
        return zoneLocations(zoneId, tx)
      })
    },

    async listZones() {
      await ready()
      const zones = await db.select().from(shippingZones).orderBy(asc(shippingZones.createdAt), asc(shippingZones.id))
      const options = zones.length ? await db.select().from(shippingOptions).where(inArray(shippingOptions.zoneId, zones.map((z) => z.id))).orderBy(asc(shippingOptions.position), asc(shippingOptions.name)) : []
      return { items: zones.map((z) => toZone(z, options.filter((o) => o.zoneId === z.id))) }
    },
    getZone,
    async createZone(input: { name: string; countries: string[] }) {
      await ready()
      const [zone] = await db.insert(shippingZones).values({ name: input.name, countries: input.countries }).returning()
      return toZone(zone!, [])
    },
    async updateZone(id: string, input: { name?: string; countries?: string[] }) {
      const [zone] = await db.update(shippingZones).set({ ...input, updatedAt: new Date() }).where(eq(shippingZones.id, id)).returning()
      if (!zone) throw new NotFound('shipping zone', id)
      return getZone(id)
    },
    /** Deletes a zone and its options; orders keep their snapshot. */
    async removeZone(id: string) {
      const gone = await db.delete(shippingZones).where(eq(shippingZones.id, id)).returning({ id: shippingZones.id })
      if (!gone.length) throw new NotFound('shipping zone', id)
    },

    async createOption(zoneId: string, input: OptionInput & { name: string; priceMinor: number }) {
      checkBands(input)
      if (input.currency !== undefined) requireCurrency(input.currency)
      const [zone] = await db.select({ id: shippingZones.id }).from(shippingZones).where(eq(shippingZones.id, zoneId))
      if (!zone) throw new NotFound('shipping zone', zoneId)
      return write(async () => toOption((await db.insert(shippingOptions).values({ ...input, currency: input.currency ?? storeCurrency, zoneId }).returning())[0]!))
    },
    async updateOption(id: string, input: OptionInput) {
      const [current] = await db.select().from(shippingOptions).where(eq(shippingOptions.id, id))
      if (!current) throw new NotFound('shipping option', id)
      checkBands(input, current)
      if (input.currency !== undefined) requireCurrency(input.currency)
      return write(async () => toOption((await db.update(shippingOptions).set({ ...input, updatedAt: new Date() }).where(eq(shippingOptions.id, id)).returning())[0]!))
    },
    async removeOption(id: string) {
      const gone = await db.delete(shippingOptions).where(eq(shippingOptions.id, id)).returning({ id: shippingOptions.id })
      if (!gone.length) throw new NotFound('shipping option', id)
    },

    async listTaxRates() {
      await ready()
      const rows = await db.select().from(taxRates).orderBy(sql`${taxRates.country} nulls first`, sql`${taxRates.region} nulls first`)
      return { items: rows.map(toRate) }
    },
    async createTaxRate(input: RateInput & { name: string; rateBps: number }) {
      await ready()
      return write(async () => toRate((await db.insert(taxRates).values({ ...input, region: normRegion(input.region) }).returning())[0]!))
    },
    async updateTaxRate(id: string, input: RateInput) {
      const values = { ...input, ...(input.region !== undefined ? { region: normRegion(input.region) } : {}), updatedAt: new Date() }
      const [row] = await write(() => db.update(taxRates).set(values).where(eq(taxRates.id, id)).returning())
      if (!row) throw new NotFound('tax rate', id)
      return toRate(row)
    },
    async removeTaxRate(id: string) {
      const gone = await db.delete(taxRates).where(eq(taxRates.id, id)).returning({ id: taxRates.id })
      if (!gone.length) throw new NotFound('tax rate', id)
    },
  }
}
export type ShippingService = ReturnType<typeof createShippingService>
