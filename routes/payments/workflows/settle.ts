import { eq } from 'drizzle-orm'
import { orders, payments } from '../../../db/schema/index.js'
import type { Db, Tx } from '../../../db/client.js'
import { NotFound } from '../../../src/errors.js'
import { tryTransition } from '../../../src/order-status.js'
import { claim } from '../../../src/inventory.js'
import type { Outbox } from '../../../src/outbox.js'
import { ORDER_MAIL, ORDER_WEBHOOK, type OutboxEvent } from '../../../src/side-effects.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import type { PaymentProvider, ProviderName, ProviderStatus } from '../providers.js'
import { step } from '../../../src/tracing.js'
import { recordRefund, type RefundWorkflow } from './refund.js'

export type PaymentRow = typeof payments.$inferSelect

/**
 * The one place a provider's answer about a payment is written (pay, confirm, webhook,
 * reconciliation), in the caller's transaction with the payment locked here:
 *   - succeeded: the payment is captured; its order goes to `paid` through the transition
 *     table, or, when the order is no longer payable (cancelled, expired), a refund of the
 *     whole capture is recorded on the payment alone, to be sent after the commit;
 *   - failed: the payment failed (never after a capture);
 *   - requires_confirmation: the provider holds it; the customer confirms next.
 * Idempotent: an answer already applied changes nothing. Returns refunds to send after commit
 * and the outbox events (the customer's mail) for the caller to write in its transaction.
 */
export async function applyProviderOutcome(tx: Tx, paymentId: string, outcome: { providerPaymentId?: string; status: ProviderStatus; failureReason?: string }) {
  // Locks in the order every workflow takes them: the order, then its payment.
  const [known] = await tx.select({ orderId: payments.orderId }).from(payments).where(eq(payments.id, paymentId))
  if (!known) throw new NotFound('payment', paymentId)
  await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, known.orderId)).for('update')
  const [payment] = await tx.select().from(payments).where(eq(payments.id, paymentId)).for('update')
  const refundIds: string[] = []
  const events: OutboxEvent[] = []
  // What to count once the caller's transaction has committed.
  let report: (metrics: MoneyMetrics) => void = () => {}
  const providerPaymentId = outcome.providerPaymentId ?? payment!.providerPaymentId
  // A capture is final. A failure is not: the provider may still capture (a later attempt).
  if (payment!.status === 'succeeded') return { payment: payment!, refundIds, events, report }

  if (outcome.status === 'succeeded') {
    await tx.update(payments).set({ status: 'succeeded', providerPaymentId, failureReason: null, updatedAt: new Date() }).where(eq(payments.id, paymentId))
    const paid = await tryTransition(tx, payment!.orderId, 'paid', { paidAt: new Date() }, 'pending_payment')
    if (paid) {
      // The order's reserved units leave the shelf: once, whichever answer (pay, confirm, webhook, reconciliation) lands first.
      await claim(tx, paid.id)
      events.push(ORDER_MAIL(paid.id, 'paid'), ORDER_WEBHOOK('order.paid', paid))
      report = (metrics) => metrics.order('paid', paid.currency, paid.totalMinor)
    }
    else {
      const refund = await recordRefund(tx, { paymentId, reason: 'order no longer payable', actorId: null, countsTowardOrder: false })
      refundIds.push(refund.id)
    }
    const [after] = await tx.select().from(payments).where(eq(payments.id, paymentId))
    return { payment: after!, refundIds, events, report }
  }
  if (payment!.status === 'failed') return { payment: payment!, refundIds, events, report }
  const status = outcome.status === 'failed' ? 'failed' : 'requires_confirmation'
  const [updated] = await tx.update(payments).set({ status, providerPaymentId, failureReason: outcome.status === 'failed' ? (outcome.failureReason ?? 'failed') : null, updatedAt: new Date() })
    .where(eq(payments.id, paymentId)).returning()
  if (status === 'failed') report = (metrics) => metrics.paymentFailed(payment!.provider, updated!.failureReason ?? 'failed')
  return { payment: updated!, refundIds, events, report }
}

export type SettleResult = Awaited<ReturnType<typeof applyProviderOutcome>>
export interface SettleDeps { outbox: Pick<Outbox, 'transaction'>; refunds: Pick<RefundWorkflow, 'sendAll'>; metrics: MoneyMetrics }

/**
 * The one shape of "settle, then follow up": `work` applies a provider's answer in a transaction
 * (null: nothing to apply); its outbox events commit with it; after the commit the business
 * counters move, the events run, and the refunds it recorded are sent.
 */
export async function settleThenFollowUp(deps: SettleDeps, work: (tx: Tx) => Promise<SettleResult | null>) {
  return deps.outbox.transaction(async (tx, emit) => {
    const result = await work(tx)
    if (result) await emit(result.events)
    return result
  }, {
    span: 'payment.settle',
    afterCommit: async (settled, runEvents) => {
      if (!settled) return
      settled.report(deps.metrics)
      await step('payment.follow-up', async () => {
        await runEvents()
        await deps.refunds.sendAll(settled.refundIds)
      })
    },
  })
}

export interface VoidDeps extends SettleDeps { providers: Map<ProviderName, PaymentProvider> }

/**
 * A payment in flight for an order that is gone (cancelled, expired) is cancelled at the
 * provider, so it can never be captured; a capture that came first is settled like any other,
 * which for an order no longer payable records and sends a refund of it. A payment the provider
 * has not created yet (no id) is left to pay's send, which comes here once it has one.
 * Errors propagate: the payment stays in flight and reconciliation comes back to it.
 */
export async function cancelAtProvider(deps: VoidDeps, payment: PaymentRow) {
  if (payment.status !== 'requires_confirmation' || !payment.providerPaymentId) return payment
  const provider = deps.providers.get(payment.provider as ProviderName)
  if (!provider) return payment
  const outcome = await step('payment.provider-cancel', () => provider.cancel(payment.providerPaymentId!))
  const settled = await settleThenFollowUp(deps, (tx) => applyProviderOutcome(tx, payment.id, outcome))
  return settled!.payment
}

/** Whether the payment's order can no longer be paid, so a payment in flight for it must not be captured. */
export async function orderIsGone(db: Db, orderId: string) {
  const [order] = await db.select({ status: orders.status }).from(orders).where(eq(orders.id, orderId))
  return order?.status === 'cancelled'
}
