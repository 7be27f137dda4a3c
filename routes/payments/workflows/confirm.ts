import { and, eq, sql } from 'drizzle-orm'
import { payments, webhookEvents } from '../../../db/schema/index.js'
import type { Db } from '../../../db/client.js'
import { Conflict, NotFound, ProviderFailure } from '../../../src/errors.js'
import type { Outbox } from '../../../src/outbox.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import { ACTIVITY, type Actor, type OutboxEvent } from '../../../src/side-effects.js'
import { step } from '../../../src/tracing.js'
import type { PaymentProvider, ProviderName } from '../providers.js'
import type { RefundWorkflow } from './refund.js'
import { providerOf } from './pay.js'
import { applyProviderOutcome, settleThenFollowUp, type PaymentRow } from './settle.js'

// Confirm workflow (the customer) and webhook workflow (the provider): the provider's answer
// about a payment reaches us. In commit order:
//   confirm: 1. the provider's confirm, outside any transaction (the payment id is the provider's;
//               confirming twice answers the same); 2. settle (transaction, settle.ts);
//               3. refunds a late capture recorded, sent after the commit.
//   webhook: 1. verify the signature; 2. ONE transaction: record the event id (a replay finds it
//               and changes nothing) and settle; 3. refunds sent after the commit.
// Recovery: a crash between confirm's 1 and 2 leaves the payment requires_confirmation while
// the provider has it captured; the provider's webhook or reconciliation (which asks the
// provider) settles it.

export interface ConfirmDeps { db: Db; outbox: Outbox; providers: Map<ProviderName, PaymentProvider>; refunds: RefundWorkflow; metrics: MoneyMetrics }

export function createConfirmWorkflow({ db, outbox, providers, refunds, metrics }: ConfirmDeps) {
  async function settle(paymentId: string, outcome: Parameters<typeof applyProviderOutcome>[2], events: (payment: PaymentRow) => OutboxEvent[] = () => []) {
    const settled = await settleThenFollowUp({ outbox, refunds, metrics }, async (tx) => {
      const result = await applyProviderOutcome(tx, paymentId, outcome)
      return { ...result, events: [...result.events, ...events(result.payment)] }
    })
    return settled!.payment
  }

  return {
    settle,
    async confirm(actor: Actor, payment: PaymentRow, paymentMethod: string) {
      if (payment.status === 'succeeded' || payment.status === 'failed') return payment
      if (payment.status === 'pending' || !payment.providerPaymentId) throw new Conflict('The payment is still being created at the provider; retry shortly', 'payment-pending')
      let outcome
      try {
        outcome = await step('payment.provider-confirm', () => providerOf(providers, payment.provider).confirm(payment.providerPaymentId!, paymentMethod))
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 400) throw err
        throw new ProviderFailure(`The payment provider did not answer (${(err as Error).message}); retry`)
      }
      return settle(payment.id, outcome, (after) => [ACTIVITY(actor, 'payment', { paymentId: after.id, orderId: after.orderId, status: after.status, provider: after.provider })])
    },

    /** Verifies, then applies each provider event once; a replay is acknowledged and changes nothing. */
    async webhook(providerName: string, rawBody: Buffer, headers: Record<string, string | string[] | undefined>) {
      const provider = providerOf(providers, providerName)
      const event = provider.parseWebhook(rawBody, headers)
      let duplicate = false
      await settleThenFollowUp({ outbox, refunds, metrics }, async (tx) => {
        const fresh = await tx.insert(webhookEvents).values({ provider: provider.name, eventId: event.eventId, type: event.type }).onConflictDoNothing().returning({ eventId: webhookEvents.eventId })
        if (!fresh.length) { duplicate = true; return null }
        if (event.type === 'ignored' || !event.providerPaymentId) return null
        const [payment] = await tx.select({ id: payments.id }).from(payments).where(and(eq(payments.provider, provider.name), eq(payments.providerPaymentId, event.providerPaymentId)))
        // Unknown yet (our record still pending): 404, so the provider sends it again later.
        if (!payment) throw new NotFound('payment', event.providerPaymentId)
        const status = event.type === 'payment.succeeded' ? 'succeeded' : 'failed'
        return applyProviderOutcome(tx, payment.id, { status, failureReason: event.failureReason })
      })
      return { received: true, duplicate }
    },

    /** Payments waiting for confirmation longer than `olderThanMs`, whose provider answer reconciliation asks for. */
    async unconfirmed(olderThanMs: number) {
      return db.select().from(payments).where(and(eq(payments.status, 'requires_confirmation'), sql`${payments.updatedAt} <= now() - make_interval(secs => ${olderThanMs / 1000})`)).limit(200)
    },
  }
}
export type ConfirmWorkflow = ReturnType<typeof createConfirmWorkflow>
