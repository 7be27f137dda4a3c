import t from 'tap'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Order notifications through the outbox, read from a real SMTP server.

const ADDRESS = { recipientName: 'Grace Hopper', line1: '1 Navy Yard', city: 'Arlington', postalCode: '22202', country: 'US' }
type Headers = Record<string, string>
const checkout = async (app: App, headers: Headers, variantId: string, quantity: number, key: string) => {
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
  return (await app.inject({ method: 'POST', url: '/orders', headers: { ...headers, 'idempotency-key': key }, payload: { shippingAddress: ADDRESS } })).json()
}
const payAndConfirm = async (app: App, headers: Headers, orderId: string, key: string) => {
  const payment = (await app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': key }, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } })
  return payment
}

t.test('placed, paid, shipped with tracking, cancelled and refunded: each mailed once, in text and HTML', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url, LOW_STOCK_THRESHOLD: '3' })
  const admin = await registerAdmin(app, 'ops@example.com')
  const product = await createProduct(app, admin.headers, { name: 'Compiler <Deluxe>', variants: [{ sku: 'COBOL-1', priceMinor: 1999, stock: 5 }] })
  const buyer = await register(app, { email: 'grace@example.com', name: 'Grace' })
  await mailbox.waitFor('grace@example.com', /confirm your email/).catch(() => null)

  const order = await checkout(app, buyer.headers, product.variants[0].id, 2, 'mail-checkout-1')
  const placed = await mailbox.waitFor('grace@example.com', new RegExp(`thank you for your order ${order.number}[\\s\\S]*2 x Compiler <Deluxe> \\(COBOL-1\\): €39\\.98[\\s\\S]*Total: (€[\\d.,]+)`))
  t.equal(placed[1], `€${(order.totalMinor / 100).toFixed(2)}`, 'the total as the order has it (store currency EUR)')
  const lowStock = await mailbox.waitFor('ops@example.com', /COBOL-1 Compiler <Deluxe>: 3 left/)
  t.ok(lowStock, 'the admins hear that stock fell to the threshold')

  const payment = await payAndConfirm(app, buyer.headers, order.id, 'mail-pay-1')
  await mailbox.waitFor('grace@example.com', new RegExp(`received your payment of €[\\d.]+ for order ${order.number}`))
  await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'fulfilled' } })
  const shipped = await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'shipped', carrier: 'UPS', trackingNumber: '1Z999AA10123456784' } })
  t.same(shipped.json().shipment, { carrier: 'UPS', trackingNumber: '1Z999AA10123456784' })
  await mailbox.waitFor('grace@example.com', /is on its way[\s\S]*Carrier: UPS[\s\S]*Tracking number: 1Z999AA10123456784/)
  t.equal((await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'delivered', carrier: 'DHL' } })).statusCode, 400, 'tracking goes with shipped only')

  const refund = await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: admin.headers, payload: { amountMinor: 500 } })
  t.equal(refund.statusCode, 201)
  await mailbox.waitFor('grace@example.com', new RegExp(`refunded €5\\.00 for order ${order.number}\\.`))

  const second = await checkout(app, buyer.headers, product.variants[0].id, 1, 'mail-checkout-2')
  await mailbox.waitFor('grace@example.com', new RegExp(`your order ${second.number}`))
  await app.inject({ method: 'POST', url: `/orders/${second.id}/cancel`, headers: buyer.headers })
  await mailbox.waitFor('grace@example.com', new RegExp(`your order ${second.number} has been cancelled\\.\\s*$`))

  await app.outbox.drain({ all: true })
  t.same(mailbox.received.filter((m) => m.to.includes('grace@example.com')).map((m) => m.subject), [], 'no second copy of any of them')
})

t.test('SMTP down at checkout: the mail waits in the outbox and goes once SMTP is back', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: 'smtp://127.0.0.1:9' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000, stock: 50 }] })
  const buyer = await register(app, { email: 'patient@example.com' })
  const order = await checkout(app, buyer.headers, product.variants[0].id, 1, 'down-checkout-1')
  t.equal(order.status, 'pending_payment', 'the checkout does not wait for mail')
  t.equal(await app.outbox.pending(), 1, 'the mail is kept')

  // SMTP comes back (the app is pointed at a working server, as after a restart with SMTP fixed).
  const again = await buildTestApp(t, { SMTP_URL: mailbox.url, DATABASE_URL: (app.config.postgres.url)!, MONGODB_URL: app.config.mongo.url!, REDIS_KEY_PREFIX: app.config.redis.keyPrefix })
  t.same(await again.outbox.drain({ all: true }), { done: 1, failed: 0 })
  await mailbox.waitFor('patient@example.com', new RegExp(`thank you for your order ${order.number}`))
  t.same(await again.outbox.drain({ all: true }), { done: 0, failed: 0 }, 'and never again')
})

t.test('mail sent once: the process dies after SMTP accepted the mail and before the outbox marked it; the retry does not send it again', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000, stock: 50 }] })
  const buyer = await register(app, { email: 'once@example.com' })
  await mailbox.waitFor('once@example.com', /confirm your email/).catch(() => null)

  // The fault point sits after SMTP's answer, where a crash leaves the event to be retried.
  app.faults.failOnce('mail.after-send')
  const order = await checkout(app, buyer.headers, product.variants[0].id, 1, 'once-checkout-1')
  await mailbox.waitFor('once@example.com', new RegExp(`thank you for your order ${order.number}`))
  t.equal(await app.outbox.pending(), 1, 'the event was not marked done: the outbox retries it')

  t.same(await app.outbox.drain({ all: true }), { done: 1, failed: 0 }, 'the retry succeeds')
  t.equal(await app.outbox.pending(), 0)
  t.same(mailbox.received.filter((m) => m.to.includes('once@example.com')).map((m) => m.subject), [], 'and sends nothing a second time')
})
