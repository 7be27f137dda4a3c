import t from 'tap'
import { readFileSync } from 'node:fs'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// GET /metrics after a small journey: each counter moved by exactly what happened.

const TOKEN = 'metrics-token-for-tests-0123456789'
const ADDRESS = { recipientName: 'Mae Jemison', line1: '1 Orbit Way', city: 'Houston', postalCode: '77058', country: 'US' }

function sample(text: string, name: string, labels: Record<string, string> = {}) {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  let total = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (wanted.every((w) => line.includes(w))) total += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return total
}
const scrape = async (app: App) => (await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body

t.test('the counters move by exactly what a journey did', async (t) => {
  const app = await buildTestApp(t, { METRICS_TOKEN: TOKEN })
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 404, 'not public')
  t.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong-token-0123456789abc' } })).statusCode, 404)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1500, stock: 10 }] })
  const variantId = product.variants[0].id as string
  const buyer = await register(app, { email: 'mae@example.com' })
  const before = await scrape(app)
  t.match(before, /^shop_process_nodejs_heap_size_used_bytes \d/m, 'heap is reported')
  t.match(before, /^shop_process_nodejs_eventloop_lag_p99_seconds \d/m, 'event-loop lag is reported')

  const buy = async (quantity: number, key: string) => {
    await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId, quantity } })
    return (await app.inject({ method: 'POST', url: '/orders', headers: { ...buyer.headers, 'idempotency-key': key }, payload: { shippingAddress: ADDRESS } })).json()
  }
  const first = await buy(2, 'metrics-order-1')
  const second = await buy(1, 'metrics-order-2')
  t.equal((await app.inject({ method: 'POST', url: '/orders', headers: buyer.headers, payload: { shippingAddress: ADDRESS } })).statusCode, 409, 'an empty cart: a conflict')
  const payment = (await app.inject({ method: 'POST', url: `/orders/${first.id}/payments`, headers: { ...buyer.headers, 'idempotency-key': 'metrics-pay-1' }, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_success' } })
  const declined = (await app.inject({ method: 'POST', url: `/orders/${second.id}/payments`, headers: { ...buyer.headers, 'idempotency-key': 'metrics-pay-2' }, payload: { provider: 'test', paymentMethod: 'tok_decline' } })).json()
  await app.inject({ method: 'POST', url: `/payments/${declined.id}/confirm`, headers: buyer.headers, payload: { paymentMethod: 'tok_decline' } })
  await app.inject({ method: 'POST', url: `/orders/${second.id}/cancel`, headers: buyer.headers })
  t.equal((await app.inject({ method: 'POST', url: `/payments/${payment.id}/refunds`, headers: admin.headers, payload: { amountMinor: 700 } })).statusCode, 201)

  const after = await scrape(app)
  const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels)
  t.equal(delta('shop_orders_total', { event: 'placed', currency: 'EUR' }), 2)
  t.equal(delta('shop_order_amount_minor_total', { event: 'placed', currency: 'EUR' }), first.totalMinor + second.totalMinor)
  t.equal(delta('shop_orders_total', { event: 'paid' }), 1)
  t.equal(delta('shop_order_amount_minor_total', { event: 'paid' }), first.totalMinor)
  t.equal(delta('shop_orders_total', { event: 'cancelled' }), 1)
  t.equal(delta('shop_order_amount_minor_total', { event: 'cancelled' }), second.totalMinor)
  t.equal(delta('shop_orders_total', { event: 'refunded' }), 1)
  t.equal(delta('shop_order_amount_minor_total', { event: 'refunded' }), 700)
  t.equal(delta('shop_payment_failures_total', { provider: 'test', reason: 'card_declined' }), 1)
  t.equal(delta('shop_checkout_conflicts_total', { reason: 'cart-empty' }), 1)
  t.equal(delta('shop_http_request_duration_seconds_count', { route: '/orders', method: 'POST', status_class: '2xx' }), 2)
  t.equal(delta('shop_http_request_duration_seconds_count', { route: '/orders', method: 'POST', status_class: '4xx' }), 1)
  t.ok(delta('shop_redis_command_duration_seconds_count') > 0, 'Redis commands are timed')
  t.ok(delta('shop_mongodb_command_duration_seconds_count') > 0, 'MongoDB commands are timed')
  t.equal(sample(after, 'shop_outbox_backlog'), 0, 'nothing waits in the outbox')
  t.ok(sample(after, 'shop_postgres_pool_connections', { state: 'idle' }) >= 1, 'the pool is reported')
})

t.test('rate-limit refusals and cache lookups are counted', async (t) => {
  const app = await buildTestApp(t, { METRICS_TOKEN: TOKEN, RATE_LIMIT_MAX: '4' })
  for (let i = 0; i < 6; i++) await app.inject({ method: 'GET', url: '/products?limit=5' })
  const text = await scrape(app)
  t.equal(sample(text, 'shop_rate_limited_total', { route: '/products' }), 2, 'the two over the limit')
  // Each listing looks up the price-list schedule (what prices apply now) and then the page.
  t.equal(sample(text, 'shop_cache_lookups_total', { namespace: 'catalog', result: 'miss' }), 2, 'the first read missed both')
  t.equal(sample(text, 'shop_cache_lookups_total', { namespace: 'catalog', result: 'hit' }), 6, 'the next three hit both')
})

t.test('Redis and MongoDB commands: counted by name, failures apart', async (t) => {
  const app = await buildTestApp(t, { METRICS_TOKEN: TOKEN })
  const before = await scrape(app)
  await app.redis.set('metrics:probe', 'a string')
  await app.redis.get('metrics:probe')
  await app.redis.pipeline().get('metrics:probe').get('metrics:probe').exec()
  await t.rejects(app.redis.hget('metrics:probe', 'field'), /WRONGTYPE/)
  await app.mongo.db!.command({ ping: 1 })
  await t.rejects(app.mongo.db!.command({ noSuchCommand: 1 }))
  const after = await scrape(app)
  const delta = (name: string, labels: Record<string, string>) => sample(after, name, labels) - sample(before, name, labels)
  t.equal(delta('shop_redis_command_duration_seconds_count', { command: 'set' }), 1)
  t.equal(delta('shop_redis_command_duration_seconds_count', { command: 'get' }), 3, 'pipelined commands too')
  t.equal(delta('shop_redis_command_errors_total', { command: 'get' }), 0)
  t.equal(delta('shop_redis_command_errors_total', { command: 'hget' }), 1, 'an error reply is an error')
  t.equal(delta('shop_mongodb_command_duration_seconds_count', { command: 'ping' }), 1)
  t.equal(delta('shop_mongodb_command_errors_total', { command: 'noSuchCommand' }), 1)
  t.equal(delta('shop_mongodb_command_errors_total', { command: 'ping' }), 0)
})

t.test('job runs and the BullMQ queue are reported', async (t) => {
  const app = await buildTestApp(t, { METRICS_TOKEN: TOKEN, JOBS: 'on' })
  let ok = 0
  let failed = 0
  app.jobs.every('metrics-probe', 200, async () => { ok++ })
  app.jobs.every('metrics-boom', 200, async () => { failed++; throw new Error('boom') })
  await app.ready()
  await new Promise((r) => setTimeout(r, 1500))
  const text = await scrape(app)
  t.ok(ok >= 1 && failed >= 1, `both ran (${ok}, ${failed})`)
  // Runs still in flight at the scrape are not counted yet.
  t.ok(sample(text, 'shop_job_duration_seconds_count', { job: 'metrics-probe' }) >= ok - 1)
  t.equal(sample(text, 'shop_job_failures_total', { job: 'metrics-probe' }), 0)
  t.ok(sample(text, 'shop_job_failures_total', { job: 'metrics-boom' }) >= failed - 1)
  const failedJobs = sample(text, 'shop_queue_jobs', { queue: 'maintenance', state: 'failed' })
  t.ok(failedJobs >= 1 && failedJobs <= failed, `the failed runs are in the queue (${failedJobs})`)
  for (const state of ['waiting', 'active', 'delayed']) t.match(text, new RegExp(`^shop_queue_jobs\\{queue="maintenance",state="${state}"\\} \\d`, 'm'), state)
})

t.test('the dashboard and the alert rules name only metrics that exist', async (t) => {
  const app = await buildTestApp(t, { METRICS_TOKEN: TOKEN })
  const known = new Set((await app.metrics.registry.getMetricsAsJSON()).map((m) => m.name))
  for (const file of ['alerts.yml', 'grafana-dashboard.json']) {
    const used = new Set(readFileSync(new URL(`../deploy/${file}`, import.meta.url), 'utf8').match(/\bshop_[a-z0-9_]+/g))
    t.ok(used.size >= 5, `${file} uses ${used.size} metrics`)
    for (const name of used) t.ok(known.has(name.replace(/_(bucket|count|sum)$/, '')), `${file}: ${name}`)
  }
})
