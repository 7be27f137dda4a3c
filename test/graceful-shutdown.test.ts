import t from 'tap'
import { spawn } from 'node:child_process'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createTestDatabase, freePort, testEnv } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// SIGTERM while a checkout is in flight: the server stops taking connections, the checkout
// completes and is answered, the stores are closed and the process exits 0, in bounded time.
t.test('SIGTERM lets an in-flight checkout finish, then exits 0', { timeout: 120_000 }, async (t) => {
  const database = await createTestDatabase(t)
  const port = await freePort()
  const env = testEnv(database, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn' })

  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(async () => { await seed.mongo.dropDatabase().catch(() => {}); await seed.close() })
  const admin = await registerAdmin(seed)
  const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 1250, stock: 5 }] })
  const variantId = product.variants[0].id
  const [customer] = await quickCustomers(seed, 1)
  const added = await seed.inject({ method: 'POST', url: '/cart/items', headers: customer!.headers, payload: { variantId, quantity: 2 } })
  t.equal(added.statusCode, 200)

  const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)))
  t.teardown(() => { server.kill('SIGKILL') })
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100))
  }

  // Hold the variant's row so the checkout waits inside its transaction.
  const blocker = new pg.Client({ connectionString: database.url })
  await blocker.connect()
  t.teardown(() => blocker.end())
  await blocker.query('begin')
  await blocker.query('select id from product_variants where id = $1 for update', [variantId])

  const checkout = fetch(`http://127.0.0.1:${port}/orders`, {
    method: 'POST',
    headers: { ...customer!.headers, 'content-type': 'application/json', 'idempotency-key': 'graceful-1' },
    body: JSON.stringify({ shippingAddress: { recipientName: 'Grace', line1: '1 Quiet Road', city: 'York', postalCode: 'YO1 7HH', country: 'GB' } }),
  })
  // The checkout is waiting on the lock when the signal arrives.
  for (let i = 0; i < 100; i++) {
    const { rows } = await blocker.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'")
    if (rows[0]!.n > 0) break
    await new Promise((r) => setTimeout(r, 50))
  }
  const signalled = Date.now()
  server.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 500))
  await t.rejects(fetch(`http://127.0.0.1:${port}/health`), 'a new connection is refused once shutting down')

  await blocker.query('commit')
  const res = await checkout
  t.equal(res.status, 201, 'the in-flight checkout is answered')
  const order = await res.json() as { id: string; totalMinor: number }
  const code = await exited
  t.equal(code, 0, `exits 0 (exit code ${code}, ${Date.now() - signalled} ms after the signal)`)
  t.ok(Date.now() - signalled < 15_000, 'within the grace period')

  const { rows } = await blocker.query<{ status: string; stock: number }>('select o.status, v.stock from orders o, product_variants v where o.id = $1 and v.id = $2', [order.id, variantId])
  t.same(rows, [{ status: 'pending_payment', stock: 3 }], 'the order and its stock were committed')
})
