// Admission control: at most `concurrency` runs of some work at once, the rest wait in arrival
// order (at most `queue` of them; beyond that `shed()` is thrown at once). A run that got in
// hands its place straight to the next waiter, so a started run is never overtaken.
//
// Why FIFO admission and not just the pool: work that takes a shared resource several times in
// a row (a checkout takes the PostgreSQL pool a dozen times) otherwise queues on each take
// behind every other request's earlier takes, and N such requests all finish together at N
// times the cost of one (processor sharing); admitted in order, they finish one after another.
export function createGate(concurrency: number, queue: number, shed: () => Error) {
  let active = 0
  const waiting: (() => void)[] = []
  return async <T>(work: () => Promise<T>): Promise<T> => {
    if (active < concurrency) active++
    else if (waiting.length >= queue) throw shed()
    else await new Promise<void>((resolve) => waiting.push(resolve)) // the finishing one hands its place over
    try {
      return await work()
    } finally {
      const next = waiting.shift()
      if (next) next()
      else active--
    }
  }
}
export type Gate = ReturnType<typeof createGate>
