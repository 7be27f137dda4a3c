// npm run bench:retention: the activity log's retention over a large backlog (RETENTION_ENTRIES,
// 1,000,000 by default), through the app's own MongoDB connection and its MONGO_TIMEOUT_MS (3 s).
// Times the windowed delete the hourly job runs, and first one plain deleteMany over a slice of
// the backlog (RETENTION_SINGLE_ENTRIES, 200,000) as the job did before, to show where it fails.
// Needs the test services (npm run services). Not part of CI: it takes minutes.
import { performance } from 'node:perf_hooks'
import { activityModel } from '../../db/models/activity.js'
import { deleteOlderThan } from '../../src/mongo-retention.js'
import { buildTestApp } from '../helpers.js'

const ENTRIES = Number(process.env.RETENTION_ENTRIES ?? 1_000_000)
const SINGLE = Number(process.env.RETENTION_SINGLE_ENTRIES ?? 200_000)
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const app = await buildTestApp(t, { JOBS: 'off' })
const entries = activityModel(app.mongo)
const day = 86_400_000
const cutoff = new Date(Date.now() - 90 * day)
const old = { at: { $lt: cutoff } }
const budgetMs = app.config.mongo.timeoutMs

async function fill(count: number) {
  const started = performance.now()
  for (let done = 0; done < count; done += 10_000) {
    const n = Math.min(10_000, count - done)
    await entries.collection.insertMany(Array.from({ length: n }, (_, i) => ({
      type: 'product_view', at: new Date(Date.now() - (100 + ((done + i) % 200)) * day), data: { n: done + i },
    })) as never[], { ordered: false })
  }
  return (performance.now() - started) / 1000
}
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

console.log(`MONGO_TIMEOUT_MS=${app.config.mongo.timeoutMs}`)
console.log(`filling ${SINGLE} old entries: ${(await fill(SINGLE)).toFixed(1)} s`)
let started = performance.now()
try {
  const { deletedCount } = await entries.deleteMany(old)
  console.log(`one deleteMany over ${SINGLE}: removed ${deletedCount} in ${seconds(performance.now() - started)}`)
} catch (err) {
  console.log(`one deleteMany over ${SINGLE}: FAILED after ${seconds(performance.now() - started)}: ${(err as Error).message}`)
}
// Whatever the failed command left, the windowed delete clears it before the main measurement.
await deleteOlderThan(entries, 'at', cutoff, { budgetMs })

console.log(`filling ${ENTRIES} old entries: ${(await fill(ENTRIES)).toFixed(1)} s`)
await entries.collection.insertMany(Array.from({ length: 1000 }, () => ({ type: 'sign_in', at: new Date(), data: {} })) as never[])
started = performance.now()
const result = await deleteOlderThan(entries, 'at', cutoff, { budgetMs })
const elapsed = performance.now() - started
const left = await entries.collection.countDocuments({})
console.log(`windowed delete over ${ENTRIES}: removed ${result.removed} in ${result.batches} windows, ${seconds(elapsed)} (${Math.round(result.removed / (elapsed / 1000))} a second); ${left} recent entries kept`)
for (const fn of teardowns.reverse()) await fn()
process.exit(result.removed === ENTRIES && left === 1000 ? 0 : 1)
