import t from 'tap'
import { eq, inArray, isNull } from 'drizzle-orm'
import { inventoryMovements, orderItems, orders, outbox, payments, productVariants, refunds, stockLevels, stockReservations, testProviderPayments, testProviderRefunds } from '../db/schema/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createTestStores, freePort, startProcess, tsx, type TestProcess } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// The money path survives SIGKILL: 100 customers each check out, pay and confirm (every fifth
// then cancels, which refunds) through real HTTP against the API in its own process, with
// Idempotency-Keys. The process is killed at random moments twice while they do; after each
// restart everyone retries every step with the same keys, then reconciliation and the outbox
// drain run. Every count is then checked against the stores and the provider's books.

const CUSTOMERS = 100
const ADDRESS = { recipientName: 'Crash Test', line1: '1 Power Cut Lane', city: 'Leeds', postalCode: 'LS1 1AA', country: 'GB' }
const random = (min: number, max: number) => min + Math.floor(Math.random() * (max - min))

t.test('SIGKILL during a storm of checkouts, payments and cancels: nothing doubled, nothing lost', { timeout: 300_000 }, async (t) => {
  const port = await freePort()
  const { env } = await createTestStores(t, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000', DB_POOL_MAX: '20' })

  // Catalog and customers, made in-process; the customers' sessions live in the shared Redis.
  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => seed.close())
  const admin = await registerAdmin(seed)
  const variants: { id: string; stock: number }[] = []
  for (let i = 0; i < 4; i++) {
    const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 999 + i * 1000, stock: 1000 }] })
    variants.push({ id: product.variants[0].id, stock: 1000 })
  }
  const customers = await quickCustomers(seed, CUSTOMERS)
  for (const [i, c] of customers.entries()) {
    for (const v of variants.slice(0, 1 + (i % 3))) {
      const res = await seed.inject({ method: 'POST', url: '/cart/items', headers: c.headers, payload: { variantId: v.id, quantity: 1 + (i % 2) } })
      if (res.statusCode !== 200) throw new Error(res.body)
    }
  }

  let server: TestProcess | undefined
  const start = async () => {
    server = startProcess(t, tsx('src/server.ts'), { env: { ...process.env, ...env } })
    await server.waitForHttp(`http://127.0.0.1:${port}/health`)
  }
  const kill = async () => { await server!.stop('SIGKILL') }

  const call = async (method: string, path: string, headers: Record<string, string>, body?: object) => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined })
      return { status: res.status, body: await res.json().catch(() => null) as Record<string, unknown> | null }
    } catch {
      return { status: 0, body: null } // the process died under the request
    }
  }

  // Every 2xx answer each customer ever got, per key: retries must repeat the first.
  const answers = new Map<string, Set<string>>()
  const saw = (key: string, id: unknown) => { if (typeof id === 'string') answers.set(key, (answers.get(key) ?? new Set()).add(id)) }
  const journey = async (c: (typeof customers)[number], i: number) => {
    const checkoutKey = `crash-checkout-${c.id}`
    const order = await call('POST', '/orders', { ...c.headers, 'idempotency-key': checkoutKey }, { shippingAddress: ADDRESS })
    if (order.status !== 201) return
    saw(checkoutKey, order.body!.id)
    const orderId = order.body!.id as string
    const payKey = `crash-pay-${c.id}`
    const payment = await call('POST', `/orders/${orderId}/payments`, { ...c.headers, 'idempotency-key': payKey }, { provider: 'test', paymentMethod: 'tok_success' })
    if (payment.status !== 201) return
    saw(payKey, payment.body!.id)
    const confirmed = await call('POST', `/payments/${payment.body!.id as string}/confirm`, c.headers, { paymentMethod: 'tok_success' })
    if (confirmed.status !== 200) return
    if (i % 5 === 0) await call('POST', `/orders/${orderId}/cancel`, c.headers)
  }
  const storm = () => Promise.all(customers.map((c, i) => journey(c, i)))

  await start()
  for (const round of [1, 2]) {
    const running = storm()
    await new Promise((r) => setTimeout(r, random(300, 2500)))
    await kill()
    await running
    t.comment(`round ${round}: killed; ${answers.size} keyed answers seen so far`)
    await start()
  }
  await storm()
  await storm() // a second full pass: everything is a replay or a no-op now
  await kill()

  // Recovery: reconciliation against the provider and the outbox drain, as the jobs would.
  const worker = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => worker.close())
  const reconciled = await worker.services.reconcile({ olderThanMs: 0 })
  await worker.outbox.drain({ all: true })
  const db = worker.db

  const allOrders = await db.select().from(orders).where(inArray(orders.userId, customers.map((c) => c.id)))
  const byUser = new Map<string, number>()
  for (const o of allOrders) byUser.set(o.userId!, (byUser.get(o.userId!) ?? 0) + 1)
  t.equal(allOrders.length, CUSTOMERS, 'every customer has an order')
  t.ok([...byUser.values()].every((n) => n === 1), 'and exactly one: one cart, one key, one order')
  t.same([...answers.entries()].filter(([, ids]) => ids.size !== 1).map(([key]) => key), [], 'every retry with a key returned the original answer')

  // Stock: each variant's movements add up to its change, and each order moved stock exactly once.
  for (const v of variants) {
    const [row] = await db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, v.id))
    const moves = await db.select().from(inventoryMovements).where(eq(inventoryMovements.variantId, v.id))
    const sold = (await db.select({ quantity: orderItems.quantity, status: orders.status }).from(orderItems).innerJoin(orders, eq(orders.id, orderItems.orderId)).where(eq(orderItems.variantId, v.id)))
    const kept = sold.filter((s) => s.status !== 'cancelled').reduce((n, s) => n + s.quantity, 0)
    t.equal(row!.stock, v.stock - kept, `variant ${v.id.slice(0, 8)}: stock is the start less what live orders hold`)
    t.equal(moves.filter((m) => m.note !== 'initial stock').reduce((n, m) => n + m.delta, 0), row!.stock - v.stock, 'and its movements since add up to that')
    t.equal(moves.filter((m) => m.reason === 'sale').length, sold.length, 'one sale movement per order line')
    t.equal(moves.filter((m) => m.reason === 'cancellation').length, sold.filter((s) => s.status === 'cancelled').length, 'one release per cancelled order line')
  }

  // Reservations: each order line holds one, claimed once its order is paid and released once it
  // is cancelled unpaid, each moved once; a level's reserved count is what its held reservations add up to.
  const held = await db.select().from(stockReservations).where(inArray(stockReservations.orderId, allOrders.map((o) => o.id)))
  const lines = await db.select().from(orderItems).where(inArray(orderItems.orderId, allOrders.map((o) => o.id)))
  // A cancelled order that had been paid (and was refunded) gave its claimed units back: returned.
  const stateFor = (o: { status: string; refundedMinor: number }) =>
    o.status === 'cancelled' ? (o.refundedMinor > 0 ? 'returned' : 'released') : o.status === 'pending_payment' ? 'held' : 'claimed'
  const wrong = allOrders.flatMap((o) => {
    const mine = held.filter((r) => r.orderId === o.id)
    const units = lines.filter((l) => l.orderId === o.id).reduce((n, l) => n + l.quantity, 0)
    const ok = mine.reduce((n, r) => n + r.quantity, 0) === units && mine.every((r) => r.state === stateFor(o))
    return ok ? [] : [`${o.number} ${o.status}: ${mine.map((r) => `${r.quantity} ${r.state}`).join(', ')} for ${units} units`]
  })
  t.same(wrong, [], 'every reservation is claimed or released exactly as its order ended')
  const levels = await db.select().from(stockLevels).where(inArray(stockLevels.variantId, variants.map((v) => v.id)))
  for (const level of levels) {
    const holding = held.filter((r) => r.variantId === level.variantId && r.locationId === level.locationId && r.state === 'held').reduce((n, r) => n + r.quantity, 0)
    t.equal(level.reserved, holding, `variant ${level.variantId.slice(0, 8)}: reserved is what held reservations add up to`)
  }

  // Money: every capture at the provider is exactly one succeeded payment of a paid, or cancelled and refunded, order.
  const captured = await db.select().from(testProviderPayments).where(eq(testProviderPayments.status, 'succeeded'))
  const ours = await db.select().from(payments)
  const orderById = new Map(allOrders.map((o) => [o.id, o]))
  let paidOrders = 0
  let refundedOrders = 0
  for (const capture of captured) {
    const mine = ours.filter((p) => p.providerPaymentId === capture.id)
    t.equal(mine.length, 1, 'a capture belongs to one payment')
    t.equal(mine[0]!.status, 'succeeded')
    const order = orderById.get(mine[0]!.orderId)!
    if (order.status === 'paid') paidOrders++
    else if (order.status === 'cancelled' && order.refundedMinor === order.totalMinor) refundedOrders++
    else t.fail(`order ${order.id} is ${order.status} with ${order.refundedMinor} refunded of ${order.totalMinor}`)
  }
  const succeededPerOrder = new Map<string, number>()
  for (const p of ours.filter((p) => p.status === 'succeeded')) succeededPerOrder.set(p.orderId, (succeededPerOrder.get(p.orderId) ?? 0) + 1)
  t.ok([...succeededPerOrder.values()].every((n) => n === 1), 'at most one captured payment per order')

  const providerRefunds = await db.select().from(testProviderRefunds)
  const ourRefunds = await db.select().from(refunds)
  t.equal(ourRefunds.filter((r) => r.status !== 'succeeded').length, 0, 'no refund left pending or failed')
  t.same(ourRefunds.map((r) => r.providerRefundId).sort(), providerRefunds.map((r) => r.id).sort(), 'every refund recorded once, and each is one at the provider')
  t.equal(ours.filter((p) => p.status === 'pending').length, 0, 'no payment left pending')
  t.equal((await db.select().from(outbox).where(isNull(outbox.processedAt))).length, 0, 'the outbox is empty')
  const cancelledUnpaid = allOrders.filter((o) => o.status === 'cancelled' && o.paidAt === null).length
  t.comment(`orders ${allOrders.length}: paid ${paidOrders}, cancelled and refunded ${refundedOrders}, cancelled unpaid ${cancelledUnpaid}, pending ${allOrders.filter((o) => o.status === 'pending_payment').length}`)
  t.comment(`captures ${captured.length}, payments ${ours.length}, refunds ${ourRefunds.length} (provider ${providerRefunds.length}), reconciliation ${JSON.stringify(reconciled)}`)
})
