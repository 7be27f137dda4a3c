// npm run bench: requests per second of the hot catalog reads, as ratios against GET /health
// measured in the same run (machines here are noisy; absolute numbers are not comparable).
// Needs the test services (npm run services). Loopback only; each run is bounded in time.
import autocannon from 'autocannon'
import { seedCatalog } from '../../db/seed.js'
import { buildTestApp, createTestDatabase } from '../helpers.js'
import { registerAdmin } from '../users.js'

const DURATION_SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const teardowns: (() => unknown)[] = []
const t = { teardown: (fn: () => unknown) => { teardowns.push(fn) } }

const db = await createTestDatabase(t)
const app = await buildTestApp(t, { DATABASE_URL: db.url, DB_POOL_MAX: '20', RATE_LIMIT_MAX: '100000000' })
await seedCatalog(app.db, { categories: 50, products: 1000, variantsPerProduct: 3, seed: 42 })
const admin = await registerAdmin(app)
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

async function rate(path: string, headers: Record<string, string> = {}) {
  const result = await autocannon({ url: `${base}${path}`, connections: 20, duration: DURATION_SECONDS, headers })
  if (result.non2xx) throw new Error(`${path}: ${result.non2xx} non-2xx answers`)
  return { rps: result.requests.average, p99: result.latency.p99 }
}

const baseline = await rate('/health')
const cases: [string, string, Record<string, string>][] = [
  ['listing, cached (anonymous)', '/products?limit=20&sort=price_asc', {}],
  ['listing, uncached (admin reads bypass the cache)', '/products?limit=20&sort=price_asc', admin.headers],
  ['search, cached', '/products?q=shirt&limit=20', {}],
  ['search, uncached', '/products?q=shirt&limit=20', admin.headers],
]
console.log(`baseline GET /health: ${baseline.rps.toFixed(0)} req/s, p99 ${baseline.p99} ms (${DURATION_SECONDS} s, 20 connections)`)
for (const [name, path, headers] of cases) {
  const r = await rate(path, headers)
  console.log(`${name.padEnd(50)} ${(r.rps / baseline.rps).toFixed(3)} x baseline  (p99 ${r.p99} ms)`)
}

for (const fn of teardowns.reverse()) await fn()
