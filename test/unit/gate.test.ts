import t from 'tap'
import { createGate } from '../../src/gate.js'

// Admission control (src/gate.ts): at most `concurrency` runs at once, the rest in arrival order,
// beyond `queue` shed; a run that ends, or throws, hands its place on.

/** A run the test finishes by hand; `started` says whether the gate let it in yet. */
function heldRun(gate: ReturnType<typeof createGate>) {
  let finish!: () => void
  const state = { started: false }
  const done = gate(async () => {
    state.started = true
    await new Promise<void>((resolve) => { finish = resolve })
  })
  return { state, done, finish: () => finish() }
}
const turn = () => new Promise((resolve) => setImmediate(resolve))

t.test('runs past the limit wait in arrival order, and one beyond the queue is shed', async (t) => {
  const gate = createGate(1, 1, () => new Error('shed'))
  const first = heldRun(gate)
  const second = heldRun(gate)
  await turn()
  t.ok(first.state.started)
  t.notOk(second.state.started, 'the second waits')
  await t.rejects(gate(async () => 'third'), { message: 'shed' }, 'the queue holds one')
  first.finish()
  await first.done
  await turn()
  t.ok(second.state.started, 'the first hands its place to the second')
  second.finish()
  await second.done
})

t.test('a run that throws frees its place', async (t) => {
  const gate = createGate(1, 10, () => new Error('shed'))
  await t.rejects(gate(async () => { throw new Error('boom') }), { message: 'boom' })
  t.equal(await gate(async () => 'next'), 'next')
})
