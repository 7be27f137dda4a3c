import t from 'tap'
import { connect } from 'node:net'
import pg from 'pg'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { adminQuery, createTestStores, freePort, startProcess, tsx, waitUntil } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// SIGTERM while a checkout is in flight: the server stops taking connections, the checkout
// completes and is answered, the stores are closed and the process exits 0, in bounded time.
t.test('SIGTERM lets an in-flight checkout finish, then exits 0', { timeout: 120_000 }, async (t) => {
  const port = await freePort()
  const { database, env } = await createTestStores(t, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn' })

  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => seed.close())
  const admin = await registerAdmin(seed)
  const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 1250, stock: 5 }] })
  const variantId = product.variants[0].id
  const [customer] = await quickCustomers(seed, 1)
  const added = await seed.inject({ method: 'POST', url: '/cart/items', headers: customer!.headers, payload: { variantId, quantity: 2 } })
  t.equal(added.statusCode, 200)

  const server = startProcess(t, tsx('src/server.ts'), { env: { ...process.env, ...env } })
  await server.waitForHttp(`http://127.0.0.1:${port}/health`)

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
  // The checkout is waiting on the lock when the signal arrives. Seen from a session of its own:
  // in the blocker's transaction pg_stat_activity would be the snapshot of its first read.
  await waitUntil('the checkout waits on the row lock', async () => {
    const { rows } = await adminQuery<{ n: number }>("select count(*)::int as n from pg_stat_activity where datname = $1 and wait_event_type = 'Lock'", [database.name])
    return rows[0]!.n > 0
  }, 30_000)
  const signalled = Date.now()
  server.signal('SIGTERM')
  // While the checkout still holds on, the listener closes: a new connection is refused.
  const refused = await waitUntil('a new connection refused', () => new Promise<boolean | undefined>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(undefined) })
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' || undefined))
  }), 5000).catch(() => false)
  t.ok(refused, `a new connection is refused once shutting down (${Date.now() - signalled} ms after the signal)`)

  await blocker.query('commit')
  const res = await checkout
  t.equal(res.status, 201, 'the in-flight checkout is answered')
  const order = await res.json() as { id: string; totalMinor: number }
  const { code } = await server.waitForExit(30_000)
  t.equal(code, 0, `exits 0 (exit code ${code}, ${Date.now() - signalled} ms after the signal)`)
  t.ok(Date.now() - signalled < 15_000, 'within the grace period')

  const { rows } = await blocker.query<{ status: string; stock: number }>('select o.status, v.stock from orders o, product_variants v where o.id = $1 and v.id = $2', [order.id, variantId])
  t.same(rows, [{ status: 'pending_payment', stock: 3 }], 'the order and its stock were committed')
})
