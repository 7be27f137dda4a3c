import t from 'tap'
import { orderStatus } from '../../db/schema/index.js'
import { TRANSITIONS, canTransition, type OrderStatus } from '../../src/order-status.js'

// The order state machine (src/order-status.ts). The expected moves are written out here, not
// read from TRANSITIONS, so a change to the table has to be made twice to pass.
const ALLOWED: Record<OrderStatus, OrderStatus[]> = {
  pending_payment: ['paid', 'cancelled'],
  paid: ['fulfilled', 'cancelled', 'refunded'],
  fulfilled: ['shipped', 'refunded'],
  shipped: ['delivered', 'refunded'],
  delivered: ['refunded'],
  cancelled: [],
  refunded: [],
}
const STATUSES = orderStatus.enumValues

t.test('every status of the database enum has its row, and nothing else', async (t) => {
  t.same(Object.keys(TRANSITIONS).sort(), [...STATUSES].sort())
})

t.test('exactly the listed moves are allowed, every other pair refused', async (t) => {
  for (const from of STATUSES) {
    for (const to of STATUSES) {
      t.equal(canTransition(from, to), ALLOWED[from].includes(to), `${from} -> ${to}`)
    }
  }
})

t.test('the rules the workflows rely on', async (t) => {
  t.same(STATUSES.filter((s) => canTransition(s, 'paid')), ['pending_payment'], 'paid only from a pending payment')
  t.same(STATUSES.filter((s) => canTransition(s, 'cancelled')), ['pending_payment', 'paid'], 'nothing that has left the warehouse is cancelled')
  t.same(STATUSES.filter((s) => canTransition(s, 'refunded')).sort(), ['delivered', 'fulfilled', 'paid', 'shipped'], 'only what was paid is refunded')
  t.same(STATUSES.filter((s) => canTransition(s, 'pending_payment')), [], 'nothing goes back to pending')
  for (const end of ['cancelled', 'refunded'] as const) t.same(STATUSES.filter((s) => canTransition(end, s)), [], `${end} is final`)
  t.notOk(STATUSES.some((s) => canTransition(s, s)), 'no status moves to itself (a repeated request is not a move)')
})

t.test('with an expected status: refused unless the order is still in it', async (t) => {
  t.ok(canTransition('pending_payment', 'cancelled', 'pending_payment'))
  t.notOk(canTransition('paid', 'cancelled', 'pending_payment'), 'expiry must not cancel an order paid meanwhile')
  t.notOk(canTransition('pending_payment', 'shipped', 'pending_payment'), 'the expected status does not make an illegal move legal')
})
