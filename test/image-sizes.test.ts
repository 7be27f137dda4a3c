import t, { type Test } from 'tap'
import { readdir } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { HeadObjectCommand } from '@aws-sdk/client-s3'
import { eq } from 'drizzle-orm'
import sharp from 'sharp'
import { buildTestApp, createTestStores, s3TestEnv } from './helpers.js'
import { buildApp, buildWorker } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { registerAdmin } from './users.js'
import { upload } from './uploads-fixtures.js'
import { uploadedFiles } from '../db/schema/index.js'
import { createWorkQueue } from '../src/queue.js'
import type { App } from '../src/app.js'

// Product image sizes (#30): made by the worker (the image-sizes queue, JOBS=on), never in the
// upload; served from their own immutable objects on local disk and on the real S3-compatible
// server of test/services.sh (MinIO); named by product pages and listings once they exist.

/** A real photo-like JPEG of width x height, made here (no binary fixture). */
const jpeg = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: { r: 200, g: 60, b: 30 } } })
  .composite([{ input: { create: { width: Math.ceil(width / 2), height: Math.ceil(height / 2), channels: 3, background: { r: 20, g: 90, b: 220 } } } }])
  .jpeg().toBuffer()

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

const rowOf = async (app: App, id: string) => (await app.db.select().from(uploadedFiles).where(eq(uploadedFiles.id, id)))[0]!
const settled = (app: App, id: string, ms?: number) => until(`sizes of ${id}`, async () => { const r = await rowOf(app, id); return r.sizesStatus === 'ready' || r.sizesStatus === 'failed' ? r : undefined }, ms)

interface SizeOut { width: number; height: number; format: string; mime: string; bytes: number; url: string }

type S3Env = Awaited<ReturnType<typeof s3TestEnv>>
const backends: { name: string; setup: (t: Test) => Promise<{ env: Record<string, string>; s3?: S3Env }> }[] = [
  { name: 'local disk', setup: async (t) => ({ env: { UPLOAD_DIR: t.testdir() } }) },
  { name: 'S3 (MinIO)', setup: async (t) => { const s3 = await s3TestEnv(t); return { env: s3.env, s3 } } },
]

for (const backend of backends) {
  t.test(`${backend.name}: the worker makes the sizes, served immutable with an ETag, named by the product page and the listing`, async (t) => {
    const { env, s3 } = await backend.setup(t)
    const app = await buildTestApp(t, { ...env, JOBS: 'on' })
    const admin = await registerAdmin(app)
    const original = await jpeg(1200, 800)
    const res = await upload(app, admin.headers, 'product_image', 'shirt.jpg', 'image/jpeg', original)
    t.equal(res.statusCode, 201, res.body)
    const image = res.json()
    const created = await app.inject({
      method: 'POST', url: '/products', headers: admin.headers,
      payload: { name: 'Shirt', slug: `shirt-${Date.now()}`, status: 'active', imageIds: [image.id], variants: [{ sku: `SH-${Date.now()}`, priceMinor: 1000, stock: 5 }] },
    })
    t.equal(created.statusCode, 201, created.body)
    const product = created.json()

    // Until the worker is done the page says so and gives no size URL (none can 404).
    const first = (await app.inject({ method: 'GET', url: `/products/${product.id}` })).json()
    if (first.images[0].sizesStatus === 'pending') t.same(first.images[0].sizes, [], 'no sizes while pending')
    t.equal(first.images[0].url, image.url, 'the original is named too')

    const row = await settled(app, image.id)
    t.equal(row.sizesStatus, 'ready', row.sizesError ?? '')
    // A cached page (read above) is made stale once the sizes exist: the job invalidates the
    // catalog cache after the row is marked (and the replicas have it), so the page names them
    // within moments of the row, not at the same instant.
    const page = await until('the product page names the sizes', async () => {
      const read = (await app.inject({ method: 'GET', url: `/products/${product.id}` })).json()
      return read.images[0].sizes.length ? read : undefined
    })
    const sizes: SizeOut[] = page.images[0].sizes
    t.same(sizes.map((s) => `${s.width}.${s.format}`), ['160.webp', '160.avif', '480.webp', '480.avif', '960.webp', '960.avif'], 'three widths, each in WebP and AVIF')
    for (const s of sizes) t.ok(Math.abs(s.height - Math.round(s.width * 800 / 1200)) <= 1, `height ${s.height} keeps the ratio`)
    const listing = (await app.inject({ method: 'GET', url: '/products' })).json()
    t.same(listing.items.find((i: { id: string }) => i.id === product.id).images[0].sizes, sizes, 'the listing names the same sizes')

    for (const s of sizes) {
      const served = await app.inject({ method: 'GET', url: s.url })
      t.equal(served.statusCode, 200, s.url)
      t.equal(served.headers['content-type'], s.mime)
      t.equal(served.headers['cache-control'], 'public, max-age=31536000, immutable')
      t.match(served.headers.etag, /^"[0-9a-f]{64}"$/)
      t.equal(served.rawPayload.length, s.bytes)
      const meta = await sharp(served.rawPayload).metadata()
      t.equal(meta.width, s.width)
      t.equal(meta.height, s.height)
      t.equal(meta.format, s.format === 'webp' ? 'webp' : 'heif', 'the bytes are the format named')
      t.equal((await app.inject({ method: 'GET', url: s.url, headers: { 'if-none-match': served.headers.etag as string } })).statusCode, 304)
    }
    // The objects themselves carry the same cache header (a CDN in front of the bucket keeps it).
    if (s3) {
      const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}uploads/${image.id}-w480.avif` }))
      t.equal(head.CacheControl, 'public, max-age=31536000, immutable')
      t.equal(head.ContentType, 'image/avif')
    }

    // Idempotent: running the job again makes nothing twice, and a run from scratch the same objects.
    const before = row.sizes
    t.same(await app.services.uploads.makeSizes(image.id), {})
    // Through the queue, as the sweep does (a direct call could race the minute's sweep run).
    await app.db.update(uploadedFiles).set({ sizesStatus: 'pending', sizes: [] }).where(eq(uploadedFiles.id, image.id))
    await app.services.uploads.sweepSizes()
    t.same((await settled(app, image.id)).sizes, before, 'the same keys and bytes again')
    if (backend.name === 'local disk') {
      const files = await readdir(app.config.uploads.dir)
      t.equal(files.length, 7, 'the original and six sizes, nothing doubled')
    }
    // The orphan job, a day and more later: the product's image and its sizes are kept.
    t.match(await app.services.uploads.removeOrphans(24, new Date(Date.now() + 48 * 3_600_000)), { removed: 0, strayFiles: 0 }, 'sizes of a kept upload are not stray files')
    t.equal((await app.inject({ method: 'GET', url: sizes[5]!.url })).statusCode, 200)

    // A missing size, or one of an image not ready, is a 404 problem, never a 500.
    t.equal((await app.inject({ method: 'GET', url: `/uploads/${image.id}/sizes/w333.webp` })).statusCode, 404)
    t.equal((await app.inject({ method: 'GET', url: `/uploads/${image.id}/sizes/w160.gif` })).statusCode, 400)

    // Deleting the image takes its sizes with it, and the product stops naming them.
    t.equal((await app.inject({ method: 'DELETE', url: `/uploads/${image.id}`, headers: admin.headers })).statusCode, 204)
    t.equal((await app.inject({ method: 'GET', url: sizes[0]!.url })).statusCode, 404)
    t.same((await app.inject({ method: 'GET', url: `/products/${product.id}` })).json().images, [], 'the cached page is stale at once')
    if (backend.name === 'local disk') t.same(await readdir(app.config.uploads.dir), [], 'no object left')
  })
}

t.test('S3 with S3_PUBLIC_URL: the store serves the sizes itself, immutable with an ETag', async (t) => {
  const s3 = await s3TestEnv(t)
  const base = `${s3.env.S3_ENDPOINT}/${s3.bucket}`
  const app = await buildTestApp(t, { ...s3.env, S3_PUBLIC_URL: base, JOBS: 'on' })
  const admin = await registerAdmin(app)
  const image = (await upload(app, admin.headers, 'product_image', 'p.jpg', 'image/jpeg', await jpeg(300, 300))).json()
  t.equal((await settled(app, image.id)).sizesStatus, 'ready')
  const [ready] = (await app.services.uploads.productImages([image.id])).values()
  t.same(ready!.sizes.map((s) => `${s.width}.${s.format}`), ['160.webp', '160.avif'], 'an original of 300 px gets the widths it reaches, never enlarged')
  for (const s of ready!.sizes) {
    t.ok(s.url.startsWith(`${base}/${s3.prefix}uploads/${image.id}-w160.`), s.url)
    const direct = await fetch(s.url)
    t.equal(direct.status, 200, 'read with no credentials')
    t.equal(direct.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    t.equal(direct.headers.get('content-type'), s.mime)
    const etag = direct.headers.get('etag')
    t.ok(etag, 'the store gives an ETag')
    t.equal((await sharp(Buffer.from(await direct.arrayBuffer())).metadata()).width, 160)
    t.equal((await fetch(s.url, { headers: { 'if-none-match': etag! } })).status, 304)
  }
})

t.test('an API with JOBS=off never makes sizes in the request; the worker (buildWorker, as npm run worker) makes what it queued', async (t) => {
  const { env } = await createTestStores(t, { UPLOAD_DIR: t.testdir(), LOG_LEVEL: 'silent' })
  const api = await buildApp(loadConfig(env), { logger: false })
  t.teardown(() => api.close())
  const admin = await registerAdmin(api)
  const at = performance.now()
  const res = await upload(api, admin.headers, 'product_image', 'big.jpg', 'image/jpeg', await jpeg(2400, 1800))
  const uploadMs = performance.now() - at
  t.equal(res.statusCode, 201)
  const id = res.json().id as string
  await sleep(1000)
  t.equal((await rowOf(api, id)).sizesStatus, 'pending', 'nothing made the sizes: the API does not run the queue')
  const worker = await buildWorker(loadConfig(env), { logger: false })
  t.teardown(() => worker.close())
  await worker.ready()
  const at2 = performance.now()
  const row = await settled(api, id)
  t.equal(row.sizesStatus, 'ready', 'the worker took the queued job')
  t.equal(row.sizes.length, 6)
  t.comment(`2400x1800 JPEG: upload answered in ${uploadMs.toFixed(0)} ms; the worker made its six sizes ${(performance.now() - at2).toFixed(0)} ms after it started`)
})

t.test('an image that does not decode, or has too many pixels, is marked failed; the worker goes on', async (t) => {
  const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir(), JOBS: 'on', IMAGE_MAX_PIXELS: '1000000' })
  const admin = await registerAdmin(app)
  // A PNG signature and header, then garbage: accepted as a PNG upload, but it does not decode.
  const good = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0a0' } }).png().toBuffer()
  const corrupt = Buffer.concat([good.subarray(0, 33), Buffer.alloc(200, 7)])
  const broken = await upload(app, admin.headers, 'product_image', 'broken.png', 'image/png', corrupt)
  t.equal(broken.statusCode, 201, 'the upload does not wait for the sizes')
  // 1,100 x 1,000 pixels: over IMAGE_MAX_PIXELS, refused before it is decoded (a decompression bomb's case).
  const huge = await upload(app, admin.headers, 'product_image', 'huge.jpg', 'image/jpeg', await jpeg(1100, 1000))
  const fine = await upload(app, admin.headers, 'product_image', 'fine.png', 'image/png', good)
  const [b, h, f] = await Promise.all([broken, huge, fine].map((r) => settled(app, r.json().id)))
  t.equal(b!.sizesStatus, 'failed')
  t.match(b!.sizesError, /does not decode/)
  t.same(b!.sizes, [])
  t.equal(h!.sizesStatus, 'failed')
  t.match(h!.sizesError, /pixel/i)
  t.equal(f!.sizesStatus, 'ready', 'the next image is made: the worker did not crash')
  t.same(f!.sizes.map((s) => `${s.width}.${s.format}`), ['64.webp', '64.avif'], 'an image narrower than 160 px keeps its own width')
  const [shown] = (await app.services.uploads.productImages([broken.json().id])).values()
  t.same({ status: shown!.sizesStatus, sizes: shown!.sizes }, { status: 'failed', sizes: [] })
  // Failed is final: another run changes nothing.
  t.same(await app.services.uploads.makeSizes(broken.json().id), {})
  t.equal((await rowOf(app, broken.json().id)).sizesStatus, 'failed')
})

t.test('product images stored before sizes existed (no status) are queued by the sweep and made', async (t) => {
  // JOBS=off: nothing runs the queue but this test (a worker's minute sweep would race it).
  const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir() })
  const admin = await registerAdmin(app)
  const id = (await upload(app, admin.headers, 'product_image', 'old.jpg', 'image/jpeg', await jpeg(500, 500))).json().id as string
  // As a row from before migration 0019_image_sizes looks.
  await app.db.update(uploadedFiles).set({ sizesStatus: null, sizes: [] }).where(eq(uploadedFiles.id, id))
  t.equal((await app.services.uploads.productImages([id])).get(id)!.sizesStatus, 'pending', 'shown as pending, with no sizes')
  const avatar = (await upload(app, admin.headers, 'avatar', 'me.png', 'image/png', await jpeg(300, 300))).json().id as string
  t.same(await app.services.uploads.pendingSizes(), [id], 'the sweep takes product images only')
  t.same(await app.services.uploads.sweepSizes(), { queued: 1 })
  // What the worker does with the queued id.
  t.same(await app.services.uploads.makeSizes(id), {})
  t.equal((await rowOf(app, id)).sizesStatus, 'ready')
  t.equal((await rowOf(app, avatar)).sizesStatus, null, 'avatars get no sizes')
})

t.test('a burst of uploads is sized at most IMAGE_RESIZE_CONCURRENCY at once, and the uploads do not wait for it', async (t) => {
  const CONCURRENCY = 2
  const N = 12
  const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir(), JOBS: 'on', IMAGE_RESIZE_CONCURRENCY: String(CONCURRENCY) })
  const admin = await registerAdmin(app)
  // Counts the runs in flight: the queue's processor calls the service's makeSizes.
  const uploads = app.services.uploads
  const make = uploads.makeSizes.bind(uploads)
  let active = 0
  let most = 0
  const runMs: number[] = []
  uploads.makeSizes = async (id) => {
    active++
    most = Math.max(most, active)
    const started = performance.now()
    try { return await make(id) } finally { active--; runMs.push(performance.now() - started) }
  }
  const photos = await Promise.all(Array.from({ length: N }, (_, i) => jpeg(1600 + i, 1200)))
  const started = performance.now()
  const uploadMs: number[] = []
  const ids = await Promise.all(photos.map(async (bytes, i) => {
    const at = performance.now()
    const res = await upload(app, admin.headers, 'product_image', `p${i}.jpg`, 'image/jpeg', bytes)
    uploadMs.push(performance.now() - at)
    t.equal(res.statusCode, 201)
    return res.json().id as string
  }))
  const uploadedIn = performance.now() - started
  const rows = await Promise.all(ids.map((id) => settled(app, id, 120_000)))
  const allIn = performance.now() - started
  t.ok(rows.every((r) => r.sizesStatus === 'ready'), 'every image made')
  t.ok(most <= CONCURRENCY, `at most ${CONCURRENCY} at once (measured ${most})`)
  t.equal(most, CONCURRENCY, 'and the bound is used')
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  t.comment(`burst of ${N} uploads (1600x1200 JPEG): all answered in ${uploadedIn.toFixed(0)} ms (median ${median(uploadMs).toFixed(0)} ms, max ${Math.max(...uploadMs).toFixed(0)} ms); `
    + `all sizes made ${allIn.toFixed(0)} ms after the first upload; one image's sizes median ${median(runMs).toFixed(0)} ms; at most ${most} at once; load average ${loadavg()[0]!.toFixed(1)}`)
  uploads.makeSizes = make
})

t.test('the in-process queue (embedded mode, no Redis) keeps the same bound and takes an id once while it waits', async (t) => {
  const log = { error() {}, warn() {} } as never
  let active = 0
  let most = 0
  const seen: string[] = []
  const queue = createWorkQueue({
    name: 't', redis: { keyPrefix: '', commandTimeoutMs: 1000 }, log, maxRuns: 1, concurrency: 3,
    process: async (id) => { active++; most = Math.max(most, active); seen.push(id); await sleep(20); active--; return {} },
  })
  await queue.start()
  await queue.add(Array.from({ length: 10 }, (_, i) => String(i)))
  await queue.add(['0', '1'])
  await until('the queue to empty', async () => (seen.length >= 10 && active === 0 ? true : undefined))
  await sleep(50)
  t.equal(most, 3, 'three at once, never more')
  t.equal(seen.length, 10, 'an id added again while waiting runs once')
  await queue.close()
})
