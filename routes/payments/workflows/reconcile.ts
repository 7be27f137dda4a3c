import type { PaymentProvider, ProviderName } from '../providers.js'
import type { ConfirmWorkflow } from './confirm.js'
import type { PayWorkflow } from './pay.js'
import type { RefundWorkflow } from './refund.js'
import type { Db } from '../../../db/client.js'
import type { MoneyMetrics } from '../../../src/metrics.js'
import type { Outbox } from '../../../src/outbox.js'
import { cancelAtProvider, orderIsGone } from './settle.js'

// Reconciliation (job, every minute): whatever a crash or a timeout left between our records and
// the provider's is settled against the provider, using the same idempotency keys, so nothing
// is sent twice:
//   - a payment still `pending` is sent again (pay, steps 2-3);
//   - a payment waiting for confirmation is asked about, and settled if the provider has
//     captured or failed it (a confirm or webhook that never reached us); one whose order was
//     cancelled (its cancel at the provider did not get through) is cancelled there instead;
//   - a refund still `pending` is sent again (refund, steps 2-3).

export interface ReconcileDeps { db: Db; outbox: Outbox; metrics: MoneyMetrics; pay: PayWorkflow; confirm: ConfirmWorkflow; refunds: RefundWorkflow; providers: Map<ProviderName, PaymentProvider> }

export function createReconciliation({ db, outbox, metrics, pay, confirm, refunds, providers }: ReconcileDeps) {
  return async function reconcile(opts: { olderThanMs?: number } = {}) {
    const olderThanMs = opts.olderThanMs ?? 60_000
    const result = { paymentsSent: 0, paymentsSettled: 0, refundsSent: 0, failures: 0 }
    for (const payment of await pay.pending(olderThanMs)) {
      try { await pay.send(payment); result.paymentsSent++ } catch { result.failures++ }
    }
    for (const payment of await confirm.unconfirmed(olderThanMs)) {
      const provider = providers.get(payment.provider as ProviderName)
      if (!provider || !payment.providerPaymentId) continue
      try {
        if (await orderIsGone(db, payment.orderId)) {
          const after = await cancelAtProvider({ outbox, refunds, metrics, providers }, payment)
          if (after.status !== 'requires_confirmation') result.paymentsSettled++
          continue
        }
        const outcome = await provider.retrieve(payment.providerPaymentId)
        if (outcome.status === 'requires_confirmation') continue
        await confirm.settle(payment.id, outcome)
        result.paymentsSettled++
      } catch { result.failures++ }
    }
    for (const id of await refunds.pendingIds(olderThanMs)) {
      try { await refunds.send(id); result.refundsSent++ } catch { result.failures++ }
    }
    return result
  }
}
