import t from 'tap'
import { buildTestApp } from './helpers.js'
import { quickCustomers } from './users.js'

// The app's MongoDB pool is bounded (MONGO_POOL_MAX): a burst of cart requests queues in the
// driver instead of opening a connection each (the driver's default is 100 per instance, and a
// burst of that size once wedged FerretDB's own PostgreSQL pool).
async function burst(t: { teardown(fn: () => unknown): void }, poolMax: number) {
  const app = await buildTestApp(t, { MONGO_POOL_MAX: String(poolMax) })
  const customers = await quickCustomers(app, 40)
  const client = app.mongo.getClient()
  // Idle connections from the set-up are closed, so the burst starts from an empty pool.
  await client.close(true).catch(() => {})
  let open = 0
  let peak = 0
  client.on('connectionCreated', () => { peak = Math.max(peak, ++open) })
  client.on('connectionClosed', () => { open-- })
  await client.connect()
  const answers = await Promise.all(customers.flatMap((c) => [
    app.inject({ method: 'GET', url: '/cart', headers: c.headers }),
    app.inject({ method: 'GET', url: '/wishlist', headers: c.headers }),
  ]))
  return { statuses: [...new Set(answers.map((r) => r.statusCode))], peak }
}

t.test('a burst of 80 cart and wishlist reads opens at most MONGO_POOL_MAX connections, and every request answers', async (t) => {
  const bounded = await burst(t, 3)
  t.same(bounded.statuses, [200], 'every request answered 200')
  t.ok(bounded.peak <= 3, `at most 3 connections at once (peak ${bounded.peak})`)
  // The same burst with a loose bound opens more: the bound is what held it.
  const loose = await burst(t, 100)
  t.same(loose.statuses, [200])
  t.ok(loose.peak > 3, `with MONGO_POOL_MAX=100 the burst opened ${loose.peak} connections`)
})
