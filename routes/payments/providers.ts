import { createHmac, timingSafeEqual } from 'node:crypto'
import { and, eq, ne, notInArray, sql } from 'drizzle-orm'
import type Stripe from 'stripe'
import type { Db } from '../../db/client.js'
import { testProviderPayments, testProviderRefunds } from '../../db/schema/index.js'
import { BadRequest, ProviderFailure } from '../../src/errors.js'

// Payment providers behind one interface. `test` gives deterministic outcomes chosen by the
// payment method token, for development and QA; `stripe` uses PaymentIntents.

export type ProviderName = 'test' | 'stripe'
export type ProviderStatus = 'requires_confirmation' | 'succeeded' | 'failed'
export interface ProviderPayment { providerPaymentId: string; status: ProviderStatus; failureReason?: string }
export interface WebhookEvent { eventId: string; type: 'payment.succeeded' | 'payment.failed' | 'ignored'; providerPaymentId?: string; failureReason?: string }

// Every call that creates something carries an idempotency key derived from our own record's id,
// so re-sending it after a crash or timeout returns the same object instead of a second one.
export interface PaymentProvider {
  name: ProviderName
  create(input: { amountMinor: number; currency: string; orderId: string; paymentMethod: string; idempotencyKey: string }): Promise<ProviderPayment>
  confirm(providerPaymentId: string, paymentMethod: string): Promise<Omit<ProviderPayment, 'providerPaymentId'>>
  /** The provider's current view of a payment (reconciliation). */
  retrieve(providerPaymentId: string): Promise<Omit<ProviderPayment, 'providerPaymentId'>>
  refund(input: { providerPaymentId: string; amountMinor: number; idempotencyKey: string }): Promise<{ providerRefundId: string }>
  /**
   * Cancels a payment not captured yet, so it can never be captured; answers the payment's state
   * afterwards: failed ('canceled') once cancelled, succeeded when the capture came first (then
   * the caller refunds). Cancelling twice answers the same.
   */
  cancel(providerPaymentId: string): Promise<Omit<ProviderPayment, 'providerPaymentId'>>
  /** Verifies the signature over the raw body and decodes the event, or throws 400. */
  parseWebhook(rawBody: Buffer, headers: Record<string, string | string[] | undefined>): WebhookEvent
}

export const WEBHOOK_TOLERANCE_SECONDS = 300
export const TEST_SIGNATURE_HEADER = 'x-shop-signature'

/** Signs a test-provider webhook body as the provider would: `t=<unix>,v1=<hex HMAC-SHA256(t.body)>`. */
export function signTestWebhook(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)) {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`
}

// tok_success confirms; tok_decline and tok_insufficient_funds fail; tok_async waits for the webhook.
const TEST_OUTCOMES: Record<string, Omit<ProviderPayment, 'providerPaymentId'>> = {
  tok_success: { status: 'succeeded' },
  tok_decline: { status: 'failed', failureReason: 'card_declined' },
  tok_insufficient_funds: { status: 'failed', failureReason: 'insufficient_funds' },
  tok_async: { status: 'requires_confirmation' },
}

/**
 * The built-in provider for development and QA. It keeps its own books (test_provider_* tables,
 * written outside our transactions, as a remote provider's would be) and keeps Stripe's
 * idempotency contract, so crash and retry tests see what a real provider would do.
 */
export function createTestProvider(webhookSecret: string, db: Db): PaymentProvider {
  async function payment(id: string) {
    const [row] = await db.select().from(testProviderPayments).where(eq(testProviderPayments.id, id))
    if (!row) throw new ProviderFailure(`No such payment: ${id}`, 'provider-resource-missing')
    return row
  }
  // Its own `canceled` reads as a failure to us, as Stripe's canceled intent does.
  const outcome = (row: typeof testProviderPayments.$inferSelect) => row.status === 'canceled'
    ? { status: 'failed' as const, failureReason: 'canceled' }
    : { status: row.status as ProviderStatus, ...(row.failureReason ? { failureReason: row.failureReason } : {}) }
  return {
    name: 'test',
    async create({ amountMinor, currency, orderId, idempotencyKey }) {
      const id = `tp_${createHmac('sha256', 'test-provider').update(idempotencyKey).digest('hex').slice(0, 24)}`
      await db.insert(testProviderPayments).values({ id, idempotencyKey, reference: orderId, amountMinor, currency, status: 'requires_confirmation' }).onConflictDoNothing()
      const row = await payment(id)
      if (row.amountMinor !== amountMinor || row.currency !== currency || row.reference !== orderId) {
        throw new ProviderFailure('Keys for idempotent requests can only be used with the same parameters they were first used with', 'provider-idempotency-error')
      }
      return { providerPaymentId: id, ...outcome(row) }
    },
    async confirm(id, paymentMethod) {
      const result = TEST_OUTCOMES[paymentMethod]
      if (!result) throw new BadRequest(`Unknown test payment method; use one of ${Object.keys(TEST_OUTCOMES).join(', ')}`, 'invalid-payment-method')
      // A captured payment stays captured and a cancelled one cancelled; confirming answers what it is.
      await db.update(testProviderPayments).set({ status: result.status, failureReason: result.failureReason ?? null })
        .where(and(eq(testProviderPayments.id, id), notInArray(testProviderPayments.status, ['succeeded', 'canceled'])))
      return outcome(await payment(id))
    },
    async cancel(id) {
      // One statement, so a capture racing it either came first (and stays) or never happens.
      await db.update(testProviderPayments).set({ status: 'canceled', failureReason: null })
        .where(and(eq(testProviderPayments.id, id), ne(testProviderPayments.status, 'succeeded')))
      return outcome(await payment(id))
    },
    async retrieve(id) { return outcome(await payment(id)) },
    async refund({ providerPaymentId, amountMinor, idempotencyKey }) {
      const id = `tr_${createHmac('sha256', 'test-provider').update(idempotencyKey).digest('hex').slice(0, 24)}`
      const [known] = await db.select().from(testProviderRefunds).where(eq(testProviderRefunds.idempotencyKey, idempotencyKey))
      if (known) {
        if (known.paymentId !== providerPaymentId || known.amountMinor !== amountMinor) throw new ProviderFailure('Idempotency key reused with other parameters', 'provider-idempotency-error')
        return { providerRefundId: known.id }
      }
      const captured = await payment(providerPaymentId)
      if (captured.status !== 'succeeded') throw new ProviderFailure('Only a captured payment can be refunded', 'provider-refund-refused')
      // Like a real provider, never more back than was captured (the insert is one statement, so two racing refunds cannot both pass).
      const inserted = await db.execute(sql`insert into test_provider_refunds (id, idempotency_key, payment_id, amount_minor)
        select ${id}, ${idempotencyKey}, ${providerPaymentId}, ${amountMinor}
        where (select coalesce(sum(amount_minor), 0) from test_provider_refunds where payment_id = ${providerPaymentId}) + ${amountMinor} <= ${captured.amountMinor}
        on conflict do nothing returning id`)
      if (!inserted.rows.length) {
        const [again] = await db.select().from(testProviderRefunds).where(eq(testProviderRefunds.idempotencyKey, idempotencyKey))
        if (again) return { providerRefundId: again.id }
        throw new ProviderFailure('The refund exceeds what is left of the payment', 'provider-refund-refused')
      }
      return { providerRefundId: id }
    },
    parseWebhook(rawBody, headers) {
      const header = headers[TEST_SIGNATURE_HEADER]
      const parts = Object.fromEntries(String(header ?? '').split(',').map((p) => p.split('=', 2) as [string, string]))
      const timestamp = Number(parts.t)
      if (!parts.v1 || !Number.isInteger(timestamp)) throw new BadRequest('Missing or malformed signature', 'invalid-signature')
      if (Math.abs(Date.now() / 1000 - timestamp) > WEBHOOK_TOLERANCE_SECONDS) throw new BadRequest('The signature timestamp is outside the tolerance', 'invalid-signature')
      const expected = createHmac('sha256', webhookSecret).update(`${timestamp}.`).update(rawBody).digest()
      const given = Buffer.from(parts.v1, 'hex')
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw new BadRequest('The signature does not match', 'invalid-signature')
      let event: { id?: unknown; type?: unknown; data?: { paymentId?: unknown; failureReason?: unknown } }
      try { event = JSON.parse(rawBody.toString('utf8')) } catch { throw new BadRequest('The body is not JSON', 'invalid-webhook') }
      if (typeof event.id !== 'string' || typeof event.type !== 'string') throw new BadRequest('The event has no id or type', 'invalid-webhook')
      const type = event.type === 'payment.succeeded' || event.type === 'payment.failed' ? event.type : 'ignored'
      return { eventId: event.id, type, providerPaymentId: typeof event.data?.paymentId === 'string' ? event.data.paymentId : undefined, failureReason: typeof event.data?.failureReason === 'string' ? event.data.failureReason : undefined }
    },
  }
}

// A new intent also reads requires_payment_method; only with a payment error has it failed.
const stripeStatus = (intent: Stripe.PaymentIntent): ProviderStatus =>
  intent.status === 'succeeded' ? 'succeeded'
    : intent.status === 'canceled' || (intent.status === 'requires_payment_method' && intent.last_payment_error) ? 'failed'
      : 'requires_confirmation'

/** The Stripe provider; the SDK is loaded only when Stripe is enabled. */
export async function loadStripeProvider(opts: { secretKey: string; webhookSecret: string; apiUrl?: string }) {
  const { default: StripeSdk } = await import('stripe')
  return createStripeProvider(StripeSdk, opts)
}

export function createStripeProvider(StripeSdk: typeof Stripe, opts: { secretKey: string; webhookSecret: string; apiUrl?: string }): PaymentProvider {
  const api = opts.apiUrl ? new URL(opts.apiUrl) : undefined
  const stripe = new StripeSdk(opts.secretKey, api ? { host: api.hostname, port: Number(api.port || (api.protocol === 'https:' ? 443 : 80)), protocol: api.protocol.replace(':', '') as 'http' | 'https' } : {})
  return {
    name: 'stripe',
    async create({ amountMinor, currency, orderId, paymentMethod, idempotencyKey }) {
      const intent = await stripe.paymentIntents.create({ amount: amountMinor, currency: currency.toLowerCase(), payment_method: paymentMethod, metadata: { orderId } }, { idempotencyKey })
      return { providerPaymentId: intent.id, status: stripeStatus(intent) }
    },
    async confirm(id, paymentMethod) {
      const intent = await stripe.paymentIntents.confirm(id, { payment_method: paymentMethod })
      return { status: stripeStatus(intent), failureReason: intent.last_payment_error?.code }
    },
    async retrieve(id) {
      const intent = await stripe.paymentIntents.retrieve(id)
      return { status: stripeStatus(intent), failureReason: intent.last_payment_error?.code }
    },
    async cancel(id) {
      try {
        // Stripe cancels only what is not captured: an answer is a cancelled intent.
        await stripe.paymentIntents.cancel(id)
        return { status: 'failed', failureReason: 'canceled' }
      } catch (err) {
        // Captured (or cancelled) before this call: Stripe refuses; its current state answers.
        if ((err as { code?: string }).code !== 'payment_intent_unexpected_state') throw err
        const intent = await stripe.paymentIntents.retrieve(id)
        return { status: stripeStatus(intent), failureReason: intent.status === 'canceled' ? 'canceled' : intent.last_payment_error?.code }
      }
    },
    async refund({ providerPaymentId, amountMinor, idempotencyKey }) {
      const refund = await stripe.refunds.create({ payment_intent: providerPaymentId, amount: amountMinor }, { idempotencyKey })
      return { providerRefundId: refund.id }
    },
    parseWebhook(rawBody, headers) {
      let event: Stripe.Event
      try {
        event = stripe.webhooks.constructEvent(rawBody, String(headers['stripe-signature'] ?? ''), opts.webhookSecret, WEBHOOK_TOLERANCE_SECONDS)
      } catch (err) {
        throw new BadRequest(`Stripe signature check failed: ${(err as Error).message}`, 'invalid-signature')
      }
      if (event.type === 'payment_intent.succeeded' || event.type === 'payment_intent.payment_failed') {
        const intent = event.data.object
        return {
          eventId: event.id, type: event.type === 'payment_intent.succeeded' ? 'payment.succeeded' : 'payment.failed',
          providerPaymentId: intent.id, failureReason: intent.last_payment_error?.code,
        }
      }
      return { eventId: event.id, type: 'ignored' }
    },
  }
}

/** The enabled providers, from configuration. */
export async function providersFromConfig(config: { providers: ProviderName[]; webhookSecret: string; stripe: { secretKey?: string; webhookSecret?: string; apiUrl?: string } }, db: Db) {
  const providers = new Map<ProviderName, PaymentProvider>()
  for (const name of config.providers) {
    if (name === 'test') providers.set('test', createTestProvider(config.webhookSecret, db))
    if (name === 'stripe') providers.set('stripe', await loadStripeProvider({ secretKey: config.stripe.secretKey!, webhookSecret: config.stripe.webhookSecret!, apiUrl: config.stripe.apiUrl }))
  }
  return providers
}
