import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync, readdirSync } from 'node:fs'
import pg from 'pg'
import { and, eq } from 'drizzle-orm'
import { idempotencyKeys, inventoryMovements, orders, payments, productVariants, refunds, testProviderPayments, testProviderRefunds } from '../db/schema/index.js'
import { buildTestApp, databaseUrl } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'
import { DEFAULT_LOCK_TTL_MS } from '../src/locks.js'
import { LEASE_MS } from '../src/idempotency.js'

// The money path's defects of issue 11, each reproduced through HTTP against real stores.

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
type Headers = Record<string, string>

async function shop(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 2000, stock: 20 }, { priceMinor: 700, stock: 20 }] })
  return { app, admin, variantId: product.variants[0].id as string, otherVariantId: product.variants[1].id as string }
}
const addToCart = (app: App, headers: Headers, variantId: string, quantity = 1) => app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
const checkout = (app: App, headers: Headers, key?: string) =>
  app.inject({ method: 'POST', url: '/orders', headers: { ...headers, ...(key ? { 'idempotency-key': key } : {}) }, payload: { shippingAddress: ADDRESS } })
const pay = (app: App, headers: Headers, orderId: string, paymentMethod: string, key: string) =>
  app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': key }, payload: { provider: 'test', paymentMethod } })
const confirm = (app: App, headers: Headers, paymentId: string, paymentMethod = 'tok_success') =>
  app.inject({ method: 'POST', url: `/payments/${paymentId}/confirm`, headers, payload: { paymentMethod } })
const ordersOf = (app: App, userId: string) => app.db.select().from(orders).where(eq(orders.userId, userId))
const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock

/** Makes the next write that empties a cart fail once, inside FerretDB's own PostgreSQL table. */
async function failNextCartClear(app: App) {
  const mongoDb = app.mongo.db!.databaseName
  const client = new pg.Client({ connectionString: databaseUrl('ferretdb') })
  await client.connect()
  try {
    const { rows } = await client.query<{ table: string }>(`select _jsonb->>'table' as table from "${mongoDb}"._ferretdb_database_metadata where _jsonb->>'_id' = 'carts'`)
    const table = `"${mongoDb}"."${rows[0]!.table}"`
    await client.query(`create sequence "${mongoDb}".fail_once`)
    await client.query(`create function "${mongoDb}".fail_cart_clear() returns trigger language plpgsql as $$
      begin
        if new._jsonb->'lines' = '[]'::jsonb and nextval('"${mongoDb}".fail_once') = 1 then raise exception 'injected: cart clear fails once'; end if;
        return new;
      end $$`)
    await client.query(`create trigger fail_cart_clear before update on ${table} for each row execute function "${mongoDb}".fail_cart_clear()`)
  } finally {
    await client.end()
  }
}

t.test('1: a failure after the order commits does not let the retry make a second order', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'retry@example.com' })
  t.equal((await addToCart(app, buyer.headers, variantId, 2)).statusCode, 200)
  await failNextCartClear(app)

  const first = await checkout(app, buyer.headers, 'checkout-key-0001')
  const retry = await checkout(app, buyer.headers, 'checkout-key-0001')
  t.equal(retry.statusCode, 201, retry.body)
  const placed = await ordersOf(app, buyer.body.user.id)
  t.equal(placed.length, 1, 'one cart and one key make one order')
  t.equal(retry.json().id, placed[0]!.id, 'the retry answers the order that was placed')
  if (first.statusCode === 201) t.equal(first.json().id, placed[0]!.id)
  t.equal(await stockOf(app, variantId), 18, 'stock taken once')
  await app.outbox.drain({ all: true })
  t.same((await app.inject({ method: 'GET', url: '/cart', headers: buyer.headers })).json().lines, [], 'the cart is emptied once the store is back')
  t.equal((await checkout(app, buyer.headers, 'checkout-key-0002')).statusCode, 409, 'nothing left to check out')
})

t.test('2: a checkout held on row locks past any lock lifetime cannot place the cart twice, nor wipe a line added meanwhile', async (t) => {
  // The checkout waits 31 s on a row lock: beyond the default statement timeout (10 s), which
  // would end it with a 503; this test is about lock lifetimes, so the bound is lifted.
  const { app, variantId, otherVariantId } = await shop(t, { PG_STATEMENT_TIMEOUT_MS: '60000' })
  const buyer = await register(app, { email: 'slow@example.com' })
  await addToCart(app, buyer.headers, variantId, 1)

  // Another session holds the variant's row lock longer than any lock of ours lives (the cart's
  // Redis lock, the idempotency lease): waiting longer than both proves no lifetime is relied on.
  const holder = new pg.Client({ connectionString: app.config.postgres.url })
  await holder.connect()
  t.teardown(() => holder.end())
  await holder.query('begin')
  await holder.query('select 1 from product_variants where id = $1 for update', [variantId])

  const first = checkout(app, buyer.headers, 'slow-checkout-1')
  await new Promise((r) => setTimeout(r, Math.max(DEFAULT_LOCK_TTL_MS, LEASE_MS) + 2_000))
  const added = await addToCart(app, buyer.headers, otherVariantId, 1)
  t.equal(added.statusCode, 200, 'the shopper can still change the cart')
  const second = checkout(app, buyer.headers, 'slow-checkout-2')
  await new Promise((r) => setTimeout(r, 500))
  await holder.query('commit')

  const [a, b] = await Promise.all([first, second])
  const placed = await ordersOf(app, buyer.body.user.id)
  const ordered = placed.length
  t.equal(a.statusCode, 201, a.body)
  t.equal(ordered, 1, `one order from the cart as it was read (second answered ${b.statusCode})`)
  t.equal(await stockOf(app, variantId), 19, 'the first line was sold once')
  await app.outbox.drain({ all: true })
  const cart = (await app.inject({ method: 'GET', url: '/cart', headers: buyer.headers })).json()
  t.same(cart.lines.map((l: { variantId: string }) => l.variantId), [otherVariantId], 'the line added meanwhile is still in the cart')
})

t.test('3: two payments on one order cannot both capture; a late capture is refunded on the payment, not the order', async (t) => {
  const { app, admin, variantId } = await shop(t)
  const buyer = await register(app, { email: 'twice@example.com' })
  await addToCart(app, buyer.headers, variantId, 1)
  const order = (await checkout(app, buyer.headers, 'co-twice-0001')).json()
  const p1 = await pay(app, buyer.headers, order.id, 'tok_async', 'pay-twice-0001')
  t.equal(p1.statusCode, 201, p1.body)
  const p2 = await pay(app, buyer.headers, order.id, 'tok_async', 'pay-twice-0002')
  if (p2.statusCode === 201) await confirm(app, buyer.headers, p2.json().id)
  t.equal(p2.statusCode, 409, 'a second payment while one is in flight is refused')
  t.equal((await confirm(app, buyer.headers, p1.json().id)).json().status, 'succeeded')
  const paid = (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json()
  t.match(paid, { status: 'paid', refundedMinor: 0 })

  const cancelled = await app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers: buyer.headers })
  t.equal(cancelled.statusCode, 200, cancelled.body)
  t.match(cancelled.json(), { status: 'cancelled', refundedMinor: order.totalMinor })
  const captured = await app.db.select().from(testProviderPayments).where(eq(testProviderPayments.status, 'succeeded'))
  t.equal(captured.length, 1, 'the provider captured once')
  const back = await app.db.select().from(testProviderRefunds)
  t.same(back.map((r) => r.amountMinor), [order.totalMinor], 'and refunded it once, in full')

  // A capture we learn of after the order stopped being payable goes back, on the payment only.
  // (The provider captured before the cancel reached it; a payment not captured yet is
  // cancelled instead: test/cancel-payments.test.ts.)
  await addToCart(app, buyer.headers, variantId, 1)
  const late = (await checkout(app, buyer.headers, 'co-late-00001')).json()
  const pending = (await pay(app, buyer.headers, late.id, 'tok_async', 'pay-late-0001')).json()
  const [inFlight] = await app.db.select().from(payments).where(eq(payments.id, pending.id))
  await app.db.update(testProviderPayments).set({ status: 'succeeded' }).where(eq(testProviderPayments.id, inFlight!.providerPaymentId!))
  t.equal((await app.inject({ method: 'POST', url: `/orders/${late.id}/cancel`, headers: buyer.headers })).statusCode, 200)
  const lateCapture = await confirm(app, buyer.headers, pending.id)
  t.match(lateCapture.json(), { status: 'succeeded', refundedMinor: late.totalMinor })
  const lateOrder = (await app.inject({ method: 'GET', url: `/orders/${late.id}`, headers: admin.headers })).json()
  t.match(lateOrder, { status: 'cancelled', refundedMinor: 0 })
})

t.test('5: the same Idempotency-Key on payments of two orders makes two payments, not a provider error', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'keys@example.com' })
  const ids: string[] = []
  for (const n of [1, 2]) {
    await addToCart(app, buyer.headers, variantId, n)
    const order = (await checkout(app, buyer.headers, `co-keys-000${n}`)).json()
    const res = await pay(app, buyer.headers, order.id, 'tok_success', 'my-one-payment-key')
    t.equal(res.statusCode, 201, res.body)
    ids.push(res.json().id)
  }
  t.not(ids[0], ids[1])
})

t.test('6: a full refund of a fulfilled order puts its stock back, once', async (t) => {
  const { app, admin, variantId } = await shop(t)
  const buyer = await register(app, { email: 'fulfilled@example.com' })
  await addToCart(app, buyer.headers, variantId, 3)
  const order = (await checkout(app, buyer.headers, 'co-fulfil-001')).json()
  const payment = (await pay(app, buyer.headers, order.id, 'tok_success', 'pay-fulfil-001')).json()
  await confirm(app, buyer.headers, payment.id)
  t.equal((await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'fulfilled' } })).statusCode, 200)
  t.equal(await stockOf(app, variantId), 17)
  const refund = await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: { ...admin.headers, 'idempotency-key': 'refund-full-001' }, payload: {} })
  t.equal(refund.statusCode, 201, refund.body)
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: admin.headers })).json().status, 'refunded')
  t.equal(await stockOf(app, variantId), 20, 'stock back')
  const movements = await app.db.select().from(inventoryMovements).where(eq(inventoryMovements.variantId, variantId))
  t.equal(movements.filter((m) => m.reason === 'return').length, 1, 'one return movement')
})

t.test('7: the key of a request whose process died is taken over by its retry, not stuck for 24 hours', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'crashed@example.com' })
  await addToCart(app, buyer.headers, variantId, 1)
  // What a request killed mid-way leaves behind: the key claimed, no response, nobody working on it.
  const body = { shippingAddress: ADDRESS }
  await app.db.insert(idempotencyKeys).values({ userId: buyer.body.user.id, scope: 'checkout', key: 'died-mid-way-01', requestHash: createHash('sha256').update(JSON.stringify(body)).digest('hex'), createdAt: new Date(Date.now() - 60_000) })
  const started = Date.now()
  const retry = await checkout(app, buyer.headers, 'died-mid-way-01')
  t.equal(retry.statusCode, 201, retry.body)
  t.ok(Date.now() - started < 14_000, 'without waiting out a long lock')
  t.equal((await checkout(app, buyer.headers, 'died-mid-way-01')).json().id, retry.json().id, 'and later retries replay it')
})

t.test('7b: a key older than 24 hours counts for nothing: the request runs afresh, whatever the old record held', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'expired-key@example.com' })
  await addToCart(app, buyer.headers, variantId, 1)
  // A finished record of this key from two days ago, for another request body and another order.
  const userId = buyer.body.user.id
  await app.db.insert(idempotencyKeys).values({
    userId, scope: 'checkout', key: 'expired-key-001', requestHash: 'another request', responseStatus: 201, responseBody: { id: 'old' },
    createdAt: new Date(Date.now() - 48 * 3_600_000), completedAt: new Date(Date.now() - 48 * 3_600_000), resourceId: crypto.randomUUID(),
  })
  const placed = await checkout(app, buyer.headers, 'expired-key-001')
  t.equal(placed.statusCode, 201, placed.body)
  t.not(placed.json().id, 'old', 'not the old answer')
  const [record] = await app.db.select().from(idempotencyKeys).where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.key, 'expired-key-001')))
  t.equal(record!.responseStatus, 201)
  t.equal((record!.responseBody as { id: string }).id, placed.json().id, 'the record now holds the new answer')
  t.ok(Date.now() - record!.createdAt.getTime() < 60_000, 'and starts its 24 hours now')
  t.equal(record!.resourceId, null, 'nothing of the old attempt is resumed')
  t.equal((await checkout(app, buyer.headers, 'expired-key-001')).json().id, placed.json().id, 'a retry replays the new answer')
  t.equal((await ordersOf(app, userId)).length, 1)
})

t.test('8: every write of an order status goes through the transition table', async (t) => {
  const offenders: string[] = []
  const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : []))
  for (const file of files('routes')) {
    const source = readFileSync(file, 'utf8')
    // An update of the orders table that sets `status` anywhere but in tryTransition() itself.
    for (const match of source.matchAll(/update\(orders\)\.set\(\{[^}]*\bstatus\b/g)) {
      const before = source.slice(0, match.index)
      const enclosing = before.lastIndexOf('export async function tryTransition')
      const nextFunction = before.lastIndexOf('\nexport ')
      if (enclosing === -1 || nextFunction > enclosing) offenders.push(`${file}:${before.split('\n').length}`)
    }
  }
  t.same(offenders, [], 'no order status written outside transition()')
})

t.test('a paid order refunded then cancelled never breaks the money check', async (t) => {
  const { app, admin, variantId } = await shop(t)
  const buyer = await register(app, { email: 'partial@example.com' })
  await addToCart(app, buyer.headers, variantId, 1)
  const order = (await checkout(app, buyer.headers, 'co-partial-01')).json()
  const payment = (await pay(app, buyer.headers, order.id, 'tok_success', 'pay-partial-01')).json()
  await confirm(app, buyer.headers, payment.id)
  t.equal((await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: admin.headers, payload: { amountMinor: 500 } })).statusCode, 201)
  const cancelled = await app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers: buyer.headers })
  t.equal(cancelled.statusCode, 200, cancelled.body)
  t.equal(cancelled.json().refundedMinor, order.totalMinor, 'the rest is refunded on cancel')
  const rows = await app.db.select().from(refunds).where(and(eq(refunds.paymentId, payment.id), eq(refunds.status, 'succeeded')))
  t.same(rows.map((r) => r.amountMinor).sort((x, y) => x - y), [500, order.totalMinor - 500].sort((x, y) => x - y))
  const [p] = await app.db.select().from(payments).where(eq(payments.id, payment.id))
  t.equal(p!.refundedMinor, order.totalMinor)
})

// Fault injection: each step boundary of the workflows throws once; a retry with the same key,
// the outbox drain or reconciliation completes the work, and nothing is done twice.

const ledger = async (app: App) => ({
  payments: await app.db.select().from(testProviderPayments),
  refunds: await app.db.select().from(testProviderRefunds),
})

t.test('faults in checkout: before the key completes, after the commit, before the cart clear', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'faults@example.com' })

  await addToCart(app, buyer.headers, variantId, 2)
  app.faults.failOnce('checkout.before-idempotency-complete')
  t.equal((await checkout(app, buyer.headers, 'fault-checkout-1')).statusCode, 500)
  t.equal((await ordersOf(app, buyer.body.user.id)).length, 0, 'rolled back whole: no order')
  t.equal(await stockOf(app, variantId), 20, 'and no stock taken')
  const first = await checkout(app, buyer.headers, 'fault-checkout-1')
  t.equal(first.statusCode, 201, 'the retry runs afresh')

  await addToCart(app, buyer.headers, variantId, 1)
  app.faults.failOnce('checkout.after-order-commit')
  t.equal((await checkout(app, buyer.headers, 'fault-checkout-2')).statusCode, 500)
  const replay = await checkout(app, buyer.headers, 'fault-checkout-2')
  t.equal(replay.statusCode, 201)
  t.equal(replay.headers['idempotent-replayed'], 'true', 'the retry replays the committed order')
  t.equal((await ordersOf(app, buyer.body.user.id)).length, 2)
  await app.outbox.drain({ all: true })
  t.same((await app.inject({ method: 'GET', url: '/cart', headers: buyer.headers })).json().lines, [], 'the drain empties the cart')

  await addToCart(app, buyer.headers, variantId, 1)
  app.faults.failOnce('cart.before-clear')
  t.equal((await checkout(app, buyer.headers, 'fault-checkout-3')).statusCode, 201)
  t.equal((await app.inject({ method: 'GET', url: '/cart', headers: buyer.headers })).json().lines.length, 1, 'the clear failed: the line is still shown')
  const again = await checkout(app, buyer.headers, 'fault-checkout-4')
  t.equal(again.statusCode, 409, 'a new checkout first settles the pending clear, then finds the cart empty')
  t.equal(again.json().type, 'urn:problem-type:cart-empty')
  t.equal((await ordersOf(app, buyer.body.user.id)).length, 3)
  t.equal(await stockOf(app, variantId), 16, 'stock taken exactly once per order')
  t.equal(await app.outbox.pending(), 0, 'nothing left in the outbox')
})

t.test('a cart whose last clear waits is settled before it is read: the checkout sees the cart the shopper sees', async (t) => {
  const { app, admin, variantId, otherVariantId } = await shop(t)
  const single = await createProduct(app, admin.headers, { variants: [{ priceMinor: 900, stock: 1 }] })
  const lastOne = single.variants[0].id as string
  const buyer = await register(app, { email: 'stale@example.com' })

  // The last unit sold, its cart clear failed: the cart still shows the line.
  await addToCart(app, buyer.headers, lastOne, 1)
  app.faults.failOnce('cart.before-clear')
  t.equal((await checkout(app, buyer.headers, 'stale-checkout-1')).statusCode, 201)
  t.equal(await app.outbox.pending(), 1, 'the clear waits in the outbox')
  // Read unsettled, the stale line would be refused as out of stock; settled, the cart is empty.
  const refused = await checkout(app, buyer.headers, 'stale-checkout-2')
  t.equal(refused.statusCode, 409)
  t.equal(refused.json().type, 'urn:problem-type:cart-empty', 'answered for the cart as the shopper sees it, not "out of stock"')
  t.equal(await app.outbox.pending(), 0)

  // Again, with a line added after the failed clear: the order holds only that line.
  await addToCart(app, buyer.headers, variantId, 2)
  app.faults.failOnce('cart.before-clear')
  t.equal((await checkout(app, buyer.headers, 'stale-checkout-3')).statusCode, 201)
  await addToCart(app, buyer.headers, otherVariantId, 1)
  const second = await checkout(app, buyer.headers, 'stale-checkout-4')
  t.equal(second.statusCode, 201, second.body)
  t.same(second.json().items.map((i: { variantId: string; quantity: number }) => [i.variantId, i.quantity]), [[otherVariantId, 1]], 'the earlier order\'s lines are not bought twice')
  t.equal(await stockOf(app, variantId), 18, 'taken once')
  t.equal((await ordersOf(app, buyer.body.user.id)).length, 3)
  t.same((await app.inject({ method: 'GET', url: '/cart', headers: buyer.headers })).json().lines, [], 'the cart is empty')
  t.equal(await app.outbox.pending(), 0)
})

t.test('faults in payment: after recording, after the provider call; reconciliation settles what no client retries', async (t) => {
  const { app, variantId } = await shop(t)
  const buyer = await register(app, { email: 'payfaults@example.com' })
  const orderFor = async (key: string) => { await addToCart(app, buyer.headers, variantId, 1); return (await checkout(app, buyer.headers, key)).json() }

  const o1 = await orderFor('pf-checkout-1')
  app.faults.failOnce('payment.after-record')
  t.equal((await pay(app, buyer.headers, o1.id, 'tok_async', 'pf-pay-0001')).statusCode, 500)
  t.equal((await app.db.select().from(payments).where(eq(payments.orderId, o1.id)))[0]!.status, 'pending')
  t.equal((await pay(app, buyer.headers, o1.id, 'tok_async', 'pf-pay-other')).statusCode, 409, 'another payment is refused while one is in flight')
  const resumed = await pay(app, buyer.headers, o1.id, 'tok_async', 'pf-pay-0001')
  t.equal(resumed.statusCode, 201, resumed.body)
  t.equal(resumed.json().status, 'requires_confirmation')

  const o2 = await orderFor('pf-checkout-2')
  app.faults.failOnce('payment.after-provider-call')
  t.equal((await pay(app, buyer.headers, o2.id, 'tok_async', 'pf-pay-0002')).statusCode, 500)
  const again = await pay(app, buyer.headers, o2.id, 'tok_async', 'pf-pay-0002')
  t.equal(again.statusCode, 201)
  t.equal((await ledger(app)).payments.length, 2, 'the provider holds one payment per order, none twice')

  // A client that never retries: reconciliation sends the pending payment with the same key.
  const o3 = await orderFor('pf-checkout-3')
  app.faults.failOnce('payment.after-provider-call')
  t.equal((await pay(app, buyer.headers, o3.id, 'tok_async', 'pf-pay-0003')).statusCode, 500)
  const reconciled = await app.services.reconcile({ olderThanMs: 0 })
  t.equal(reconciled.paymentsSent, 1)
  const [p3] = await app.db.select().from(payments).where(eq(payments.orderId, o3.id))
  t.equal(p3!.status, 'requires_confirmation')
  t.equal((await ledger(app)).payments.length, 3)

  // The customer confirmed at the provider but our answer was lost: reconciliation asks the provider.
  await app.db.update(testProviderPayments).set({ status: 'succeeded' }).where(eq(testProviderPayments.id, p3!.providerPaymentId!))
  t.equal((await app.services.reconcile({ olderThanMs: 0 })).paymentsSettled, 1)
  t.equal((await app.inject({ method: 'GET', url: `/orders/${o3.id}`, headers: buyer.headers })).json().status, 'paid')
})

t.test('faults in refunds: after recording, after the provider call; refunded exactly once', async (t) => {
  const { app, admin, variantId } = await shop(t)
  const buyer = await register(app, { email: 'refundfaults@example.com' })
  await addToCart(app, buyer.headers, variantId, 2)
  const order = (await checkout(app, buyer.headers, 'rf-checkout-1')).json()
  const payment = (await pay(app, buyer.headers, order.id, 'tok_success', 'rf-pay-00001')).json()
  await confirm(app, buyer.headers, payment.id)
  const refund = (key: string, amountMinor: number) => app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: { ...admin.headers, 'idempotency-key': key }, payload: { amountMinor } })

  app.faults.failOnce('refund.after-record')
  t.equal((await refund('rf-refund-01', 1000)).statusCode, 500)
  const r1 = await refund('rf-refund-01', 1000)
  t.equal(r1.statusCode, 201, r1.body)
  t.match(r1.json(), { amountMinor: 1000, status: 'succeeded' })

  app.faults.failOnce('refund.after-provider-call')
  t.equal((await refund('rf-refund-02', 1500)).statusCode, 500)
  t.equal((await app.db.select().from(refunds).where(eq(refunds.status, 'pending'))).length, 1, 'recorded and reserved, not settled')
  t.equal((await refund('rf-refund-03', order.totalMinor)).statusCode, 409, 'the reservation counts: no overdraw meanwhile')
  t.equal((await app.services.reconcile({ olderThanMs: 0 })).refundsSent, 1)
  const replay = await refund('rf-refund-02', 1500)
  t.equal(replay.statusCode, 201)
  t.match(replay.json(), { amountMinor: 1500, status: 'succeeded' })

  const books = await ledger(app)
  t.same(books.refunds.map((r) => r.amountMinor).sort((a, b) => a - b), [1000, 1500], 'the provider refunded each once')
  const ours = await app.db.select().from(refunds).where(eq(refunds.paymentId, payment.id))
  t.same(ours.map((r) => [r.amountMinor, r.status]).sort(), [[1000, 'succeeded'], [1500, 'succeeded']])
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().refundedMinor, 2500)
})
