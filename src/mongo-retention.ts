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

/** The UTC day a date falls on (YYYY-MM-DD): the `day` of documents retained by day. */
export const dayOf = (at: Date) => at.toISOString().slice(0, 10)

/**
 * Retention by day, for a collection too large for deleteOlderThan on FerretDB: FerretDB 1.24
 * sends PostgreSQL only equality filters, so each time window there reads the whole collection
 * however small the window (a day's 1,000 entries of 200,000: 10 s by a range on the date, 0.3 s
 * by equality on a day field; bench/README.md). Each document carries `day`, the UTC day of its
 * date field, and `<collection>_days` lists the days that have documents (one small document
 * each, noted before the documents are written), so a run finds its days without reading the
 * collection and deletes each by equality. Documents written before `day` existed go once by
 * deleteOlderThan's windows; `retention_state` records when that has finished.
 */
export function dayRetention<T>(model: Model<T>, dateField: string) {
  // The driver's collections through the model's connection (they wait for it to open).
  const collection = model.collection
  const name = collection.collectionName
  const days = model.db.collection<{ _id: string }>(`${name}_days`)
  const state = model.db.collection<{ _id: string; undatedCleared?: boolean }>('retention_state')
  const noted = new Set<string>()
  return {
    /** To be awaited before documents of these dates are written: lists their days (one upsert per process and day). */
    async note(dates: Date[]) {
      for (const day of new Set(dates.map(dayOf))) {
        if (noted.has(day)) continue
        await days.updateOne({ _id: day }, { $setOnInsert: { _id: day } }, { upsert: true })
        if (noted.size >= 8) noted.clear()
        noted.add(day)
      }
    },

    /**
     * Deletes the documents dated before `cutoff`: every listed day before the cutoff's by
     * equality, oldest first, its listing last (a run cut short goes on from there next time);
     * then the cutoff's own day's earlier part; then, until once done, documents without a day.
     * Each command is one equality delete; `budgetMs` bounds only the undated pass's windows.
     */
    async deleteBefore(cutoff: Date, budgetMs: number, onDay?: (day: string, removed: number) => void): Promise<{ removed: number; days: number }> {
      const cutoffDay = dayOf(cutoff)
      let removed = 0
      const due = await days.find({ _id: { $lt: cutoffDay } }).sort({ _id: 1 }).toArray()
      for (const { _id: day } of due) {
        const { deletedCount } = await collection.deleteMany({ day })
        await days.deleteOne({ _id: day })
        removed += deletedCount
        onDay?.(day, deletedCount)
      }
      removed += (await collection.deleteMany({ day: cutoffDay, [dateField]: { $lt: cutoff } })).deletedCount
      if (!(await state.findOne({ _id: name, undatedCleared: true }))) {
        removed += (await deleteOlderThan(model, dateField, cutoff, { budgetMs, filter: { day: { $exists: false } } })).removed
        await state.updateOne({ _id: name }, { $set: { undatedCleared: true } }, { upsert: true })
      }
      return { removed, days: due.length }
    },
  }
}
