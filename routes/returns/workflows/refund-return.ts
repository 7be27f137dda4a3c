import { and, desc, eq, sql } from 'drizzle-orm'
import { payments, returns } from '../../../db/schema/index.js'
import type { Db } from '../../../db/client.js'
import { Conflict } from '../../../src/errors.js'
import type { Faults } from '../../../src/faults.js'
import type { IdempotentAttempt } from '../../../src/idempotency.js'
import type { Outbox } from '../../../src/outbox.js'
import { ACTIVITY, type Actor } from '../../../src/side-effects.js'
import { recordRefund, type RefundWorkflow } from '../../payments/workflows/refund.js'
import { lockReturn, type ReturnService } from '../service.js'

// Refund of a received return, in commit order:
//   1. record (transaction): lock the order, then the return (it must be `received`: of several
//      requests at once one gets here, the others find it refunded, 409); a refund of the amount
//      fixed at receipt recorded pending and reserved on the order's captured payment (refund.ts
//      step 1); the return `refunded`; the Idempotency-Key's checkpoint naming the refund.
//      Nothing came back (amount 0): the return is closed without a refund.
//   2. send and settle (no transaction): the refund workflow's steps 2 and 3, which add it to the
//      order's refund total and move the order to `refunded` when that reaches the total.
// Recovery: a provider that does not answer leaves the refund pending; reconciliation sends it
// again, and a retry with the same key resumes at 2 with the same refund.

export interface RefundReturnDeps { db: Db; outbox: Outbox; faults: Faults; refunds: Pick<RefundWorkflow, 'send'>; returns: Pick<ReturnService, 'view'> }

export function createRefundReturnWorkflow({ db, outbox, faults, refunds, returns: returnService }: RefundReturnDeps) {
  return async function refundReturn(actor: Actor & { userId: string }, returnId: string, attempt: IdempotentAttempt) {
    let refundId = attempt.resumeFrom
    if (!refundId) {
      // 1. record
      refundId = await outbox.transaction(async (tx, emit) => {
        const { order, row } = await lockReturn(tx, returnId, 'received', 'refunded')
        let recorded: string | null = null
        if (row.refundMinor! > 0) {
          // The order's capture: the succeeded payment with money left (others were refunded whole).
          const [payment] = await tx.select({ id: payments.id }).from(payments)
            .where(and(eq(payments.orderId, order.id), eq(payments.status, 'succeeded'))).orderBy(desc(sql`${payments.amountMinor} - ${payments.refundedMinor}`)).limit(1)
          if (!payment) throw new Conflict('The order has no captured payment to refund', 'payment-not-captured')
          const refund = await recordRefund(tx, { paymentId: payment.id, amountMinor: row.refundMinor!, reason: `return ${returnId}`, actorId: actor.userId, countsTowardOrder: true })
          recorded = refund.id
          await attempt.checkpoint(tx, refund.id)
        }
        await tx.update(returns).set({ status: 'refunded', refundId: recorded, refundedAt: new Date(), updatedAt: new Date() }).where(eq(returns.id, returnId))
        await emit([ACTIVITY(actor, 'admin_action', { action: 'return_refund', returnId, refundMinor: row.refundMinor })])
        return recorded
      })
    }
    faults.at('return.after-record')
    // 2. send and settle
    if (refundId) await refunds.send(refundId)
    return returnService.view((await db.select().from(returns).where(eq(returns.id, returnId)))[0]!)
  }
}
export type RefundReturnWorkflow = ReturnType<typeof createRefundReturnWorkflow>
