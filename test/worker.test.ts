import { bullPrefix } from '../src/redis-client.js'
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Queue } from 'bullmq'
import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { webhookDeliveries } from '../db/schema/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { TEST_REDIS_URL, createTestStores, freePort, startProcess, tsx, waitUntil, type TestProcess } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// One API process with JOBS=off and one `npm run worker` process (src/worker.ts) on the same
// stores, as two real processes: the worker runs every scheduled run once, does the work the API
// enqueues (webhook deliveries) once, and the API keeps serving while the worker is down; what
// was enqueued meanwhile is done once the worker is back.

const jobRuns = (proc: TestProcess, job: string) => proc.logs().filter((l) => l.msg === 'job finished' && l.job === job).map((l) => String(l.runId))

t.test('one API (JOBS=off) and one worker: schedules once, enqueued work once, the API serves while the worker is down', { timeout: 180_000 }, async (t) => {
  const [apiPort, workerPort] = [await freePort(), await freePort()]
  const { env } = await createTestStores(t, { HOST: '127.0.0.1', LOG_LEVEL: 'info', WEBHOOK_BACKOFF_MS: '1000' })
  const prefix = env.REDIS_KEY_PREFIX!

  // A webhook receiver: the work the API enqueues and the worker does.
  const received: { id: string; type: string }[] = []
  const receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString('utf8') })
    req.on('end', () => { received.push({ id: String(req.headers['shop-delivery-id']), type: (JSON.parse(body) as { type: string }).type }); res.end('ok') })
  })
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { receiver.closeAllConnections(); receiver.close(() => resolve()) }))

  // Fixtures through an in-process app on the same stores (JOBS=off: it runs no job either).
  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => seed.close())
  const admin = await registerAdmin(seed)
  const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 1500, stock: 20 }] })
  const variantId = product.variants[0].id as string
  const [customer] = await quickCustomers(seed, 1)
  const endpoint = await seed.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['order.created'] } })
  t.equal(endpoint.statusCode, 201)

  // The webhook deliveries' BullMQ queue, read from outside: its jobs and the workers taking them.
  const queueRedis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null })
  const webhooksQueue = new Queue('webhooks', { connection: queueRedis, prefix: bullPrefix(prefix) })
  t.teardown(async () => { await webhooksQueue.close(); queueRedis.disconnect() })
  const queueIdle = async () => Object.values(await webhooksQueue.getJobCounts('wait', 'active', 'delayed', 'prioritized')).every((n) => n === 0)

  const api = startProcess(t, tsx('src/server.ts'), { env: { ...process.env, ...env, JOBS: 'off', PORT: String(apiPort) } })
  const startWorker = () => startProcess(t, tsx('src/worker.ts'), { env: { ...process.env, ...env, WORKER_PORT: String(workerPort) } })
  let worker = startWorker()
  await Promise.all([api.waitForHttp(`http://127.0.0.1:${apiPort}/health`), worker.waitForHttp(`http://127.0.0.1:${workerPort}/health`)])
  const health = await (await fetch(`http://127.0.0.1:${workerPort}/health`)).json() as { role: string; ready: boolean }
  t.match(health, { role: 'worker', ready: true }, 'the worker answers its health port')
  t.ok(worker.logs().some((l) => l.msg === 'worker running: schedules, outbox drain and queue workers'), 'and says it runs in its log')
  t.equal(await webhooksQueue.getWorkersCount(), 1, 'one process works the webhooks queue: the worker')

  const http = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => fetch(`http://127.0.0.1:${apiPort}${path}`, {
    method, headers: { ...customer!.headers, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  const checkout = async (key: string) => {
    t.equal((await http('POST', '/cart/items', { variantId, quantity: 1 })).status, 200)
    const res = await http('POST', '/orders', { shippingAddress: { recipientName: 'Ada', line1: '1 Road', city: 'York', postalCode: 'YO1 7HH', country: 'GB' } }, { 'idempotency-key': key })
    t.equal(res.status, 201, `checkout ${key} placed by the API`)
    return (await res.json()) as { id: string }
  }

  // 1. Work the API enqueues is done by the worker, once.
  const first = await checkout('worker-1')
  await worker.waitFor('the first webhook', () => received.length >= 1)
  const [delivery] = await seed.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpoint.json().id))
  t.equal(delivery!.status, 'succeeded')

  // 2. Scheduled runs: the outbox drain (every 2 s) runs in the worker only, once per slot.
  await worker.waitFor('three outbox-drain runs', () => jobRuns(worker, 'outbox-drain').length >= 3, 30_000)
  const drains = jobRuns(worker, 'outbox-drain')
  t.ok(drains.length >= 3, `${drains.length} outbox-drain runs in the worker`)
  t.equal(new Set(drains).size, drains.length, 'no run twice')
  t.same(api.logs().filter((l) => l.msg === 'job finished'), [], 'the API (JOBS=off) runs no scheduled job')
  // The store's own record: BullMQ keeps completed runs; each slot once, 2 s apart.
  const redis = new Redis(TEST_REDIS_URL)
  t.teardown(() => redis.disconnect())
  // A run logs before BullMQ records it completed: wait for the record of the last one logged.
  const completedDrains = async () => (await redis.zrange(`${bullPrefix(prefix)}:maintenance:completed`, 0, -1)).filter((id) => id.startsWith('repeat:outbox-drain:'))
  const completed = await worker.waitFor('the logged runs recorded as completed in Redis', async () => {
    const ids = await completedDrains()
    return drains.every((id) => ids.includes(id)) && ids
  }, 10_000).catch(() => completedDrains())
  const slots = completed.map((id) => Number(id.split(':').pop())).sort((a, b) => a - b)
  t.equal(new Set(slots).size, slots.length, 'each slot completed once in Redis')
  t.ok(slots.slice(1).every((s, i) => s - slots[i]! >= 2000), 'slots 2 s apart: one schedule, not one per process')
  t.ok(drains.every((id) => completed.includes(id)), 'every run the worker logged is a completed job in Redis')

  // 3. The worker goes away (SIGTERM: a graceful stop, exit 0).
  t.equal((await worker.stop('SIGTERM')).code, 0, 'the worker exits 0 on SIGTERM')
  t.ok(worker.logs().some((l) => l.msg === 'worker stopped'), 'after saying so')

  // The API keeps serving: a catalog read and a checkout.
  const read = await http('GET', `/products/${product.id}`)
  t.equal(read.status, 200, 'catalog read while the worker is down')
  const second = await checkout('worker-2')
  t.not(second.id, first.id)
  // Its delivery is enqueued and stays there: no process takes the queue's jobs while the worker is down.
  await waitUntil('the second delivery waiting in the webhooks queue', async () => (await webhooksQueue.getJobCounts('wait')).wait! >= 1, 30_000)
  t.equal(await webhooksQueue.getWorkersCount(), 0, 'no process works the webhooks queue (the API has JOBS=off)')
  t.equal(received.length, 1, 'nothing delivered while no worker runs')

  // 4. The worker is back: the queued delivery is done, once.
  worker = startWorker()
  await worker.waitForHttp(`http://127.0.0.1:${workerPort}/health`)
  await worker.waitFor('the second webhook', () => received.length >= 2)
  // No second send can follow: one more outbox drain has run (it would enqueue a delivery again) and the queue is empty.
  const drainsSoFar = jobRuns(worker, 'outbox-drain').length
  await worker.waitFor('one more outbox-drain run', () => jobRuns(worker, 'outbox-drain').length > drainsSoFar, 30_000)
  await worker.waitFor('the webhooks queue empty', queueIdle, 30_000)
  t.equal(received.length, 2, 'two orders, two deliveries: none lost, none doubled')
  t.equal(new Set(received.map((r) => r.id)).size, 2, 'each delivery received once')
  t.same(received.map((r) => r.type), ['order.created', 'order.created'])
  const bodies = await seed.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpoint.json().id))
  t.same(bodies.map((d) => d.status).sort(), ['succeeded', 'succeeded'])
  t.ok(bodies.every((d) => d.attempts === 1), 'each sent in one attempt')
  t.equal((await worker.stop('SIGTERM')).code, 0)
  t.equal((await api.stop('SIGTERM')).code, 0)
})
