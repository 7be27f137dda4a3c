// Named step boundaries of the money-path workflows (and of the outbox's mail handlers). In production nothing is armed and `at` is
// a set lookup; tests arm a point to make the next pass through it throw once, which is how the
// recovery of every step is proven (test/money-path.test.ts).

export type FaultPoint =
  | 'checkout.before-idempotency-complete'
  | 'checkout.after-order-commit'
  | 'cart.before-clear'
  | 'payment.after-record'
  | 'payment.after-provider-call'
  | 'refund.after-record'
  | 'refund.after-provider-call'
  | 'return.after-record'
  | 'mail.after-send'

export class InjectedFault extends Error {
  override name = 'InjectedFault'
}

export interface Faults {
  /** Throws if the point is armed (once), else does nothing. */
  at(point: FaultPoint): void
  /** Arms a point: the next pass through it throws. */
  failOnce(point: FaultPoint): void
}

export function createFaults(): Faults {
  const armed = new Set<FaultPoint>()
  return {
    at(point) {
      if (armed.delete(point)) throw new InjectedFault(`injected fault at ${point}`)
    },
    failOnce(point) { armed.add(point) },
  }
}
