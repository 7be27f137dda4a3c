import { and, eq, inArray, lt } from 'drizzle-orm'
import { orders, payments } from '../../../db/schema/index.js'
import type { Db } from '../../../db/client.js'
import type { Outbox } from '../../../src/outbox.js'
import { Conflict } from '../../../src/errors.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import { ACTIVITY, ORDER_MAIL, ORDER_WEBHOOK, STOCK_CHANGED, type Actor } from '../../../src/side-effects.js'
import { recordRefund, type RefundWorkflow } from '../../payments/workflows/refund.js'
import { cancelAtProvider, type PaymentRow } from '../../payments/workflows/settle.js'
import type { PaymentProvider, ProviderName } from '../../payments/providers.js'
import { releaseOrder, transition, tryTransition } from '../../../src/order-status.js'

// Cancel workflow (a customer or an admin), in commit order:
//   1. ONE transaction: the order moves to `cancelled` through the transition table (409 if it
//      may not), its stock and coupon use go back once (stock_released_at), a refund of what is
//      left of each captured payment is recorded (pending, reserved), and the cache
//      invalidation, activity, the customer's mail and the order.cancelled webhook go into the
//      outbox.
//   2. after the commit, the outbox events run at once; then each refund is sent to the provider
//      (refund workflow, steps 2-3); one whose outcome is unknown stays pending and
//      reconciliation sends it again.
//   3. each payment still in flight (not captured as far as we know) is cancelled at the
//      provider, so it can never be captured; if the provider captured it first, that capture
//      is settled and refunded (settle.ts, cancelAtProvider). If the provider does not answer,
//      the payment stays in flight and reconciliation cancels it; one still being created is
//      cancelled by pay's send once the provider has it.
//
// Expiry workflow (job, every minute): unpaid orders past their time, each in its own
// transaction whose outbox events run after its commit, move to `cancelled` through the same
// table and release their stock; then its payments in flight are cancelled at the provider as in 3.

export interface CancelDeps { db: Db; outbox: Outbox; refunds: RefundWorkflow; metrics: MoneyMetrics; providers: Map<ProviderName, PaymentProvider>; log?: { warn(obj: object, msg: string): void } }

export function createCancelWorkflow({ db, outbox, refunds, metrics, providers, log }: CancelDeps) {
  /** Step 3. The order is cancelled already: a provider that does not answer is left to reconciliation. */
  async function cancelInFlight(inFlight: PaymentRow[]) {
    for (const payment of inFlight) {
      try { await cancelAtProvider({ outbox, refunds, metrics, providers }, payment) }
      catch (err) { log?.warn({ err, paymentId: payment.id }, 'payment cancel at the provider failed; reconciliation retries') }
    }
  }
  const inFlightOf = (tx: Pick<Db, 'select'>, orderId: string) =>
    tx.select().from(payments).where(and(eq(payments.orderId, orderId), inArray(payments.status, ['pending', 'requires_confirmation'])))

  return {
    /** `onlyUnpaid`: a guest's cancel, refused (409) once the order is paid, so it never turns into a refund. */
    async cancel(actor: Actor & { isAdmin: boolean }, orderId: string, { onlyUnpaid = false } = {}) {
      const { refundIds, inFlight } = await outbox.transaction(async (tx, emit) => {
        const refundIds: string[] = []
        const cancelled = onlyUnpaid
          ? await tryTransition(tx, orderId, 'cancelled', { cancelledAt: new Date() }, 'pending_payment')
          : await transition(tx, orderId, 'cancelled', { cancelledAt: new Date() })
        if (!cancelled) throw new Conflict('Only an unpaid order can be cancelled here', 'order-not-cancellable')
        const captured = await tx.select().from(payments).where(and(eq(payments.orderId, orderId), eq(payments.status, 'succeeded')))
        for (const payment of captured) {
          if (payment.amountMinor - payment.refundedMinor <= 0) continue
          const refund = await recordRefund(tx, { paymentId: payment.id, reason: 'order cancelled', actorId: actor.isAdmin ? actor.userId : null, countsTowardOrder: true })
          refundIds.push(refund.id)
        }
        const inFlight = await inFlightOf(tx, orderId)
        const released = await releaseOrder(tx, orderId, 'cancellation')
        await emit([...STOCK_CHANGED(released?.productIds ?? [], released?.listsChanged ?? false), ACTIVITY(actor, 'order_status_change', { orderId, status: 'cancelled' }), ORDER_MAIL(orderId, 'cancelled'), ORDER_WEBHOOK('order.cancelled', cancelled)])
        return { cancelled, refundIds, inFlight }
      }, { afterCommit: ({ cancelled }) => metrics.order('cancelled', cancelled.currency, cancelled.totalMinor) })
      await refunds.sendAll(refundIds)
      await cancelInFlight(inFlight)
    },

    /** Cancels unpaid orders past their time and puts their stock back. Safe to run anywhere, any time. */
    async expireUnpaid(now = new Date()) {
      const due = await db.select({ id: orders.id }).from(orders).where(and(eq(orders.status, 'pending_payment'), lt(orders.expiresAt, now))).limit(500)
      let expired = 0
      for (const { id } of due) {
        const cancelled = await outbox.transaction(async (tx, emit) => {
          // Paid or cancelled meanwhile: not this job's any more.
          const cancelled = await tryTransition(tx, id, 'cancelled', { cancelledAt: now }, 'pending_payment')
          if (!cancelled) return null
          const released = await releaseOrder(tx, id, 'cancellation')
          await emit([...STOCK_CHANGED(released?.productIds ?? [], released?.listsChanged ?? false), ORDER_MAIL(id, 'cancelled'), ORDER_WEBHOOK('order.cancelled', cancelled)])
          return cancelled
        }, { afterCommit: (cancelled) => { if (cancelled) metrics.order('cancelled', cancelled.currency, cancelled.totalMinor) } })
        if (cancelled) {
          expired++
          await cancelInFlight(await inFlightOf(db, id))
        }
      }
      return { expired }
    },
  }
}
export type CancelWorkflow = ReturnType<typeof createCancelWorkflow>
