// npm run bench:analytics: the admin analytics reports over 20,000 paid orders, timed against
// GET /health's p99 in the same run (the catalog and the rest: npm run bench, bench/run.ts).
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

// Analytics over 20,000 paid orders (about 50,000 items) made in SQL from the seeded catalog.
const { sql } = await import('drizzle-orm')
await app.db.execute(sql`
  with picked as (
    select g, (select array_agg(id order by id) from users) as buyers from generate_series(1, 20000) g
  )
  insert into orders (number, user_id, status, currency, subtotal_minor, total_minor, shipping_address, paid_at, created_at)
  select 'BENCH-' || g, buyers[1], 'paid', 'EUR', 0, 0, '{"recipientName":"B","line1":"1","city":"C","postalCode":"1","country":"DE"}',
         now() - ((g % 300) || ' days')::interval, now() - ((g % 300) || ' days')::interval
  from picked`)
await app.db.execute(sql`
  insert into order_items (order_id, variant_id, product_id, sku, name, unit_price_minor, quantity, line_total_minor)
  select order_id, id, product_id, sku, 'bench', price_minor, q, price_minor * q from (
    select o.id as order_id, v.id, v.product_id, v.sku, v.price_minor, 1 + (abs(hashtext(o.id::text || v.id::text)) % 3) as q
    from orders o cross join lateral (select * from product_variants order by hashtext(o.id::text) # hashtext(id::text) limit 2) v
    where o.number like 'BENCH-%') picked`)
await app.db.execute(sql`update orders o set subtotal_minor = s.total, total_minor = s.total from (select order_id, sum(line_total_minor) total from order_items group by order_id) s where s.order_id = o.id and o.number like 'BENCH-%'`)
await app.db.execute(sql`analyze`)
const year = `from=${new Date(Date.now() - 365 * 86_400_000).toISOString()}&to=${new Date().toISOString()}`
const healthMs = (await rate('/health')).p99
for (const path of ['/analytics/sales', '/analytics/top-products', '/analytics/payments', '/analytics/customers']) {
  const started = performance.now()
  const runs = 10
  for (let i = 0; i < runs; i++) {
    const res = await fetch(`${base}${path}?${year}`, { headers: admin.headers })
    if (!res.ok) throw new Error(`${path}: ${res.status}`)
    await res.arrayBuffer()
  }
  console.log(`${(path + ', one year, 20k orders').padEnd(50)} ${((performance.now() - started) / runs).toFixed(1)} ms per request, sequential (health p99 ${healthMs} ms)`)
}

for (const fn of teardowns.reverse()) await fn()
