import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq, like, sql } from 'drizzle-orm'
import { catalogJobs, inventoryMovements, productVariants, products, stockLevels, variantPrices } from '../db/schema/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, createTestStores, freePort, startProcess, tsx, waitUntil } from './helpers.js'
import { createCategory, createProduct } from './catalog.js'
import { register, registerAdmin } from './users.js'
import { png, upload } from './uploads-fixtures.js'

// Catalog CSV import and export (#28), through HTTP against the real stores. The worker's run is
// driven by calling the service's runDue, as test/data-requests.test.ts does for data exports
// (the schedules are off in tests); everything else goes through the API.

const app = await buildTestApp(t, { CATALOG_FILES_DIR: mkdtempSync(join(tmpdir(), 'catalog-files-')), RATE_LIMIT_MAX: '100000' })
const admin = await registerAdmin(app)
const HEADER = 'handle,name,description,status,category,sku,weight_grams,price_EUR,stock_Default'

type Job = {
  id: string; status: string; percentage: number; rowsRead: number; created: number; updated: number; unchanged: number; failed: number
  errors: { line: number; column: string | null; reason: string }[]; lastError: string | null; downloadUrl: string | null
}

async function importCsv(body: string | Buffer, query = '', contentType = 'text/csv'): Promise<Job> {
  const res = await app.inject({ method: 'POST', url: `/imports/products${query}`, headers: { ...admin.headers, 'content-type': contentType }, payload: body })
  if (res.statusCode !== 202) throw new Error(`import: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Runs the worker's part, then reads the job as a client polls it. */
async function finished(kind: 'imports' | 'exports', id: string): Promise<Job> {
  await app.services.catalogIo.runDue()
  const res = await app.inject({ method: 'GET', url: `/${kind}/${id}`, headers: admin.headers })
  if (res.statusCode !== 200) throw new Error(`poll: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** Everything an import writes, for "changed nothing" checks. */
async function catalogState(prefix: string) {
  const p = await app.db.select().from(products).where(like(products.slug, `${prefix}%`)).orderBy(products.slug)
  const v = await app.db.select().from(productVariants).where(like(productVariants.sku, `${prefix.toUpperCase()}%`)).orderBy(productVariants.sku)
  const ids = v.map((x) => x.id)
  const prices = ids.length ? await app.db.select().from(variantPrices).where(sql`${variantPrices.variantId} = any(${`{${ids.join(',')}}`}::uuid[])`) : []
  const levels = ids.length ? await app.db.select().from(stockLevels).where(sql`${stockLevels.variantId} = any(${`{${ids.join(',')}}`}::uuid[])`) : []
  const [{ n }] = await app.db.select({ n: sql<number>`count(*)::int` }).from(inventoryMovements) as [{ n: number }]
  return { products: p, variants: v, prices: prices.length, levels, movements: n }
}

function bigFile(prefix: string, rows: number, badEvery: number) {
  const lines = [HEADER]
  const bad: { line: number; column: string }[] = []
  for (let i = 0; i < rows; i++) {
    const line = i + 2
    const product = Math.floor(i / 2)
    let price = `${10 + (i % 7)}.99`
    let weight = String(100 + i)
    let handle = `${prefix}-${product}`
    if (badEvery && i % badEvery === badEvery - 1) {
      // Three kinds of bad row, each in a different column.
      const kind = bad.length % 3
      if (kind === 0) { price = '12.99x'; bad.push({ line, column: 'price_EUR' }) }
      if (kind === 1) { weight = 'heavy'; bad.push({ line, column: 'weight_grams' }) }
      if (kind === 2) { handle = 'Not A Slug'; bad.push({ line, column: 'handle' }) }
    }
    lines.push(`${handle},Product ${product},Made in batch,active,,${prefix.toUpperCase()}-${i},${weight},${price},${i % 5}`)
  }
  return { csv: lines.join('\n') + '\n', bad }
}

t.test('a file with bad rows reports each (line, column, reason) and imports nothing; good-rows imports the rest; the same file twice changes nothing', async (t) => {
  const ROWS = 10_000
  const { csv, bad } = bigFile('bulk', ROWS, 200)
  t.equal(bad.length, 50)

  let started = Date.now()
  const refused = await finished('imports', (await importCsv(csv)).id)
  const validateMs = Date.now() - started
  t.equal(refused.status, 'failed')
  t.equal(refused.rowsRead, ROWS)
  t.equal(refused.failed, 50)
  t.same(refused.errors.map((e) => ({ line: e.line, column: e.column })), bad, 'exactly the 50 bad cells, by line and column')
  t.ok(refused.errors.every((e) => e.reason.length > 5), 'each with a reason')
  t.match(refused.lastError, /50 bad rows: nothing was imported/)
  t.equal((await catalogState('bulk-')).products.length, 0, 'nothing imported')

  started = Date.now()
  const good = await finished('imports', (await importCsv(csv, '?mode=good-rows')).id)
  const importMs = Date.now() - started
  t.equal(good.status, 'completed')
  t.equal(good.percentage, 100)
  t.same({ created: good.created, updated: good.updated, unchanged: good.unchanged, failed: good.failed }, { created: ROWS - 50, updated: 0, unchanged: 0, failed: 50 })
  const after = await catalogState('bulk-')
  t.equal(after.variants.length, ROWS - 50, '9,950 variants')
  t.ok(after.variants.every((v) => v.priceMinor >= 1099 && v.weightGrams !== null))
  t.equal(after.levels.reduce((n, l) => n + l.onHand, 0), after.variants.reduce((n, v) => n + v.stock, 0), 'stock by the inventory module: levels and sellable agree')

  // Paging never skips nor repeats: thousands of products made in one statement share created_at,
  // prices repeat (7 values), ratings are all 0; every sort's keyset ends in the id.
  for (const sort of ['newest', 'price_asc', 'price_desc', 'name', 'rating']) {
    const seen = new Map<string, number>()
    let cursor: string | undefined
    do {
      const res = await app.inject({ method: 'GET', url: `/products?sort=${sort}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}` })
      if (res.statusCode !== 200) throw new Error(`${sort}: ${res.statusCode} ${res.body}`)
      const page = res.json() as { items: { slug: string }[]; nextCursor: string | null }
      for (const item of page.items) if (item.slug.startsWith('bulk-')) seen.set(item.slug, (seen.get(item.slug) ?? 0) + 1)
      cursor = page.nextCursor ?? undefined
    } while (cursor)
    const products = new Set(after.products.map((p) => p.slug))
    t.equal(seen.size, products.size, `sort=${sort}: every imported product listed`)
    t.ok([...seen.values()].every((n) => n === 1), `sort=${sort}: each exactly once`)
  }

  started = Date.now()
  const again = await finished('imports', (await importCsv(csv, '?mode=good-rows')).id)
  const againMs = Date.now() - started
  t.same({ created: again.created, updated: again.updated, unchanged: again.unchanged }, { created: 0, updated: 0, unchanged: ROWS - 50 })
  t.same(await catalogState('bulk-'), after, 'the second run wrote nothing: same rows, same updated_at, no movement')
  t.comment(`${ROWS} rows: validate-and-refuse ${validateMs} ms, import ${importMs} ms (${Math.round((ROWS * 1000) / importMs)} rows/s), re-import ${againMs} ms`)
})

t.test('a multipart upload is imported like a text/csv body', async (t) => {
  const boundary = 'csv-boundary'
  const body = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="catalog.csv"\r\nContent-Type: text/csv\r\n\r\n${HEADER}\nmultipart-1,M,,active,,MULTIPART-1,,4.00,2\n\r\n--${boundary}--\r\n`)
  const job = await finished('imports', (await importCsv(body, '', `multipart/form-data; boundary=${boundary}`)).id)
  t.same({ status: job.status, created: job.created }, { status: 'completed', created: 1 })
  const empty = await app.inject({ method: 'POST', url: '/imports/products', headers: { ...admin.headers, 'content-type': `multipart/form-data; boundary=${boundary}` }, payload: `--${boundary}--\r\n` })
  t.equal(empty.statusCode, 400)
})

t.test('a dry run says what would be created, updated and left alone, and writes nothing', async (t) => {
  await finished('imports', (await importCsv(`${HEADER}\ndry-a,A,,active,,DRY-A1,,1.00,1\ndry-a,A,,active,,DRY-A2,,2.00,1\n`)).id)
  const before = await catalogState('dry-')
  const job = await finished('imports', (await importCsv(`${HEADER}\ndry-a,A,,active,,DRY-A1,,1.00,1\ndry-a,A,,active,,DRY-A2,,2.50,1\ndry-b,B,,active,,DRY-B1,,3.00,4\n`, '?dryRun=true')).id)
  t.equal(job.status, 'completed')
  t.same({ created: job.created, updated: job.updated, unchanged: job.unchanged }, { created: 1, updated: 1, unchanged: 1 })
  t.same(await catalogState('dry-'), before)
})

t.test('UTF-8 with BOM, semicolons, CRLF and quoted fields with line breaks and delimiters', async (t) => {
  const csv = '\ufeffhandle;name;description;status;sku;price_EUR;stock_Default;option_size\r\n'
    + 'bom-shirt;"Shirt; blue";"Line one\r\nline two, with comma";active;BOM-1;19.90;3;M\r\n'
    + 'bom-shirt;"Shirt; blue";"Line one\r\nline two, with comma";active;BOM-2;21.00;0;L\r\n'
    + 'bom-shirt;"Shirt; blue";"Line one\r\nline two, with comma";active;BOM-3;x;0;XL\r\n'
  const job = await finished('imports', (await importCsv(Buffer.from(csv, 'utf8'), '?mode=good-rows')).id)
  t.equal(job.status, 'completed')
  t.equal(job.created, 2)
  t.same(job.errors.map((e) => [e.line, e.column]), [[6, 'price_EUR']], 'the line a record starts on, counting the line breaks inside quotes')
  const res = await app.inject({ method: 'GET', url: '/products/by-slug/bom-shirt', headers: admin.headers })
  const product = res.json()
  t.equal(product.name, 'Shirt; blue')
  t.equal(product.description, 'Line one\r\nline two, with comma')
  t.same(product.variants.map((v: { sku: string; options: object; priceMinor: number; stock: number }) => [v.sku, v.options, v.priceMinor, v.stock]), [['BOM-1', { size: 'M' }, 1990, 3], ['BOM-2', { size: 'L' }, 2100, 0]])
})

t.test('prices per currency, stock per location and the category path', async (t) => {
  const loc = await app.inject({ method: 'POST', url: '/inventory/locations', headers: admin.headers, payload: { name: 'Warehouse B' } })
  t.equal(loc.statusCode, 201)
  const parent = await createCategory(app, admin.headers, { slug: 'clothes' })
  const child = await createCategory(app, admin.headers, { slug: 'shirts', parentId: parent.id })
  const csv = 'handle,name,category,sku,price_EUR,price_USD,price_JPY,stock_Default,stock_Warehouse B\n'
    + 'multi-1,Multi,clothes/shirts,MULTI-1,10.00,11.50,1500,2,7\n'
    + 'multi-2,Multi 2,clothes/nope,MULTI-2,10.00,,,1,1\n'
    + 'multi-3,Multi 3,,MULTI-3,10.001,,,1,1\n'
  const job = await finished('imports', (await importCsv(csv, '?mode=good-rows')).id)
  t.same(job.errors.map((e) => [e.line, e.column]), [[3, 'category'], [4, 'price_EUR']])
  const [variant] = await app.db.select().from(productVariants).where(like(productVariants.sku, 'MULTI-1'))
  t.equal(variant!.stock, 9, 'sellable is the sum over locations')
  const prices = await app.db.select().from(variantPrices).where(sql`${variantPrices.variantId} = ${variant!.id}`).orderBy(variantPrices.currency)
  t.same(prices.map((p) => [p.currency, p.amountMinor]), [['EUR', 1000], ['JPY', 1500], ['USD', 1150]])
  const [product] = await app.db.select().from(products).where(like(products.slug, 'multi-1'))
  t.equal(product!.categoryId, child.id)
  const levels = await app.inject({ method: 'GET', url: `/inventory/variants/${variant!.id}/levels`, headers: admin.headers })
  t.same(levels.json().levels.map((l: { onHand: number }) => l.onHand).sort(), [2, 7])
})

t.test('export then import is a no-op, and formula cells are made safe', async (t) => {
  await createProduct(app, admin.headers, { slug: 'formula', name: '=HYPERLINK("http://evil.example","click")', description: '+1 tab\there', variants: [{ sku: 'FORMULA-1', priceMinor: 500, stock: 4, options: { colour: '@red' } }] })
  const started = await app.inject({ method: 'POST', url: '/exports/products', headers: admin.headers })
  t.equal(started.statusCode, 202)
  const job = await finished('exports', started.json().id)
  t.equal(job.status, 'completed')
  t.ok(job.downloadUrl)
  const file = await app.inject({ method: 'GET', url: job.downloadUrl!, headers: admin.headers })
  t.equal(file.statusCode, 200)
  t.match(file.headers['content-type'], /^text\/csv/)
  const text = file.body
  t.ok(text.startsWith('\ufeffhandle,name,description,status,category,sku,weight_grams,option_colour'), text.slice(0, 200))
  t.match(text, /formula,"'=HYPERLINK\(""http:\/\/evil.example"",""click""\)",'\+1 tab\there,active,,FORMULA-1,,'@red,,5.00/)
  t.notMatch(text, /,=HYPERLINK/)
  t.equal(job.rowsRead, text.trim().split('\n').length - 1 - 2, 'one row per variant (the quoted description above holds two line breaks)')

  const before = await catalogState('')
  const back = await finished('imports', (await importCsv(file.rawPayload)).id)
  t.equal(back.status, 'completed', JSON.stringify(back.errors.slice(0, 3)))
  t.same({ created: back.created, updated: back.updated }, { created: 0, updated: 0 })
  t.equal(back.unchanged, back.rowsRead)
  t.same(await catalogState(''), before, 'the re-import wrote nothing')
  const product = (await app.inject({ method: 'GET', url: '/products/by-slug/formula', headers: admin.headers })).json()
  t.equal(product.name, '=HYPERLINK("http://evil.example","click")', 'the apostrophe is taken off on import')
})

t.test('bad input is a clear 4xx or a failed job with its reason, never a 500', async (t) => {
  const customer = await register(app, { email: 'shopper@example.com' })
  const denied = await app.inject({ method: 'POST', url: '/imports/products', headers: { ...customer.headers, 'content-type': 'text/csv' }, payload: `${HEADER}\n` })
  t.equal(denied.statusCode, 403)
  const empty = await app.inject({ method: 'POST', url: '/imports/products', headers: { ...admin.headers, 'content-type': 'text/csv' }, payload: '' })
  t.equal(empty.statusCode, 400)
  const json = await app.inject({ method: 'POST', url: '/imports/products', headers: admin.headers, payload: { a: 1 } })
  t.equal(json.statusCode, 400)
  const badMode = await app.inject({ method: 'POST', url: '/imports/products?mode=some', headers: { ...admin.headers, 'content-type': 'text/csv' }, payload: `${HEADER}\n` })
  t.equal(badMode.statusCode, 400)

  const unknown = await finished('imports', (await importCsv('handle,name,sku,price_EUR,colour,stock_Nowhere\nx,X,X-1,1.00,red,1\n')).id)
  t.equal(unknown.status, 'failed')
  t.same(unknown.errors.map((e) => [e.line, e.column]), [[1, 'colour']])
  const noLocation = await finished('imports', (await importCsv('handle,name,sku,price_EUR,stock_Nowhere\nx,X,X-1,1.00,1\n')).id)
  t.same(noLocation.errors.map((e) => [e.line, e.column]), [[1, 'stock_Nowhere']])
  const unclosed = await finished('imports', (await importCsv(`${HEADER}\n"open,X,,active,,Q-1,,1.00,1\n`)).id)
  t.equal(unclosed.status, 'failed')
  t.match(unclosed.lastError, /not valid CSV/)
  const ragged = await finished('imports', (await importCsv(`${HEADER}\nrag,R,,active,,RAG-1,,1.00\n`)).id)
  t.same(ragged.errors.map((e) => [e.line, e.column]), [[2, null]])
  const missing = await app.inject({ method: 'GET', url: '/imports/00000000-0000-4000-8000-000000000000', headers: admin.headers })
  t.equal(missing.statusCode, 404)

  // A SKU of another product is that row's error, not a silent move.
  await createProduct(app, admin.headers, { slug: 'owner', variants: [{ sku: 'OWNED-1' }] })
  const stolen = await finished('imports', (await importCsv(`${HEADER}\nthief,T,,active,,OWNED-1,,1.00,1\n`)).id)
  t.same(stolen.errors.map((e) => [e.line, e.column, e.reason]), [[2, 'sku', 'belongs to the product owner']])

  // Cancel: a pending job stops; an ended one is a 409.
  const pending = await importCsv(`${HEADER}\ncancel-me,C,,active,,CANCEL-1,,1.00,1\n`)
  const cancelled = await app.inject({ method: 'POST', url: `/imports/${pending.id}/cancel`, headers: admin.headers })
  t.equal(cancelled.json().status, 'cancelled')
  t.equal((await app.inject({ method: 'POST', url: `/imports/${pending.id}/cancel`, headers: admin.headers })).statusCode, 409)
  await app.services.catalogIo.runDue()
  t.equal((await catalogState('cancel-me')).products.length, 0)
})

t.test('SIGKILL of the worker in the middle of an import: the re-run ends with the catalog of one clean run', { timeout: 240_000 }, async (t) => {
  const workerPort = await freePort()
  const { env } = await createTestStores(t, { HOST: '127.0.0.1', LOG_LEVEL: 'warn', CATALOG_FILES_DIR: mkdtempSync(join(tmpdir(), 'catalog-crash-')), CATALOG_JOB_LEASE_SECONDS: '5', RATE_LIMIT_MAX: '100000' })
  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => seed.close())
  const boss = await registerAdmin(seed)
  const post = async (csv: string) => {
    const res = await seed.inject({ method: 'POST', url: '/imports/products', headers: { ...boss.headers, 'content-type': 'text/csv' }, payload: csv })
    if (res.statusCode !== 202) throw new Error(res.body)
    return res.json().id as string
  }
  const jobOf = async (id: string) => (await seed.db.select().from(catalogJobs).where(eq(catalogJobs.id, id)))[0]!
  /** The catalog a prefix's import made, without ids, times and the prefix. */
  const endOf = async (prefix: string) => {
    const rows = await seed.db.execute<Record<string, unknown>>(sql`
      select replace(p.slug, ${prefix}, '') as slug, p.name, p.status, p.min_price_minor, p.max_price_minor, p.in_stock,
             replace(v.sku, ${prefix.toUpperCase()}, '') as sku, v.price_minor, v.stock, v.weight_grams, v.position,
             (select string_agg(currency || amount_minor, ',' order by currency) from variant_prices where variant_id = v.id) as prices,
             (select string_agg(on_hand::text || '/' || reserved::text, ',') from stock_levels where variant_id = v.id) as levels,
             (select count(*)::int from inventory_movements where variant_id = v.id) as movements
      from products p join product_variants v on v.product_id = p.id where p.slug like ${`${prefix}-%`} order by 1, 7`)
    return rows.rows
  }
  const ROWS = 8000

  // The clean run, in this process.
  const clean = await post(bigFile('clean', ROWS, 0).csv)
  await seed.services.catalogIo.runDue()
  t.equal((await jobOf(clean)).status, 'completed')

  // The crashed run: a real worker process takes it from the queue and is killed once batches of the write pass are committed.
  const crashed = await post(bigFile('crash', ROWS, 0).csv)
  const worker = startProcess(t, tsx('src/worker.ts'), { env: { ...process.env, ...env, WORKER_PORT: String(workerPort) } })
  await waitUntil('the worker has committed some batches of the write pass', async () => {
    const job = await jobOf(crashed)
    return job.bytesDone > (job.sizeBytes ?? 0) && job.created > 0
  }, 120_000, 10)
  await worker.stop('SIGKILL')
  const mid = await jobOf(crashed)
  const [{ n: written }] = await seed.db.select({ n: sql<number>`count(*)::int` }).from(productVariants).where(like(productVariants.sku, 'CRASH-%')) as [{ n: number }]
  t.equal(mid.status, 'running', 'killed while running')
  t.ok(written > 0 && written < ROWS, `killed half-way: ${written} of ${ROWS} variants written`)

  // The lease passes; the next run (here in this process, as a new worker would) does the job again from the top.
  await waitUntil('the lease has passed', async () => (await jobOf(crashed)).lockedUntil! < new Date(), 30_000)
  await seed.services.catalogIo.runDue()
  const done = await jobOf(crashed)
  t.equal(done.status, 'completed')
  t.equal(done.attempts, 2)
  t.same({ created: done.created, unchanged: done.unchanged }, { created: ROWS - written, unchanged: written }, 'the re-run created what the killed one had not written')
  t.same(await endOf('crash'), await endOf('clean'), 'the same catalog as the clean run: every value, every stock level, one movement per stocked variant')
})

t.test('[clear] empties an optional value; an empty cell leaves it; a column that always has a value refuses it', async (t) => {
  const category = await createCategory(app, admin.headers, { slug: 'clearable' })
  const image = (await upload(app, admin.headers, 'product_image', 'clear.png', 'image/png', png())).json().id as string
  const head = 'handle,name,description,category,sku,weight_grams,option_size,price_EUR,compare_at_EUR,images,attribute_material\n'
  const product = async () => (await app.inject({ method: 'GET', url: '/products/by-slug/clear-me', headers: admin.headers })).json()
  const set = await finished('imports', (await importCsv(`${head}clear-me,Clear me,Soft,clearable,CLEAR-1,250,M,20.00,25.00,${image},wool\n`)).id)
  t.equal(set.status, 'completed', JSON.stringify(set.errors))
  let p = await product()
  t.match(p, { description: 'Soft', categoryId: category.id, imageIds: [image], attributes: { material: 'wool' } })
  t.match(p.variants[0], { weightGrams: 250, compareAtPriceMinor: 2500, options: { size: 'M' } })

  // Empty cells leave every value as it is.
  const empty = await finished('imports', (await importCsv(`${head}clear-me,Clear me,Soft,,CLEAR-1,,M,,,,wool\n`)).id)
  t.same([empty.status, empty.unchanged], ['completed', 1])

  const clearAll = `${head}clear-me,Clear me,[clear],[clear],CLEAR-1,[clear],[clear],20.00,[clear],[clear],[clear]\n`
  const cleared = await finished('imports', (await importCsv(clearAll)).id)
  t.same([cleared.status, cleared.updated], ['completed', 1], JSON.stringify(cleared.errors))
  p = await product()
  t.match(p, { description: '', categoryId: null, imageIds: [], attributes: {} })
  t.match(p.variants[0], { weightGrams: null, compareAtPriceMinor: null, options: {} })
  const again = await finished('imports', (await importCsv(clearAll)).id)
  t.same([again.status, again.unchanged, again.updated], ['completed', 1, 0], 'clearing what is empty changes nothing')

  // The marker in a column that always has a value is a bad cell, named.
  const refused = await finished('imports', (await importCsv('handle,name,status,sku,price_EUR,stock_Default,active\n'
    + 'clear-me,[clear],,CLEAR-1,20.00,,\nclear-me,Clear me,[clear],CLEAR-2,20.00,,\nclear-3,Clear 3,,CLEAR-3,[clear],,\nclear-4,Clear 4,,CLEAR-4,1.00,[clear],\nclear-5,Clear 5,,CLEAR-5,1.00,,[clear]\n')).id)
  t.equal(refused.status, 'failed')
  t.same(refused.errors.map((e) => [e.line, e.column]), [[2, 'name'], [3, 'status'], [4, 'price_EUR'], [5, 'stock_Default'], [6, 'active']])
  t.match(refused.errors[0]!.reason, /cannot be cleared/)

  // A value that is the marker itself: written '[clear] (as text), so an export re-imported changes nothing.
  const literal = await finished('imports', (await importCsv(`${head}clear-me,Clear me,'[clear],,CLEAR-1,,,20.00,,,\n`)).id)
  t.equal(literal.status, 'completed')
  t.equal((await product()).description, '[clear]')
  const exported = await finished('exports', (await app.inject({ method: 'POST', url: '/exports/products', headers: admin.headers })).json().id)
  const file = await app.inject({ method: 'GET', url: exported.downloadUrl!, headers: admin.headers })
  t.match(file.body, /clear-me,Clear me,'\[clear\],/)
  const before = await catalogState('')
  const back = await finished('imports', (await importCsv(file.rawPayload)).id)
  t.same([back.status, back.created, back.updated], ['completed', 0, 0], JSON.stringify(back.errors.slice(0, 3)))
  t.same(await catalogState(''), before, 'the re-import wrote nothing')
  t.equal((await product()).description, '[clear]')
})
