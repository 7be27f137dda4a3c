import { and, eq, sql } from 'drizzle-orm'
import { orders, payments } from '../../../db/schema/index.js'
import { isUniqueViolation, type Db } from '../../../db/client.js'
import { BadRequest, Conflict, NotFound, ProviderFailure } from '../../../src/errors.js'
import type { Faults } from '../../../src/faults.js'
import type { IdempotentAttempt } from '../../../src/idempotency.js'
import type { Outbox } from '../../../src/outbox.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import { ACTIVITY, type Actor } from '../../../src/side-effects.js'
import { step } from '../../../src/tracing.js'
import { ownsOrder, type Buyer } from '../../../src/viewer.js'
import type { PaymentProvider, ProviderName } from '../providers.js'
import type { RefundWorkflow } from './refund.js'
import { applyProviderOutcome, cancelAtProvider, orderIsGone, settleThenFollowUp, type PaymentRow } from './settle.js'

// Pay workflow: a customer starts paying for a pending order. In commit order:
//   1. record (transaction): the order locked, still the customer's and pending_payment; a
//      payment row `pending` with the order's total (one in flight or captured per order, by a
//      partial unique index: else 409); the Idempotency-Key's checkpoint names the payment.
//   2. send (no transaction): the provider's create, under the key `payment:<payment id>`: our
//      own id, never the client's key, so two orders never share a provider key and a re-send
//      returns the same provider payment.
//   3. settle (transaction): the provider's id and answer (settle.ts); a capture of an order no
//      longer payable records a refund, sent after the commit (refund workflow).
// Recovery: a crash or timeout after 1 leaves the payment pending; the retry with the same
// Idempotency-Key resumes at 2 with the payment its checkpoint names, and reconciliation does
// the same for a client that never retries. An order cancelled meanwhile has its payment
// cancelled at the provider right after 3 (settle.ts, cancelAtProvider).

export interface PaymentDeps { db: Db; outbox: Outbox; faults: Faults; providers: Map<ProviderName, PaymentProvider>; refunds: RefundWorkflow; metrics: MoneyMetrics }

export function providerOf(providers: Map<ProviderName, PaymentProvider>, name: string) {
  const provider = providers.get(name as ProviderName)
  if (!provider) throw new BadRequest(`Payment provider ${name} is not enabled`, 'invalid-provider')
  return provider
}

export function createPayWorkflow({ db, outbox, faults, providers, refunds, metrics }: PaymentDeps) {
  /** Steps 2 and 3 for a recorded payment; what is not pending any more is answered as it is. */
  async function send(payment: PaymentRow): Promise<PaymentRow> {
    if (payment.status !== 'pending') return payment
    const provider = providerOf(providers, payment.provider)
    let created
    try {
      created = await step('payment.provider-create', () => provider.create({ amountMinor: payment.amountMinor, currency: payment.currency, orderId: payment.orderId, paymentMethod: payment.paymentMethod ?? '', idempotencyKey: `payment:${payment.id}` }))
    } catch (err) {
      if (err instanceof BadRequest) throw err
      throw new ProviderFailure(`The payment provider did not answer (${(err as Error).message}); retry with the same Idempotency-Key`)
    }
    faults.at('payment.after-provider-call')
    const settled = (await settleThenFollowUp({ outbox, refunds, metrics }, (tx) => applyProviderOutcome(tx, payment.id, created)))!.payment
    // The order was cancelled while this payment was being created: it must never be captured.
    if (settled.status === 'requires_confirmation' && await orderIsGone(db, settled.orderId)) return cancelAtProvider({ outbox, refunds, metrics, providers }, settled)
    return settled
  }

  return {
    send,
    async pay(actor: Actor & Buyer, orderId: string, input: { provider: ProviderName; paymentMethod: string }, attempt: IdempotentAttempt) {
      const provider = providerOf(providers, input.provider)
      // A retry of an attempt that died after step 1 resumes with its payment.
      if (attempt.resumeFrom) {
        const [recorded] = await db.select().from(payments).where(eq(payments.id, attempt.resumeFrom))
        if (recorded) return send(recorded)
      }
      let recorded: PaymentRow
      try {
        recorded = await outbox.transaction(async (tx, emit) => {
          const [order] = await tx.select().from(orders).where(eq(orders.id, orderId)).for('update')
          if (!order || !ownsOrder(actor, order)) throw new NotFound('order', orderId)
          if (order.status !== 'pending_payment') throw new Conflict(`The order is ${order.status}; only a pending order can be paid`, 'order-not-payable')
          const [row] = await tx.insert(payments).values({
            orderId, provider: provider.name, status: 'pending', amountMinor: order.totalMinor, currency: order.currency, paymentMethod: input.paymentMethod,
          }).returning()
          await attempt.checkpoint(tx, row!.id)
          await emit([ACTIVITY(actor, 'payment', { paymentId: row!.id, orderId, provider: provider.name })])
          return row!
        }, { span: 'payment.record', afterCommit: (_, runEvents) => step('payment.side-effects', runEvents) })
      } catch (err) {
        if (isUniqueViolation(err, 'payments_one_in_flight_per_order')) {
          throw new Conflict('This order already has a payment in progress or captured; confirm that one instead', 'payment-in-progress')
        }
        throw err
      }
      faults.at('payment.after-record')
      return send(recorded)
    },

    /** Pending payments older than `olderThanMs`, for reconciliation. */
    async pending(olderThanMs: number) {
      return db.select().from(payments).where(and(eq(payments.status, 'pending'), sql`${payments.updatedAt} <= now() - make_interval(secs => ${olderThanMs / 1000})`)).limit(200)
    },
  }
}
export type PayWorkflow = ReturnType<typeof createPayWorkflow>
