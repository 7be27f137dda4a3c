import t from 'tap'
import { randomBytes, randomUUID } from 'node:crypto'
import { activityEntry, activityModel, type ActivityDoc } from '../db/models/activity.js'
import { cartModel } from '../db/models/cart.js'
import { dayOf, dayRetention, deleteOlderThan } from '../src/mongo-retention.js'
import { buildTestApp } from './helpers.js'
import { DEFAULT_PASSWORD, register } from './users.js'

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

t.test('retention by day: listed days go whole by equality, the cutoff\'s day in part, undated entries once; a second run finds nothing', async (t) => {
  const app = await buildTestApp(t, { JOBS: 'off' })
  const entries = activityModel(app.mongo)
  const retention = dayRetention(entries, 'at')
  const days = app.mongo.db!.collection<{ _id: string }>('activity_logs_days')
  const day = 86_400_000
  const cutoff = new Date(Date.now() - 90 * day)
  const entry = (at: Date, type: string) => activityEntry({ _id: randomUUID(), type: type as ActivityDoc['type'], userId: null, at, ip: null, data: {} })
  // 12 old days of 5 entries each (12 deletes, not one), the cutoff's own day on both sides of
  // the cutoff, recent entries, and entries without a day as written before days existed.
  const old = Array.from({ length: 60 }, (_, i) => entry(new Date(cutoff.getTime() - (1 + Math.floor(i / 5)) * day), 'retention.old'))
  const edge = [entry(new Date(cutoff.getTime() - 1), 'retention.old'), entry(new Date(cutoff.getTime() + 1), 'retention.recent')]
  const recent = Array.from({ length: 10 }, (_, i) => entry(new Date(Date.now() - i * 3 * day), 'retention.recent'))
  const undated = [{ _id: randomUUID(), type: 'retention.old', userId: null, at: new Date(cutoff.getTime() - 30 * day), ip: null, data: {} },
    { _id: randomUUID(), type: 'retention.recent', userId: null, at: new Date(), ip: null, data: {} }]
  const dated = [...old, ...edge, ...recent]
  await retention.note(dated.map((e) => e.at))
  await entries.collection.insertMany([...dated, ...undated] as never[])
  t.equal((await days.countDocuments({ _id: { $lt: dayOf(cutoff) } })), new Set([...old, edge[0]!].map((e) => e.day).filter((d) => d! < dayOf(cutoff))).size, 'each old day listed once')

  const first = await retention.deleteBefore(cutoff, 3000)
  t.equal(first.removed, 62, 'every old entry removed: 60 whole days, the cutoff day\'s earlier one, the undated one')
  t.ok(first.days >= 12, `${first.days} days deleted one by one`)
  t.equal(await entries.collection.countDocuments({ type: 'retention.old' }), 0, 'no old entry left')
  t.equal(await entries.collection.countDocuments({ type: 'retention.recent' }), 12, 'every recent entry kept, with or without a day')
  t.equal(await days.countDocuments({ _id: { $lt: dayOf(cutoff) } }), 0, 'deleted days are no longer listed')
  t.ok(await days.findOne({ _id: dayOf(new Date()) }), 'days still holding entries stay listed')
  t.same(await retention.deleteBefore(cutoff, 3000), { removed: 0, days: 0 }, 'a second run finds nothing')
})

t.test('the API gives each activity entry its day and lists the day before writing the entry', async (t) => {
  const app = await buildTestApp(t, { JOBS: 'off' })
  await register(app, { email: 'dated@example.com' })
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'dated@example.com', password: DEFAULT_PASSWORD } })).statusCode, 200)
  await app.activity.flush()
  const signIn = await activityModel(app.mongo).collection.findOne({ type: 'sign_in' })
  t.ok(signIn, 'the sign-in was recorded')
  t.equal(signIn!.day, dayOf(signIn!.at as Date), 'its day is the UTC date of its time')
  t.ok(await app.mongo.db!.collection('activity_logs_days').findOne({ _id: signIn!.day as never }), 'and that day is listed for retention')
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
