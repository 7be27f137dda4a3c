import type { Model, mongo } from 'mongoose'

/** Time windows start at an hour and adapt so each delete takes about this share of the budget. */
const FIRST_WINDOW_MS = 3_600_000
const TARGET_SHARE = 0.25

const isTimeout = (err: unknown) => err instanceof Error && /time(d)? ?out/i.test(`${err.name} ${err.message}`)

/**
 * Deletes the documents of `model` whose date `field` is before `cutoff` (and that match
 * `filter`), in time windows walking back from the cutoff: one range delete on the field's index
 * per window, never one command over the whole backlog (a single `deleteMany` over a large backlog
 * outlasted MONGO_TIMEOUT_MS, and deleting listed ids with `$in` is slower still on FerretDB).
 * The window doubles while deletes are quick and halves when one is slow or times out, so each
 * command takes about a quarter of `budgetMs`. A run cut short (a timeout, a crash) has kept what
 * it deleted; the next run goes on from there. It ends once nothing older than the window is left.
 */
export async function deleteOlderThan<T>(model: Model<T>, field: string, cutoff: Date, opts: { budgetMs: number; filter?: mongo.Filter<mongo.Document> }): Promise<{ removed: number; batches: number }> {
  // The driver's collection: a plain range filter, with no casting by the schema.
  const collection = model.collection
  const target = opts.budgetMs * TARGET_SHARE
  let end = cutoff.getTime()
  let windowMs = FIRST_WINDOW_MS
  let removed = 0
  let batches = 0
  for (;;) {
    const start = end - windowMs
    const began = Date.now()
    let deleted: number
    try {
      deleted = (await collection.deleteMany({ ...opts.filter, [field]: { $gte: new Date(start), $lt: new Date(end) } })).deletedCount
    } catch (err) {
      // Part of the window may be gone; the rest is taken again in halves.
      if (!isTimeout(err) || windowMs < 1000) throw err
      windowMs /= 2
      continue
    }
    const took = Date.now() - began
    removed += deleted
    batches++
    end = start
    if (took > target) windowMs = Math.max(1000, windowMs / 2)
    else if (took < target / 4) windowMs *= 2
    if (deleted === 0 && !(await collection.findOne({ ...opts.filter, [field]: { $lt: new Date(end) } }, { projection: { _id: 1 } }))) break
  }
  return { removed, batches }
}
