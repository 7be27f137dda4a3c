import { and, eq, sql } from 'drizzle-orm'
import { orders, payments, refunds } from '../../../db/schema/index.js'
import type { Db, Tx } from '../../../db/client.js'
import { AppError, Conflict, NotFound, ProviderFailure } from '../../../src/errors.js'
import type { Faults } from '../../../src/faults.js'
import type { IdempotentAttempt } from '../../../src/idempotency.js'
import type { Outbox } from '../../../src/outbox.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import { ORDER_MAIL, ORDER_WEBHOOK, STOCK_CHANGED, type OutboxEvent } from '../../../src/side-effects.js'
import { step } from '../../../src/tracing.js'
import { releaseOrder, tryTransition } from '../../../src/order-status.js'
import type { PaymentProvider, ProviderName } from '../providers.js'

// Refund workflow, in commit order:
//   1. record (transaction): the refund row, `pending`, and its amount reserved on the payment
//      (payments.refunded_minor counts pending refunds too, so two cannot overdraw a payment).
//   2. send (no transaction): the provider refund, under the key `refund:<refund id>`, so
//      sending it again returns the same refund at the provider.
//   3. settle (transaction): the refund `succeeded`; if it is the order's money (not a capture
//      that arrived for an order no longer payable), it adds to the order's refund total, and a
//      total that reaches the order's total moves the order to `refunded` through the transition
//      table, restocking goods that had not left (paid, fulfilled) once.
// Recovery: a provider refusal fails the refund and gives the reservation back; anything else
// (timeout, crash between 1 and 3) leaves it pending, and reconciliation repeats 2 and 3.

export type RefundRow = typeof refunds.$inferSelect
export interface RefundDeps { db: Db; outbox: Outbox; faults: Faults; providers: Map<ProviderName, PaymentProvider>; metrics: MoneyMetrics }

/** Step 1, in the caller's transaction (payment locked here). */
export async function recordRefund(tx: Tx, input: { paymentId: string; amountMinor?: number; reason: string | null; actorId: string | null; countsTowardOrder: boolean }) {
  const [payment] = await tx.select().from(payments).where(eq(payments.id, input.paymentId)).for('update')
  if (!payment) throw new NotFound('payment', input.paymentId)
  if (payment.status !== 'succeeded') throw new Conflict('Only a captured payment can be refunded', 'payment-not-captured')
  const remaining = payment.amountMinor - payment.refundedMinor
  const amount = input.amountMinor ?? remaining
  if (amount <= 0 || amount > remaining) throw new Conflict(`At most ${remaining} (minor units) is left to refund`, 'refund-exceeds-captured')
  await tx.update(payments).set({ refundedMinor: payment.refundedMinor + amount, updatedAt: new Date() }).where(eq(payments.id, payment.id))
  const [refund] = await tx.insert(refunds).values({ paymentId: payment.id, amountMinor: amount, reason: input.reason, actorId: input.actorId, countsTowardOrder: input.countsTowardOrder }).returning()
  return refund!
}

/** A provider's definitive "no" (as opposed to a timeout, after which we do not know). */
const isRefusal = (err: unknown) => err instanceof AppError && err.statusCode !== 502
  || (err instanceof ProviderFailure && err.slug === 'provider-refund-refused')
  || (err as { type?: string }).type === 'StripeInvalidRequestError'

export function createRefundWorkflow({ db, outbox, faults, providers, metrics }: RefundDeps) {
  /** Step 3. Idempotent: a refund already settled is returned as it is. */
  async function settle(refundId: string, outcome: { providerRefundId: string } | { refused: string }) {
    let counted: { currency: string; amountMinor: number } | undefined
    return outbox.transaction(async (tx, emit) => {
      // Locks in the order every workflow takes them: the order, its payment, the refund.
      const [known] = await tx.select({ orderId: payments.orderId, paymentId: payments.id }).from(refunds).innerJoin(payments, eq(payments.id, refunds.paymentId)).where(eq(refunds.id, refundId))
      if (!known) throw new NotFound('refund', refundId)
      await tx.select({ id: orders.id }).from(orders).where(eq(orders.id, known.orderId)).for('update')
      await tx.select({ id: payments.id }).from(payments).where(eq(payments.id, known.paymentId)).for('update')
      const refund = (await tx.select().from(refunds).where(eq(refunds.id, refundId)).for('update'))[0]!
      if (refund.status !== 'pending') return refund
      if ('refused' in outcome) {
        await tx.update(payments).set({ refundedMinor: sql`${payments.refundedMinor} - ${refund.amountMinor}`, updatedAt: new Date() }).where(eq(payments.id, known.paymentId))
        const [failed] = await tx.update(refunds).set({ status: 'failed', failureReason: outcome.refused.slice(0, 500), updatedAt: new Date() }).where(eq(refunds.id, refundId)).returning()
        return failed!
      }
      const [done] = await tx.update(refunds).set({ status: 'succeeded', providerRefundId: outcome.providerRefundId, updatedAt: new Date() }).where(eq(refunds.id, refundId)).returning()
      if (refund.countsTowardOrder) {
        let [order] = await tx.update(orders).set({ refundedMinor: sql`${orders.refundedMinor} + ${refund.amountMinor}`, updatedAt: new Date() })
          .where(eq(orders.id, known.orderId)).returning()
        const events: OutboxEvent[] = [ORDER_MAIL(order!.id, 'refunded', { refundId })]
        counted = { currency: order!.currency, amountMinor: refund.amountMinor }
        if (order!.refundedMinor >= order!.totalMinor) {
          const before = order!.status
          const moved = await tryTransition(tx, order!.id, 'refunded')
          // Goods not yet sent go back on the shelf.
          const released = moved && (before === 'paid' || before === 'fulfilled') ? await releaseOrder(tx, order!.id, 'return') : null
          if (released) events.push(...STOCK_CHANGED(released.productIds, released.listsChanged))
          if (moved) order = moved
        }
        events.push(ORDER_WEBHOOK('order.refunded', order!, { refund: { id: refundId, amountMinor: refund.amountMinor } }))
        await emit(events)
      }
      return done!
    }, {
      span: 'refund.settle',
      afterCommit: () => { if (counted) metrics.order('refunded', counted.currency, counted.amountMinor) },
    })
  }

  /** Steps 2 and 3 for a recorded refund. Throws ProviderFailure when the outcome is unknown (it stays pending). */
  async function send(refundId: string) {
    const [row] = await db.select({ refund: refunds, payment: payments }).from(refunds).innerJoin(payments, eq(payments.id, refunds.paymentId)).where(eq(refunds.id, refundId))
    if (!row) throw new NotFound('refund', refundId)
    if (row.refund.status !== 'pending') return row.refund
    const provider = providers.get(row.payment.provider as ProviderName)
    if (!provider) throw new ProviderFailure(`Payment provider ${row.payment.provider} is not enabled; the refund stays pending`)
    let providerRefundId: string
    try {
      ({ providerRefundId } = await step('refund.provider-refund', () => provider.refund({ providerPaymentId: row.payment.providerPaymentId!, amountMinor: row.refund.amountMinor, idempotencyKey: `refund:${row.refund.id}` })))
    } catch (err) {
      if (isRefusal(err)) return settle(refundId, { refused: (err as Error).message })
      throw new ProviderFailure(`The provider did not confirm the refund (${(err as Error).message}); it stays pending and is retried`)
    }
    faults.at('refund.after-provider-call')
    return settle(refundId, { providerRefundId })
  }

  return {
    send,
    /**
     * An admin's refund of part or all of a payment: step 1 with the Idempotency-Key's
     * checkpoint naming the refund, then 2 and 3. A retry of an attempt that died resumes it.
     */
    async refundPayment(adminId: string, paymentId: string, input: { amountMinor?: number; reason?: string }, attempt: IdempotentAttempt) {
      let refundId = attempt.resumeFrom
      if (!refundId) {
        refundId = await step('refund.record', () => db.transaction(async (tx) => {
          const refund = await recordRefund(tx, { paymentId, amountMinor: input.amountMinor, reason: input.reason ?? null, actorId: adminId, countsTowardOrder: true })
          await attempt.checkpoint(tx, refund.id)
          return refund.id
        }))
      }
      faults.at('refund.after-record')
      return send(refundId)
    },
    /** Sends recorded refunds after their commit; one whose outcome is unknown stays pending for reconciliation. */
    async sendAll(refundIds: string[]) {
      for (const id of refundIds) await send(id).catch(() => { /* reconciliation retries it */ })
    },
    /** Pending refunds older than `olderThanMs`, for reconciliation. */
    async pendingIds(olderThanMs: number) {
      const rows = await db.select({ id: refunds.id }).from(refunds)
        .where(and(eq(refunds.status, 'pending'), sql`${refunds.updatedAt} < now() - make_interval(secs => ${olderThanMs / 1000})`)).limit(200)
      return rows.map((r) => r.id)
    },
  }
}
export type RefundWorkflow = ReturnType<typeof createRefundWorkflow>
