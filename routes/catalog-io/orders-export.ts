import { sql, type SQL } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import type { ExportFilters } from '../../db/schema/index.js'
import { currencyDigits } from '../../src/prices.js'

// Orders for accounting (docs/import-export.md): one CSV row per order line, with the order's
// figures repeated on each of its lines. Money is integer minor units, as stored, with the
// currency's ISO 4217 exponent beside it (JPY 0, EUR 2, KWD 3), so a spreadsheet divides by
// 10^exponent; amounts are per order and never summed, least of all across currencies.

export const ORDER_COLUMNS = [
  'order_number', 'order_date', 'paid_at', 'status', 'buyer_kind', 'buyer_email', 'currency', 'currency_exponent', 'prices_include_tax',
  'line_sku', 'line_name', 'line_options', 'quantity', 'unit_price_minor', 'line_net_minor', 'line_discount_minor', 'line_tax_minor', 'line_total_minor',
  'order_net_minor', 'order_tax_minor', 'order_shipping_minor', 'order_discount_minor', 'order_total_minor',
  'payment_state', 'refund_state', 'refunded_minor',
] as const

/** One order line as the export query returns it. */
type LineRow = {
  id: string; number: string; created_at: string; paid_at: string | null; status: string; guest_email: string | null; user_email: string | null
  currency: string; prices_include_tax: boolean; subtotal_minor: number; discount_minor: number; shipping_minor: number; tax_minor: number
  total_minor: number; refunded_minor: number; payment_state: string; refund_pending: boolean
  sku: string | null; name: string | null; options: Record<string, string> | null; unit_price_minor: number | null; quantity: number | null
  line_total_minor: number | null; line_discount_minor: number | null; line_tax_minor: number | null
}

const iso = (value: string | null) => (value === null ? '' : new Date(value).toISOString())

/** The order export's WHERE: created in [from, to), and the status and currency asked for. */
function orderFilter(f: ExportFilters): SQL {
  const parts = [sql`o.created_at >= ${f.from}::timestamptz`, sql`o.created_at < ${f.to}::timestamptz`]
  if (f.status) parts.push(sql`o.status = ${f.status}::order_status`)
  if (f.currency) parts.push(sql`o.currency = ${f.currency}`)
  return sql.join(parts, sql` and `)
}

export async function countOrders(db: Db, f: ExportFilters) {
  const { rows } = await db.execute<{ n: number }>(sql`select count(*)::int as n from orders o where ${orderFilter(f)}`)
  return rows[0]?.n ?? 0
}

/**
 * The CSV records of the orders matching `f`, a page of `pageSize` orders at a time (keyset on
 * created_at and id, so memory is one page whatever the range): each page's records, and how
 * many orders it held.
 */
export async function* orderRecords(db: Db, f: ExportFilters, pageSize: number): AsyncGenerator<{ records: string[][]; orders: number }> {
  let after: { at: string; id: string } | null = null
  for (;;) {
    const keyset: SQL = after ? sql`and (o.created_at, o.id) > (${after.at}::timestamptz, ${after.id}::uuid)` : sql``
    // Payment: the captured payment if there is one, else the latest attempt's status, else none.
    const { rows } = await db.execute<LineRow>(sql`
      with page as (
        select o.* from orders o where ${orderFilter(f)} ${keyset}
        order by o.created_at, o.id limit ${pageSize}
      )
      select o.id, o.number, o.created_at, o.paid_at, o.status, o.guest_email, u.email as user_email, o.currency, o.prices_include_tax,
        o.subtotal_minor, o.discount_minor, o.shipping_minor, o.tax_minor, o.total_minor, o.refunded_minor,
        coalesce((select p.status::text from payments p where p.order_id = o.id order by (p.status = 'succeeded') desc, p.created_at desc, p.id desc limit 1), 'none') as payment_state,
        exists (select 1 from refunds r join payments p on p.id = r.payment_id where p.order_id = o.id and r.status = 'pending' and r.counts_toward_order) as refund_pending,
        i.sku, i.name, i.options, i.unit_price_minor, i.quantity, i.line_total_minor, i.discount_minor as line_discount_minor, i.tax_minor as line_tax_minor
      from page o
      left join users u on u.id = o.user_id
      left join order_items i on i.order_id = o.id
      order by o.created_at, o.id, i.sku, i.id`)
    if (!rows.length) return
    const records: string[][] = []
    let orders = 0
    let last = ''
    for (const r of rows) {
      if (r.id !== last) { orders++; last = r.id }
      records.push(orderLine(r))
    }
    const end: LineRow = rows[rows.length - 1]!
    after = { at: new Date(end.created_at).toISOString(), id: end.id }
    yield { records, orders }
    if (orders < pageSize) return
  }
}

function orderLine(r: LineRow): string[] {
  const inclusive = r.prices_include_tax
  // Net is without tax: with tax-inclusive prices the tax is inside the line and the subtotal.
  const hasLine = r.quantity !== null
  const lineTotal = r.line_total_minor ?? 0
  const lineDiscount = r.line_discount_minor ?? 0
  const lineTax = r.line_tax_minor ?? 0
  const lineNet = lineTotal - lineDiscount - (inclusive ? lineTax : 0)
  const refund = r.refund_pending ? 'pending' : r.refunded_minor === 0 ? 'none' : r.refunded_minor >= r.total_minor ? 'full' : 'partial'
  const n = (v: number) => String(v)
  return [
    r.number, iso(r.created_at), iso(r.paid_at), r.status, r.guest_email ? 'guest' : 'customer', r.guest_email ?? r.user_email ?? '',
    r.currency, String(currencyDigits(r.currency) ?? ''), inclusive ? 'true' : 'false',
    r.sku ?? '', r.name ?? '', r.options ? Object.entries(r.options).map(([k, v]) => `${k}=${v}`).join('; ') : '',
    hasLine ? n(r.quantity!) : '', hasLine ? n(r.unit_price_minor!) : '', hasLine ? n(lineNet) : '', hasLine ? n(lineDiscount) : '',
    hasLine ? n(lineTax) : '', hasLine ? n(lineNet + lineTax) : '',
    n(r.total_minor - r.tax_minor), n(r.tax_minor), n(r.shipping_minor), n(r.discount_minor), n(r.total_minor),
    r.payment_state, refund, n(r.refunded_minor),
  ]
}
