import { and, count, eq, sql } from 'drizzle-orm'
import { couponRedemptions, coupons, users } from '../../db/schema/index.js'
import { isCheckViolation, isUniqueViolation, type Db } from '../../db/client.js'
import { Conflict, NotFound } from '../../src/errors.js'
import { requireCurrency } from '../../src/prices.js'
import { newestFirst } from '../../src/pagination.js'
import { categoryAndDescendants } from '../../src/catalog.js'
import type { Tx } from '../../db/client.js'
import { couponShortfall, discountFor, type CouponRule, type PricedLine } from '../../src/pricing.js'

type CouponRow = typeof coupons.$inferSelect
export type CouponInput = Partial<Omit<CouponRow, 'id' | 'timesRedeemed' | 'createdAt' | 'updatedAt' | 'startsAt' | 'endsAt'>> & { startsAt?: string | null; endsAt?: string | null }

export const normalizeCode = (code: string) => code.trim().toUpperCase()
const iso = (d: Date | null) => (d ? d.toISOString() : null)

export function toCoupon(row: CouponRow) {
  return {
    id: row.id, code: row.code, kind: row.kind, value: row.value, currency: row.currency, minSubtotalMinor: row.minSubtotalMinor, maxDiscountMinor: row.maxDiscountMinor,
    startsAt: iso(row.startsAt), endsAt: iso(row.endsAt), usageLimit: row.usageLimit, perCustomerLimit: row.perCustomerLimit,
    timesRedeemed: row.timesRedeemed, productIds: row.productIds, categoryIds: row.categoryIds, isActive: row.isActive, createdAt: row.createdAt.toISOString(),
  }
}

/** A problem with a code for this customer and these lines, thrown as 409 with a reason. */
export class CouponNotApplicable extends Conflict {
  constructor(reason: string) { super(reason, 'coupon-not-applicable') }
}

/** The coupon as pricing sees it, with its categories expanded to their descendants. */
async function ruleOf(db: Db | Tx, row: CouponRow): Promise<CouponRule> {
  let categoryIds: string[] = []
  if (row.categoryIds.length) {
    const { rows } = await db.execute<{ id: string }>(sql`select distinct id from (${sql.join(row.categoryIds.map((id) => sql`select id from ${categoryAndDescendants(id)} as d`), sql` union `)}) c`)
    categoryIds = rows.map((r) => r.id)
  }
  return { kind: row.kind, value: row.value, minSubtotalMinor: row.minSubtotalMinor, maxDiscountMinor: row.maxDiscountMinor, productIds: row.productIds, categoryIds }
}

/** Everything that makes a code unusable now, in the order a shopper would want to hear it. */
/** Whose limit a redemption counts against: a customer's account, or a guest's email. */
export type Redeemer = { userId: string } | { email: string }

async function checkUsable(db: Db | Tx, row: CouponRow | undefined, redeemer: Redeemer, lines: PricedLine[], currency: string, now = new Date()) {
  if (!row || !row.isActive) throw new CouponNotApplicable('The code does not exist or is no longer active')
  // A fixed amount is money of one currency: never taken off an order in another.
  if (row.kind === 'fixed' && row.currency !== currency) throw new CouponNotApplicable(`The code takes ${row.currency} off, and this cart is in ${currency}`)
  if (row.startsAt && row.startsAt > now) throw new CouponNotApplicable('The code is not valid yet')
  if (row.endsAt && row.endsAt <= now) throw new CouponNotApplicable('The code has expired')
  if (row.usageLimit !== null && row.timesRedeemed >= row.usageLimit) throw new CouponNotApplicable('The code has been used up')
  if (row.perCustomerLimit !== null) {
    // A guest's uses count by email, which also holds the uses of the account with that address.
    const whose = 'userId' in redeemer ? eq(couponRedemptions.userId, redeemer.userId) : eq(couponRedemptions.email, redeemer.email)
    const [used] = await db.select({ n: count() }).from(couponRedemptions).where(and(eq(couponRedemptions.couponId, row.id), whose))
    if ((used?.n ?? 0) >= row.perCustomerLimit) throw new CouponNotApplicable('You have already used this code as often as it allows')
  }
  const rule = await ruleOf(db, row)
  const shortfall = couponShortfall(lines, rule)
  if (shortfall) throw new CouponNotApplicable(shortfall)
  return rule
}

/** `currency`: the store currency, which a fixed-amount coupon created without one is in. */
export function createCouponService({ db, currency: storeCurrency }: { db: Db; currency: string }) {
  const byCode = (code: string) => db.select().from(coupons).where(eq(coupons.code, normalizeCode(code))).limit(1)

  function values(input: CouponInput, current?: CouponRow) {
    const { startsAt, endsAt, code, currency, ...rest } = input
    // A fixed amount names its currency (the store's unless given); a percentage has none.
    const kind = input.kind ?? current?.kind
    const fixedCurrency = kind === 'fixed' ? (currency ?? current?.currency ?? storeCurrency) : null
    if (fixedCurrency) requireCurrency(fixedCurrency)
    return {
      ...rest,
      currency: fixedCurrency,
      ...(code !== undefined ? { code: normalizeCode(code) } : {}),
      ...(startsAt !== undefined ? { startsAt: startsAt ? new Date(startsAt) : null } : {}),
      ...(endsAt !== undefined ? { endsAt: endsAt ? new Date(endsAt) : null } : {}),
    }
  }

  async function write<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (isUniqueViolation(err, 'coupons_code_key')) throw new Conflict('Another coupon has that code', 'code-taken')
      if (isCheckViolation(err)) throw new Conflict('The coupon values are inconsistent (a percentage is 1-100; the usage limit cannot go below the uses so far)', 'invalid-coupon')
      throw err
    }
  }

  return {
    async create(input: CouponInput & { code: string; kind: 'percentage' | 'fixed'; value: number }) {
      return write(async () => toCoupon((await db.insert(coupons).values(values(input) as typeof coupons.$inferInsert).returning())[0]!))
    },
    async update(id: string, input: CouponInput) {
      return write(async () => {
        const [current] = await db.select().from(coupons).where(eq(coupons.id, id))
        if (!current) throw new NotFound('coupon', id)
        const [row] = await db.update(coupons).set({ ...values(input, current), updatedAt: new Date() }).where(eq(coupons.id, id)).returning()
        if (!row) throw new NotFound('coupon', id)
        return toCoupon(row)
      })
    },
    async get(id: string) {
      const [row] = await db.select().from(coupons).where(eq(coupons.id, id))
      if (!row) throw new NotFound('coupon', id)
      return toCoupon(row)
    },
    async list(query: { limit: number; cursor?: string }) {
      const keyset = newestFirst(coupons.createdAt, coupons.id)
      const rows = await db.select().from(coupons).where(keyset.after(query.cursor)).orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      return { items: page.items.map(toCoupon), nextCursor: page.nextCursor }
    },
    /** Deletes a coupon never redeemed; one with redemptions can only be deactivated. */
    async remove(id: string) {
      const [used] = await db.select({ n: count() }).from(couponRedemptions).where(eq(couponRedemptions.couponId, id))
      if ((used?.n ?? 0) > 0) throw new Conflict('The coupon has been redeemed; deactivate it instead', 'coupon-redeemed')
      const deleted = await db.delete(coupons).where(eq(coupons.id, id)).returning({ id: coupons.id })
      if (!deleted.length) throw new NotFound('coupon', id)
    },

    /** Explains whether a code applies to these lines for this customer now, and what it takes off. */
    async validate(code: string, userId: string, lines: PricedLine[], currency: string) {
      const [row] = await byCode(code)
      try {
        const rule = await checkUsable(db, row, { userId }, lines, currency)
        return { code: normalizeCode(code), valid: true, reason: null, discountMinor: discountFor(lines, rule).discountMinor }
      } catch (err) {
        if (err instanceof CouponNotApplicable) return { code: normalizeCode(code), valid: false, reason: err.message, discountMinor: 0 }
        throw err
      }
    },

    /** Checks that a code exists and is active, for applying it to a cart. */
    async requireActive(code: string) {
      const [row] = await byCode(code)
      if (!row || !row.isActive) throw new NotFound('coupon', normalizeCode(code))
      return row
    },
  }
}

/**
 * Inside the checkout transaction: locks the coupon row (so concurrent checkouts with this code
 * take turns), checks every limit against committed redemptions, and counts this use.
 */
export async function redeemInCheckout(tx: Tx, code: string, redeemer: Redeemer, lines: PricedLine[], currency: string) {
  const [row] = await tx.select().from(coupons).where(eq(coupons.code, normalizeCode(code))).for('update')
  const rule = await checkUsable(tx, row, redeemer, lines, currency)
  await tx.update(coupons).set({ timesRedeemed: sql`${coupons.timesRedeemed} + 1` }).where(eq(coupons.id, row!.id))
  // The redemption records the buyer's email too (a customer's account address), so a guest
  // checking out with that address later counts the account's uses.
  const email = 'email' in redeemer ? redeemer.email
    : (await tx.select({ email: users.email }).from(users).where(eq(users.id, redeemer.userId)))[0]?.email ?? null
  return { coupon: row!, rule, email }
}
