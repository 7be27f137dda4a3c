import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'csv-parse/sync'
import { inArray } from 'drizzle-orm'
import { orderItems, orders } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { createProduct } from './catalog.js'
import { quickCustomers, register, registerAdmin } from './users.js'
import type { App } from '../src/app.js'

// Orders exported for accounting (#28): real orders in EUR and JPY, by a customer and a guest,
// paid, partly refunded and unpaid, exported through the job machinery and read back as CSV.

type Headers = Record<string, string>
const JP = { recipientName: 'B', line1: '1-1 Chiyoda', city: 'Tokyo', postalCode: '100-0001', country: 'JP' }
const DE = { recipientName: 'A', line1: '1 Strasse', city: 'Berlin', postalCode: '10115', country: 'DE' }

const app = await buildTestApp(t, { STORE_CURRENCY: 'EUR', CATALOG_FILES_DIR: mkdtempSync(join(tmpdir(), 'order-export-')), RATE_LIMIT_MAX: '100000' })
const admin = (await registerAdmin(app)).headers

async function ok(res: Awaited<ReturnType<App['inject']>>, status: number) {
  if (res.statusCode !== status) throw new Error(`${res.statusCode} ${res.body}`)
  return res.json()
}
const add = async (headers: Headers, variantId: string, quantity = 1) => ok(await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } }), 200)
async function pay(headers: Headers, orderId: string) {
  const payment = await ok(await app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers, payload: { provider: 'test', paymentMethod: 'tok_success' } }), 201)
  await ok(await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } }), 200)
  return payment as { id: string }
}

/** Asks for an order export, runs the worker's part, downloads the file: its rows as objects. */
async function exportOrders(query: string) {
  const started = await app.inject({ method: 'POST', url: `/exports/orders?${query}`, headers: admin })
  t.equal(started.statusCode, 202, started.body)
  t.match(started.json(), { kind: 'export', subject: 'orders', status: 'pending' })
  await app.services.catalogIo.runDue()
  const job = await ok(await app.inject({ method: 'GET', url: `/exports/${started.json().id}`, headers: admin }), 200)
  t.match(job, { status: 'completed', percentage: 100, downloadUrl: `/exports/${job.id}/file` })
  const file = await app.inject({ method: 'GET', url: job.downloadUrl, headers: admin })
  t.equal(file.statusCode, 200)
  t.match(file.headers['content-disposition'], /^attachment; filename="orders-\d{4}-\d{2}-\d{2}\.csv"$/)
  t.ok(file.body.startsWith('\ufeff'), 'a BOM, so spreadsheets read UTF-8')
  const rows = parse(file.body, { bom: true, columns: true }) as Record<string, string>[]
  t.equal(job.rowsRead, rows.length, 'the job counts the rows it wrote')
  return { rows, header: file.body.replace(/^\ufeff/, '').split(/\r?\n/)[0]!.split(','), job }
}

t.test('an admin exports orders in two currencies, one row per line, amounts in minor units with the exponent, never summed', async (t) => {
  const started = Date.now()
  // A product name a spreadsheet would run as a formula.
  const kettle = await createProduct(app, admin, { name: '=HYPERLINK("x") Kettle', variants: [{ sku: 'KETTLE', priceMinor: 1999, stock: 50 }] })
  const mug = await createProduct(app, admin, { name: 'Mug', variants: [{ sku: 'MUG', priceMinor: 500, stock: 50 }] })
  await ok(await app.inject({ method: 'PUT', url: `/products/${kettle.id}/variants/${kettle.variants[0]!.id}/prices/JPY`, headers: admin, payload: { amountMinor: 2500 } }), 200)
  await ok(await app.inject({ method: 'POST', url: '/regions', headers: admin, payload: { name: 'Japan', currency: 'JPY', countries: ['JP'] } }), 201)
  const zones = (await app.inject({ method: 'GET', url: '/shipping/zones', headers: admin })).json()
  const fallback = zones.items.find((z: { countries: string[] }) => z.countries.length === 0)
  await ok(await app.inject({ method: 'POST', url: `/shipping/zones/${fallback.id}/options`, headers: admin, payload: { name: 'Japan Post', currency: 'JPY', priceMinor: 900 } }), 201)

  const jp = { ...await register(app, { email: 'jp.buyer@example.com' }), email: 'jp.buyer@example.com' }
  const de = { ...await register(app, { email: 'de.buyer@example.com' }), email: 'de.buyer@example.com' }
  // A JPY order, paid.
  await ok(await app.inject({ method: 'PUT', url: '/cart/region', headers: jp.headers, payload: { country: 'JP' } }), 200)
  await add(jp.headers, kettle.variants[0]!.id, 2)
  const jpyOrder = await ok(await app.inject({ method: 'POST', url: '/orders', headers: jp.headers, payload: { shippingAddress: JP, currency: 'JPY' } }), 201)
  await pay(jp.headers, jpyOrder.id)
  // A EUR order of two lines, paid, then partly refunded.
  await add(de.headers, kettle.variants[0]!.id)
  await add(de.headers, mug.variants[0]!.id, 3)
  const eurOrder = await ok(await app.inject({ method: 'POST', url: '/orders', headers: de.headers, payload: { shippingAddress: DE } }), 201)
  const payment = await pay(de.headers, eurOrder.id)
  await ok(await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: { ...admin, 'idempotency-key': 'order-export-refund-1' }, payload: { amountMinor: 1000, reason: 'dented' } }), 201)
  // A guest's EUR order, not paid.
  const cart = { 'x-cart-token': (await ok(await app.inject({ method: 'POST', url: '/cart/guest' }), 201)).cartToken as string }
  await add(cart, mug.variants[0]!.id)
  await ok(await app.inject({ method: 'PUT', url: '/cart/contact', headers: cart, payload: { email: 'guest.buyer@example.com' } }), 200)
  const guestOrder = (await ok(await app.inject({ method: 'POST', url: '/orders/guest', headers: cart, payload: { shippingAddress: DE } }), 201)).order

  const from = encodeURIComponent(new Date(started - 60_000).toISOString())
  const to = encodeURIComponent(new Date(Date.now() + 60_000).toISOString())
  const { rows, header } = await exportOrders(`from=${from}&to=${to}`)
  t.same(header.slice(0, 9), ['order_number', 'order_date', 'paid_at', 'status', 'buyer_kind', 'buyer_email', 'currency', 'currency_exponent', 'prices_include_tax'])
  t.equal(rows.length, 4, 'one row per order line: 1 + 2 + 1')
  t.same(rows.map((r) => r.order_number), [jpyOrder.number, eurOrder.number, eurOrder.number, guestOrder.number], 'by date of order')
  t.notOk(rows.some((r) => !r.order_number || !r.currency), 'no totals row: nothing summed')

  // Every amount is what the order holds, in its currency's minor units.
  const stored = await app.db.select().from(orders).where(inArray(orders.id, [jpyOrder.id, eurOrder.id, guestOrder.id]))
  const items = await app.db.select().from(orderItems).where(inArray(orderItems.orderId, stored.map((o) => o.id)))
  for (const row of rows) {
    const o = stored.find((x) => x.number === row.order_number)!
    const i = items.find((x) => x.orderId === o.id && x.sku === row.line_sku)!
    t.equal(row.order_date, o.createdAt.toISOString(), 'ISO 8601 in UTC')
    t.match(row.order_date, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
    t.same([row.order_total_minor, row.order_tax_minor, row.order_shipping_minor, row.order_discount_minor].map(Number), [o.totalMinor, o.taxMinor, o.shippingMinor, o.discountMinor])
    t.equal(Number(row.order_net_minor) + Number(row.order_tax_minor), o.totalMinor, 'net + tax = total')
    t.same([row.quantity, row.unit_price_minor, row.line_tax_minor].map(Number), [i.quantity, i.unitPriceMinor, i.taxMinor])
    t.equal(Number(row.line_total_minor), Number(row.line_net_minor) + Number(row.line_tax_minor))
  }
  const byOrder = (number: string) => rows.filter((r) => r.order_number === number)
  const jpy = byOrder(jpyOrder.number)[0]!
  t.match(jpy, { currency: 'JPY', currency_exponent: '0', buyer_kind: 'customer', buyer_email: jp.email, status: 'paid', payment_state: 'succeeded', refund_state: 'none', line_sku: 'KETTLE', quantity: '2', unit_price_minor: '2500', order_shipping_minor: '900' })
  t.ok(jpy.paid_at && Date.parse(jpy.paid_at) >= started, 'paid_at in UTC')
  t.equal(jpy.line_name, "'=HYPERLINK(\"x\") Kettle", 'a formula-looking cell is written as text')
  const eur = byOrder(eurOrder.number)
  t.same(eur.map((r) => [r.line_sku, r.quantity, r.unit_price_minor]), [['KETTLE', '1', '1999'], ['MUG', '3', '500']])
  for (const r of eur) t.match(r, { currency: 'EUR', currency_exponent: '2', buyer_kind: 'customer', buyer_email: de.email, payment_state: 'succeeded', refund_state: 'partial', refunded_minor: '1000' })
  t.match(byOrder(guestOrder.number)[0], { currency: 'EUR', buyer_kind: 'guest', buyer_email: 'guest.buyer@example.com', status: 'pending_payment', payment_state: 'none', paid_at: '', refund_state: 'none' })

  // Filters: one currency, one status; a range with no orders gives the header alone.
  t.same((await exportOrders(`from=${from}&to=${to}&currency=JPY`)).rows.map((r) => r.order_number), [jpyOrder.number])
  t.same((await exportOrders(`from=${from}&to=${to}&status=pending_payment`)).rows.map((r) => r.order_number), [guestOrder.number])
  const later = encodeURIComponent(new Date(Date.now() + 3_600_000).toISOString())
  const empty = await exportOrders(`from=${to}&to=${later}`)
  t.equal(empty.rows.length, 0)
  t.equal(empty.header[0], 'order_number', 'the header is there all the same')
})

t.test('bad input is a 4xx problem, and only an admin exports orders', async (t) => {
  const now = Date.now()
  const at = (ms: number) => encodeURIComponent(new Date(now + ms).toISOString())
  const ask = (query: string, headers = admin) => app.inject({ method: 'POST', url: `/exports/orders?${query}`, headers })
  for (const [query, why] of [
    [`from=${at(0)}&to=${at(-1000)}`, 'to before from'],
    [`from=${at(-400 * 86_400_000)}&to=${at(0)}`, 'more than 366 days'],
    [`from=${at(-1000)}&to=${at(0)}&currency=ABC`, 'not an ISO 4217 currency'],
    [`from=${at(-1000)}&to=${at(0)}&currency=eur`, 'not a currency code'],
    [`from=${at(-1000)}&to=${at(0)}&status=lost`, 'not an order status'],
    [`to=${at(0)}`, 'no from'],
    ['from=yesterday&to=today', 'not dates'],
  ] as const) {
    const res = await ask(query)
    t.equal(res.statusCode, 400, why)
    t.match(res.headers['content-type'], /^application\/problem\+json/, why)
  }
  const [customer] = await quickCustomers(app, 1)
  t.equal((await ask(`from=${at(-1000)}&to=${at(0)}`, customer!.headers)).statusCode, 403)
  t.equal((await app.inject({ method: 'POST', url: `/exports/orders?from=${at(-1000)}&to=${at(0)}` })).statusCode, 401)
})
