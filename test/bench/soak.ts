// npm run soak: a bounded soak of mixed traffic against the API in its own process, on the test
// services: 20 customers loop over browse (90%: list page, product detail), cart (8%: add a line)
// and checkout (2%: check out, pay, confirm) for SOAK_SECONDS (180). Every answer's status is
// counted; the server's resident memory is sampled every 5 s. The run fails on any 5xx. It prints
// a table and writes test-artifacts/soak.json.
import { spawn } from 'node:child_process'
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { seedCatalog } from '../../db/seed.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createTestDatabase, freePort, testEnv } from '../helpers.js'
import { quickCustomers, registerAdmin } from '../users.js'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 180)
const CUSTOMERS = 20
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const database = await createTestDatabase(t)
const port = await freePort()
const env = testEnv(database, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', JOBS: 'on', RATE_LIMIT_MAX: '100000000', DB_POOL_MAX: '20' })
const seed = await buildApp(loadConfig(env), { logger: false })
await seedCatalog(seed.db, { categories: 20, products: 300, variantsPerProduct: 2, seed: 7 })
await seed.db.execute('update product_variants set stock = 1000000')
await registerAdmin(seed)
const customers = await quickCustomers(seed, CUSTOMERS)
await seed.close()

// The server's log (warnings and errors) goes to test-artifacts/soak-server.log.
mkdirSync('test-artifacts', { recursive: true })
const serverLog = openSync('test-artifacts/soak-server.log', 'w')
const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { env: { ...process.env, ...env }, stdio: ['ignore', serverLog, serverLog] })
const base = `http://127.0.0.1:${port}`
for (let i = 0; i < 200; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break } catch { /* not yet */ }
  await new Promise((r) => setTimeout(r, 100))
}
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))![1]) / 1024

const statuses = new Map<number, number>()
const fiveXx: string[] = []
async function call(method: string, path: string, headers: Record<string, string> = {}, body?: object) {
  const res = await fetch(base + path, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}), ...(method === 'POST' ? { 'idempotency-key': crypto.randomUUID() } : {}) }, body: body ? JSON.stringify(body) : undefined })
  const text = await res.text()
  statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
  if (res.status >= 500) fiveXx.push(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`)
  return { status: res.status, json: () => JSON.parse(text) }
}

const { items: listed } = (await call('GET', '/products?limit=100')).json() as { items: { id: string }[] }
const details = await Promise.all(listed.map(async (p) => (await call('GET', `/products/${p.id}`)).json() as { id: string; variants: { id: string }[] }))
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!
const address = { recipientName: 'Soak Test', line1: '1 Long Run', city: 'Paris', postalCode: '75001', country: 'FR' }
let checkouts = 0

const deadline = Date.now() + SECONDS * 1000
const samples: { second: number; requests: number; fiveXx: number; rssMb: number }[] = []
const started = Date.now()
const sampler = setInterval(() => {
  samples.push({ second: Math.round((Date.now() - started) / 1000), requests: [...statuses.values()].reduce((a, b) => a + b, 0), fiveXx: fiveXx.length, rssMb: Math.round(rssMb()) })
}, 5000)

await Promise.all(customers.map(async (customer) => {
  while (Date.now() < deadline) {
    const roll = Math.random()
    const product = pick(details)
    if (roll < 0.45) await call('GET', `/products?limit=20&sort=${pick(['newest', 'price_asc', 'price_desc', 'name'])}`)
    else if (roll < 0.9) await call('GET', `/products/${product.id}`)
    else if (roll < 0.98) await call('POST', '/cart/items', customer.headers, { variantId: pick(product.variants).id, quantity: 1 })
    else {
      await call('POST', '/cart/items', customer.headers, { variantId: pick(product.variants).id, quantity: 1 })
      const order = await call('POST', '/orders', customer.headers, { shippingAddress: address })
      if (order.status !== 201) continue
      const payment = await call('POST', `/orders/${order.json().id}/payments`, customer.headers, { provider: 'test', paymentMethod: 'tok_success' })
      if (payment.status === 201) await call('POST', `/payments/${payment.json().id}/confirm`, customer.headers, { paymentMethod: 'tok_success' })
      checkouts++
    }
  }
}))
clearInterval(sampler)
samples.push({ second: Math.round((Date.now() - started) / 1000), requests: [...statuses.values()].reduce((a, b) => a + b, 0), fiveXx: fiveXx.length, rssMb: Math.round(rssMb()) })
server.kill('SIGTERM')
await new Promise((r) => server.once('exit', r))
for (const fn of teardowns.reverse()) await fn()

const total = [...statuses.values()].reduce((a, b) => a + b, 0)
console.log(`soak: ${SECONDS} s, ${CUSTOMERS} customers, ${total} requests (${Math.round(total / SECONDS)}/s), ${checkouts} checkouts; statuses ${JSON.stringify(Object.fromEntries(statuses))}; 5xx: ${fiveXx.length}`)
console.log('\n| second | requests so far | 5xx | server RSS (MB) |\n| --- | --- | --- | --- |')
for (const s of samples.filter((_, i) => i % 3 === 0 || i === samples.length - 1)) console.log(`| ${s.second} | ${s.requests} | ${s.fiveXx} | ${s.rssMb} |`)
writeFileSync('test-artifacts/soak.json', JSON.stringify({ seconds: SECONDS, customers: CUSTOMERS, total, checkouts, statuses: Object.fromEntries(statuses), fiveXx, samples }, null, 2))
if (fiveXx.length) { console.error(fiveXx.slice(0, 10).join('\n')); process.exit(1) }
