import { and, eq, sql, type Placeholder, type SQL } from 'drizzle-orm'
import currencyCodes from 'currency-codes'
import { customerGroupMembers, priceListLowestPrices, priceListPrices, priceLists, productVariants, variantPrices } from '../db/schema/index.js'
import { arrayParam, idsForPlan, prepareOnce, type Db, type Tx } from '../db/client.js'
import { BadRequest } from './errors.js'

// The one pricing function: what a shopper sees and pays for a variant, in one currency.
//
// The rule, for one line (a variant, a quantity) in a currency, now, for a shopper:
//   1. The base price is the variant's price in that currency (variant_prices). No base price:
//      the variant is not sold in that currency, whatever price list names it.
//   2. A price list applies when its status is active, now is within [startsAt, endsAt), it names
//      no customer group or the shopper is signed in and a member of it, the line's quantity is at
//      least its minQuantity, and it has a price for the variant in that currency.
//   3. If an override list applies, the lowest applicable override price is the price, even
//      above the base (a contract price is a contract price).
//   4. Otherwise the price is the lowest of the base price and every applicable sale price.
// Listings, carts and coupon checks call priceVariants; product pages and checkout read each
// variant's pricing (its base price and the lists that apply, rule 2 in SQL) with the statement
// that reads the variants, and price it with priceOf (rules 3 and 4): the same rule, one round
// trip. Checkout reads it in its transaction, so group membership is read under the transaction
// that prices the order.

/** ISO 4217 minor-unit exponent of a currency (JPY 0, EUR 2, KWD 3); undefined when not a currency. */
export function currencyDigits(code: string): number | undefined {
  const found = /^[A-Z]{3}$/.test(code) ? currencyCodes.code(code) : undefined
  // X-codes (gold, testing, "no currency") are not money a shop takes.
  return found && !code.startsWith('X') ? found.digits : undefined
}
export const isCurrency = (code: string) => currencyDigits(code) !== undefined
/** A 400 for a code that is not an ISO 4217 currency (a client's input, not a server fault). */
export function requireCurrency(code: string) {
  if (!isCurrency(code)) throw new BadRequest(`${code} is not an ISO 4217 currency`, 'unknown-currency')
}

export interface PricingContext {
  currency: string
  /** The signed-in shopper, or null for a guest: only a member gets a group's prices. */
  userId: string | null
  at?: Date
}
export interface LinePrice {
  unitPriceMinor: number
  baseMinor: number
  /** The price list the price came from, null for the base price. */
  priceListId: string | null
}
interface Candidate { priceListId: string; kind: 'sale' | 'override'; minQuantity: number; amountMinor: number }

/** Rules 3 and 4 on one line's base price and the lists that apply to it (rule 2 done by the caller). */
export function choosePrice(baseMinor: number, candidates: Candidate[], quantity: number): LinePrice {
  const applicable = candidates.filter((c) => quantity >= c.minQuantity)
  const lowest = (cs: Candidate[]) => cs.reduce<Candidate | undefined>((best, c) => (!best || c.amountMinor < best.amountMinor || (c.amountMinor === best.amountMinor && c.priceListId < best.priceListId) ? c : best), undefined)
  const override = lowest(applicable.filter((c) => c.kind === 'override'))
  if (override) return { unitPriceMinor: override.amountMinor, baseMinor, priceListId: override.priceListId }
  const sale = lowest(applicable.filter((c) => c.kind === 'sale'))
  if (sale && sale.amountMinor < baseMinor) return { unitPriceMinor: sale.amountMinor, baseMinor, priceListId: sale.priceListId }
  return { unitPriceMinor: baseMinor, baseMinor, priceListId: null }
}

/**
 * Prices of these lines in ctx.currency for ctx's shopper. A variant absent from the answer has
 * no price in that currency (it cannot be bought there). One statement, whatever the number of lines.
 */
export async function priceVariants(db: Db | Tx, ctx: PricingContext, lines: { variantId: string; quantity: number }[]): Promise<Map<string, LinePrice>> {
  const ids = [...new Set(lines.map((l) => l.variantId))]
  const result = new Map<string, LinePrice>()
  if (!ids.length) return result
  const rows = await pricesWithCandidates(db).execute({ ids: idsForPlan(ids), currency: ctx.currency, at: ctx.at ?? new Date(), userId: ctx.userId })
  // A row per base price and list that applies to it (one with no list when none does).
  const baseOf = new Map<string, number>()
  const byVariant = new Map<string, Candidate[]>()
  for (const r of rows) {
    baseOf.set(r.variantId, r.baseMinor)
    if (r.list) (byVariant.get(r.variantId) ?? byVariant.set(r.variantId, []).get(r.variantId)!).push(r.list)
  }
  for (const line of lines) {
    const base = baseOf.get(line.variantId)
    if (base === undefined || result.has(line.variantId)) continue
    result.set(line.variantId, choosePrice(base, byVariant.get(line.variantId) ?? [], line.quantity))
  }
  return result
}

// The pricing function's statements, each built once and prepared (db/client.ts prepareOnce), for
// the pools and the checkout's transactions alike: PostgreSQL parses each once per connection,
// and the query is not built per cart read or checkout (building was most of drizzle's 15% of a
// cart read's CPU, profiled under the bench, #29).
const variantIds = sql`${sql.placeholder('ids')}::uuid[]`
const pricedAt = sql`${sql.placeholder('at')}::timestamptz`
/**
 * Rule 2's conditions on the list itself (its status, its window at `at`, its group for the shopper
 * `userId`), on the price_lists row named `list` in the statement. A guest's userId is null:
 * `user_id = null` holds for no member, so group lists never apply.
 */
const listApplies = (list: SQL) => sql`${list}.status = 'active'
  and (${list}.starts_at is null or ${list}.starts_at <= ${pricedAt}) and (${list}.ends_at is null or ${list}.ends_at > ${pricedAt})
  and (${list}.customer_group_id is null or exists (select 1 from ${customerGroupMembers} m where m.group_id = ${list}.customer_group_id and m.user_id = ${sql.placeholder('userId')}::uuid))`
/**
 * Rule 2 but the quantity, on price_list_prices joined to price_lists: the list prices in the
 * `currency` placeholder of the variants `variantIs` selects, from lists that apply at `at` to the
 * shopper `userId`.
 */
const applicableListPrices = (variantIs: SQL) => and(variantIs, eq(priceListPrices.currency, sql.placeholder('currency')), listApplies(sql`${priceLists}`))
/**
 * The ids of the lists that apply at `at` to the shopper `userId` (placeholders), whatever they
 * price, as a text[] column: a listing without a cache finds them in its own statement (an
 * uncorrelated subquery, run once) instead of reading the price schedule first.
 */
export const applyingListIds = sql<string[]>`(select coalesce(array_agg(l.id::text), '{}') from ${priceLists} l where ${listApplies(sql`l`)})`
// The lists that apply to the shopper now, with their prices for the asked variants, joined to
// the base prices: one round trip instead of two.
const pricesWithCandidates = prepareOnce((db: Db | Tx) => {
  const candidates = db.select({
    variantId: sql<string>`${priceListPrices.variantId}`.as('candidate_variant_id'), priceListId: sql<string>`${priceLists.id}`.as('candidate_list_id'),
    kind: sql<'sale' | 'override'>`${priceLists.kind}`.as('candidate_kind'), minQuantity: sql<number>`${priceLists.minQuantity}`.as('candidate_min_quantity'),
    amountMinor: sql<number>`${priceListPrices.amountMinor}`.as('candidate_amount_minor'),
  }).from(priceListPrices).innerJoin(priceLists, eq(priceLists.id, priceListPrices.priceListId))
    .where(applicableListPrices(sql`${priceListPrices.variantId} = any(${variantIds})`)).as('candidate')
  return db.select({
    variantId: variantPrices.variantId, baseMinor: variantPrices.amountMinor,
    list: { priceListId: candidates.priceListId, kind: candidates.kind, minQuantity: candidates.minQuantity, amountMinor: candidates.amountMinor },
  }).from(variantPrices).leftJoin(candidates, eq(candidates.variantId, variantPrices.variantId))
    .where(and(sql`${variantPrices.variantId} = any(${variantIds})`, eq(variantPrices.currency, sql.placeholder('currency'))))
    .prepare('prices_with_lists')
})
/** What prices a variant in a currency: its base price there and the lists that apply to it (choosePrice's input). */
export interface VariantPricing {
  baseMinor: number
  /** The lists that apply to it for the shopper now; null when none does. */
  lists: Candidate[] | null
}
/** A line's price from its variant's pricing: the same as priceVariants gives. */
export const priceOf = (p: VariantPricing, quantity: number) => choosePrice(p.baseMinor, p.lists ?? [], quantity)

/** The lists that apply to the variant `variantId` names (rule 2 but the quantity), as a JSON array or null. */
const applicableListsJson = (variantId: SQL) => sql`(
  select json_agg(json_build_object('priceListId', ${priceLists}.id, 'kind', ${priceLists}.kind, 'minQuantity', ${priceLists}.min_quantity, 'amountMinor', ${priceListPrices}.amount_minor))
  from ${priceListPrices} join ${priceLists} on ${priceLists}.id = ${priceListPrices}.price_list_id
  where ${applicableListPrices(sql`${priceListPrices}.variant_id = ${variantId}`)}
)`

/**
 * The pricing of the variant `variantId` names (qualified: drizzle writes a single table's
 * columns bare in a select list) in the `currency` placeholder for the shopper `userId` at `at`,
 * as one JSON value, null when it has no base price there: a statement that reads variants
 * prices them too (checkout), with priceOf.
 */
export function variantPricingJson(variantId: SQL) {
  return sql<VariantPricing | null>`(
    select json_build_object('baseMinor', vp.amount_minor, 'lists', ${applicableListsJson(sql`vp.variant_id`)})
    from ${variantPrices} vp where vp.variant_id = ${variantId} and vp.currency = ${sql.placeholder('currency')}
  )`
}

/** A product's active variant as a product page shows it, with what prices it. */
export interface PricedVariantRow extends VariantPricing {
  id: string; sku: string; options: Record<string, string>; priceMinor: number; compareAtPriceMinor: number | null
  stock: number; isActive: boolean; weightGrams: number | null
}

/**
 * The active variants of the product `productId` (qualified) names that have a base price in the
 * `currency` placeholder, in the product's order, each with the lists that apply (placeholders
 * `at` and `userId`), as one JSON value: a product page's variants and prices in its product
 * row's statement, priced with priceOf.
 */
export function pricedVariantsJson(productId: SQL) {
  return sql<PricedVariantRow[]>`(
    select coalesce(json_agg(json_build_object(
      'id', v.id, 'sku', v.sku, 'options', v.options, 'priceMinor', v.price_minor, 'compareAtPriceMinor', v.compare_at_price_minor,
      'stock', v.stock, 'isActive', v.is_active, 'weightGrams', v.weight_grams, 'baseMinor', vp.amount_minor, 'lists', ${applicableListsJson(sql`v.id`)}
    ) order by v.position, v.created_at), '[]'::json)
    from ${productVariants} v join ${variantPrices} vp on vp.variant_id = v.id and vp.currency = ${sql.placeholder('currency')}
    where v.product_id = ${productId} and v.is_active
  )`
}

const activeLists = prepareOnce((db: Db | Tx) => db.select({
  id: priceLists.id, startsAt: priceLists.startsAt, endsAt: priceLists.endsAt, groupId: priceLists.customerGroupId, kind: priceLists.kind, minQuantity: priceLists.minQuantity,
}).from(priceLists).where(eq(priceLists.status, 'active')).prepare('price_schedule'))

/** The customer groups a signed-in shopper is in (part of a catalog read's pricing context). */
export async function groupsOf(db: Db | Tx, userId: string | null): Promise<string[]> {
  if (!userId) return []
  const rows = await db.select({ groupId: customerGroupMembers.groupId }).from(customerGroupMembers).where(eq(customerGroupMembers.userId, userId))
  return rows.map((r) => r.groupId).sort()
}

/**
 * An active-status price list's window and group: what decides, without I/O, which lists apply at
 * a moment; and its kind and least quantity: whether it can set a listed price (quantity 1) above
 * the base.
 */
export interface ScheduledList { id: string; startsAt: number | null; endsAt: number | null; groupId: string | null; kind: 'sale' | 'override'; minQuantity: number }

export async function loadSchedule(db: Db | Tx): Promise<ScheduledList[]> {
  const rows = await activeLists(db).execute()
  return rows.map((r) => ({ id: r.id, startsAt: r.startsAt?.getTime() ?? null, endsAt: r.endsAt?.getTime() ?? null, groupId: r.groupId, kind: r.kind, minQuantity: r.minQuantity }))
    .sort((a, b) => (a.id < b.id ? -1 : 1))
}

/**
 * What a cached catalog price depends on at `now` for a shopper in these groups: the ids of the
 * lists that apply (a sale starting or ending changes it, so the cache key moves on at that very
 * moment), and the milliseconds until the next start or end (no entry lives past it).
 */
export function pricingMoment(schedule: ScheduledList[], groups: string[], now: number): { key: string; lists: string[]; salesOnly: boolean; msToNextChange: number | null } {
  const mine = schedule.filter((l) => l.groupId === null || groups.includes(l.groupId))
  const active = mine.filter((l) => (l.startsAt === null || l.startsAt <= now) && (l.endsAt === null || now < l.endsAt))
  const next = mine.flatMap((l) => [l.startsAt, l.endsAt]).filter((t): t is number => t !== null && t > now)
  // Only sales set the listed prices (those of quantity 1): each product's lowest is the least of
  // its lowest under each list (price_list_lowest_prices). An override does not compose so. (A
  // schedule cached before lists had a kind reads as not sales only: the slower, same answer.)
  const salesOnly = active.every((l) => l.kind === 'sale' || l.minQuantity > 1)
  const lists = active.map((l) => l.id)
  return { key: lists.join(',') || '-', lists, salesOnly, msToNextChange: next.length ? Math.min(...next) - now : null }
}

// A variant's price at quantity 1 from its base price `vp` and `c`, the lists' lowest override and sale for it.
const listedPrice = sql`coalesce(c.override_minor, least(vp.amount_minor, c.sale_minor))`
/** `c`'s columns and source: the lowest override and sale price of `lists` (quantity 1) in `currency`, to filter by variant. */
const lowestListPrices = (currency: SQL | Placeholder, lists: SQL) => sql`min(lp.amount_minor) filter (where l.kind = 'override') as override_minor, min(lp.amount_minor) filter (where l.kind = 'sale') as sale_minor
      from ${priceListPrices} lp join ${priceLists} l on l.id = lp.price_list_id
      where lp.price_list_id = any(${lists}) and lp.currency = ${currency} and l.min_quantity <= 1`

/**
 * The range (listed_min_minor, listed_max_minor; null when it sells nothing in `currency`) of the
 * prices at quantity 1 under `lists` of the active variants of the product `productId` names:
 * its variants found by their index and each one's list prices by theirs, work in proportion to
 * one product (joined as sets for a page, PostgreSQL scanned every variant to hash them, 0.9 ms
 * a page against 0.25 ms).
 */
export function listedRangeOf(currency: SQL | Placeholder, lists: SQL, productId: SQL) {
  return sql`
      select min(${listedPrice})::int as listed_min_minor, max(${listedPrice})::int as listed_max_minor
      from ${productVariants} v
      join ${variantPrices} vp on vp.variant_id = v.id and vp.currency = ${currency}
      cross join lateral (select ${lowestListPrices(currency, lists)} and lp.variant_id = v.id) c
      where v.product_id = ${productId} and v.is_active`
}

/**
 * listedPriceRanges' lowest prices (product_id, listed_min_minor) when every list in `lists` that
 * prices quantity 1 is a sale (pricingMoment's salesOnly): the least of each product's lowest
 * under each list, read from price_list_lowest_prices, a row per product the lists touch, and no
 * product is priced at the read. Under a 500-variant sale, 3.3 ms of PostgreSQL per page before.
 */
export function listedLowestPrices(currency: SQL | Placeholder, lists: SQL) {
  return sql`
    select r.product_id, min(r.min_minor) as listed_min_minor
    from ${priceListLowestPrices} r join ${priceLists} l on l.id = r.price_list_id and l.min_quantity <= 1
    where r.price_list_id = any(${lists}) and r.currency = ${currency}
    group by r.product_id`
}

/**
 * Recomputes price_list_lowest_prices for these products, every list and currency, from their
 * variants, base prices and list prices: call in every write of those (the variant and price
 * writes call it through refreshPriceRanges and refreshManyProducts), with the products locked
 * (src/catalog.ts lockProducts), so two writes to one product compute one after the other and
 * the last sees both.
 */
export async function refreshListLowestPrices(tx: Tx, productIds: readonly string[]) {
  if (!productIds.length) return
  const list = arrayParam(productIds, 'uuid')
  await tx.execute(sql`
    with sold as (
      select v.id, v.product_id, vp.currency, vp.amount_minor
      from ${productVariants} v join ${variantPrices} vp on vp.variant_id = v.id
      where v.product_id = any(${list}) and v.is_active
    ), base as (
      select product_id, currency, min(amount_minor) as min_minor from sold group by product_id, currency
    ), r as (
      select lp.price_list_id, s.currency, s.product_id, least(min(lp.amount_minor), b.min_minor) as min_minor
      from sold s
      join ${priceListPrices} lp on lp.variant_id = s.id and lp.currency = s.currency
      join base b on b.product_id = s.product_id and b.currency = s.currency
      group by lp.price_list_id, s.currency, s.product_id, b.min_minor
    ), gone as (
      delete from ${priceListLowestPrices} t where t.product_id = any(${list})
        and not exists (select 1 from r where r.price_list_id = t.price_list_id and r.currency = t.currency and r.product_id = t.product_id)
    )
    insert into ${priceListLowestPrices} (price_list_id, currency, product_id, min_minor)
    select price_list_id, currency, product_id, min_minor from r
    on conflict (price_list_id, currency, product_id) do update set min_minor = excluded.min_minor
    where ${priceListLowestPrices}.min_minor is distinct from excluded.min_minor`)
}

/**
 * The same rule as priceVariants, in SQL, for listings that sort and filter by the price a shopper
 * pays: one row per product with an active variant priced by one of `lists` in `currency`, with
 * the range of its active variants' prices at quantity 1 (rule 2's quantity; the window and the
 * group are already decided: `lists` are the ids pricingMoment found applying to this shopper now).
 * An override's lowest price wins (rule 3), else the lowest of base and sales (rule 4); a variant
 * without a base price in the currency is not sold in it (rule 1). Products absent from it list
 * at their base range (product_price_ranges). test/multi-currency.test.ts checks that listings
 * and product pages agree.
 * A listing page's items are priced one by one instead (listedRangeOf).
 */
export function listedPriceRanges(currency: SQL | Placeholder, lists: SQL) {
  // Every product the lists price: their prices read once, the products they touch each found by
  // its variant's primary key (a sale is a small share of a catalog).
  return sql`
    with candidate as (select lp.variant_id, ${lowestListPrices(currency, lists)} group by lp.variant_id)
    , touched as (select distinct (select pv.product_id from ${productVariants} pv where pv.id = candidate.variant_id and pv.is_active) as product_id from candidate)
    select v.product_id, min(${listedPrice})::int as listed_min_minor, max(${listedPrice})::int as listed_max_minor
    from touched t
    join ${productVariants} v on v.product_id = t.product_id and v.is_active
    join ${variantPrices} vp on vp.variant_id = v.id and vp.currency = ${currency}
    left join candidate c on c.variant_id = v.id
    group by v.product_id`
}
