// The catalog import scenario of `npm run bench` (`--only "catalog import"`; issue #28): a CSV of
// `products` products with 3 variants each, streamed to a file (never held in memory), uploaded
// through the API as an admin would (POST /imports/products, text/csv, the body streamed from
// disk), run by the worker (`src/worker.ts`, its own process, BullMQ on the test Redis), polled
// with GET /imports/{id} until it ends; then the same file again, which must change nothing.
// Reported: rows/s, the time of each pass, and the worker's peak memory (VmHWM of its process,
// read from /proc, and VmRSS sampled while the import runs).
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import pg from 'pg'
import { sql } from 'drizzle-orm'
import { categories, users } from '../db/schema/index.js'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { TEST_MONGODB_URL, TEST_REDIS_URL, deleteRedisKeys, freePort } from '../test/helpers.js'
import { freshDatabase, startProcess, stopProcess } from './bench.js'

export interface ImportBenchOptions {
  /** Products in the file; each has 3 variants (rows). */
  products: number
  log?: (line: string) => void
}

export interface ImportRun {
  status: string
  rows: number
  created: number
  updated: number
  unchanged: number
  failed: number
  /** From the upload's first byte to the job's end as the poll saw it. */
  totalMs: number
  uploadMs: number
  /** The worker's two passes, from the job's own timestamps and the poll (validation ends at 50%). */
  validateMs: number
  writeMs: number
  rowsPerSecond: number
  /** The worker's resident memory while this import ran: sampled peak (VmRSS) and the process's high-water mark after it (VmHWM). */
  workerPeakRssMiB: number
  workerHwmMiB: number
  /** CPU time the worker process spent on this import (user + system): the rest of the wall time is PostgreSQL and waiting. */
  workerCpuMs: number
  /** Where PostgreSQL's time went: the statements the database's backends were running, sampled every 50 ms (statement start -> share of samples). */
  activeStatements: { statement: string; share: number }[]
  /** Share of samples with no statement running (the worker computing, or waiting between batches). */
  idleShare: number
}

export interface ImportBenchResult {
  startedAt: string
  machine: { nproc: number; memoryGiB: number; cpu: string; node: string }
  products: number
  rows: number
  fileBytes: number
  generateMs: number
  /** The worker's resident memory once started, before any import. */
  workerIdleRssMiB: number
  first: ImportRun
  again: ImportRun
  counts: { products: number; variants: number; prices: number; levels: number; movements: number }
}

const HEADER = 'handle,name,description,status,category,sku,weight_grams,option_size,price_EUR,price_USD,stock_Default'
const SIZES = ['S', 'M', 'L']
const CATEGORY_PATHS = ['bench-apparel/bench-shirts', 'bench-apparel/bench-hats', 'bench-home']

/** Writes the file row by row, waiting on the stream's back-pressure, so memory stays flat. */
async function writeCsv(path: string, productCount: number) {
  const out = createWriteStream(path)
  const write = async (line: string) => { if (!out.write(line)) await once(out, 'drain') }
  await write(`${HEADER}\n`)
  for (let p = 0; p < productCount; p++) {
    const handle = `bench-import-${p}`
    const category = CATEGORY_PATHS[p % CATEGORY_PATHS.length]
    for (let v = 0; v < 3; v++) {
      const cents = 500 + ((p * 7 + v * 100) % 9000)
      await write(`${handle},Bench import product ${p},"Made for the import bench, product ${p}",active,${category},BI-${p}-${SIZES[v]},${100 + v * 50},${SIZES[v]},${(cents / 100).toFixed(2)},${((cents * 1.08) / 100).toFixed(2)},${(p + v) % 50}\n`)
    }
  }
  out.end()
  await once(out, 'finish')
}

const kib = (field: string, pid: number) => {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : 0
}
const mib = (kB: number) => Math.round(kB / 1024)
/** The process's CPU time (user + system) in ms, from /proc/PID/stat. */
const cpuMs = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100 // clock ticks (USER_HZ 100)
}

export async function runImportBench(opts: ImportBenchOptions): Promise<ImportBenchResult> {
  const log = opts.log ?? (() => {})
  const cleanups: (() => Promise<unknown>)[] = []
  const os = await import('node:os')
  try {
    const { name, url } = await freshDatabase('bench_import', cleanups)
    const dir = mkdtempSync(join(tmpdir(), 'bench-import-'))
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
    const env: Record<string, string> = {
      NODE_ENV: 'test', LOG_LEVEL: 'warn', HOST: '127.0.0.1', STORE_CURRENCY: 'EUR',
      DATABASE_URL: url, DB_MIGRATE: 'false', MONGODB_URL: `${TEST_MONGODB_URL}${name}`, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: `${name}:`,
      JWT_SECRET: randomBytes(32).toString('hex'), RATE_LIMIT_MAX: '1000000000', CATALOG_FILES_DIR: join(dir, 'files'),
    }
    const setup: App = await buildApp(loadConfig({ ...env, JOBS: 'off' }), { logger: false })
    cleanups.push(async () => {
      await setup.mongo.dropDatabase().catch(() => {})
      await setup.close()
      await deleteRedisKeys(env.REDIS_KEY_PREFIX!)
    })
    // The category paths the file names, and an admin.
    const [apparel] = await setup.db.insert(categories).values({ name: 'Apparel', slug: 'bench-apparel' }).returning({ id: categories.id })
    await setup.db.insert(categories).values([
      { name: 'Shirts', slug: 'bench-shirts', parentId: apparel!.id }, { name: 'Hats', slug: 'bench-hats', parentId: apparel!.id }, { name: 'Home', slug: 'bench-home' },
    ])
    const [admin] = await setup.db.insert(users).values({ email: 'bench-import-admin@example.com', name: 'Bench Admin', passwordHash: 'x', role: 'admin' }).returning({ id: users.id })
    const session = await setup.sessions.create(admin!.id)
    const auth = () => ({ authorization: `Bearer ${setup.issueAccessToken({ sub: admin!.id, role: 'admin', sid: session.familyId })}` })

    const file = join(dir, 'catalog.csv')
    const generated = performance.now()
    await writeCsv(file, opts.products)
    const generateMs = Math.round(performance.now() - generated)
    const fileBytes = statSync(file).size
    log(`catalog import: ${opts.products} products x 3 variants, ${(fileBytes / 2 ** 20).toFixed(1)} MiB, written in ${(generateMs / 1000).toFixed(1)} s`)

    // The API only enqueues (JOBS=off); the worker runs the import in a process of its own.
    const apiPort = await freePort()
    const workerPort = await freePort()
    const tsx = ['--import', 'tsx']
    const api = await startProcess('API', [...tsx, 'src/server.ts'], { ...env, JOBS: 'off', PORT: String(apiPort) }, apiPort)
    cleanups.push(() => stopProcess(api))
    const profileDir = process.env.BENCH_CPU_PROF
    const worker = await startProcess('worker', [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...tsx, 'src/worker.ts'], { ...env, WORKER_PORT: String(workerPort) }, workerPort)
    cleanups.push(() => stopProcess(worker))
    const workerIdleRssMiB = mib(kib('VmRSS', worker.pid!))
    const base = `http://127.0.0.1:${apiPort}`

    const runOnce = async (label: string): Promise<ImportRun> => {
      const started = performance.now()
      const cpuBefore = cpuMs(worker.pid!)
      const res = await fetch(`${base}/imports/products`, {
        method: 'POST', headers: { ...auth(), 'content-type': 'text/csv' },
        body: Readable.toWeb(createReadStream(file)) as ReadableStream, duplex: 'half',
      } as RequestInit)
      const uploadMs = Math.round(performance.now() - started)
      if (res.status !== 202) throw new Error(`import: ${res.status} ${await res.text()}`)
      const { id } = await res.json() as { id: string }
      // A poor man's profile of the database: what the backends run, every 50 ms.
      const sampler = new pg.Client({ connectionString: url })
      await sampler.connect()
      const seen = new Map<string, number>()
      let samples = 0
      let idle = 0
      let sampling = true
      const sampling$ = (async () => {
        while (sampling) {
          const { rows } = await sampler.query<{ query: string }>(`select query from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and state = 'active' and backend_type = 'client backend'`)
          samples++
          const running = rows.map((r) => r.query.replace(/\s+/g, ' ').replace(/\$\d+/g, '$').slice(0, 90)).filter((q) => !q.includes('pg_stat_activity'))
          if (!running.length) idle++
          for (const q of running) seen.set(q, (seen.get(q) ?? 0) + 1)
          await new Promise((r) => setTimeout(r, 50))
        }
      })()
      let peakKb = 0
      let job: Record<string, unknown>
      // When the poll first sees 50% (the validation pass reads the file once, the write pass once more).
      let validatedAt: number | undefined
      for (;;) {
        peakKb = Math.max(peakKb, kib('VmRSS', worker.pid!))
        const poll = await fetch(`${base}/imports/${id}`, { headers: auth() })
        job = await poll.json() as Record<string, unknown>
        if (validatedAt === undefined && (job.percentage as number) >= 50 && job.startedAt) validatedAt = Date.now() - Date.parse(job.startedAt as string)
        if (!['pending', 'running'].includes(job.status as string)) break
        await new Promise((r) => setTimeout(r, 250))
      }
      const totalMs = Math.round(performance.now() - started)
      sampling = false
      await sampling$
      await sampler.end()
      const activeStatements = [...seen].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([statement, n]) => ({ statement, share: Math.round((n / samples) * 1000) / 1000 }))
      // The job's own clock, started to completed; the validation pass's share as the poll saw it.
      const row = (await setup.db.execute<{ started: number; ended: number }>(sql`select extract(epoch from started_at) * 1000 as started, extract(epoch from completed_at) * 1000 as ended from catalog_jobs where id = ${id}`)).rows[0]!
      const jobMs = Math.round(Number(row.ended) - Number(row.started))
      const run: ImportRun = {
        status: job.status as string, rows: job.rowsRead as number, created: job.created as number, updated: job.updated as number,
        unchanged: job.unchanged as number, failed: job.failed as number, totalMs, uploadMs, validateMs: Math.min(validatedAt ?? jobMs, jobMs), writeMs: Math.max(0, jobMs - (validatedAt ?? jobMs)),
        rowsPerSecond: Math.round((job.rowsRead as number) / (totalMs / 1000)), workerPeakRssMiB: mib(peakKb), workerHwmMiB: mib(kib('VmHWM', worker.pid!)),
        workerCpuMs: Math.round(cpuMs(worker.pid!) - cpuBefore),
        activeStatements, idleShare: Math.round((idle / Math.max(samples, 1)) * 1000) / 1000,
      }
      if (run.status !== 'completed') throw new Error(`${label}: the import ended ${run.status}: ${JSON.stringify(job).slice(0, 800)}`)
      log(`catalog import, ${label}: ${run.rows} rows in ${(totalMs / 1000).toFixed(1)} s (${run.rowsPerSecond} rows/s; upload ${uploadMs} ms, job ${(jobMs / 1000).toFixed(1)} s); created ${run.created}, updated ${run.updated}, unchanged ${run.unchanged}; worker peak RSS ${run.workerPeakRssMiB} MiB (VmHWM ${run.workerHwmMiB} MiB), worker CPU ${(run.workerCpuMs / 1000).toFixed(1)} s`)
      log(`  database busy ${Math.round((1 - run.idleShare) * 100)}% of samples; top statements: ${activeStatements.slice(0, 5).map((a) => `${Math.round(a.share * 100)}% ${a.statement}`).join(' | ')}`)
      return run
    }
    const first = await runOnce('first run')
    const again = await runOnce('the same file again')
    const [counts] = (await setup.db.execute<ImportBenchResult['counts']>(sql`select
      (select count(*)::int from products) as products, (select count(*)::int from product_variants) as variants,
      (select count(*)::int from variant_prices) as prices, (select count(*)::int from stock_levels) as levels,
      (select count(*)::int from inventory_movements) as movements`)).rows
    return {
      startedAt: new Date().toISOString(),
      machine: { nproc: os.availableParallelism(), memoryGiB: Math.round(os.totalmem() / 2 ** 30), cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version },
      products: opts.products, rows: opts.products * 3, fileBytes, generateMs, workerIdleRssMiB, first, again, counts: counts!,
    }
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: Error) => log(`cleanup: ${err.message}`))
  }
}

export function importMarkdown(r: ImportBenchResult): string {
  const s = (ms: number) => (ms / 1000).toFixed(1)
  const line = (name: string, x: ImportRun) => `| ${name} | ${x.rows} | ${s(x.totalMs)} | ${x.rowsPerSecond} | ${s(x.uploadMs)} | ${s(x.validateMs)} | ${s(x.writeMs)} | ${x.created} / ${x.updated} / ${x.unchanged} | ${x.workerPeakRssMiB} | ${x.workerHwmMiB} | ${s(x.workerCpuMs)} |`
  return [
    '| catalog import | rows | total s | rows/s | upload s | validate s | write s | created / updated / unchanged | worker peak RSS MiB (sampled) | worker VmHWM MiB | worker CPU s |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    line('first run', r.first), line('same file again', r.again),
    '',
    `${r.machine.nproc} CPUs (${r.machine.cpu}), ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; ${r.products} products x 3 variants, ` +
    `${(r.fileBytes / 2 ** 20).toFixed(1)} MiB of CSV (written in ${s(r.generateMs)} s); the worker's RSS at rest ${r.workerIdleRssMiB} MiB; ` +
    `after both runs: ${r.counts.products} products, ${r.counts.variants} variants, ${r.counts.prices} prices, ${r.counts.levels} stock levels, ${r.counts.movements} movements.`,
  ].join('\n')
}
