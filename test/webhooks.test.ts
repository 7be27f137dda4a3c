import t from 'tap'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eq } from 'drizzle-orm'
import { outbox, webhookDeliveries, webhookEndpoints } from '../db/schema/index.js'
import { buildTestApp, startOwnRedis } from './helpers.js'
import { postSigned } from '../routes/webhooks/delivery.js'
import { startMailbox } from './mail.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'
import { WEBHOOK } from '../src/side-effects.js'

// Outbound webhooks against a real HTTP receiver on loopback: signatures, retries with backoff,
// timeouts, disabling, replay, the admin API, and exactly-once delivery across a crash.

type Headers = Record<string, string>
interface Received { path: string; headers: IncomingHttpHeaders; body: string; at: number }
interface Answer { status: number; delayMs?: number; body?: string }
type Behaviour = (req: Received) => Answer

/** A receiver whose answer per path the test sets; it keeps every request. */
async function startReceiver(t: { teardown(fn: () => unknown): void }) {
  const received: Received[] = []
  const behaviours = new Map<string, Behaviour>()
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const entry = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() }
      received.push(entry)
      const answer: Answer = (behaviours.get(entry.path) ?? (() => ({ status: 200, body: 'ok' })))(entry)
      const reply = () => { if (!res.destroyed) res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body ?? '') }
      if (answer.delayMs) setTimeout(reply, answer.delayMs)
      else reply()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    url: (path: string) => `${base}${path}`,
    on: (path: string, behaviour: Behaviour) => behaviours.set(path, behaviour),
    at: (path: string) => received.filter((r) => r.path === path),
    async waitFor(path: string, count: number, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs
      while (received.filter((r) => r.path === path).length < count) {
        if (Date.now() > deadline) throw new Error(`receiver: ${received.filter((r) => r.path === path).length} of ${count} requests on ${path}`)
        await new Promise((r) => setTimeout(r, 25))
      }
      return received.filter((r) => r.path === path)
    },
  }
}

/** The receiver's check, as docs/webhooks.md shows it: HMAC-SHA256 of `${t}.${body}`, compared in constant time, within 5 minutes. */
function verify(secret: string, header: string | undefined, body: string, toleranceSeconds = 300) {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=') as [string, string]))
  const timestamp = Number(parts.t)
  if (!parts.v1 || !Number.isInteger(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > toleranceSeconds) return false
  const expected = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest()
  const given = Buffer.from(parts.v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
async function checkout(app: App, headers: Headers, variantId: string, quantity: number, key: string) {
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
  return app.inject({ method: 'POST', url: '/orders', headers: { ...headers, 'idempotency-key': key }, payload: { shippingAddress: ADDRESS } })
}
async function payAndConfirm(app: App, headers: Headers, orderId: string, key: string) {
  const payment = (await app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': key }, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } })
  return payment
}
async function addEndpoint(app: App, headers: Headers, url: string, events: string[]) {
  const res = await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers, payload: { url, events } })
  if (res.statusCode !== 201) throw new Error(`addEndpoint: ${res.statusCode} ${res.body}`)
  return res.json() as { id: string; secret: string }
}
const deliveriesOf = async (app: App, headers: Headers, endpointId: string) =>
  (await app.inject({ method: 'GET', url: `/webhooks/endpoints/${endpointId}/deliveries`, headers })).json().items as { id: string; eventId: string; status: string; attempts: { succeeded: boolean; statusCode: number | null; error: string | null; durationMs: number; attemptedAt: string; responseExcerpt: string | null }[] }[]
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('admin API: auth, bad input, the URL policy, secrets shown once, CRUD', async (t) => {
  const app = await buildTestApp(t, { WEBHOOK_ALLOW_PRIVATE_URLS: 'false' })
  const admin = await registerAdmin(app)
  const customer = await register(app, { email: 'shopper@example.com' })
  const body = { url: 'https://hooks.example.com/shop', events: ['order.paid'] }

  t.equal((await app.inject({ method: 'POST', url: '/webhooks/endpoints', payload: body })).statusCode, 401, 'anonymous: 401')
  t.equal((await app.inject({ method: 'GET', url: '/webhooks/endpoints' })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers: customer.headers, payload: body })).statusCode, 403, 'customer: 403')
  t.equal((await app.inject({ method: 'GET', url: '/webhooks/endpoints', headers: customer.headers })).statusCode, 403)

  const bad: [string, object][] = [
    ['unknown event', { ...body, events: ['order.exploded'] }],
    ['no events', { ...body, events: [] }],
    ['the same event twice', { ...body, events: ['order.paid', 'order.paid'] }],
    ['a secret of our own', { ...body, secret: 'whsec_mine' }],
    ['not a URL', { ...body, url: 'hooks' }],
    ['ftp', { ...body, url: 'ftp://hooks.example.com/' }],
    ['credentials in the URL', { ...body, url: 'https://user:pw@hooks.example.com/' }],
    ['plain http in production policy', { ...body, url: 'http://hooks.example.com/' }],
    ['loopback', { ...body, url: 'https://127.0.0.1:8443/' }],
    ['private network', { ...body, url: 'https://10.1.2.3/' }],
    ['cloud metadata', { ...body, url: 'https://169.254.169.254/latest' }],
    ['IPv6 loopback', { ...body, url: 'https://[::1]/' }],
    ['IPv4-mapped loopback', { ...body, url: 'https://[::ffff:127.0.0.1]/' }],
    ['localhost', { ...body, url: 'https://localhost/' }],
  ]
  for (const [what, payload] of bad) {
    const res = await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload })
    t.equal(res.statusCode, 400, what)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.equal((await app.inject({ method: 'GET', url: '/webhooks/endpoints/not-a-uuid', headers: admin.headers })).statusCode, 400)
  t.equal((await app.inject({ method: 'PATCH', url: `/webhooks/endpoints/${crypto.randomUUID()}`, headers: admin.headers, payload: {} })).statusCode, 400, 'an empty change')
  t.equal((await app.inject({ method: 'GET', url: `/webhooks/endpoints/${crypto.randomUUID()}`, headers: admin.headers })).statusCode, 404)

  const created = await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload: { ...body, description: 'ERP' } })
  t.equal(created.statusCode, 201)
  const endpoint = created.json()
  t.match(endpoint, { url: 'https://hooks.example.com/shop', events: ['order.paid'], isActive: true, description: 'ERP', consecutiveFailures: 0 })
  t.match(endpoint.secret, /^whsec_[A-Za-z0-9_-]{43}$/, 'a random secret, shown at creation')
  const [stored] = await app.db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, endpoint.id))
  t.notOk(stored!.secretEncrypted.includes(endpoint.secret), 'the database holds it encrypted')

  const read = (await app.inject({ method: 'GET', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers })).json()
  t.notOk('secret' in read, 'never shown again on reads')
  t.notOk((await app.inject({ method: 'GET', url: '/webhooks/endpoints', headers: admin.headers })).body.includes(endpoint.secret))
  t.same((await app.inject({ method: 'GET', url: '/webhooks/endpoints', headers: admin.headers })).json().items.map((e: { id: string }) => e.id), [endpoint.id])

  const changed = await app.inject({ method: 'PATCH', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers, payload: { events: ['order.created', 'stock.low'], isActive: false } })
  t.match(changed.json(), { events: ['order.created', 'stock.low'], isActive: false })
  t.equal((await app.inject({ method: 'PATCH', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers, payload: { url: 'http://192.168.1.1/' } })).statusCode, 400, 'a change is checked too')

  const rotated = (await app.inject({ method: 'POST', url: `/webhooks/endpoints/${endpoint.id}/rotate-secret`, headers: admin.headers })).json()
  t.match(rotated.secret, /^whsec_/)
  t.not(rotated.secret, endpoint.secret, 'rotation gives a new secret')

  t.equal((await app.inject({ method: 'DELETE', url: `/webhooks/endpoints/${endpoint.id}`, headers: customer.headers })).statusCode, 403)
  t.equal((await app.inject({ method: 'DELETE', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: `/webhooks/deliveries/${crypto.randomUUID()}/replay`, headers: admin.headers })).statusCode, 404)
})

t.test('every event reaches its subscribers once, signed, through the BullMQ worker', async (t) => {
  const receiver = await startReceiver(t)
  const app = await buildTestApp(t, { JOBS: 'on', LOW_STOCK_THRESHOLD: '3' })
  await app.ready()
  const admin = await registerAdmin(app)
  const all = await addEndpoint(app, admin.headers, receiver.url('/all'), ['order.created', 'order.paid', 'order.shipped', 'order.cancelled', 'order.refunded', 'product.updated', 'stock.low'])
  const catalogOnly = await addEndpoint(app, admin.headers, receiver.url('/catalog'), ['product.updated'])
  const product = await createProduct(app, admin.headers, { name: 'Analytical Engine', variants: [{ sku: 'AE-1', priceMinor: 2500, stock: 5 }] })
  const buyer = await register(app, { email: 'ada@example.com' })

  const order = (await checkout(app, buyer.headers, product.variants[0].id, 2, 'wh-checkout-1')).json()
  const payment = await payAndConfirm(app, buyer.headers, order.id, 'wh-pay-1')
  await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'fulfilled' } })
  await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status: 'shipped', carrier: 'Royal Mail', trackingNumber: 'RM123' } })
  t.equal((await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: admin.headers, payload: { amountMinor: 700 } })).statusCode, 201)
  t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name: 'Analytical Engine II' } })).statusCode, 200)
  const second = (await checkout(app, buyer.headers, product.variants[0].id, 1, 'wh-checkout-2')).json()
  t.equal((await app.inject({ method: 'POST', url: `/orders/${second.id}/cancel`, headers: buyer.headers })).statusCode, 200)

  const got = await receiver.waitFor('/all', 8)
  const events = got.map((r) => JSON.parse(r.body))
  t.same(events.map((e) => e.type).sort(), ['order.cancelled', 'order.created', 'order.created', 'order.paid', 'order.refunded', 'order.shipped', 'product.updated', 'stock.low'])
  for (const r of got) {
    t.ok(verify(all.secret, r.headers['shop-signature'] as string, r.body), `${JSON.parse(r.body).type}: the signature verifies`)
    t.equal(r.headers['shop-event-id'], JSON.parse(r.body).id)
    t.equal(r.headers['shop-event-type'], JSON.parse(r.body).type)
    t.equal(r.headers['content-type'], 'application/json')
  }
  t.notOk(verify(catalogOnly.secret, got[0]!.headers['shop-signature'] as string, got[0]!.body), 'another endpoint\'s secret does not verify it')
  t.notOk(verify(all.secret, got[0]!.headers['shop-signature'] as string, got[0]!.body.replace('"', ' "')), 'nor does a changed body')
  const byType = (type: string) => events.filter((e) => e.type === type)
  t.match(byType('order.created')[0], { data: { order: { id: order.id, number: order.number, status: 'pending_payment', totalMinor: order.totalMinor, currency: 'EUR' } } })
  t.match(byType('order.paid')[0], { data: { order: { id: order.id, status: 'paid' } } })
  t.match(byType('order.shipped')[0], { data: { order: { id: order.id, status: 'shipped', shippingCarrier: 'Royal Mail', trackingNumber: 'RM123' } } })
  t.match(byType('order.refunded')[0], { data: { order: { id: order.id, refundedMinor: 700 }, refund: { amountMinor: 700 } } })
  t.match(byType('order.cancelled')[0], { data: { order: { id: second.id, status: 'cancelled' } } })
  t.match(byType('product.updated')[0], { data: { change: 'details', product: { id: product.id, name: 'Analytical Engine II' } } })
  t.match(byType('stock.low')[0], { data: { threshold: 3, variants: [{ variantId: product.variants[0].id, sku: 'AE-1', stock: 3 }] } })
  for (const e of events) t.ok(!Number.isNaN(Date.parse(e.createdAt)), 'createdAt is a timestamp')

  const catalog = await receiver.waitFor('/catalog', 1)
  t.same(catalog.map((r) => JSON.parse(r.body).type), ['product.updated'], 'an endpoint hears only what it subscribed to')
  t.equal(catalog[0]!.headers['shop-event-id'], byType('product.updated')[0].id, 'one event id for every endpoint')

  // The job ran and succeeded: running it again, or fanning the event out again, sends nothing.
  const [delivery] = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, catalogOnly.id))
  t.same(await app.services.webhooks.attempt(delivery!.id), { outcome: 'skipped' }, 'a job retried after success does not send')
  const [event] = await app.db.select().from(outbox).where(eq(outbox.id, delivery!.eventId))
  await app.services.webhooks.fanOut(event!.id, event!.payload as never)
  t.equal((await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventId, event!.id))).length, 2, 'one delivery per (event, endpoint), however often the fan-out runs')
  await app.outbox.drain({ all: true })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(receiver.at('/all').length, 8, 'nothing was sent twice')
  t.equal(receiver.at('/catalog').length, 1)

  const listed = await deliveriesOf(app, admin.headers, all.id)
  t.equal(listed.length, 8)
  t.ok(listed.every((d) => d.status === 'succeeded' && d.attempts.length === 1 && d.attempts[0]!.statusCode === 200 && d.attempts[0]!.responseExcerpt === 'ok'), 'each recorded with its one attempt')
})

t.test('a receiver that fails twice: retried with exponential backoff, each attempt recorded', async (t) => {
  const receiver = await startReceiver(t)
  let calls = 0
  receiver.on('/flaky', () => (++calls <= 2 ? { status: 503, body: 'try\u0000 later' } : { status: 204 }))
  const app = await buildTestApp(t, { JOBS: 'on', WEBHOOK_BACKOFF_MS: '300', WEBHOOK_MAX_ATTEMPTS: '5' })
  await app.ready()
  const admin = await registerAdmin(app)
  const endpoint = await addEndpoint(app, admin.headers, receiver.url('/flaky'), ['product.updated'])
  const product = await createProduct(app, admin.headers)
  await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name: 'Renamed' } })

  const got = await receiver.waitFor('/flaky', 3)
  t.equal(new Set(got.map((r) => r.headers['shop-event-id'])).size, 1, 'the same event each time')
  t.equal(new Set(got.map((r) => r.body)).size, 1, 'with the same body')
  const delivery = await until('the delivery to succeed', async () => (await deliveriesOf(app, admin.headers, endpoint.id)).find((d) => d.status === 'succeeded'))
  t.same(delivery!.attempts.map((a) => [a.succeeded, a.statusCode, a.error]), [[false, 503, 'HTTP 503'], [false, 503, 'HTTP 503'], [true, 204, null]])
  t.equal(delivery!.attempts[0]!.responseExcerpt, 'try later', 'the answer is kept (without the NUL PostgreSQL cannot store)')
  const at = delivery!.attempts.map((a) => Date.parse(a.attemptedAt))
  t.ok(at[1]! - at[0]! >= 300, `first retry after the backoff (${at[1]! - at[0]!} ms)`)
  t.ok(at[2]! - at[1]! >= 600, `second after twice the backoff (${at[2]! - at[1]!} ms)`)
  t.equal((await app.services.webhooks.get(endpoint.id)).consecutiveFailures, 0, 'a delivery that succeeded in the end is no failure')
})

t.test('a receiver that answers too slowly: a timeout, recorded as a failed attempt', async (t) => {
  const receiver = await startReceiver(t)
  receiver.on('/slow', () => ({ status: 200, delayMs: 2000 }))
  const app = await buildTestApp(t, { WEBHOOK_TIMEOUT_MS: '300', WEBHOOK_MAX_ATTEMPTS: '1' })
  const admin = await registerAdmin(app)
  const endpoint = await addEndpoint(app, admin.headers, receiver.url('/slow'), ['product.updated'])
  const product = await createProduct(app, admin.headers)
  await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name: 'Slow news' } })

  // Jobs are off here: the drain the sweep job runs sends it in this process.
  const started = Date.now()
  t.same(await app.services.webhooks.drain(), { succeeded: 0, retry: 0, failed: 1, skipped: 0 })
  t.ok(Date.now() - started < 1500, 'the call was cut at the timeout')
  const [delivery] = await deliveriesOf(app, admin.headers, endpoint.id)
  t.equal(delivery!.status, 'failed')
  t.match(delivery!.attempts, [{ succeeded: false, statusCode: null, error: 'timed out after 300 ms' }])
  t.ok(delivery!.attempts[0]!.durationMs >= 290 && delivery!.attempts[0]!.durationMs < 1500, `duration recorded (${delivery!.attempts[0]!.durationMs} ms)`)
  t.equal((await app.services.webhooks.get(endpoint.id)).consecutiveFailures, 1)
})

t.test('disabled after repeated failed deliveries, with a notice; re-enabled and replayed', async (t) => {
  const receiver = await startReceiver(t)
  const mailbox = await startMailbox(t)
  let down = true
  receiver.on('/down', () => (down ? { status: 500, body: 'boom' } : { status: 200, body: 'back' }))
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url, WEBHOOK_MAX_ATTEMPTS: '2', WEBHOOK_BACKOFF_MS: '10', WEBHOOK_DISABLE_AFTER: '2' })
  const admin = await registerAdmin(app, 'ops@example.com')
  const endpoint = await addEndpoint(app, admin.headers, receiver.url('/down'), ['product.updated'])
  const product = await createProduct(app, admin.headers)
  const rename = (name: string) => app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name } })
  const drainAll = async () => {
    for (let i = 0; i < 10; i++) {
      const r = await app.services.webhooks.drain()
      if (!r.retry && !r.succeeded && !r.failed) return
      await new Promise((r) => setTimeout(r, 30))
    }
  }

  await rename('One')
  await drainAll()
  t.match(await app.services.webhooks.get(endpoint.id), { isActive: true, consecutiveFailures: 1 }, 'one failed delivery (two attempts)')
  await rename('Two')
  await drainAll()
  const disabled = await app.services.webhooks.get(endpoint.id)
  t.match(disabled, { isActive: false, consecutiveFailures: 2, disabledReason: /2 deliveries in a row failed; last: HTTP 500/ })
  t.ok(disabled.disabledAt)
  t.equal(receiver.at('/down').length, 4, 'two deliveries, two attempts each')
  await mailbox.waitFor('ops@example.com', new RegExp(`webhook endpoint ${receiver.url('/down').replace(/[.]/g, '\\.')} \\(${endpoint.id}\\) was disabled`))

  await rename('Three')
  await drainAll()
  t.equal(receiver.at('/down').length, 4, 'a disabled endpoint gets no new deliveries')
  const failed = await deliveriesOf(app, admin.headers, endpoint.id)
  t.same(failed.map((d) => d.status), ['failed', 'failed'])
  const replay = await app.inject({ method: 'POST', url: `/webhooks/deliveries/${failed[0]!.id}/replay`, headers: admin.headers })
  t.equal(replay.statusCode, 409, 'no replay while disabled')

  down = false
  const enabled = await app.inject({ method: 'PATCH', url: `/webhooks/endpoints/${endpoint.id}`, headers: admin.headers, payload: { isActive: true } })
  t.match(enabled.json(), { isActive: true, consecutiveFailures: 0, disabledAt: null, disabledReason: null })
  t.equal((await app.inject({ method: 'POST', url: `/webhooks/deliveries/${failed[0]!.id}/replay`, headers: {} })).statusCode, 401, 'anonymous: 401')
  const replayed = await app.inject({ method: 'POST', url: `/webhooks/deliveries/${failed[0]!.id}/replay`, headers: admin.headers })
  t.equal(replayed.statusCode, 202)
  t.match(replayed.json(), { status: 'pending', attempts: [{ succeeded: false }, { succeeded: false }] })
  await drainAll()
  const after = (await app.inject({ method: 'GET', url: `/webhooks/deliveries/${failed[0]!.id}`, headers: admin.headers })).json()
  t.equal(after.status, 'succeeded')
  t.same(after.attempts.map((a: { statusCode: number }) => a.statusCode), [500, 500, 200], 'the replay adds to the attempt history')
  const last = receiver.at('/down').at(-1)!
  t.equal(last.headers['shop-event-id'], failed[0]!.eventId, 'a replay keeps the event id, so the receiver can tell a repeat')
  t.equal((await app.inject({ method: 'POST', url: `/webhooks/deliveries/${failed[0]!.id}/replay`, headers: admin.headers })).statusCode, 202, 'a delivered one may be replayed too')
  await drainAll()
  t.equal(receiver.at('/down').filter((r) => r.headers['shop-event-id'] === failed[0]!.eventId).length, 4)

  t.same(await app.services.webhooks.purge(0), { removed: 2 }, 'finished deliveries go with retention')
  t.equal((await app.db.select().from(webhookDeliveries)).length, 0)
})

t.test('a crash between the order commit and its webhook and mail: each delivered exactly once after restart', async (t) => {
  const receiver = await startReceiver(t)
  const mailbox = await startMailbox(t)
  const first = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(first)
  await addEndpoint(first, admin.headers, receiver.url('/erp'), ['order.created'])
  const product = await createProduct(first, admin.headers, { variants: [{ priceMinor: 1000, stock: 10 }] })
  const buyer = await register(first, { email: 'crash@example.com' })

  // The order commits with its outbox event; the process "dies" before handling it.
  first.faults.failOnce('checkout.after-order-commit')
  t.equal((await checkout(first, buyer.headers, product.variants[0].id, 1, 'crash-checkout-1')).statusCode, 500)
  const [event] = await first.db.select().from(outbox).where(eq(outbox.topic, 'webhook.event'))
  t.ok(event, 'the webhook event committed with the order')
  t.notOk(event!.processedAt, 'and was not handled')
  t.equal((await first.db.select().from(webhookDeliveries)).length, 0, 'no delivery yet')
  const { postgres, mongo, redis } = first.config
  await first.close()

  // Restart on the same stores, jobs on: the outbox drain job fans it out, the worker sends it.
  t.equal(mailbox.received.filter((m) => /^Your order/.test(m.subject)).length, 0, 'no order mail before the restart')
  const again = await buildTestApp(t, { JOBS: 'on', SMTP_URL: mailbox.url, DATABASE_URL: postgres.url!, MONGODB_URL: mongo.url!, REDIS_KEY_PREFIX: redis.keyPrefix })
  await again.ready()
  const got = await receiver.waitFor('/erp', 1, 15_000)
  t.equal(got[0]!.headers['shop-event-id'], event!.id, 'the event id is the outbox event\'s')
  t.equal(JSON.parse(got[0]!.body).type, 'order.created')

  // Everything that could repeat it runs again: the outbox drain, the delivery drain, the sweep.
  // (a drainer that respects claims: `all` would also take the event the job is handling right now)
  await again.outbox.drain()
  await again.services.webhooks.drain()
  await again.services.webhooks.sweep(0)
  await new Promise((r) => setTimeout(r, 500))
  t.equal(receiver.at('/erp').length, 1, 'exactly once')
  t.equal((await again.db.select().from(webhookDeliveries)).length, 1)
  const orderMails = () => mailbox.received.filter((m) => /^Your order/.test(m.subject)).map((m) => m.to)
  for (let i = 0; i < 100 && orderMails().length === 0; i++) await new Promise((r) => setTimeout(r, 100))
  await again.outbox.drain()
  await again.mailer.flush()
  t.same(orderMails(), [['crash@example.com']], 'the order mail went exactly once too')
})

t.test('Redis away when an event fans out: the delivery waits in PostgreSQL and goes once', async (t) => {
  const receiver = await startReceiver(t)
  const redis = await startOwnRedis(t)
  const app = await buildTestApp(t, { REDIS_URL: redis.url })
  const admin = await registerAdmin(app)
  const endpoint = await addEndpoint(app, admin.headers, receiver.url('/patient'), ['product.updated'])

  await redis.kill()
  // A change commits its event (as the catalog and order services do); handling it right after the commit cannot queue it.
  const ids = await app.db.transaction((tx) => app.outbox.add(tx, [WEBHOOK('product.updated', { change: 'details', product: { id: crypto.randomUUID() } })]))
  const started = Date.now()
  t.same(await app.outbox.runNow(ids), { done: 0, failed: 1 })
  t.ok(Date.now() - started < 8000, `the caller does not hang on the queue (${Date.now() - started} ms)`)
  const [event] = await app.db.select().from(outbox).where(eq(outbox.id, ids[0]!))
  t.notOk(event!.processedAt, 'the fan-out is kept for the outbox to retry')
  t.match(event!.lastError, /Redis did not take the jobs/)
  const [delivery] = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpoint.id))
  t.equal(delivery!.status, 'pending', 'the delivery row is there, pending')

  // The sweep's in-process drain (or the queue, once Redis is back) sends it; the outbox retry adds nothing.
  t.same(await app.services.webhooks.drain(), { succeeded: 1, retry: 0, failed: 0, skipped: 0 })
  await app.services.webhooks.fanOut(event!.id, event!.payload as never).catch(() => {})
  t.equal((await app.db.select().from(webhookDeliveries)).length, 1)
  t.same(await app.services.webhooks.drain(), { succeeded: 0, retry: 0, failed: 0, skipped: 0 })
  t.equal(receiver.at('/patient').length, 1, 'sent once')
  t.equal(receiver.at('/patient')[0]!.headers['shop-event-id'], event!.id)
})

t.test('SSRF: with private URLs refused, neither a stored loopback URL nor a name resolving to loopback is called', async (t) => {
  const receiver = await startReceiver(t)
  const app = await buildTestApp(t, { WEBHOOK_ALLOW_PRIVATE_URLS: 'false', WEBHOOK_MAX_ATTEMPTS: '1' })
  const admin = await registerAdmin(app)
  const endpoint = await addEndpoint(app, admin.headers, 'https://hooks.example.com/in', ['product.updated'])
  // A URL accepted before the policy changed.
  await app.db.update(webhookEndpoints).set({ url: receiver.url('/inside') }).where(eq(webhookEndpoints.id, endpoint.id))
  const ids = await app.db.transaction((tx) => app.outbox.add(tx, [WEBHOOK('product.updated', { change: 'details' })]))
  await app.outbox.runNow(ids)
  t.same(await app.services.webhooks.drain(), { succeeded: 0, retry: 0, failed: 1, skipped: 0 })
  const [delivery] = await deliveriesOf(app, admin.headers, endpoint.id)
  t.match(delivery!.attempts, [{ succeeded: false, statusCode: null, error: /not sent: url must be https/ }])

  const send = (allowPrivate: boolean) => postSigned({ url: receiver.url('/named').replace('127.0.0.1', 'localhost'), body: '{}', secret: 'whsec_x', eventId: crypto.randomUUID(), eventType: 'product.updated', deliveryId: crypto.randomUUID(), timeoutMs: 2000, allowPrivate, userAgent: 'test' })
  t.match(await send(false), { succeeded: false, statusCode: null, error: /resolves to a private or reserved address/ }, 'the connection is refused after DNS')
  t.equal(receiver.at('/inside').length + receiver.at('/named').length, 0, 'nothing reached the receiver')
  t.match(await send(true), { succeeded: true, statusCode: 200 }, 'the same call with private URLs allowed arrives')
})

t.test('without a Redis server (the embedded mode) the in-process queue sends and retries', async (t) => {
  const receiver = await startReceiver(t)
  let calls = 0
  receiver.on('/embedded', () => (++calls === 1 ? { status: 500 } : { status: 200 }))
  const app = await buildTestApp(t, { REDIS_URL: '', JOBS: 'on', WEBHOOK_BACKOFF_MS: '100' })
  await app.ready()
  const admin = await registerAdmin(app)
  const endpoint = await addEndpoint(app, admin.headers, receiver.url('/embedded'), ['product.updated'])
  const product = await createProduct(app, admin.headers)
  await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { name: 'Local' } })
  const got = await receiver.waitFor('/embedded', 2)
  t.equal(got[0]!.headers['shop-event-id'], got[1]!.headers['shop-event-id'])
  t.ok(verify(endpoint.secret, got[1]!.headers['shop-signature'] as string, got[1]!.body))
  const delivery = await until('the delivery to succeed', async () => (await deliveriesOf(app, admin.headers, endpoint.id)).find((d) => d.status === 'succeeded'))
  t.same(delivery.attempts.map((a) => a.statusCode), [500, 200])
})
