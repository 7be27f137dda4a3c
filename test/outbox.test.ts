import t from 'tap'
import { randomUUID } from 'node:crypto'
import { eq, sql } from 'drizzle-orm'
import { outbox as outboxTable } from '../db/schema/index.js'
import { activityModel } from '../db/models/activity.js'
import type { Tx } from '../db/client.js'
import type { Outbox } from '../src/outbox.js'
import { ACTIVITY } from '../src/side-effects.js'
import { buildTestApp } from './helpers.js'

// outbox.transaction, the one way a change writes its side effects: the events commit with the
// change and are handled right after it; a change that rolls back leaves none, and a process
// that stops between the commit and the events leaves them to the drain job.

const actor = { userId: null, ip: '192.0.2.1' }

t.test('events commit with the change, run after the commit, and never for a rollback', async (t) => {
  const app = await buildTestApp(t, { JOBS: 'off' })
  const entries = activityModel(app.mongo)
  const rowsOf = (probe: string) => app.db.select().from(outboxTable).where(sql`${outboxTable.payload}->'data'->>'probe' = ${probe}`)

  // Committed: pending when afterCommit runs, handled (an activity entry with the event's id) once it returns.
  const probe = randomUUID()
  let pendingAfterCommit: boolean | undefined
  const result = await app.outbox.transaction(async (_tx, emit) => {
    await emit([ACTIVITY(actor, 'admin_action', { probe })])
    return 'done'
  }, { afterCommit: async () => { pendingAfterCommit = (await rowsOf(probe)).every((r) => r.processedAt === null) } })
  t.equal(result, 'done', 'the work\'s result is returned')
  t.equal(pendingAfterCommit, true, 'committed and not yet handled when afterCommit runs')
  const [row] = await rowsOf(probe)
  t.ok(row?.processedAt, 'handled before transaction() returns')
  t.match(await entries.findById(row!.id).lean(), { type: 'admin_action', ip: actor.ip, data: { probe } }, 'by its topic\'s handler')

  // Rolled back: no event, the error as it was.
  const lost = randomUUID()
  await t.rejects(app.outbox.transaction(async (_tx, emit) => {
    await emit([ACTIVITY(actor, 'admin_action', { probe: lost })])
    throw new Error('the change failed')
  }), /the change failed/)
  t.same(await rowsOf(lost), [], 'a rolled-back change leaves no event')

  // Stopped between the commit and the events (a crash): they wait for the drain job.
  const later = randomUUID()
  await t.rejects(app.outbox.transaction(async (_tx, emit) => {
    await emit([ACTIVITY(actor, 'admin_action', { probe: later })])
  }, { afterCommit: () => { throw new Error('stopped after the commit') } }), /stopped after the commit/)
  t.equal((await rowsOf(later))[0]?.processedAt, null, 'committed, not handled')
  await app.outbox.drain({ all: true })
  const [drained] = await rowsOf(later)
  t.ok(drained?.processedAt, 'the drain handles it')
  t.ok(await entries.findById(drained!.id).lean(), 'once')
  t.equal((await app.db.select().from(outboxTable).where(eq(outboxTable.id, drained!.id)))[0]!.attempts, 1, 'in one attempt')
})

// Topics and payloads are one map (OutboxTopics), checked by the compiler, not at run time:
// `npm run typecheck` fails if any line below ever compiles. Never called.
function _payloadsAreTyped(outbox: Outbox, tx: Tx) {
  void outbox.add(tx, [{ topic: 'mail.order', payload: { orderId: 'o', kind: 'paid' } }])
  // @ts-expect-error an order mail names an order and a kind, not variants
  void outbox.add(tx, [{ topic: 'mail.order', payload: { variantIds: ['v'] } }])
  // @ts-expect-error no such mail kind
  void outbox.add(tx, [{ topic: 'mail.order', payload: { orderId: 'o', kind: 'lost' } }])
  // @ts-expect-error no such topic
  void outbox.add(tx, [{ topic: 'mail.unknown', payload: {} }])
  void outbox.transaction(async (_tx, emit) => {
    // @ts-expect-error a cart's lines are variants with quantities
    await emit([{ topic: 'cart.consumed', payload: { userId: 'u', generation: 1, lines: ['v'] } }])
  })
  outbox.on('mail.low-stock', async (payload) => {
    void payload.variantIds
    // @ts-expect-error a low-stock mail carries no order
    void payload.orderId
  })
}
