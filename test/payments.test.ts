import t from 'tap'
import Stripe from 'stripe'
import { eq } from 'drizzle-orm'
import { orders, productVariants } from '../db/schema/index.js'
import { signTestWebhook, createStripeProvider } from '../routes/payments/providers.js'
import { buildTestApp, TEST_STRIPE_API_URL } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock

async function placeOrder(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 2000, stock: 10 }] })
  const variantId = product.variants[0].id as string
  const buyer = await register(app, { email: 'payer@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId, quantity: 3 } })
  const order = (await app.inject({ method: 'POST', url: '/orders', headers: buyer.headers, payload: { shippingAddress: ADDRESS } })).json()
  return { app, admin, buyer, order, variantId }
}
const pay = (app: App, headers: Record<string, string>, orderId: string, paymentMethod: string, key = `pay-${orderId}-${paymentMethod}`) =>
  app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': key }, payload: { provider: 'test', paymentMethod } })
function webhook(app: App, event: object, opts: { secret?: string; timestamp?: number; signature?: string } = {}) {
  const body = JSON.stringify(event)
  const signature = opts.signature ?? signTestWebhook(opts.secret ?? app.config.payments.webhookSecret, body, opts.timestamp)
  return app.inject({ method: 'POST', url: '/payments/webhooks/test', headers: { 'content-type': 'application/json', 'x-shop-signature': signature }, payload: body })
}
/** What the customer finishing payment at the provider does to the provider's books (then it sends its webhook). */
const captureAtProvider = async (app: App, providerPaymentId: string | null) => {
  const { testProviderPayments } = await import('../db/schema/index.js')
  await app.db.update(testProviderPayments).set({ status: 'succeeded' }).where(eq(testProviderPayments.id, providerPaymentId!))
}
const providerIdOf = async (app: App, paymentId: string) => {
  const { payments } = await import('../db/schema/index.js')
  return (await app.db.select().from(payments).where(eq(payments.id, paymentId)))[0]!.providerPaymentId
}

t.test('pay with the test provider: confirm marks the order paid; the amount is the order total', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const created = await pay(app, buyer.headers, order.id, 'tok_success')
  t.equal(created.statusCode, 201)
  t.match(created.json(), { status: 'requires_confirmation', amountMinor: order.totalMinor, currency: 'EUR' })
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/payments`, headers: buyer.headers, payload: { provider: 'test', paymentMethod: 'tok_success', amountMinor: 1 } })).statusCode, 400, 'no client amount')
  const confirmed = await app.inject({ method: 'POST', url: `/payments/${created.json().id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } })
  t.equal(confirmed.json().status, 'succeeded')
  const paid = (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json()
  t.equal(paid.status, 'paid')
  t.ok(paid.paidAt)
  t.equal((await pay(app, buyer.headers, order.id, 'tok_success', 'second-payment-key')).statusCode, 409, 'a paid order cannot be paid again')

  const declined = await placeOrder(t)
  const p2 = (await pay(declined.app, declined.buyer.headers, declined.order.id, 'tok_decline')).json()
  const failed = await declined.app.inject({ method: 'POST', url: `/payments/${p2.id}/confirm`, headers: declined.buyer.headers, payload: { paymentMethod: 'tok_decline' } })
  t.match(failed.json(), { status: 'failed', failureReason: 'card_declined' })
  t.equal((await declined.app.inject({ method: 'GET', url: `/orders/${declined.order.id}`, headers: declined.buyer.headers })).json().status, 'pending_payment')
})

t.test('webhooks: signature checked, replay changes nothing, race with confirmation pays once', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'tok_async')).json()
  const providerPaymentId = await providerIdOf(app, payment.id)
  const event = { id: 'evt_1', type: 'payment.succeeded', data: { paymentId: providerPaymentId } }

  const bad = await webhook(app, event, { secret: 'not-the-secret-at-all' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.json().type, 'urn:problem-type:invalid-signature')
  t.equal((await webhook(app, event, { timestamp: Math.floor(Date.now() / 1000) - 301 })).statusCode, 400, 'stale')
  t.equal((await webhook(app, event, { signature: 'garbage' })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'pending_payment', 'nothing changed')

  // The webhook and the client's confirmation race: the order is paid exactly once.
  const [hook, confirm] = await Promise.all([
    webhook(app, event),
    app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } }),
  ])
  t.same(hook.json(), { received: true, duplicate: false })
  t.equal(confirm.json().status, 'succeeded')
  const paid = (await app.db.select().from(orders).where(eq(orders.id, order.id)))[0]!
  t.equal(paid.status, 'paid')

  const replay = await webhook(app, event)
  t.same(replay.json(), { received: true, duplicate: true })
  const after = (await app.db.select().from(orders).where(eq(orders.id, order.id)))[0]!
  t.same(after.paidAt, paid.paidAt, 'paidAt untouched by the replay')
  t.equal(after.updatedAt.getTime(), paid.updatedAt.getTime())
  // A failure event for a succeeded payment does not undo it.
  await webhook(app, { id: 'evt_2', type: 'payment.failed', data: { paymentId: providerPaymentId, failureReason: 'late' } })
  t.equal((await app.inject({ method: 'GET', url: `/payments/${payment.id}`, headers: buyer.headers })).json().status, 'succeeded')
})

t.test('refunds: partial, full, never above captured, idempotent; full refund restocks an unshipped order', async (t) => {
  const { app, admin, buyer, order, variantId } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'tok_success')).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } })
  const refund = (amountMinor: number | undefined, key: string) => app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: { ...admin.headers, 'idempotency-key': key }, payload: amountMinor ? { amountMinor, reason: 'test' } : {} })

  t.equal((await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: buyer.headers, payload: { amountMinor: 1 } })).statusCode, 403)
  const part = await refund(1000, 'refund-key-1')
  t.equal(part.statusCode, 201)
  t.equal(part.json().payment.refundedMinor, 1000)
  t.equal((await refund(1000, 'refund-key-1')).json().id, part.json().id, 'same key, same refund')
  const tooMuch = await refund(order.totalMinor, 'refund-key-2')
  t.equal(tooMuch.statusCode, 409)
  t.equal(tooMuch.json().type, 'urn:problem-type:refund-exceeds-captured')
  t.equal(await stockOf(app, variantId), 7)
  const rest = await refund(undefined, 'refund-key-3')
  t.equal(rest.json().amountMinor, order.totalMinor - 1000)
  const refunded = (await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json()
  t.match(refunded, { status: 'refunded', refundedMinor: order.totalMinor })
  t.equal(await stockOf(app, variantId), 10, 'stock back once')
  t.equal((await refund(1, 'refund-key-4')).statusCode, 409, 'nothing left')
})

t.test('cancel: stock restored exactly once, a paid order is refunded; state machine guarded', async (t) => {
  const { app, admin, buyer, order, variantId } = await placeOrder(t)
  t.equal(await stockOf(app, variantId), 7)
  const cancels = await Promise.all([1, 2, 3].map(() => app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers: buyer.headers })))
  t.same(cancels.map((r) => r.statusCode).sort(), [200, 409, 409])
  t.equal(await stockOf(app, variantId), 10, 'restored once')
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers: buyer.headers })).statusCode, 409)
  t.equal(await stockOf(app, variantId), 10)

  const second = await register(app, { email: 'second@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: second.headers, payload: { variantId, quantity: 2 } })
  const o2 = (await app.inject({ method: 'POST', url: '/orders', headers: second.headers, payload: { shippingAddress: ADDRESS } })).json()
  t.equal((await app.inject({ method: 'GET', url: `/orders/${o2.id}`, headers: buyer.headers })).statusCode, 404, "someone else's order is a 404")
  t.equal((await app.inject({ method: 'POST', url: `/orders/${o2.id}/cancel`, headers: buyer.headers })).statusCode, 404)
  const p = (await pay(app, second.headers, o2.id, 'tok_success')).json()
  await app.inject({ method: 'POST', url: `/payments/${p.id}/confirm`, headers: second.headers, payload: { paymentMethod: 'tok_success' } })

  const status = (to: string) => app.inject({ method: 'PATCH', url: `/orders/${o2.id}/status`, headers: admin.headers, payload: { status: to } })
  t.equal((await status('delivered')).statusCode, 409, 'paid -> delivered skips steps')
  t.equal((await app.inject({ method: 'PATCH', url: `/orders/${o2.id}/status`, headers: second.headers, payload: { status: 'fulfilled' } })).statusCode, 403)
  t.equal((await status('paid')).statusCode, 400, 'paid comes only from a payment')
  t.equal((await status('fulfilled')).json().status, 'fulfilled')
  t.equal((await status('cancelled')).statusCode, 409, 'fulfilled orders are not cancelled')
  t.equal((await status('shipped')).json().status, 'shipped')
  t.equal((await status('delivered')).json().status, 'delivered')
  t.equal((await status('shipped')).statusCode, 409, 'no going back')

  const third = await register(app, { email: 'third@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: third.headers, payload: { variantId, quantity: 1 } })
  const o3 = (await app.inject({ method: 'POST', url: '/orders', headers: third.headers, payload: { shippingAddress: ADDRESS } })).json()
  const p3 = (await pay(app, third.headers, o3.id, 'tok_success')).json()
  await app.inject({ method: 'POST', url: `/payments/${p3.id}/confirm`, headers: third.headers, payload: { paymentMethod: 'tok_success' } })
  const stockBefore = await stockOf(app, variantId)
  const cancelledPaid = await app.inject({ method: 'POST', url: `/orders/${o3.id}/cancel`, headers: third.headers })
  t.match(cancelledPaid.json(), { status: 'cancelled', refundedMinor: o3.totalMinor }, 'a paid order is refunded when cancelled')
  t.equal((await app.inject({ method: 'GET', url: `/payments/${p3.id}`, headers: third.headers })).json().refundedMinor, o3.totalMinor)
  t.equal(await stockOf(app, variantId), stockBefore + 1)
})

t.test('unpaid orders expire and release their stock; a payment arriving after is refunded', async (t) => {
  const { app, buyer, order, variantId } = await placeOrder(t, { ORDER_PAYMENT_TIMEOUT_MINUTES: '1' })
  const payment = (await pay(app, buyer.headers, order.id, 'tok_async')).json()
  const service = app.services.cancel
  t.same(await service.expireUnpaid(new Date()), { expired: 0 }, 'not yet')
  t.same(await service.expireUnpaid(new Date(Date.now() + 61_000)), { expired: 1 })
  t.same(await service.expireUnpaid(new Date(Date.now() + 61_000)), { expired: 0 }, 'once')
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'cancelled')
  t.equal(await stockOf(app, variantId), 10)

  await captureAtProvider(app, await providerIdOf(app, payment.id))
  const late = await webhook(app, { id: 'evt_late', type: 'payment.succeeded', data: { paymentId: await providerIdOf(app, payment.id) } })
  t.equal(late.statusCode, 200)
  const p = (await app.inject({ method: 'GET', url: `/payments/${payment.id}`, headers: buyer.headers })).json()
  t.match(p, { status: 'succeeded', refundedMinor: p.amountMinor }, 'money for a dead order goes back')
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'cancelled')
})

t.test('stripe provider: webhook signatures checked with the official helper', async (t) => {
  const secret = 'whsec_test_secret_for_signatures'
  const provider = createStripeProvider(Stripe, { secretKey: 'sk_test_x', webhookSecret: secret })
  const payload = JSON.stringify({ id: 'evt_s1', object: 'event', type: 'payment_intent.succeeded', data: { object: { id: 'pi_123', object: 'payment_intent', status: 'succeeded' } } })
  const header = Stripe.webhooks.generateTestHeaderString({ payload, secret })
  t.same(provider.parseWebhook(Buffer.from(payload), { 'stripe-signature': header }), { eventId: 'evt_s1', type: 'payment.succeeded', providerPaymentId: 'pi_123', failureReason: undefined })
  t.throws(() => provider.parseWebhook(Buffer.from(payload), { 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret: 'whsec_other' }) }), { name: 'AppError', message: /signature/ })
  const stale = Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp: Math.floor(Date.now() / 1000) - 301 })
  t.throws(() => provider.parseWebhook(Buffer.from(payload), { 'stripe-signature': stale }), { name: 'AppError', message: /signature/ })
  t.throws(() => provider.parseWebhook(Buffer.from(payload.replace('pi_123', 'pi_999')), { 'stripe-signature': header }), { name: 'AppError', message: /signature/ }, 'tampered body')
})

t.test('stripe provider end to end against stripe-mock: PaymentIntent created, signed webhook pays the order, refund', async (t) => {
  const stripeSecret = 'whsec_stripe_test_secret'
  const { app, admin, buyer, order } = await placeOrder(t, {
    PAYMENT_PROVIDERS: 'test,stripe', STRIPE_SECRET_KEY: 'sk_test_123', STRIPE_WEBHOOK_SECRET: stripeSecret, STRIPE_API_URL: TEST_STRIPE_API_URL,
  })
  const created = await app.inject({ method: 'POST', url: `/orders/${order.id}/payments`, headers: { ...buyer.headers, 'idempotency-key': 'stripe-pay-1' }, payload: { provider: 'stripe', paymentMethod: 'pm_card_visa' } })
  t.equal(created.statusCode, 201, created.body)
  // stripe-mock answers static fixtures (its PaymentIntent carries a last_payment_error), so the
  // status here is not meaningful; the webhook below is what pays the order.
  t.match(created.json(), { provider: 'stripe', status: /^(requires_confirmation|failed)$/, amountMinor: order.totalMinor })
  const intentId = await providerIdOf(app, created.json().id)
  t.match(intentId, /^pi_/)

  const payload = JSON.stringify({ id: 'evt_stripe_1', object: 'event', type: 'payment_intent.succeeded', data: { object: { id: intentId, object: 'payment_intent', status: 'succeeded' } } })
  const send = (secret: string) => app.inject({ method: 'POST', url: '/payments/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload, secret }) }, payload })
  t.equal((await send('whsec_wrong')).statusCode, 400)
  t.same((await send(stripeSecret)).json(), { received: true, duplicate: false })
  t.same((await send(stripeSecret)).json(), { received: true, duplicate: true })
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'paid')

  const refund = await app.inject({ method: 'POST', url: `/payments/${created.json().id}/refunds`, headers: { ...admin.headers, 'idempotency-key': 'stripe-refund-1' }, payload: { amountMinor: 500 } })
  t.equal(refund.statusCode, 201, refund.body)
  t.equal(refund.json().payment.refundedMinor, 500)
})
