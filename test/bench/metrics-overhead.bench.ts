// npm run bench:metrics: the cost of metrics on the hot catalog reads. Two app processes on the
// same database and Redis, one with METRICS_TOKEN (request histogram, Redis and MongoDB command
// timing, process metrics) and one without (nothing timed). Each answers batches of the same
// request in turn, many short alternating batches so the drift of a shared machine falls on both
// alike, and the measure is the app's CPU time per request (requests per second on a machine
// shared with other work swing by tens of percent between rounds, CPU time less). A CPU profile
// of the app with metrics then gives the share of its busy time spent in metrics code, a figure
// other load on the machine does not move. Requests go through fastify's whole lifecycle without
// sockets (inject), so both leave out the HTTP parsing every request pays: upper bounds.
// BENCH_NULL=1 runs both without metrics: the noise floor of the CPU ratio on this machine.
// Needs the test services (npm run services).
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { eq } from 'drizzle-orm'
import { seedCatalog } from '../../db/seed.js'
import { openDb } from '../../db/client.js'
import { products } from '../../db/schema/index.js'
import { createTestDatabase } from '../helpers.js'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 30)
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 1000)
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const database = await createTestDatabase(t)
const handle = await openDb({ url: database.url, pgliteDataDir: '', poolMax: 2 })
await seedCatalog(handle.db, { categories: 20, products: 300, variantsPerProduct: 3, seed: 42 })
const [product] = await handle.db.select({ id: products.id }).from(products).where(eq(products.status, 'active')).limit(1)
await handle.close()
const paths = { 'GET /products/{id}, cached': `/products/${product!.id}`, 'GET /products?limit=20, cached': '/products?limit=20' }

async function start(env: Record<string, string>) {
  const child = fork('test/bench/metrics-server.ts', { execArgv: ['--import', 'tsx'], env: { ...process.env, BENCH_DB_NAME: database.name, BENCH_DB_URL: database.url, ...env } })
  teardowns.push(async () => { child.send({ stop: true }); await once(child, 'exit') })
  await once(child, 'message')
  return child
}
const apps = { on: await start(process.env.BENCH_NULL ? {} : { METRICS_TOKEN: 'bench-metrics-token-0123456789' }), off: await start({}) }

async function batch(child: ChildProcess, path: string, requests: number, profile = false) {
  child.send({ path, requests, profile })
  const [reply] = (await once(child, 'message')) as [{ cpuMicros: number; share?: number }]
  return { cpuPerRequest: reply.cpuMicros / requests, share: reply.share }
}

// Warm both: caches filled, serializers compiled, JIT settled.
for (const path of Object.values(paths)) for (const child of Object.values(apps)) await batch(child, path, 3 * REQUESTS)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log(`metrics on vs off: ${ROUNDS} alternating rounds of ${REQUESTS} requests per app and path, CPU time per request`)
for (const [name, path] of Object.entries(paths)) {
  const on: number[] = []
  const off: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    if (round % 2) { off.push((await batch(apps.off, path, REQUESTS)).cpuPerRequest); on.push((await batch(apps.on, path, REQUESTS)).cpuPerRequest) }
    else { on.push((await batch(apps.on, path, REQUESTS)).cpuPerRequest); off.push((await batch(apps.off, path, REQUESTS)).cpuPerRequest) }
  }
  const ratios = on.map((x, i) => x / off[i]!)
  const { share } = await batch(apps.on, path, 10 * REQUESTS, true)
  console.log(`${name.padEnd(32)} on/off ${median(ratios).toFixed(3)} (median of the rounds' ratios; middle half ${[...ratios].sort((a, b) => a - b)[Math.floor(ROUNDS / 4)]!.toFixed(3)} to ${[...ratios].sort((a, b) => a - b)[Math.floor((3 * ROUNDS) / 4)]!.toFixed(3)}), median ${median(on).toFixed(1)} vs ${median(off).toFixed(1)} µs`)
  console.log(`${''.padEnd(32)} metrics code: ${(100 * share!).toFixed(1)}% of the busy CPU samples with metrics on (${10 * REQUESTS} requests profiled)`)
}

for (const fn of teardowns.reverse()) await fn()
