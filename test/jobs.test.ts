import t from 'tap'
import { randomBytes } from 'node:crypto'
import { activityModel } from '../db/models/activity.js'
import { cartModel } from '../db/models/cart.js'
import { deleteOlderThan } from '../src/mongo-retention.js'
import { buildTestApp } from './helpers.js'

t.test('abandoned guest carts are removed after the retention; recent and user carts stay', async (t) => {
  const app = await buildTestApp(t, { GUEST_CART_RETENTION_DAYS: '30', JOBS: 'off' })
  const carts = cartModel(app.mongo)
  const day = 86_400_000
  await carts.collection.insertMany([
    { _id: 'old-guest' as never, owner: 'guest:a', kind: 'guest', lines: [], version: 0, createdAt: new Date(Date.now() - 40 * day), updatedAt: new Date(Date.now() - 31 * day) },
    { _id: 'new-guest' as never, owner: 'guest:b', kind: 'guest', lines: [], version: 0, createdAt: new Date(Date.now() - 40 * day), updatedAt: new Date(Date.now() - 29 * day) },
    { _id: 'old-user' as never, owner: 'user:c', kind: 'user', lines: [], version: 0, createdAt: new Date(Date.now() - 90 * day), updatedAt: new Date(Date.now() - 90 * day) },
  ])
  const { createCartService } = await import('../routes/cart/service.js')
  const service = createCartService({ carts, redis: app.redis, catalog: { variantsForCart: async () => new Map() }, currency: 'EUR', limits: app.config.cart })
  t.same(await service.removeAbandonedGuestCarts(30, 3000), { removed: 1 })
  t.same((await carts.find({}).lean()).map((c) => c._id).sort(), ['new-guest', 'old-user'])
  t.same(await service.removeAbandonedGuestCarts(30, 3000), { removed: 0 }, 'idempotent')
})

t.test('retention deletes in time windows: every old entry goes, recent ones stay, a second run finds nothing', async (t) => {
  const app = await buildTestApp(t, { JOBS: 'off' })
  const entries = activityModel(app.mongo)
  const day = 86_400_000
  const at = (daysAgo: number) => new Date(Date.now() - daysAgo * day)
  // Old entries spread over 200 days with a gap of a year: many windows, growing as they go.
  const old = Array.from({ length: 170 }, (_, i) => ({ type: 'retention.old', at: at(i < 150 ? 91 + (i % 200) : 700 + i), data: { i } }))
  const recent = Array.from({ length: 30 }, (_, i) => ({ type: 'retention.recent', at: at(i % 89), data: { i } }))
  await entries.collection.insertMany([...old, ...recent] as never[])
  const first = await deleteOlderThan(entries, 'at', at(90), { budgetMs: 3000 })
  t.equal(first.removed, 170, 'every old entry removed')
  t.ok(first.batches > 1, `in ${first.batches} windows, not one command`)
  t.equal(await entries.collection.countDocuments({ type: 'retention.old' }), 0, 'no old entry left')
  t.equal(await entries.collection.countDocuments({ type: 'retention.recent' }), 30, 'every recent entry kept')
  t.equal((await deleteOlderThan(entries, 'at', at(90), { budgetMs: 3000 })).removed, 0, 'idempotent')
  // A filter narrows what goes: only the named type.
  await entries.collection.insertMany([{ type: 'retention.keep', at: at(120), data: {} }, { type: 'retention.old', at: at(120), data: {} }] as never[])
  t.equal((await deleteOlderThan(entries, 'at', at(90), { budgetMs: 3000, filter: { type: 'retention.old' } })).removed, 1)
  t.equal(await entries.collection.countDocuments({ type: 'retention.keep' }), 1)
})

t.test('a scheduled job runs once per slot across several instances', async (t) => {
  // Two app instances on one Redis prefix: two BullMQ workers competing for the same schedule.
  const prefix = `jobs_${randomBytes(4).toString('hex')}:`
  const apps = [await buildTestApp(t, { REDIS_KEY_PREFIX: prefix, JOBS: 'on' }), await buildTestApp(t, { REDIS_KEY_PREFIX: prefix, JOBS: 'on' })]
  const runs: { instance: number; runId: string }[] = []
  apps.forEach((app, instance) => {
    app.jobs.every('probe', 300, async () => 'ok')
    app.jobs.onRun = (name, runId) => { if (name === 'probe') runs.push({ instance, runId }) }
  })
  await Promise.all(apps.map((app) => app.ready()))
  await new Promise((r) => setTimeout(r, 2500))
  const ids = runs.map((r) => r.runId)
  t.ok(runs.length >= 3, `${runs.length} runs in 2.5 s`)
  t.equal(new Set(ids).size, ids.length, 'no run executed twice')
  t.ok(runs.length <= 10, 'not one schedule per instance')
})
