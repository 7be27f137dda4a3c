import t, { type Test } from 'tap'
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eq } from 'drizzle-orm'
import { payments, refunds, testProviderPayments, testProviderRefunds } from '../db/schema/index.js'
import { signTestWebhook } from '../routes/payments/providers.js'
import { buildTestApp, TEST_STRIPE_API_URL } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Cancel means cancel (issue 31): cancelling an order whose payment is in flight cancels that
// payment at the provider when it is not captured, and refunds only a capture that came first.
// One test per order of events, against the test provider and against stripe-mock.

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
type Headers = Record<string, string>

async function placeOrder(t: Parameters<typeof buildTestApp>[0], env: Record<string, string> = {}) {
  const app = await buildTestApp(t, env)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 2000, stock: 10 }] })
  const buyer = await register(app, { email: 'canceller@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId: product.variants[0].id, quantity: 2 } })
  const order = (await app.inject({ method: 'POST', url: '/orders', headers: buyer.headers, payload: { shippingAddress: ADDRESS } })).json()
  return { app, buyer, order }
}
const pay = (app: App, headers: Headers, orderId: string, provider: string, paymentMethod: string) =>
  app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': `pay-${orderId}` }, payload: { provider, paymentMethod } })
const cancel = (app: App, headers: Headers, orderId: string) => app.inject({ method: 'POST', url: `/orders/${orderId}/cancel`, headers })
const paymentRow = async (app: App, id: string) => (await app.db.select().from(payments).where(eq(payments.id, id)))[0]!
const atTestProvider = async (app: App, providerPaymentId: string) => (await app.db.select().from(testProviderPayments).where(eq(testProviderPayments.id, providerPaymentId)))[0]!
const providerRefunds = (app: App) => app.db.select().from(testProviderRefunds)
function webhook(app: App, event: object) {
  const body = JSON.stringify(event)
  return app.inject({ method: 'POST', url: '/payments/webhooks/test', headers: { 'content-type': 'application/json', 'x-shop-signature': signTestWebhook(app.config.payments.webhookSecret, body) }, payload: body })
}

t.test('test provider: in flight, then cancel, then the customer confirms: cancelled at the provider, never captured, nothing refunded', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'test', 'tok_async')).json()
  t.equal(payment.status, 'requires_confirmation')
  const providerId = (await paymentRow(app, payment.id)).providerPaymentId!

  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.equal((await atTestProvider(app, providerId)).status, 'canceled', 'the provider cancelled it')
  t.match(await paymentRow(app, payment.id), { status: 'failed', failureReason: 'canceled', refundedMinor: 0 })

  // The customer finishes at the provider afterwards: nothing is captured.
  const late = await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } })
  t.equal(late.json().status, 'failed')
  t.equal((await atTestProvider(app, providerId)).status, 'canceled', 'still not captured')
  t.same(await providerRefunds(app), [], 'no charge, so no refund')
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'cancelled')
})

t.test('test provider: captured at the provider before the cancel reaches it: the capture is settled and refunded at once', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'test', 'tok_async')).json()
  const providerId = (await paymentRow(app, payment.id)).providerPaymentId!
  // The customer finished at the provider; its webhook has not reached us yet.
  await app.db.update(testProviderPayments).set({ status: 'succeeded' }).where(eq(testProviderPayments.id, providerId))

  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.equal((await atTestProvider(app, providerId)).status, 'succeeded', 'a capture cannot be cancelled')
  t.match(await paymentRow(app, payment.id), { status: 'succeeded', refundedMinor: order.totalMinor })
  t.same((await providerRefunds(app)).map((r) => [r.paymentId, r.amountMinor]), [[providerId, order.totalMinor]], 'refunded once, in full')
  t.same((await app.db.select().from(refunds)).map((r) => r.status), ['succeeded'])

  // The webhook arrives late: it changes nothing and refunds nothing twice.
  t.equal((await webhook(app, { id: 'evt_late', type: 'payment.succeeded', data: { paymentId: providerId } })).statusCode, 200)
  t.equal((await providerRefunds(app)).length, 1)
  t.equal((await app.inject({ method: 'GET', url: `/orders/${order.id}`, headers: buyer.headers })).json().status, 'cancelled')
})

t.test('test provider: captured and known, then cancel: refunded, not cancelled at the provider', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'test', 'tok_success')).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } })
  const providerId = (await paymentRow(app, payment.id)).providerPaymentId!
  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.equal((await atTestProvider(app, providerId)).status, 'succeeded')
  t.same((await providerRefunds(app)).map((r) => r.amountMinor), [order.totalMinor])
  t.match(await paymentRow(app, payment.id), { status: 'succeeded', refundedMinor: order.totalMinor })
})

t.test('test provider: cancel while the payment is still being created: cancelled at the provider as soon as it exists', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  app.faults.failOnce('payment.after-record')
  t.equal((await pay(app, buyer.headers, order.id, 'test', 'tok_async')).statusCode, 500)
  const [pending] = await app.db.select().from(payments).where(eq(payments.orderId, order.id))
  t.equal(pending!.status, 'pending')

  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  // Reconciliation sends the recorded payment (the provider may have it already) and cancels it.
  await app.services.reconcile({ olderThanMs: 0 })
  const after = await paymentRow(app, pending!.id)
  t.match(after, { status: 'failed', failureReason: 'canceled' })
  t.equal((await atTestProvider(app, after.providerPaymentId!)).status, 'canceled')
  t.same(await providerRefunds(app), [])
})

t.test('test provider: an order that expires with a payment in flight has it cancelled at the provider', async (t) => {
  const { app, buyer, order } = await placeOrder(t)
  const payment = (await pay(app, buyer.headers, order.id, 'test', 'tok_async')).json()
  const providerId = (await paymentRow(app, payment.id)).providerPaymentId!
  const { expired } = await app.services.cancel.expireUnpaid(new Date(Date.parse(order.expiresAt) + 1000))
  t.equal(expired, 1)
  t.equal((await atTestProvider(app, providerId)).status, 'canceled')
  t.equal((await paymentRow(app, payment.id)).status, 'failed')
})

/**
 * Stripe's API as stripe-mock answers it (it checks every request against Stripe's OpenAPI
 * document), plus the one thing stripe-mock cannot do: remember. Each intent it creates gets an
 * id of its own and a status kept here, so the orders of events (captured first, cancelled first)
 * can be played; `refuseCancels` makes cancels fail as an unreachable Stripe would. Every call is
 * recorded.
 */
async function statefulStripe(t: Parameters<typeof buildTestApp>[0]) {
  const upstream = new URL(TEST_STRIPE_API_URL)
  const intents = new Map<string, string>()
  const calls: string[] = []
  let created = 0
  const state = { refuseCancels: false }
  const forward = (req: IncomingMessage, body: Buffer, path: string) => new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path, headers: { ...req.headers, host: upstream.host } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) }))
    })
    out.on('error', reject)
    out.end(body)
  })
  const send = (res: ServerResponse, status: number, json: object) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(json)) }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', async () => {
      const body = Buffer.concat(chunks)
      const path = req.url!
      calls.push(`${req.method} ${path.split('?')[0]}`)
      const intent = /^\/v1\/payment_intents\/([^/?]+)(\/cancel)?/.exec(path)
      if (intent && intent[2] && state.refuseCancels) return send(res, 500, { error: { type: 'api_error', message: 'unreachable (test)' } })
      if (intent && intent[2] && intents.get(intent[1]!) === 'succeeded') {
        return send(res, 400, { error: { type: 'invalid_request_error', code: 'payment_intent_unexpected_state', message: 'This PaymentIntent could not be canceled because it has a status of succeeded.' } })
      }
      const answer = await forward(req, body, path)
      if (answer.json.object === 'payment_intent') {
        if (path.startsWith('/v1/payment_intents') && !intent && req.method === 'POST') {
          answer.json.id = `pi_fo${++created}`
          intents.set(answer.json.id as string, 'requires_confirmation')
        }
        else if (intent) {
          answer.json.id = intent[1]
          if (intent[2]) intents.set(intent[1]!, 'canceled')
        }
        answer.json.status = intents.get(answer.json.id as string) ?? answer.json.status
        answer.json.last_payment_error = null
      }
      send(res, answer.status, answer.json)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { url, intents, calls, state, capture: (id: string) => intents.set(id, 'succeeded') }
}

async function stripeOrder(t: Test) {
  const stripe = await statefulStripe(t)
  const placed = await placeOrder(t, { PAYMENT_PROVIDERS: 'test,stripe', STRIPE_SECRET_KEY: 'sk_test_123', STRIPE_WEBHOOK_SECRET: 'whsec_cancel', STRIPE_API_URL: stripe.url })
  const payment = (await pay(placed.app, placed.buyer.headers, placed.order.id, 'stripe', 'pm_card_visa')).json()
  t.equal(payment.status, 'requires_confirmation')
  const intentId = (await paymentRow(placed.app, payment.id)).providerPaymentId!
  return { ...placed, stripe, payment, intentId }
}

t.test('stripe: in flight, then cancel: the PaymentIntent is cancelled, nothing refunded', async (t) => {
  const { app, buyer, order, stripe, payment, intentId } = await stripeOrder(t)
  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.ok(stripe.calls.includes(`POST /v1/payment_intents/${intentId}/cancel`), 'PaymentIntent cancel sent')
  t.equal(stripe.intents.get(intentId), 'canceled')
  t.notOk(stripe.calls.includes('POST /v1/refunds'), 'no refund')
  t.match(await paymentRow(app, payment.id), { status: 'failed', failureReason: 'canceled' })
})

t.test('stripe: captured before the cancel reaches Stripe: Stripe refuses the cancel, the capture is refunded', async (t) => {
  const { app, buyer, order, stripe, payment, intentId } = await stripeOrder(t)
  stripe.capture(intentId)
  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.ok(stripe.calls.includes(`POST /v1/payment_intents/${intentId}/cancel`))
  t.equal(stripe.calls.filter((c) => c === 'POST /v1/refunds').length, 1, 'refunded once')
  t.match(await paymentRow(app, payment.id), { status: 'succeeded', refundedMinor: order.totalMinor })
  t.same((await app.db.select().from(refunds)).map((r) => r.status), ['succeeded'])
})

t.test('stripe: captured and known, then cancel: refunded, no cancel sent', async (t) => {
  const { app, buyer, order, stripe, payment, intentId } = await stripeOrder(t)
  stripe.capture(intentId)
  const event = JSON.stringify({ id: 'evt_cap', object: 'event', type: 'payment_intent.succeeded', data: { object: { id: intentId, object: 'payment_intent', status: 'succeeded' } } })
  const { default: Stripe } = await import('stripe')
  await app.inject({ method: 'POST', url: '/payments/webhooks/stripe', headers: { 'content-type': 'application/json', 'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: event, secret: 'whsec_cancel' }) }, payload: event })
  t.equal((await paymentRow(app, payment.id)).status, 'succeeded')
  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200)
  t.notOk(stripe.calls.some((c) => c.endsWith('/cancel')), 'a capture is not cancelled')
  t.equal(stripe.calls.filter((c) => c === 'POST /v1/refunds').length, 1)
  t.match(await paymentRow(app, payment.id), { refundedMinor: order.totalMinor })
})

t.test('stripe: unreachable during the cancel: the order is cancelled anyway and reconciliation cancels the intent', async (t) => {
  const { app, buyer, order, stripe, payment, intentId } = await stripeOrder(t)
  stripe.state.refuseCancels = true
  t.equal((await cancel(app, buyer.headers, order.id)).statusCode, 200, 'the customer is not kept waiting on the provider')
  t.equal((await paymentRow(app, payment.id)).status, 'requires_confirmation', 'still in flight')
  stripe.state.refuseCancels = false
  const reconciled = await app.services.reconcile({ olderThanMs: 0 })
  t.equal(reconciled.paymentsSettled, 1)
  t.equal(stripe.intents.get(intentId), 'canceled')
  t.match(await paymentRow(app, payment.id), { status: 'failed', failureReason: 'canceled' })
})
