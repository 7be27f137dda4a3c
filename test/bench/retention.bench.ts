// npm run bench:retention: the activity log's retention over a large backlog (RETENTION_ENTRIES,
// 1,000,000 by default, spread over 200 days before the 90-day cutoff), through the app's own
// MongoDB connection and its MONGO_TIMEOUT_MS (3 s), which bounds every command. Times the
// hourly job's delete by day (src/mongo-retention.ts dayRetention): the run as a whole and each
// day's equality delete, the one command that grows with the collection.
// Needs the test services (npm run services). Not part of CI: it takes minutes.
import { randomUUID } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { activityEntry, activityModel } from '../../db/models/activity.js'
import { dayRetention } from '../../src/mongo-retention.js'
import { buildTestApp } from '../helpers.js'

const ENTRIES = Number(process.env.RETENTION_ENTRIES ?? 1_000_000)
const RECENT = 1000
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const app = await buildTestApp(t, { JOBS: 'off' })
const entries = activityModel(app.mongo)
const retention = dayRetention(entries, 'at')
const day = 86_400_000
const cutoff = new Date(Date.now() - 90 * day)
const budgetMs = app.config.mongo.timeoutMs
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

// A fresh shop's first run: nothing to delete, and no entry without a day left to look for.
console.log(`MONGO_TIMEOUT_MS=${budgetMs}; first run on the empty log: ${JSON.stringify(await retention.deleteBefore(cutoff, budgetMs))}`)

// The backlog as the API writes it: each entry with its day, each day listed before its entries.
let started = performance.now()
for (let done = 0; done < ENTRIES; done += 10_000) {
  const batch = Array.from({ length: Math.min(10_000, ENTRIES - done) }, (_, i) => activityEntry({
    _id: randomUUID(), type: 'product_view', userId: null, ip: null, at: new Date(cutoff.getTime() - (10 + ((done + i) % 200)) * day), data: { n: done + i },
  }))
  await retention.note(batch.map((e) => e.at))
  await entries.collection.insertMany(batch as never[], { ordered: false })
}
const recent = Array.from({ length: RECENT }, () => activityEntry({ _id: randomUUID(), type: 'sign_in', userId: null, ip: null, at: new Date(), data: {} }))
await retention.note(recent.map((e) => e.at))
await entries.collection.insertMany(recent as never[])
console.log(`filled ${ENTRIES} old entries over 200 days and ${RECENT} recent ones: ${seconds(performance.now() - started)}`)

const perDay: number[] = []
let last = performance.now()
started = last
const result = await retention.deleteBefore(cutoff, budgetMs, () => { const now = performance.now(); perDay.push(now - last); last = now })
const elapsed = performance.now() - started
const left = await entries.collection.countDocuments({})
perDay.sort((a, b) => a - b)
const at = (q: number) => Math.round(perDay[Math.min(perDay.length - 1, Math.floor(q * perDay.length))] ?? 0)
console.log(`delete by day over ${ENTRIES}: removed ${result.removed} in ${result.days} days, ${seconds(elapsed)} (${Math.round(result.removed / (elapsed / 1000))} a second); ` +
  `a day's delete: median ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${Math.round(perDay.at(-1) ?? 0)} ms (budget ${budgetMs} ms); ${left} recent entries kept`)
for (const fn of teardowns.reverse()) await fn()
process.exit(result.removed === ENTRIES && left === RECENT ? 0 : 1)
