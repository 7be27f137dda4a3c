import { sql } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import { BadRequest } from '../../src/errors.js'
import { roundHalfUp } from '../../src/pricing.js'

// Admin figures computed from the orders, payments and users themselves. Sums and counts come
// from PostgreSQL; ratios are divided here. Days are UTC. Money is summed per currency, never
// across: each report is of one currency (the store's unless asked), and sales lists every currency apart.

interface Range { from: string; to: string; currency?: string }
/** a / b to four decimals; 0 when there is nothing to divide by. */
export const ratio = (a: number, b: number) => (b === 0 ? 0 : Math.round((a / b) * 10_000) / 10_000)

/** Refuses an empty, reversed or longer-than-366-days range (400). */
export function checkRange({ from, to }: Range) {
  if (Date.parse(from) >= Date.parse(to)) throw new BadRequest('from must be before to', 'invalid-range')
  if (Date.parse(to) - Date.parse(from) > 366 * 86_400_000) throw new BadRequest('A range covers at most 366 days', 'invalid-range')
}

export function createAnalyticsService({ db, currency: storeCurrency }: { db: Db; currency: string }) {
  const rows = async <T>(query: ReturnType<typeof sql>) => (await db.execute(query)).rows as T[]
  return {
    async sales(range: Range) {
      checkRange(range)
      const currency = range.currency ?? storeCurrency
      // An order placed as a guest (it has a guest email) counts as a guest's, also once claimed.
      const byDay = await rows<{ day: string; orders: number; revenue: string; guest_orders: number; guest_revenue: string }>(sql`
        select to_char(date_trunc('day', paid_at at time zone 'UTC'), 'YYYY-MM-DD') as day,
               count(*)::int as orders, sum(total_minor - refunded_minor)::bigint as revenue,
               count(*) filter (where guest_email is not null)::int as guest_orders,
               coalesce(sum(total_minor - refunded_minor) filter (where guest_email is not null), 0)::bigint as guest_revenue
        from orders where paid_at >= ${range.from}::timestamptz and paid_at < ${range.to}::timestamptz and currency = ${currency}
        group by 1 order by 1`)
      const byCurrency = await rows<{ currency: string; orders: number; revenue: string }>(sql`
        select currency, count(*)::int as orders, sum(total_minor - refunded_minor)::bigint as revenue
        from orders where paid_at >= ${range.from}::timestamptz and paid_at < ${range.to}::timestamptz
        group by 1 order by 1`)
      const orders = byDay.reduce((s, d) => s + d.orders, 0)
      const revenueMinor = byDay.reduce((s, d) => s + Number(d.revenue), 0)
      const guestOrders = byDay.reduce((s, d) => s + d.guest_orders, 0)
      const guestRevenueMinor = byDay.reduce((s, d) => s + Number(d.guest_revenue), 0)
      return {
        currency, orders, revenueMinor, averageOrderValueMinor: orders ? roundHalfUp(revenueMinor, orders) : 0,
        byDay: byDay.map((d) => ({ day: d.day, orders: d.orders, revenueMinor: Number(d.revenue) })),
        byBuyer: {
          guests: { orders: guestOrders, revenueMinor: guestRevenueMinor },
          customers: { orders: orders - guestOrders, revenueMinor: revenueMinor - guestRevenueMinor },
        },
        byCurrency: byCurrency.map((c) => ({
          currency: c.currency, orders: c.orders, revenueMinor: Number(c.revenue), averageOrderValueMinor: c.orders ? roundHalfUp(Number(c.revenue), c.orders) : 0,
        })),
      }
    },

    async topProducts(query: Range & { by?: 'revenue' | 'units'; limit?: number }) {
      checkRange(query)
      const order = query.by === 'units' ? sql`units desc, revenue desc` : sql`revenue desc, units desc`
      const items = await rows<{ product_id: string | null; name: string; units: string; revenue: string }>(sql`
        select i.product_id, (array_agg(i.name order by o.paid_at desc))[1] as name,
               sum(i.quantity)::bigint as units, sum(i.line_total_minor - i.discount_minor)::bigint as revenue
        from order_items i join orders o on o.id = i.order_id
        where o.paid_at >= ${query.from}::timestamptz and o.paid_at < ${query.to}::timestamptz and o.status <> 'refunded' and o.currency = ${query.currency ?? storeCurrency}
        group by i.product_id order by ${order}, i.product_id limit ${query.limit ?? 10}`)
      return { currency: query.currency ?? storeCurrency, items: items.map((r) => ({ productId: r.product_id, name: r.name, units: Number(r.units), revenueMinor: Number(r.revenue) })) }
    },

    async lowStock(query: { threshold?: number; limit?: number }) {
      const items = await rows<{ variant_id: string; product_id: string; sku: string; name: string; stock: number }>(sql`
        select v.id as variant_id, v.product_id, v.sku, p.name, v.stock
        from product_variants v join products p on p.id = v.product_id
        where v.is_active and p.status = 'active' and v.stock <= ${query.threshold ?? 5}
        order by v.stock, v.sku limit ${query.limit ?? 50}`)
      return { items: items.map((r) => ({ variantId: r.variant_id, productId: r.product_id, sku: r.sku, name: r.name, stock: r.stock })) }
    },

    async payments(range: Range) {
      checkRange(range)
      const stats = await rows<{ provider: string; currency: string; payments: number; succeeded: number; failed: number; captured: string; refunded: string }>(sql`
        select provider, currency, count(*)::int as payments,
               count(*) filter (where status = 'succeeded')::int as succeeded,
               count(*) filter (where status = 'failed')::int as failed,
               coalesce(sum(amount_minor) filter (where status = 'succeeded'), 0)::bigint as captured,
               coalesce(sum(refunded_minor), 0)::bigint as refunded
        from payments where created_at >= ${range.from}::timestamptz and created_at < ${range.to}::timestamptz
        group by provider, currency order by provider, currency`)
      return {
        byProvider: stats.map((s) => ({
          provider: s.provider, currency: s.currency, payments: s.payments, succeeded: s.succeeded, failed: s.failed,
          successRate: ratio(s.succeeded, s.succeeded + s.failed),
          capturedMinor: Number(s.captured), refundedMinor: Number(s.refunded), refundRate: ratio(Number(s.refunded), Number(s.captured)),
        })),
      }
    },

    /** Shipping and tax charged on orders paid in the range (cancelled and wholly refunded ones left out), by destination country. */
    async shippingTax(range: Range) {
      checkRange(range)
      const currency = range.currency ?? storeCurrency
      const byCountry = await rows<{ country: string; orders: number; shipping: string; tax: string }>(sql`
        select shipping_address->>'country' as country, count(*)::int as orders,
               sum(shipping_minor)::bigint as shipping, sum(tax_minor)::bigint as tax
        from orders where paid_at >= ${range.from}::timestamptz and paid_at < ${range.to}::timestamptz and status not in ('cancelled', 'refunded') and currency = ${currency}
        group by 1 order by 1`)
      const items = byCountry.map((c) => ({ country: c.country, orders: c.orders, shippingMinor: Number(c.shipping), taxMinor: Number(c.tax) }))
      return {
        currency, orders: items.reduce((s, c) => s + c.orders, 0),
        shippingMinor: items.reduce((s, c) => s + c.shippingMinor, 0), taxMinor: items.reduce((s, c) => s + c.taxMinor, 0), byCountry: items,
      }
    },

    /** Returns asked for in the range: how many, where they stand, what was refunded, and why. */
    async returns(range: Range) {
      checkRange(range)
      const currency = range.currency ?? storeCurrency
      const inRange = sql`r.created_at >= ${range.from}::timestamptz and r.created_at < ${range.to}::timestamptz
        and r.order_id in (select id from orders where currency = ${currency})`
      const byStatus = await rows<{ status: string; returns: number; refunded: string }>(sql`
        select r.status, count(*)::int as returns, coalesce(sum(r.refund_minor) filter (where r.status = 'refunded'), 0)::bigint as refunded
        from returns r where ${inRange} group by 1 order by 1`)
      const byReason = await rows<{ reason: string; lines: number; units: string }>(sql`
        select i.reason, count(*)::int as lines, sum(i.quantity)::bigint as units
        from return_items i join returns r on r.id = i.return_id where ${inRange} group by 1 order by 3 desc, 1`)
      return {
        currency, returns: byStatus.reduce((s, r) => s + r.returns, 0), refundedMinor: byStatus.reduce((s, r) => s + Number(r.refunded), 0),
        byStatus: byStatus.map((r) => ({ status: r.status, returns: r.returns })),
        byReason: byReason.map((r) => ({ reason: r.reason, lines: r.lines, units: Number(r.units) })),
      }
    },

    async newCustomers(range: Range) {
      checkRange(range)
      const byDay = await rows<{ day: string; customers: number }>(sql`
        select to_char(date_trunc('day', created_at at time zone 'UTC'), 'YYYY-MM-DD') as day, count(*)::int as customers
        from users where role = 'customer' and created_at >= ${range.from}::timestamptz and created_at < ${range.to}::timestamptz
        group by 1 order by 1`)
      return { total: byDay.reduce((s, d) => s + d.customers, 0), byDay }
    },
  }
}
