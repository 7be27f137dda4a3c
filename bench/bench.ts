// The machinery of `npm run bench` (bench/run.ts) and of its smoke test: a fresh database on the
// test services with the seeded catalog, the API (src/server.ts) and the baseline
// (bench/baseline.ts) each in its own process, the bodies compared, then the scenarios, with
// rounds alternating API and baseline and the median of each reported.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import autocannon, { type Request as CannonRequest } from 'autocannon'
import { eq, sql } from 'drizzle-orm'
import { openDb } from '../db/client.js'
import { categories, products, users } from '../db/schema/index.js'
import { seedCatalog } from '../db/seed.js'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { bulkRestock } from '../src/inventory.js'
import { hashPassword } from '../src/passwords.js'
import { TEST_MONGODB_URL, TEST_REDIS_URL, adminQuery, databaseUrl, deleteRedisKeys, freePort, tsx } from '../test/helpers.js'

export interface BenchOptions {
  products: number
  /** Length of one round of one scenario. */
  seconds: number
  /**
   * Ends a round after this many answers instead (a load without a set rate): the smoke test's
   * rounds prove the machinery, and a timed round would keep both CPUs busy for all its seconds.
   */
  answersPerRound?: number
  rounds: number
  connections: number
  /** Checkouts per second in the steady-rate scenario. */
  checkoutRate: number
  /** Only the scenarios whose name contains one of these. */
  only?: string[]
  /** Extra node flags for the API process (e.g. --cpu-prof). */
  apiNodeArgs?: string[]
  /** Buyers in each flash-sale run (300); the hot variant has a third of that in stock. */
  flashBuyers?: number
  log?: (line: string) => void
}

export interface Measure { rps: number; p50: number; p99: number; non2xx: number; errors: number; hitRate: number | null }
export interface ScenarioResult {
  name: string
  /** Each variant's median over the rounds: 'baseline', 'api' (cache on or no cache), 'api cache off'. */
  variants: Record<string, Measure>
  rounds: Record<string, Measure[]>
  note?: string
}
export interface BenchResult {
  startedAt: string
  machine: { nproc: number; memoryGiB: number; cpu: string; node: string }
  options: Omit<BenchOptions, 'log'>
  seedMs: number
  bodiesMatch: Record<string, boolean>
  scenarios: ScenarioResult[]
  flashSale?: FlashSaleResult
}

/** One flash sale: every buyer's checkout sent at once through HTTP. */
export interface FlashRun {
  buyers: number; units: number; orders: number; refused: number; other: number
  /** From the first request to the last order placed, and to the last answer (sold out). */
  lastOrderMs: number; allAnsweredMs: number
  ordersPerSecond: number
  /** pg_stat_activity sampled every 10 ms while it ran: backends of the API waiting on a lock, in a transaction, or running a query. */
  lockWaitSamples: { samples: number; peakLockWaiters: number; meanLockWaiters: number; meanActive: number; meanIdleInTransaction: number; lockWaitEvents: Record<string, number> }
}
export interface FlashSaleResult { hot: FlashRun; spread: FlashRun; hotToSpread: number }

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const PASSWORD = 'correct horse battery'
const SEARCH_TERMS = ['shirt', 'chair', 'table', 'shoes', 'gloves', 'computer', 'hat', 'keyboard']
const ADDRESS = { recipientName: 'Bench Buyer', line1: '1 Load Street', city: 'Berlin', postalCode: '10115', country: 'DE' }

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] ?? 0 }
function medianMeasure(rounds: Measure[]): Measure {
  const hits = rounds.map((r) => r.hitRate).filter((h): h is number => h !== null)
  return {
    rps: median(rounds.map((r) => r.rps)), p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)),
    non2xx: rounds.reduce((s, r) => s + r.non2xx, 0), errors: rounds.reduce((s, r) => s + r.errors, 0),
    hitRate: hits.length ? median(hits) : null,
  }
}

/** Starts a child process and resolves when it answers GET /health. */
/** A new database on the test PostgreSQL, migrated, named `<prefix>_<random>` (also the stores' names of a run); dropped by the cleanups. */
export async function freshDatabase(prefix: string, cleanups: (() => Promise<unknown>)[]) {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`
  await adminQuery(`create database ${name}`)
  cleanups.push(() => adminQuery(`drop database if exists ${name} with (force)`))
  const url = databaseUrl(name)
  const handle = await openDb({ url, pgliteDataDir: 'memory://', poolMax: 2 })
  await handle.migrate()
  await handle.close()
  return { name, url }
}

export async function startProcess(name: string, args: string[], env: Record<string, string>, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${stderr}`))))
  const deadline = Date.now() + 60_000
  for (;;) {
    try {
      const res = await Promise.race([fetch(`http://127.0.0.1:${port}/health`), exited])
      if (res.ok) { child.removeAllListeners('exit'); return child }
    } catch (err) {
      if ((err as Error).message.startsWith(`${name} exited`)) throw err
    }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`${name} did not answer in 60 s: ${stderr}`) }
    await new Promise((r) => setTimeout(r, 200))
  }
}

export async function stopProcess(child: ChildProcess) {
  if (child.exitCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

interface Load {
  connections: number
  requests: CannonRequest[]
  overallRate?: number
}

/** One autocannon round; hit rate from X-Cache where the answers carry it. */
async function measure(base: string, load: Load, seconds: number, answers?: number): Promise<Measure> {
  let hits = 0
  let looked = 0
  const requests = load.requests.map((r) => ({
    ...r,
    onResponse: (_status: number, _body: string, _context: unknown, headers: Record<string, string>) => {
      const cache = headers['x-cache']
      if (cache) { looked++; if (cache === 'hit') hits++ }
    },
  }))
  // A round of so many answers ends at the first sample after the last one: sampled every 100 ms
  // rather than every second, and its rate is then answers over the round's time.
  const bounded = !load.overallRate && answers !== undefined
  const result = await autocannon({
    url: base, connections: load.connections, duration: seconds, requests: requests as CannonRequest[],
    ...(load.overallRate ? { overallRate: load.overallRate } : bounded ? { amount: answers, sampleInt: 100 } : {}),
  })
  return {
    rps: bounded ? result.requests.total / result.duration : result.requests.average, p50: result.latency.p50, p99: result.latency.p99,
    non2xx: result.non2xx, errors: result.errors + result.timeouts, hitRate: looked ? hits / looked : null,
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => {})
  const cleanups: (() => Promise<unknown>)[] = []
  const os = await import('node:os')
  const result: BenchResult = {
    startedAt: new Date().toISOString(),
    machine: { nproc: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30), cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
    options: { ...opts, log: undefined } as BenchResult['options'],
    seedMs: 0,
    bodiesMatch: {},
    scenarios: [],
  }
  try {
    // 1. A fresh database, migrated and seeded, and the stores' names of its own.
    const { name, url } = await freshDatabase('bench', cleanups)
    const env: Record<string, string> = {
      NODE_ENV: 'test', LOG_LEVEL: 'warn', HOST: '127.0.0.1',
      DATABASE_URL: url, DB_MIGRATE: 'false', MONGODB_URL: `${TEST_MONGODB_URL}${name}`, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: `${name}:`,
      JWT_SECRET: randomBytes(32).toString('hex'), JOBS: 'off', RATE_LIMIT_MAX: '1000000000', AUTH_RATE_LIMIT_MAX: '1000000000', AUTH_ACCOUNT_RATE_LIMIT_MAX: '1000000000',
    }
    const setup: App = await buildApp(loadConfig(env), { logger: false })
    cleanups.push(async () => {
      await setup.mongo.dropDatabase().catch(() => {})
      await setup.close()
      await deleteRedisKeys(env.REDIS_KEY_PREFIX!)
    })
    const seedStarted = performance.now()
    await seedCatalog(setup.db, { categories: 50, products: opts.products, variantsPerProduct: 3, seed: 42 })
    result.seedMs = Math.round(performance.now() - seedStarted)
    log(`seeded ${opts.products} products in ${(result.seedMs / 1000).toFixed(1)} s`)
    // Checkouts must not run the catalog out of stock mid-run (the in-stock flags stay as seeded);
    // through the inventory module, the only writer of stock.
    const stocked = (await setup.db.execute<{ id: string }>(sql`select id from product_variants where stock > 0`)).rows
    await setup.db.transaction((tx) => bulkRestock(tx, stocked.map((v) => ({ id: v.id, stock: 1_000_000 })), 'bench'))
    // A second currency: every variant also priced in USD (a listing in it reads product_price_ranges).
    await setup.db.execute(sql`insert into variant_prices (variant_id, currency, amount_minor) select id, 'USD', round(price_minor * 1.08)::int from product_variants`)
    await setup.db.execute(sql`insert into product_price_ranges (product_id, currency, min_minor, max_minor)
      select v.product_id, 'USD', coalesce(min(vp.amount_minor) filter (where v.is_active), min(vp.amount_minor)), coalesce(max(vp.amount_minor) filter (where v.is_active), max(vp.amount_minor))
      from variant_prices vp join product_variants v on v.id = vp.variant_id where vp.currency = 'USD' group by v.product_id`)
    await setup.db.execute(sql`analyze`)

    const hot = (await setup.db.select({ id: products.id }).from(products).where(eq(products.status, 'active')).orderBy(products.createdAt).limit(1000)).map((r) => r.id)
    const variantRows = await setup.db.execute<{ id: string }>(sql`select v.id from product_variants v join products p on p.id = v.product_id where p.status = 'active' and v.stock > 0 order by v.sku limit 200`)
    const variants = variantRows.rows.map((r) => r.id)
    const roots = (await setup.db.select({ id: categories.id }).from(categories).where(sql`${categories.parentId} is null`)).map((r) => r.id)

    // People: one account that signs in (a real argon2 hash), an admin, and customers with carts.
    const email = 'bench-login@example.com'
    await setup.db.insert(users).values({ email, name: 'Bench Login', passwordHash: await hashPassword(PASSWORD), emailVerifiedAt: new Date() })
    const [admin] = await setup.db.insert(users).values({ email: 'bench-admin@example.com', name: 'Bench Admin', passwordHash: 'x', role: 'admin' }).returning({ id: users.id })
    const adminSession = await setup.sessions.create(admin!.id)
    const customerCount = Math.max(8, opts.connections * 4)
    const customerRows = await setup.db.insert(users).values(Array.from({ length: customerCount }, (_, i) => ({
      email: `bench-${i}@example.com`, name: `Bench ${i}`, passwordHash: 'x',
    }))).returning({ id: users.id })
    const customers = await Promise.all(customerRows.map(async ({ id }) => ({ id, sid: (await setup.sessions.create(id)).familyId })))
    // Access tokens live 15 minutes: fresh ones for every scenario.
    const adminAuth = () => ({ authorization: `Bearer ${setup.issueAccessToken({ sub: admin!.id, role: 'admin', sid: adminSession.familyId })}` })
    const customerAuth = () => customers.map((c) => ({ authorization: `Bearer ${setup.issueAccessToken({ sub: c.id, role: 'customer', sid: c.sid })}` }))
    for (const [i, auth] of customerAuth().entries()) {
      for (let k = 0; k < 3; k++) {
        const res = await setup.inject({ method: 'POST', url: '/cart/items', headers: auth, payload: { variantId: variants[(i * 3 + k) % variants.length], quantity: 1 } })
        if (res.statusCode !== 200) throw new Error(`filling carts: ${res.statusCode} ${res.body}`)
      }
    }

    // Checkout needs a shipping option when several apply to the destination: the standard one.
    const quote = await setup.inject({ method: 'GET', url: `/cart/shipping-options?country=${ADDRESS.country}`, headers: customerAuth()[0]! })
    const options = (quote.json() as { options?: { id: string; name: string }[] }).options ?? []
    const shippingOptionId = (options.find((o) => o.name === 'Standard') ?? options[0])?.id

    // 2. The API and the baseline, each in a process of its own.
    const apiPort = await freePort()
    const basePort = await freePort()
    // Under the test runner, the JavaScript it compiled (no TypeScript loader in each process).
    const script = (file: string) => tsx(file).slice(1)
    const api = await startProcess('API', [...(opts.apiNodeArgs ?? []), ...script('src/server.ts')], { ...env, PORT: String(apiPort) }, apiPort)
    cleanups.push(() => stopProcess(api))
    // The same API with CACHE=off: the same anonymous reads, each from PostgreSQL.
    const apiOffPort = await freePort()
    const apiOff = await startProcess('API (cache off)', [...(opts.apiNodeArgs ?? []), ...script('src/server.ts')], { ...env, PORT: String(apiOffPort), CACHE: 'off' }, apiOffPort)
    cleanups.push(() => stopProcess(apiOff))
    const apiOffBase = `http://127.0.0.1:${apiOffPort}`
    const baselineProc = await startProcess('baseline', script('bench/baseline.ts'), { DATABASE_URL: url, MONGODB_URL: env.MONGODB_URL!, JWT_SECRET: env.JWT_SECRET!, PORT: String(basePort), STORE_CURRENCY: 'EUR', DB_POOL_MAX: '10' }, basePort)
    cleanups.push(() => stopProcess(baselineProc))
    const apiBase = `http://127.0.0.1:${apiPort}`
    const baselineBase = `http://127.0.0.1:${basePort}`
    log(`API on ${apiBase}, baseline on ${baselineBase}`)

    // 3. Same bytes: anonymous (a miss, then a hit) and admin answers against the baseline's.
    const samples: Record<string, string> = {
      'product by id': `/products/${hot[0]}`,
      'list page': '/products?limit=20',
      search: `/products?q=${SEARCH_TERMS[0]}&limit=20`,
      'category filter': `/products?category=${roots[0]}&limit=20`,
    }
    for (const [what, path] of Object.entries(samples)) {
      const expected = await (await fetch(baselineBase + path)).text()
      const answers = [
        await (await fetch(apiBase + path)).text(), await (await fetch(apiBase + path)).text(),
        await (await fetch(apiBase + path, { headers: adminAuth() })).text(), await (await fetch(apiOffBase + path)).text(),
      ]
      result.bodiesMatch[what] = answers.every((a) => a === expected)
      if (!result.bodiesMatch[what]) throw new Error(`${what}: the API's body differs from the baseline's\nAPI:      ${answers.find((a) => a !== expected)!.slice(0, 400)}\nbaseline: ${expected.slice(0, 400)}`)
    }
    log(`bodies identical: ${Object.keys(result.bodiesMatch).join(', ')}`)

    // 4. The scenarios.
    const c = opts.connections
    let turn = 0
    const rotate = <T>(xs: T[]) => () => xs[turn++ % xs.length]!
    const get = (paths: () => string, headers?: () => Record<string, string>): CannonRequest => ({
      method: 'GET',
      setupRequest: (req) => ({ ...req, path: paths(), headers: { ...req.headers, ...headers?.() } }),
    } as CannonRequest)
    const byId = rotate(hot.map((id) => `/products/${id}`))
    const lists = () => '/products?limit=20'
    const searches = rotate(SEARCH_TERMS.map((q) => `/products?q=${q}&limit=20`))
    const byCategory = rotate(roots.map((id) => `/products?category=${id}&limit=20`))

    type Variant = { name: string; base: string; load: () => Load }
    const scenarios: { name: string; variants: Variant[]; note?: string; warm?: () => Promise<void>; after?: () => Promise<void> }[] = []
    /** A read against the baseline; `baselinePaths` when the baseline answers another request (it knows no price lists). */
    const readScenario = (name: string, paths: () => string, count: number, more: { baselinePaths?: () => string; before?: () => Promise<void>; after?: () => Promise<void>; note?: string } = {}) => {
      scenarios.push({
        name, note: more.note, after: more.after,
        warm: async () => {
          await more.before?.()
          // Fill the cache once (a round starting cold would measure misses).
          for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, () => fetch(apiBase + paths()).then((r) => r.arrayBuffer())))
        },
        variants: [
          { name: 'baseline', base: baselineBase, load: () => ({ connections: c, requests: [get(more.baselinePaths ?? paths)] }) },
          { name: 'api', base: apiBase, load: () => ({ connections: c, requests: [get(paths)] }) },
          { name: 'api cache off', base: apiOffBase, load: () => ({ connections: c, requests: [get(paths)] }) },
        ],
      })
    }
    scenarios.push({
      name: 'GET /health',
      variants: [
        { name: 'baseline', base: baselineBase, load: () => ({ connections: c, requests: [{ method: 'GET', path: '/health' }] }) },
        { name: 'api', base: apiBase, load: () => ({ connections: c, requests: [{ method: 'GET', path: '/health' }] }) },
      ],
      note: 'baseline: a bare node:http answer',
    })
    readScenario('product by id', byId, hot.length)
    readScenario('list page (20)', lists, 1)
    // Two currencies and an active sale (500 variants priced in EUR and USD): the shopper's prices
    // decide the page and its order. The list exists only for this scenario, so the other rows and
    // the body comparison with the baseline (which knows no price lists) are as before.
    const pricedLists = rotate(['/products?limit=20', '/products?limit=20&sort=price_asc', '/products?limit=20&currency=USD', '/products?limit=20&currency=USD&sort=price_asc'])
    let saleId: string | undefined
    readScenario('list page (20), 2 currencies + price list', pricedLists, 4, {
      baselinePaths: lists,
      before: async () => {
        const sold = await setup.db.execute<{ id: string; price_minor: number }>(sql`select id, price_minor from product_variants where is_active order by sku limit 500`)
        const prices = sold.rows.flatMap((v) => [{ variantId: v.id, currency: 'EUR', amountMinor: Math.floor(v.price_minor * 0.7) }, { variantId: v.id, currency: 'USD', amountMinor: Math.floor(v.price_minor * 0.75) }])
        const res = await setup.inject({ method: 'POST', url: '/price-lists', headers: adminAuth(), payload: { name: 'Bench sale', kind: 'sale', status: 'active', prices } })
        if (res.statusCode !== 201) throw new Error(`price list: ${res.statusCode} ${res.body}`)
        saleId = res.json().id
        // The API processes learn of the write through the cache's version channel.
        await new Promise((r) => setTimeout(r, 500))
      },
      after: async () => {
        if (saleId) await setup.inject({ method: 'DELETE', url: `/price-lists/${saleId}`, headers: adminAuth() })
        await new Promise((r) => setTimeout(r, 500))
      },
      note: 'API: EUR and USD pages, newest and by price, under an active sale on 500 variants in both currencies; baseline: the list page row\'s plain EUR page',
    })
    readScenario('text search', searches, SEARCH_TERMS.length)
    readScenario('category filter', byCategory, roots.length)

    // Per-customer scenarios: each round of requests of a connection takes the next customer.
    let auths: Record<string, string>[] = []
    let nextCustomer = 0
    const asCustomer = (request: Partial<CannonRequest> & { path?: string }, body?: (ctx: Record<string, unknown>) => unknown, path?: (ctx: Record<string, unknown>) => string, first = false): CannonRequest => ({
      method: request.method ?? 'GET',
      setupRequest: (req, context) => {
        const ctx = context as Record<string, unknown>
        if (first || ctx.i === undefined) ctx.i = nextCustomer++ % auths.length
        const i = ctx.i as number
        ctx.variant ??= variants[(i + nextCustomer) % variants.length]
        return {
          ...req, path: path ? path(ctx) : (request.path ?? req.path),
          headers: { ...req.headers, ...auths[i], ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body(ctx)) } : {}),
        }
      },
    } as CannonRequest)
    const refreshAuths = async () => { auths = customerAuth() }
    scenarios.push({
      name: 'cart read', warm: refreshAuths,
      variants: [
        { name: 'baseline', base: baselineBase, load: () => ({ connections: c, requests: [asCustomer({ path: '/cart' }, undefined, undefined, true)] }) },
        { name: 'api', base: apiBase, load: () => ({ connections: c, requests: [asCustomer({ path: '/cart' }, undefined, undefined, true)] }) },
      ],
      note: 'each connection a signed-in customer with 3 lines; baseline: one findOne and the pricing statements',
    })
    scenarios.push({
      name: 'add to cart (+ remove)', warm: refreshAuths,
      variants: (['baseline', 'api'] as const).map((name) => ({
        name, base: name === 'api' ? apiBase : baselineBase, load: () => ({
          connections: c,
          requests: [
            asCustomer({ method: 'POST', path: '/cart/items' }, (ctx) => ({ variantId: ctx.variant, quantity: 1 }), undefined, true),
            asCustomer({ method: 'DELETE' }, undefined, (ctx) => `/cart/items/${ctx.variant as string}`),
          ],
        }),
      })),
      note: 'POST /cart/items then DELETE of that line, both counted; baseline: findOne, the pricing statements, an updateOne naming the version, and the view priced',
    })
    const loginBody = JSON.stringify({ email, password: PASSWORD })
    // argon2 is CPU-bound work on libuv's pool: a few connections keep it busy, 50 would only queue.
    const loginConnections = Math.min(c, 8)
    const login: CannonRequest = { method: 'POST', path: '/auth/login', headers: { 'content-type': 'application/json' }, body: loginBody }
    scenarios.push({
      name: 'login',
      variants: [
        { name: 'baseline', base: baselineBase, load: () => ({ connections: loginConnections, requests: [login] }) },
        { name: 'api', base: apiBase, load: () => ({ connections: loginConnections, requests: [login] }) },
      ],
      note: 'baseline: one argon2id verify at the API parameters (19 MiB, t=2, p=1) per request; at most 8 connections',
    })
    const checkout = asCustomer({ method: 'POST', path: '/orders' }, () => ({ shippingAddress: ADDRESS, ...(shippingOptionId ? { shippingOptionId } : {}) }))
    const addOne = asCustomer({ method: 'POST', path: '/cart/items' }, (ctx) => ({ variantId: ctx.variant, quantity: 1 }), undefined, true)
    scenarios.push({
      name: `checkout at ${opts.checkoutRate}/s`, warm: refreshAuths,
      variants: [{ name: 'api', base: apiBase, load: () => ({ connections: Math.min(c, 10), overallRate: opts.checkoutRate * 2, requests: [addOne, checkout] }) }],
      note: 'add to cart then POST /orders, both counted, at a fixed rate; no baseline',
    })
    // Mixed: per connection, cycles of 50: 45 anonymous catalog reads, 4 cart requests, 1 checkout.
    const browse = [byId, byId, lists, searches, byCategory]
    const browseRequests = Array.from({ length: 45 }, (_, k) => get(browse[k % browse.length]!))
    const mixed = [...browseRequests.slice(0, 11), addOne, ...browseRequests.slice(11, 22), asCustomer({ path: '/cart' }),
      ...browseRequests.slice(22, 33), asCustomer({ method: 'POST', path: '/cart/items' }, (ctx) => ({ variantId: ctx.variant, quantity: 1 })),
      ...browseRequests.slice(33), asCustomer({ path: '/cart' }), checkout]
    scenarios.push({
      name: 'mixed: browse 90%, cart 8%, checkout 2%', warm: refreshAuths,
      variants: [
        { name: 'baseline', base: baselineBase, load: () => ({ connections: c, requests: browseRequests }) },
        { name: 'api', base: apiBase, load: () => ({ connections: c, requests: mixed }) },
      ],
      note: 'baseline: the same browse requests only; the ratio compares the API\'s browse share (90% of its req/s) with it',
    })

    if (!opts.only?.length || opts.only.some((o) => 'checkout burst'.includes(o))) {
      result.scenarios.push(...await checkoutBursts({ setup, apiBase, baselineBase, shippingOptionId, rounds: opts.rounds, log }))
    }
    if (!opts.only?.length || opts.only.some((o) => 'flash sale'.includes(o))) {
      result.flashSale = await flashSale({ setup, url, apiBase, shippingOptionId, log, buyers: opts.flashBuyers ?? 300 })
    }

    const selected = scenarios.filter((s) => !opts.only?.length || opts.only.some((o) => s.name.includes(o)))
    for (const scenario of selected) {
      await scenario.warm?.()
      const rounds: Record<string, Measure[]> = {}
      for (let round = 0; round < opts.rounds; round++) {
        // Alternate which side goes first, so neither always runs on a warmer machine.
        const order = round % 2 ? [...scenario.variants].reverse() : scenario.variants
        for (const variant of order) {
          const m = await measure(variant.base, variant.load(), opts.seconds, opts.answersPerRound)
          ;(rounds[variant.name] ??= []).push(m)
          log(`${scenario.name} / ${variant.name} round ${round + 1}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50} ms, p99 ${m.p99} ms${m.hitRate !== null ? `, hits ${(m.hitRate * 100).toFixed(0)}%` : ''}${m.non2xx ? `, ${m.non2xx} non-2xx` : ''}`)
        }
      }
      await scenario.after?.()
      const variantsOut = Object.fromEntries(Object.entries(rounds).map(([k, v]) => [k, medianMeasure(v)]))
      result.scenarios.push({ name: scenario.name, variants: variantsOut, rounds, note: scenario.note })
    }
    return result
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: Error) => log(`cleanup: ${err.message}`))
  }
}

/**
 * Checkout bursts: 10, 50 and 300 signed-in buyers, each with one line of a variant no other buyer
 * of the burst has, place their orders at the same moment through HTTP, against the API and the
 * baseline in alternating order. Carts are filled again before every burst (not measured).
 * Throughput is orders over the time to the last answer; p50 and p99 are of each buyer's wait.
 */
async function checkoutBursts({ setup, apiBase, baselineBase, shippingOptionId, rounds, log }: { setup: App; apiBase: string; baselineBase: string; shippingOptionId?: string; rounds: number; log: (line: string) => void }): Promise<ScenarioResult[]> {
  const variantIds = (await setup.db.execute<{ id: string }>(sql`select v.id from product_variants v join products p on p.id = v.product_id where p.status = 'active' and v.is_active and v.stock > 1000 order by v.sku desc limit 300`)).rows.map((r) => r.id)
  // A small catalog (the smoke test's) runs the bursts it has variants for.
  const sizes = [10, 50, 300].filter((n) => n <= variantIds.length)
  const most = Math.max(0, ...sizes)
  const rows = await setup.db.insert(users).values(Array.from({ length: most }, (_, i) => ({ email: `burst-${i}@example.com`, name: `Burst ${i}`, passwordHash: 'x' }))).returning({ id: users.id })
  const sessions = await Promise.all(rows.map(async ({ id }) => ({ id, sid: (await setup.sessions.create(id)).familyId })))
  const body = JSON.stringify({ shippingAddress: ADDRESS, ...(shippingOptionId ? { shippingOptionId } : {}) })
  const burst = async (base: string, n: number): Promise<Measure> => {
    const auths = sessions.slice(0, n).map((c) => ({ authorization: `Bearer ${setup.issueAccessToken({ sub: c.id, role: 'customer', sid: c.sid })}` }))
    for (let i = 0; i < n; i += 50) {
      await Promise.all(auths.slice(i, i + 50).map(async (auth, k) => {
        const res = await setup.inject({ method: 'POST', url: '/cart/items', headers: auth, payload: { variantId: variantIds[i + k], quantity: 1 } })
        if (res.statusCode !== 200) throw new Error(`burst cart: ${res.statusCode} ${res.body}`)
      }))
    }
    const started = performance.now()
    const answers = await Promise.all(auths.map(async (auth) => {
      try {
        const res = await fetch(`${base}/orders`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(120_000) })
        await res.arrayBuffer()
        return { status: res.status, ms: performance.now() - started }
      } catch {
        return { status: 0, ms: performance.now() - started }
      }
    }))
    const waits = answers.map((a) => a.ms).sort((a, b) => a - b)
    const at = (q: number) => Math.round(waits[Math.min(waits.length - 1, Math.ceil(q * waits.length) - 1)]!)
    const placed = answers.filter((a) => a.status === 201).length
    const failed = answers.filter((a) => a.status === 0).length
    return { rps: placed / (waits[waits.length - 1]! / 1000), p50: at(0.5), p99: at(0.99), non2xx: n - placed - failed, errors: failed, hitRate: null }
  }
  const out: ScenarioResult[] = []
  for (const n of sizes) {
    const sides = [{ name: 'baseline', base: baselineBase }, { name: 'api', base: apiBase }]
    const measured: Record<string, Measure[]> = {}
    for (let round = 0; round < rounds; round++) {
      for (const side of round % 2 ? [...sides].reverse() : sides) {
        const m = await burst(side.base, n)
        ;(measured[side.name] ??= []).push(m)
        log(`checkout burst ${n} / ${side.name} round ${round + 1}: ${m.rps.toFixed(0)} orders/s, p50 ${m.p50} ms, p99 ${m.p99} ms${m.non2xx ? `, ${m.non2xx} not placed` : ''}`)
      }
    }
    out.push({
      name: `checkout burst (${n} at once)`, rounds: measured,
      variants: Object.fromEntries(Object.entries(measured).map(([k, v]) => [k, medianMeasure(v)])),
      note: 'each buyer a different variant; req/s is orders over the time to the last answer; baseline: node:http, the MongoDB driver and pg, one transaction on one connection',
    })
  }
  return out
}

/**
 * The flash sale: 300 buyers of one variant with 100 units, then 300 buyers of 300 variants
 * (one each, plenty of stock), each buyer's POST /orders sent at the same moment through HTTP.
 * Exactly `units` orders may come out of the first. While each runs, pg_stat_activity is
 * sampled: how many of the API's backends wait on a lock, run, or sit in a transaction.
 */
async function flashSale({ setup, url, apiBase, shippingOptionId, log, buyers }: { setup: App; url: string; apiBase: string; shippingOptionId?: string; log: (line: string) => void; buyers: number }): Promise<FlashSaleResult> {
  const BUYERS = buyers
  const HOT_UNITS = Math.floor(buyers / 3)
  const [admin] = await setup.db.insert(users).values({ email: 'flash-admin@example.com', name: 'Flash Admin', passwordHash: 'x', role: 'admin' }).returning({ id: users.id })
  const adminAuth = { authorization: `Bearer ${setup.issueAccessToken({ sub: admin!.id, role: 'admin', sid: (await setup.sessions.create(admin!.id)).familyId })}` }
  const create = async (name: string, variants: number, stock: number): Promise<string[]> => {
    const res = await setup.inject({
      method: 'POST', url: '/products', headers: adminAuth,
      payload: { name, slug: name.toLowerCase().replace(/[^a-z0-9]+/g, '-'), status: 'active', variants: Array.from({ length: variants }, (_, i) => ({ sku: `${name}-${i}`.toUpperCase().replace(/[^A-Z0-9-]/g, '-'), priceMinor: 1000, stock, options: { n: String(i) } })) },
    })
    if (res.statusCode !== 201) throw new Error(`flash product: ${res.statusCode} ${res.body}`)
    return (res.json() as { variants: { id: string }[] }).variants.map((v) => v.id)
  }
  const buyersFor = async (tag: string, variantFor: (i: number) => string) => {
    const rows = await setup.db.insert(users).values(Array.from({ length: BUYERS }, (_, i) => ({ email: `flash-${tag}-${i}@example.com`, name: `Flash ${i}`, passwordHash: 'x' }))).returning({ id: users.id })
    const auths = await Promise.all(rows.map(async ({ id }) => ({ authorization: `Bearer ${setup.issueAccessToken({ sub: id, role: 'customer', sid: (await setup.sessions.create(id)).familyId })}` })))
    for (const [i, auth] of auths.entries()) {
      const res = await setup.inject({ method: 'POST', url: '/cart/items', headers: auth, payload: { variantId: variantFor(i), quantity: 1 } })
      if (res.statusCode !== 200) throw new Error(`flash cart: ${res.statusCode} ${res.body}`)
    }
    return auths
  }
  const [hotVariant] = await create('Flash Hot', 1, HOT_UNITS)
  // As many variants as buyers, over 3 products, every one with plenty of stock.
  const perProduct = Math.ceil(BUYERS / 3)
  const spreadVariants = [...await create('Flash Spread A', perProduct, 1000), ...await create('Flash Spread B', perProduct, 1000), ...await create('Flash Spread C', perProduct, 1000)]
  const hotBuyers = await buyersFor('hot', () => hotVariant!)
  const spreadBuyers = await buyersFor('spread', (i) => spreadVariants[i]!)

  const sampler = new pg.Client({ connectionString: url })
  await sampler.connect()
  try {
    const run = async (auths: Record<string, string>[], units: number): Promise<FlashRun> => {
      const samples: { waiting: number; active: number; idleTx: number; events: string[] }[] = []
      let sampling = true
      const sampling$ = (async () => {
        while (sampling) {
          const { rows } = await sampler.query<{ state: string | null; wait_event_type: string | null; wait_event: string | null }>(
            `select state, wait_event_type, wait_event from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and backend_type = 'client backend'`)
          const waiting = rows.filter((r) => r.wait_event_type === 'Lock')
          samples.push({ waiting: waiting.length, active: rows.filter((r) => r.state === 'active').length, idleTx: rows.filter((r) => r.state === 'idle in transaction').length, events: waiting.map((r) => r.wait_event ?? '?') })
          await new Promise((r) => setTimeout(r, 10))
        }
      })()
      const body = JSON.stringify({ shippingAddress: ADDRESS, ...(shippingOptionId ? { shippingOptionId } : {}) })
      const started = performance.now()
      const answers = await Promise.all(auths.map(async (auth) => {
        const res = await fetch(`${apiBase}/orders`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body })
        await res.arrayBuffer()
        return { status: res.status, at: performance.now() - started }
      }))
      sampling = false
      await sampling$
      const placed = answers.filter((a) => a.status === 201)
      const lastOrderMs = Math.max(0, ...placed.map((a) => a.at))
      const events: Record<string, number> = {}
      for (const e of samples.flatMap((x) => x.events)) events[e] = (events[e] ?? 0) + 1
      const mean = (f: (x: typeof samples[number]) => number) => samples.length ? samples.reduce((n, x) => n + f(x), 0) / samples.length : 0
      return {
        buyers: auths.length, units, orders: placed.length, refused: answers.filter((a) => a.status === 409).length,
        other: answers.filter((a) => a.status !== 201 && a.status !== 409).length,
        lastOrderMs: Math.round(lastOrderMs), allAnsweredMs: Math.round(Math.max(...answers.map((a) => a.at))),
        ordersPerSecond: lastOrderMs > 0 ? placed.length / (lastOrderMs / 1000) : 0,
        lockWaitSamples: {
          samples: samples.length, peakLockWaiters: Math.max(0, ...samples.map((x) => x.waiting)),
          meanLockWaiters: mean((x) => x.waiting), meanActive: mean((x) => x.active), meanIdleInTransaction: mean((x) => x.idleTx), lockWaitEvents: events,
        },
      }
    }
    const hot = await run(hotBuyers, HOT_UNITS)
    log(`flash sale, hot: ${hot.orders} orders, ${hot.refused} refused, ${hot.other} other; last order at ${hot.lastOrderMs} ms, sold out (all answered) at ${hot.allAnsweredMs} ms; ${hot.ordersPerSecond.toFixed(0)} orders/s; lock waiters mean ${hot.lockWaitSamples.meanLockWaiters.toFixed(1)} peak ${hot.lockWaitSamples.peakLockWaiters}`)
    const spread = await run(spreadBuyers, BUYERS * 1000)
    log(`flash sale, spread: ${spread.orders} orders, ${spread.other} other; all answered at ${spread.allAnsweredMs} ms; ${spread.ordersPerSecond.toFixed(0)} orders/s; lock waiters mean ${spread.lockWaitSamples.meanLockWaiters.toFixed(1)} peak ${spread.lockWaitSamples.peakLockWaiters}`)
    return { hot, spread, hotToSpread: spread.ordersPerSecond > 0 ? hot.ordersPerSecond / spread.ordersPerSecond : 0 }
  } finally {
    await sampler.end()
  }
}

const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1))

/** The result as a markdown table: one row per scenario and variant, ratios to that scenario's baseline. */
export function toMarkdown(result: BenchResult): string {
  const rows = ['| scenario | server | req/s | p50 ms | p99 ms | ratio to baseline | p99 / baseline p99 | cache hits |', '|---|---|---|---|---|---|---|---|']
  for (const s of result.scenarios) {
    const base = s.variants.baseline
    for (const [name, m] of Object.entries(s.variants)) {
      const isMixed = s.name.startsWith('mixed')
      const rps = isMixed && name === 'api' ? m.rps * 0.9 : m.rps
      const ratio = base && name !== 'baseline' ? `${(rps / base.rps).toFixed(2)}x${isMixed ? ' (browse share)' : ''}` : name === 'baseline' ? '1.00' : '-'
      const p99 = base && name !== 'baseline' && base.p99 > 0 ? `${(m.p99 / base.p99).toFixed(2)}x` : '-'
      const fail = m.non2xx || m.errors ? ` (${m.non2xx} non-2xx, ${m.errors} errors)` : ''
      rows.push(`| ${s.name} | ${name}${fail} | ${fmt(m.rps)} | ${m.p50} | ${m.p99} | ${ratio} | ${p99} | ${m.hitRate === null ? '-' : `${(m.hitRate * 100).toFixed(0)}%`} |`)
    }
  }
  const o = result.options
  const f = result.flashSale
  const flash = f ? `\n\n| flash sale | buyers | units | orders | 409s | other | last order ms | all answered ms | orders/s | hot/spread | lock waiters mean / peak |\n|---|---|---|---|---|---|---|---|---|---|---|\n` +
    ([['hot: 1 variant', f.hot], ['spread: 300 variants', f.spread]] as const).map(([name, r]) =>
      `| ${name} | ${r.buyers} | ${name.startsWith('hot') ? r.units : '-'} | ${r.orders} | ${r.refused} | ${r.other} | ${r.lastOrderMs} | ${r.allAnsweredMs} | ${fmt(r.ordersPerSecond)} | ${name.startsWith('hot') ? `${f.hotToSpread.toFixed(2)}x` : '1.00'} | ${r.lockWaitSamples.meanLockWaiters.toFixed(1)} / ${r.lockWaitSamples.peakLockWaiters} |`).join('\n') : ''
  return `${rows.join('\n')}${flash}\n\n${result.machine.nproc} CPUs (${result.machine.cpu}), ${result.machine.memoryGiB} GiB, Node ${result.machine.node}; ` +
    `${o.products} products (seeded in ${(result.seedMs / 1000).toFixed(1)} s), ${o.connections} connections, ${o.rounds} rounds of ${o.seconds} s per server, median; bodies identical: ${Object.entries(result.bodiesMatch).map(([k, v]) => `${k} ${v ? 'yes' : 'NO'}`).join(', ')}.`
}

