import t from 'tap'
import { randomBytes } from 'node:crypto'
import { cartModel } from '../db/models/cart.js'
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
  t.same(await service.removeAbandonedGuestCarts(30), { removed: 1 })
  t.same((await carts.find({}).lean()).map((c) => c._id).sort(), ['new-guest', 'old-user'])
  t.same(await service.removeAbandonedGuestCarts(30), { removed: 0 }, 'idempotent')
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
