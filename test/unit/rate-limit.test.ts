import t from 'tap'
import { counterAt, createLocalCounts, estimateOf, type Counter } from '../../src/rate-limit-store.js'

// The arithmetic of the synced rate-limit store (src/rate-limit-store.ts): a request is counted
// in this process only while the limit is far off (at least `minHeadroom` requests and half the
// limit to spare); near it, every request is counted in Redis. Windows restart once past their end.

const counter = (more: Partial<Counter> = {}): Counter => ({ known: 0, pending: 0, inFlight: 0, resetAt: 0, windowMs: 60_000, ...more })
/** The highest count (this request included) still counted in this process. */
function lastCountedHere(max: number, minHeadroom: number) {
  let last = 0
  for (let known = 0; known <= max + 1; known++) if (estimateOf(counter({ known }), max, minHeadroom).countHere) last = known + 1
  return last
}

t.test('the estimate is what Redis answered, what is on its way and what waits here, plus this request', async (t) => {
  t.equal(estimateOf(counter(), 300, 50).estimate, 1, 'the first request')
  t.equal(estimateOf(counter({ known: 10, inFlight: 4, pending: 3 }), 300, 50).estimate, 18)
})

t.test('where counting moves to Redis', async (t) => {
  t.equal(lastCountedHere(300, 50), 150, 'the default limit: half of it')
  t.equal(lastCountedHere(1000, 50), 500)
  t.equal(lastCountedHere(101, 50), 50, 'half of 101 is 50.5: 51 requests to spare are needed')
  t.equal(lastCountedHere(100, 50), 50, 'where half the limit and the headroom meet')
  t.equal(lastCountedHere(99, 50), 49, 'below it, the headroom decides')
  t.equal(lastCountedHere(60, 50), 10)
  t.equal(lastCountedHere(51, 50), 1)
  t.equal(lastCountedHere(50, 50), 0, 'a limit no larger than the headroom is always exact')
  for (const max of [1, 5, 10, 20]) t.equal(lastCountedHere(max, 50), 0, `a sign-in sized limit (${max}) is always counted in Redis`)
  t.equal(lastCountedHere(1, 0), 0, 'a limit of one is exact even with no headroom')
  t.equal(lastCountedHere(10, 0), 5, 'no headroom: half the limit still')
  t.ok(estimateOf(counter({ known: 2 ** 30 - 1 }), 2 ** 31, 50).countHere, 'a huge limit: half of it here...')
  t.notOk(estimateOf(counter({ known: 2 ** 30 }), 2 ** 31, 50).countHere, '... and no more')
})

t.test('requests on their way and waiting here count against the headroom', async (t) => {
  t.ok(estimateOf(counter({ known: 149 }), 300, 50).countHere)
  t.notOk(estimateOf(counter({ known: 140, inFlight: 5, pending: 5 }), 300, 50).countHere, 'known 140 but 150 counted: the next is the 151st')
  t.notOk(estimateOf(counter({ known: 300 }), 300, 50).countHere, 'at the limit')
  t.notOk(estimateOf(counter({ known: 10_000 }), 300, 50).countHere, 'far over it')
})

t.test('counterAt: a new counter opens a window; a counter past its end starts a new one', async (t) => {
  const now = 1_000_000
  t.same(counterAt(undefined, now, 60_000), { known: 0, pending: 0, inFlight: 0, resetAt: now + 60_000, windowMs: 60_000 })

  const running = counter({ known: 42, pending: 3, inFlight: 2, resetAt: now + 1 })
  t.equal(counterAt(running, now, 60_000), running, 'the same counter, kept')
  t.same([running.known, running.resetAt], [42, now + 1], 'one millisecond left: unchanged')

  const ended = counter({ known: 42, pending: 3, inFlight: 2, resetAt: now })
  t.equal(counterAt(ended, now, 60_000), ended)
  t.same(ended, { known: 0, pending: 3, inFlight: 2, resetAt: now + 60_000, windowMs: 60_000 },
    'at its end: what Redis counted is forgotten; counts not yet answered are kept (Redis adds them to the new window)')
})

t.test('createLocalCounts: fixed windows per key while Redis is away, bounded in keys', async (t) => {
  const counts = createLocalCounts(3)
  const now = 1_000_000
  t.same([1, 2, 3].map(() => counts.incr('a', 60_000, now).current), [1, 2, 3])
  t.same(counts.incr('a', 60_000, now + 59_999), { current: 4, ttl: 1 }, 'the window runs from the first request')
  t.same(counts.incr('a', 60_000, now + 60_000), { current: 1, ttl: 60_000 }, 'a new window at its end')
  t.equal(counts.incr('b', 60_000, now).current, 1, 'each key counts apart')

  counts.incr('c', 60_000, now + 60_000)
  t.equal(counts.size, 3)
  counts.incr('d', 60_000, now + 60_001) // full: the expired window of b goes first
  t.equal(counts.size, 3)
  t.equal(counts.incr('a', 60_000, now + 60_002).current, 2, 'a kept its count')
  counts.incr('e', 60_000, now + 60_003) // full and nothing expired: the oldest window (a's, begun at now + 60 s) goes
  t.equal(counts.size, 3)
  t.equal(counts.incr('c', 60_000, now + 60_004).current, 2, 'c kept its count')
  t.equal(counts.incr('a', 60_000, now + 60_005).current, 1, 'a was forgotten')
})
