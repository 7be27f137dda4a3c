import { bullPrefix } from '../src/redis-client.js'
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { eq } from 'drizzle-orm'
import { Redis } from 'ioredis'
import { webhookDeliveries } from '../db/schema/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { TEST_REDIS_URL, createTestDatabase, deleteRedisKeys, freePort, testEnv } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// One API process with JOBS=off and one `npm run worker` process (src/worker.ts) on the same
// stores, as two real processes: the worker runs every scheduled run once, does the work the API
// enqueues (webhook deliveries) once, and the API keeps serving while the worker is down; what
// was enqueued meanwhile is done once the worker is back.

interface Proc { child: ChildProcess; lines: Record<string, unknown>[]; exited: Promise<number | null> }

function start(script: string, env: Record<string, string>): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: Record<string, unknown>[] = []
  let rest = ''
  child.stdout!.on('data', (chunk: Buffer) => {
    const text = rest + chunk.toString('utf8')
    const parts = text.split('\n')
    rest = parts.pop()!
    for (const line of parts) { try { lines.push(JSON.parse(line) as Record<string, unknown>) } catch { /* not a log line */ } }
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, lines, exited }
}

async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
const healthy = (port: number) => until(`:${port}/health`, async () => (await fetch(`http://127.0.0.1:${port}/health`)).ok || undefined)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const jobRuns = (proc: Proc, job: string) => proc.lines.filter((l) => l.msg === 'job finished' && l.job === job).map((l) => String(l.runId))

t.test('one API (JOBS=off) and one worker: schedules once, enqueued work once, the API serves while the worker is down', { timeout: 180_000 }, async (t) => {
  const database = await createTestDatabase(t)
  const [apiPort, workerPort] = [await freePort(), await freePort()]
  const env = testEnv(database, { HOST: '127.0.0.1', LOG_LEVEL: 'info', WEBHOOK_BACKOFF_MS: '1000' })
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
  t.teardown(async () => { await seed.mongo.dropDatabase().catch(() => {}); await seed.close(); await deleteRedisKeys(prefix) })
  const admin = await registerAdmin(seed)
  const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 1500, stock: 20 }] })
  const variantId = product.variants[0].id as string
  const [customer] = await quickCustomers(seed, 1)
  const endpoint = await seed.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload: { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`, events: ['order.created'] } })
  t.equal(endpoint.statusCode, 201)

  const api = start('src/server.ts', { ...env, JOBS: 'off', PORT: String(apiPort) })
  let worker = start('src/worker.ts', { ...env, WORKER_PORT: String(workerPort) })
  const procs = [api]
  t.teardown(async () => { for (const p of [...procs, worker]) p.child.kill('SIGKILL') })
  await Promise.all([healthy(apiPort), healthy(workerPort)])
  const health = await (await fetch(`http://127.0.0.1:${workerPort}/health`)).json() as { role: string; ready: boolean }
  t.match(health, { role: 'worker', ready: true }, 'the worker answers its health port')
  t.ok(worker.lines.some((l) => l.msg === 'worker running: schedules, outbox drain and queue workers'), 'and says it runs in its log')

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
  await until('the first webhook', () => received.length >= 1 || undefined)
  const [delivery] = await seed.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpoint.json().id))
  t.equal(delivery!.status, 'succeeded')

  // 2. Scheduled runs: the outbox drain (every 2 s) runs in the worker only, once per slot.
  await sleep(7000)
  const drains = jobRuns(worker, 'outbox-drain')
  t.ok(drains.length >= 3, `${drains.length} outbox-drain runs in the worker`)
  t.equal(new Set(drains).size, drains.length, 'no run twice')
  t.same(api.lines.filter((l) => l.msg === 'job finished'), [], 'the API (JOBS=off) runs no scheduled job')
  // The store's own record: BullMQ keeps completed runs; each slot once, 2 s apart.
  const redis = new Redis(TEST_REDIS_URL)
  t.teardown(() => redis.disconnect())
  const completed = (await redis.zrange(`${bullPrefix(prefix)}:maintenance:completed`, 0, -1)).filter((id) => id.startsWith('repeat:outbox-drain:'))
  const slots = completed.map((id) => Number(id.split(':').pop())).sort((a, b) => a - b)
  t.equal(new Set(slots).size, slots.length, 'each slot completed once in Redis')
  t.ok(slots.slice(1).every((s, i) => s - slots[i]! >= 2000), 'slots 2 s apart: one schedule, not one per process')
  t.ok(drains.every((id) => completed.includes(id)), 'every run the worker logged is a completed job in Redis')

  // 3. The worker goes away (SIGTERM: a graceful stop, exit 0).
  worker.child.kill('SIGTERM')
  t.equal(await worker.exited, 0, 'the worker exits 0 on SIGTERM')
  t.ok(worker.lines.some((l) => l.msg === 'worker stopped'), 'after saying so')
  procs.push(worker)

  // The API keeps serving: a catalog read and a checkout.
  const read = await http('GET', `/products/${product.id}`)
  t.equal(read.status, 200, 'catalog read while the worker is down')
  const second = await checkout('worker-2')
  t.not(second.id, first.id)
  await sleep(3000)
  t.equal(received.length, 1, 'nothing delivered while no worker runs')

  // 4. The worker is back: the queued delivery is done, once.
  worker = start('src/worker.ts', { ...env, WORKER_PORT: String(workerPort) })
  await healthy(workerPort)
  await until('the second webhook', () => received.length >= 2 || undefined)
  await sleep(3000)
  t.equal(received.length, 2, 'two orders, two deliveries: none lost, none doubled')
  t.equal(new Set(received.map((r) => r.id)).size, 2, 'each delivery received once')
  t.same(received.map((r) => r.type), ['order.created', 'order.created'])
  const bodies = await seed.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.endpointId, endpoint.json().id))
  t.same(bodies.map((d) => d.status).sort(), ['succeeded', 'succeeded'])
  t.ok(bodies.every((d) => d.attempts === 1), 'each sent in one attempt')
  worker.child.kill('SIGTERM')
  t.equal(await worker.exited, 0)
  api.child.kill('SIGTERM')
  t.equal(await api.exited, 0)
})
