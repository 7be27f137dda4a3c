import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto'
import Stripe from 'stripe'
import { BadRequest } from '../../src/errors.js'

// Payment providers behind one interface. `test` gives deterministic outcomes chosen by the
// payment method token, for development and QA; `stripe` uses PaymentIntents.

export type ProviderName = 'test' | 'stripe'
export type ProviderStatus = 'requires_confirmation' | 'succeeded' | 'failed'
export interface ProviderPayment { providerPaymentId: string; status: ProviderStatus; failureReason?: string }
export interface WebhookEvent { eventId: string; type: 'payment.succeeded' | 'payment.failed' | 'ignored'; providerPaymentId?: string; failureReason?: string }

export interface PaymentProvider {
  name: ProviderName
  create(input: { amountMinor: number; currency: string; orderId: string; paymentMethod: string; idempotencyKey: string }): Promise<ProviderPayment>
  confirm(providerPaymentId: string, paymentMethod: string): Promise<Omit<ProviderPayment, 'providerPaymentId'>>
  refund(input: { providerPaymentId: string; amountMinor: number; idempotencyKey: string }): Promise<{ providerRefundId: string }>
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

export function createTestProvider(webhookSecret: string): PaymentProvider {
  return {
    name: 'test',
    async create() { return { providerPaymentId: `tp_${randomUUID()}`, status: 'requires_confirmation' } },
    async confirm(_id, paymentMethod) {
      const outcome = TEST_OUTCOMES[paymentMethod]
      if (!outcome) throw new BadRequest(`Unknown test payment method; use one of ${Object.keys(TEST_OUTCOMES).join(', ')}`, 'invalid-payment-method')
      return outcome
    },
    async refund() { return { providerRefundId: `tr_${randomUUID()}` } },
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

export function createStripeProvider(opts: { secretKey: string; webhookSecret: string; apiUrl?: string }): PaymentProvider {
  const api = opts.apiUrl ? new URL(opts.apiUrl) : undefined
  const stripe = new Stripe(opts.secretKey, api ? { host: api.hostname, port: Number(api.port || (api.protocol === 'https:' ? 443 : 80)), protocol: api.protocol.replace(':', '') as 'http' | 'https' } : {})
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
export function providersFromConfig(config: { providers: ProviderName[]; webhookSecret: string; stripe: { secretKey?: string; webhookSecret?: string; apiUrl?: string } }) {
  const providers = new Map<ProviderName, PaymentProvider>()
  for (const name of config.providers) {
    if (name === 'test') providers.set('test', createTestProvider(config.webhookSecret))
    if (name === 'stripe') providers.set('stripe', createStripeProvider({ secretKey: config.stripe.secretKey!, webhookSecret: config.stripe.webhookSecret!, apiUrl: config.stripe.apiUrl }))
  }
  return providers
}
