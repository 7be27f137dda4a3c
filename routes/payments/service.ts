import { and, eq, ne, sql } from 'drizzle-orm'
import { orders, payments, refunds, webhookEvents } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { BadRequest, Conflict, NotFound } from '../../src/errors.js'
import type { Tx } from '../products/service.js'
import { releaseOrder } from '../orders/service.js'
import type { PaymentProvider, ProviderName } from './providers.js'

type PaymentRow = typeof payments.$inferSelect

export const toPayment = (p: PaymentRow) => ({
  id: p.id, orderId: p.orderId, provider: p.provider, status: p.status, amountMinor: p.amountMinor, currency: p.currency,
  refundedMinor: p.refundedMinor, failureReason: p.failureReason, createdAt: p.createdAt.toISOString(),
})

export function createPaymentService({ db, providers, onStockChange }: { db: Db; providers: Map<ProviderName, PaymentProvider>; onStockChange: () => Promise<void> }) {
  function providerOf(name: string) {
    const provider = providers.get(name as ProviderName)
    if (!provider) throw new BadRequest(`Payment provider ${name} is not enabled`, 'invalid-provider')
    return provider
  }

  /** Refunds `amountMinor` of a locked payment at the provider and records it everywhere. */
  async function refundLocked(tx: Tx, payment: PaymentRow, amountMinor: number, reason: string | null, actorId: string | null) {
    const { providerRefundId } = await providerOf(payment.provider).refund({
      providerPaymentId: payment.providerPaymentId, amountMinor,
      // The provider sees the same key if this exact refund is retried after a crash.
      idempotencyKey: `refund:${payment.id}:${payment.refundedMinor}:${amountMinor}`,
    })
    const [refund] = await tx.insert(refunds).values({ paymentId: payment.id, amountMinor, reason, providerRefundId, actorId }).returning()
    const [updatedPayment] = await tx.update(payments).set({ refundedMinor: payment.refundedMinor + amountMinor, updatedAt: new Date() }).where(eq(payments.id, payment.id)).returning()
    const [order] = await tx.update(orders).set({ refundedMinor: sql`${orders.refundedMinor} + ${amountMinor}`, updatedAt: new Date() }).where(eq(orders.id, payment.orderId)).returning()
    return { refund: refund!, payment: updatedPayment!, order: order! }
  }

  /** A payment succeeded (confirmation or webhook, whichever comes first): mark it and its order paid, once. */
  async function markSucceeded(provider: string, providerPaymentId: string) {
    let refunded = false
    const payment = await db.transaction(async (tx) => {
      const [row] = await tx.select().from(payments).where(and(eq(payments.provider, provider), eq(payments.providerPaymentId, providerPaymentId))).for('update')
      if (!row) throw new NotFound('payment', providerPaymentId)
      if (row.status === 'succeeded') return row
      const [updated] = await tx.update(payments).set({ status: 'succeeded', failureReason: null, updatedAt: new Date() }).where(eq(payments.id, row.id)).returning()
      const paid = await tx.update(orders).set({ status: 'paid', paidAt: new Date(), updatedAt: new Date() })
        .where(and(eq(orders.id, row.orderId), eq(orders.status, 'pending_payment'))).returning({ id: orders.id })
      if (!paid.length) {
        // The order was cancelled or expired before the money arrived: give it back.
        await refundLocked(tx, updated!, updated!.amountMinor, 'order no longer payable', null)
        refunded = true
      }
      return updated!
    })
    if (refunded) await onStockChange()
    return payment
  }

  async function markFailed(provider: string, providerPaymentId: string, reason: string | undefined) {
    const [row] = await db.update(payments).set({ status: 'failed', failureReason: reason ?? 'failed', updatedAt: new Date() })
      .where(and(eq(payments.provider, provider), eq(payments.providerPaymentId, providerPaymentId), ne(payments.status, 'succeeded'))).returning()
    return row
  }

  async function requireOwnPayment(userId: string, paymentId: string) {
    const [row] = await db.select({ payment: payments, userId: orders.userId }).from(payments).innerJoin(orders, eq(orders.id, payments.orderId)).where(eq(payments.id, paymentId))
    if (!row || row.userId !== userId) throw new NotFound('payment', paymentId)
    return row.payment
  }

  return {
    async createForOrder(userId: string, orderId: string, input: { provider: ProviderName; paymentMethod: string }, idempotencyKey: string | undefined) {
      const [order] = await db.select().from(orders).where(eq(orders.id, orderId))
      if (!order || order.userId !== userId) throw new NotFound('order', orderId)
      if (order.status !== 'pending_payment') throw new Conflict(`The order is ${order.status}; only a pending order can be paid`, 'order-not-payable')
      const provider = providerOf(input.provider)
      const created = await provider.create({ amountMinor: order.totalMinor, currency: order.currency, orderId, paymentMethod: input.paymentMethod, idempotencyKey: idempotencyKey ?? `payment:${orderId}:${Date.now()}` })
      const [row] = await db.insert(payments).values({
        orderId, provider: provider.name, providerPaymentId: created.providerPaymentId, status: created.status === 'succeeded' ? 'requires_confirmation' : created.status,
        amountMinor: order.totalMinor, currency: order.currency, failureReason: created.failureReason ?? null,
      }).returning()
      return toPayment(created.status === 'succeeded' ? await markSucceeded(provider.name, created.providerPaymentId) : row!)
    },

    async confirm(userId: string, paymentId: string, paymentMethod: string) {
      const payment = await requireOwnPayment(userId, paymentId)
      if (payment.status === 'succeeded') return toPayment(payment)
      const outcome = await providerOf(payment.provider).confirm(payment.providerPaymentId, paymentMethod)
      if (outcome.status === 'succeeded') return toPayment(await markSucceeded(payment.provider, payment.providerPaymentId))
      if (outcome.status === 'failed') return toPayment((await markFailed(payment.provider, payment.providerPaymentId, outcome.failureReason)) ?? payment)
      return toPayment(payment)
    },

    async get(viewer: { userId: string; isAdmin: boolean }, paymentId: string) {
      if (viewer.isAdmin) {
        const [row] = await db.select().from(payments).where(eq(payments.id, paymentId))
        if (!row) throw new NotFound('payment', paymentId)
        return toPayment(row)
      }
      return toPayment(await requireOwnPayment(viewer.userId, paymentId))
    },

    /** Verifies, then applies each provider event once; a replay is acknowledged and changes nothing. */
    async handleWebhook(providerName: string, rawBody: Buffer, headers: Record<string, string | string[] | undefined>) {
      const provider = providerOf(providerName)
      const event = provider.parseWebhook(rawBody, headers)
      const fresh = await db.insert(webhookEvents).values({ provider: provider.name, eventId: event.eventId, type: event.type }).onConflictDoNothing().returning({ eventId: webhookEvents.eventId })
      if (!fresh.length) return { received: true, duplicate: true }
      try {
        if (event.type === 'payment.succeeded' && event.providerPaymentId) await markSucceeded(provider.name, event.providerPaymentId)
        if (event.type === 'payment.failed' && event.providerPaymentId) await markFailed(provider.name, event.providerPaymentId, event.failureReason)
      } catch (err) {
        // Not applied: forget the event so the provider's retry is processed.
        await db.delete(webhookEvents).where(and(eq(webhookEvents.provider, provider.name), eq(webhookEvents.eventId, event.eventId)))
        throw err
      }
      return { received: true, duplicate: false }
    },

    /** Admin refund, partial or full; never more than captured in total. A full refund refunds the order. */
    async refund(adminId: string, paymentId: string, input: { amountMinor?: number; reason?: string }) {
      let released = false
      const result = await db.transaction(async (tx) => {
        const [payment] = await tx.select().from(payments).where(eq(payments.id, paymentId)).for('update')
        if (!payment) throw new NotFound('payment', paymentId)
        if (payment.status !== 'succeeded') throw new Conflict('Only a captured payment can be refunded', 'payment-not-captured')
        const remaining = payment.amountMinor - payment.refundedMinor
        const amount = input.amountMinor ?? remaining
        if (amount <= 0 || amount > remaining) throw new Conflict(`At most ${remaining} (minor units) is left to refund`, 'refund-exceeds-captured')
        const [order] = await tx.select().from(orders).where(eq(orders.id, payment.orderId)).for('update')
        const done = await refundLocked(tx, payment, amount, input.reason ?? null, adminId)
        if (done.order.refundedMinor >= done.order.totalMinor && order!.status !== 'cancelled' && order!.status !== 'refunded') {
          await tx.update(orders).set({ status: 'refunded', updatedAt: new Date() }).where(eq(orders.id, order!.id))
          // Goods not yet sent go back on the shelf.
          if (order!.status === 'paid') released = await releaseOrder(tx, order!.id, 'return')
        }
        return { id: done.refund.id, paymentId, amountMinor: amount, reason: done.refund.reason, createdAt: done.refund.createdAt.toISOString(), payment: toPayment(done.payment) }
      })
      if (released) await onStockChange()
      return result
    },

    /** Refunds everything still captured for an order, inside the caller's transaction (cancellation). */
    async refundAll(tx: Tx, orderId: string, actorId: string | null) {
      const captured = await tx.select().from(payments).where(and(eq(payments.orderId, orderId), eq(payments.status, 'succeeded'))).for('update')
      for (const payment of captured) {
        const remaining = payment.amountMinor - payment.refundedMinor
        if (remaining > 0) await refundLocked(tx, payment, remaining, 'order cancelled', actorId)
      }
    },
  }
}
export type PaymentService = ReturnType<typeof createPaymentService>
