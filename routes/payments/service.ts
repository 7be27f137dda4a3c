import { and, eq } from 'drizzle-orm'
import { orders, payments, refunds } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { NotFound } from '../../src/errors.js'
import type { Viewer } from '../../src/viewer.js'

type PaymentRow = typeof payments.$inferSelect

export const toPayment = (p: PaymentRow) => ({
  id: p.id, orderId: p.orderId, provider: p.provider, status: p.status, amountMinor: p.amountMinor, currency: p.currency,
  refundedMinor: p.refundedMinor, failureReason: p.failureReason, createdAt: p.createdAt.toISOString(),
})

export const toRefund = (r: typeof refunds.$inferSelect, payment: PaymentRow) => ({
  id: r.id, paymentId: r.paymentId, amountMinor: r.amountMinor, status: r.status, reason: r.reason, createdAt: r.createdAt.toISOString(), payment: toPayment(payment),
})

/** Payments as customers and admins read them; the changes are workflows (./workflows). */
export function createPaymentService({ db }: { db: Db }) {
  async function requireVisible(viewer: Viewer, paymentId: string) {
    const [row] = await db.select({ payment: payments, userId: orders.userId }).from(payments).innerJoin(orders, eq(orders.id, payments.orderId)).where(eq(payments.id, paymentId))
    // Someone else's payment does not exist for a customer.
    if (!row || (!viewer.isAdmin && row.userId !== viewer.userId)) throw new NotFound('payment', paymentId)
    return row.payment
  }
  return {
    requireVisible,
    /** A payment of this order (a guest's order token opened it), else 404. */
    async requireOfOrder(orderId: string, paymentId: string) {
      const [row] = await db.select().from(payments).where(and(eq(payments.id, paymentId), eq(payments.orderId, orderId)))
      if (!row) throw new NotFound('payment', paymentId)
      return row
    },
    async get(viewer: Viewer, paymentId: string) { return toPayment(await requireVisible(viewer, paymentId)) },
    async refundView(refundId: string) {
      const [row] = await db.select({ refund: refunds, payment: payments }).from(refunds).innerJoin(payments, eq(payments.id, refunds.paymentId)).where(eq(refunds.id, refundId))
      if (!row) throw new NotFound('refund', refundId)
      return toRefund(row.refund, row.payment)
    },
  }
}
export type PaymentService = ReturnType<typeof createPaymentService>
