import t from 'tap'
import { existsSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { eq, sql } from 'drizzle-orm'
import { catalogJobs } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { registerAdmin } from './users.js'

// Retention of catalog files (#28): import uploads and export files (products, orders) are
// deleted CATALOG_FILE_RETENTION_DAYS after their job ended, by the hourly catalog-files-purge
// schedule (services.catalogIo.purgeFiles); a job still to run keeps its upload whatever its age.

const RETENTION_DAYS = 3
const DAY = 86_400_000
const dir = mkdtempSync(join(tmpdir(), 'catalog-purge-'))
const app = await buildTestApp(t, { CATALOG_FILES_DIR: dir, CATALOG_FILE_RETENTION_DAYS: String(RETENTION_DAYS) })
const admin = (await registerAdmin(app)).headers
const CSV = 'handle,name,sku,price_EUR\npurge-mug,Mug,PURGE-MUG,5.00\n'

async function post(url: string, payload?: string) {
  const res = await app.inject({ method: 'POST', url, headers: { ...admin, ...(payload ? { 'content-type': 'text/csv' } : {}) }, payload })
  if (res.statusCode !== 202) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json() as { id: string }
}
const keyOf = async (id: string) => (await app.db.select({ key: catalogJobs.storageKey }).from(catalogJobs).where(eq(catalogJobs.id, id)))[0]!.key
/** Moves a job's end (and its creation) back by `days` from now. */
const endedDaysAgo = (id: string, days: number) => app.db.update(catalogJobs)
  .set({ completedAt: new Date(Date.now() - days * DAY), createdAt: new Date(Date.now() - days * DAY) }).where(eq(catalogJobs.id, id))

t.test('files of jobs ended past the retention are deleted, their downloads go; newer files, pending uploads and referenced files stay', async (t) => {
  const oldImport = await post('/imports/products', CSV)
  const oldExport = await post('/exports/products')
  const newExport = await post('/exports/products')
  t.same(await app.services.catalogIo.runDue(), ['done', 'done', 'done'])
  const oldOrders = await post(`/exports/orders?from=${encodeURIComponent(new Date(Date.now() - DAY).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + DAY).toISOString())}`)
  t.same(await app.services.catalogIo.runDue(), ['done'])
  // An import still waiting for the worker, uploaded long ago: its file is its input.
  const waiting = await post('/imports/products?dryRun=true', CSV.replaceAll('purge-mug', 'purge-cup').replace('PURGE-MUG', 'PURGE-CUP'))
  await app.db.update(catalogJobs).set({ createdAt: sql`now() - interval '30 days'` }).where(eq(catalogJobs.id, waiting.id))

  const keys = Object.fromEntries(await Promise.all([oldImport, oldExport, newExport, oldOrders, waiting].map(async (j) => [j.id, await keyOf(j.id)] as const)))
  for (const [id, key] of Object.entries(keys)) t.ok(key && existsSync(join(dir, key)), `job ${id} has its file`)
  for (const job of [oldImport, oldExport, oldOrders]) await endedDaysAgo(job.id, RETENTION_DAYS + 1)
  await endedDaysAgo(newExport.id, RETENTION_DAYS - 1)
  // An old file of an upload whose row was never written, and a recent one (maybe being written now).
  const orphan = `${randomUUID()}.csv`
  const fresh = `${randomUUID()}.csv`
  writeFileSync(join(dir, orphan), CSV)
  writeFileSync(join(dir, fresh), CSV)
  const longAgo = new Date(Date.now() - (RETENTION_DAYS + 1) * DAY)
  utimesSync(join(dir, orphan), longAgo, longAgo)
  // So is the waiting import's file: only its job's state decides.
  utimesSync(join(dir, keys[waiting.id]!), longAgo, longAgo)

  t.same(await app.services.catalogIo.purgeFiles(), { files: 3, orphans: 1 })
  for (const job of [oldImport, oldExport, oldOrders]) {
    t.notOk(existsSync(join(dir, keys[job.id]!)), 'the old file is gone')
    t.equal(await keyOf(job.id), null)
  }
  t.same(readdirSync(dir).sort(), [keys[newExport.id], keys[waiting.id], fresh].sort(), 'what is left: the newer export, the waiting upload, the fresh file')

  // The job stays readable with its counts; its download is gone.
  const read = (await app.inject({ method: 'GET', url: `/exports/${oldExport.id}`, headers: admin })).json()
  t.match(read, { status: 'completed', downloadUrl: null })
  const gone = await app.inject({ method: 'GET', url: `/exports/${oldExport.id}/file`, headers: admin })
  t.equal(gone.statusCode, 404)
  t.match(gone.headers['content-type'], /^application\/problem\+json/)
  t.equal((await app.inject({ method: 'GET', url: `/exports/${newExport.id}/file`, headers: admin })).statusCode, 200, 'the newer export still downloads')

  t.same(await app.services.catalogIo.purgeFiles(), { files: 0, orphans: 0 }, 'a second run finds nothing')
  // The waiting import still runs from its file.
  t.same(await app.services.catalogIo.runDue(), ['done'])
  t.match((await app.inject({ method: 'GET', url: `/imports/${waiting.id}`, headers: admin })).json(), { status: 'completed', created: 1 })
})

t.test('the retention defaults to a week and cannot be set to zero', async (t) => {
  const { loadConfig } = await import('../src/config.js')
  t.equal(loadConfig({}).catalogIo.fileRetentionDays, 7)
  t.throws(() => loadConfig({ CATALOG_FILE_RETENTION_DAYS: '0' }), { name: 'ConfigError', message: /CATALOG_FILE_RETENTION_DAYS/ })
})
