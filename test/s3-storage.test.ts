import t from 'tap'
import { createHash } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { setTimeout as sleep } from 'node:timers/promises'
import v8 from 'node:v8'
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { runInNewContext } from 'node:vm'
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3'
import { sql } from 'drizzle-orm'
import { buildTestApp, s3TestEnv } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { png, upload } from './uploads-fixtures.js'
import { createProduct } from './catalog.js'
import { uploadedFiles } from '../db/schema/index.js'

// STORAGE=s3 against the real S3-compatible server of test/services.sh (MinIO): uploads,
// quotas, the orphan job, a large upload streamed both ways, and a private file's signed link.

const keysUnder = async (s3: Awaited<ReturnType<typeof s3TestEnv>>, area: string) => {
  const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${s3.prefix}${area}/` }))
  return (page.Contents ?? []).map((o) => o.Key!.slice(`${s3.prefix}${area}/`.length)).sort()
}
const exists = (s3: Awaited<ReturnType<typeof s3TestEnv>>, key: string) =>
  s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key })).then(() => true, (err: Error) => {
    if (err.name === 'NotFound') return false
    throw err
  })

t.test('an upload is stored in the bucket, read back, cached by its immutable id, and deleted', async (t) => {
  const s3 = await s3TestEnv(t)
  const app = await buildTestApp(t, s3.env)
  const admin = await registerAdmin(app)
  const image = png()
  const res = await upload(app, admin.headers, 'product_image', 'shirt.png', 'image/png', image)
  t.equal(res.statusCode, 201, res.body)
  const file = res.json()
  const [row] = await app.db.select().from(uploadedFiles).where(sql`${uploadedFiles.id} = ${file.id}`)
  const key = `${s3.prefix}uploads/${row!.storageKey}`
  const head = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: key }))
  t.equal(head.ContentLength, image.length, 'the object holds the file')
  t.equal(head.ContentType, 'image/png')
  t.equal(head.CacheControl, 'public, max-age=31536000, immutable', 'a CDN serving the bucket caches it a year')

  const served = await app.inject({ method: 'GET', url: file.url })
  t.equal(served.statusCode, 200)
  t.same(served.rawPayload, image, 'the same bytes come back from the bucket')
  t.equal(served.headers['cache-control'], 'public, max-age=31536000, immutable')
  t.equal(served.headers.etag, `"${file.sha256}"`)
  t.equal((await app.inject({ method: 'GET', url: file.url, headers: { 'if-none-match': served.headers.etag as string } })).statusCode, 304)

  t.equal((await app.inject({ method: 'DELETE', url: file.url, headers: admin.headers })).statusCode, 204)
  t.notOk(await exists(s3, key), 'the object is deleted')
  t.equal((await app.inject({ method: 'GET', url: file.url })).statusCode, 404)
})

t.test('with S3_PUBLIC_URL a product image is served by the store itself, cacheable, while avatars stay behind the API', async (t) => {
  const s3 = await s3TestEnv(t)
  const base = `${s3.env.S3_ENDPOINT}/${s3.bucket}`
  const app = await buildTestApp(t, { ...s3.env, S3_PUBLIC_URL: base })
  const admin = await registerAdmin(app)
  const ada = await register(app, { email: 'ada@example.com' })
  const image = (await upload(app, admin.headers, 'product_image', 'p.png', 'image/png', png())).json()
  t.match(image.url, new RegExp(`^${base}/${s3.prefix}uploads/${image.id}\\.png$`), 'the public URL of its object')
  const avatar = (await upload(app, ada.headers, 'avatar', 'me.png', 'image/png', png())).json()
  t.equal(avatar.url, `/uploads/${avatar.id}`)
  // What a CDN in front of the bucket fetches: the object, with the headers it was stored with.
  const direct = await fetch(image.url)
  t.equal(direct.status, 200, 'read with no credentials')
  t.same(Buffer.from(await direct.arrayBuffer()), png())
  t.equal(direct.headers.get('cache-control'), 'public, max-age=31536000, immutable')
  t.equal(direct.headers.get('content-type'), 'image/png')
  const etag = direct.headers.get('etag')
  t.ok(etag, 'the store gives an ETag')
  t.equal((await fetch(image.url, { headers: { 'if-none-match': etag! } })).status, 304)
})

t.test('quotas and the orphan job work on the bucket', async (t) => {
  const s3 = await s3TestEnv(t)
  const app = await buildTestApp(t, { ...s3.env, UPLOAD_QUOTA_FILES: '2' })
  const ada = await register(app, { email: 'ada@example.com' })
  const put = async () => upload(app, ada.headers, 'avatar', 'f.png', 'image/png', png())
  const used = (await put()).json()
  const unused = (await put()).json()
  const third = await put()
  t.equal(third.statusCode, 413)
  t.equal(third.json().type, 'urn:problem-type:upload-quota-files')
  t.same(await keysUnder(s3, 'uploads'), [`${unused.id}.png`, `${used.id}.png`].sort(), 'a refused upload leaves no object behind')

  await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.headers, payload: { avatarId: used.id } })
  // An object without a row (a crash between writing the bytes and inserting the row).
  const stray = '00000000-0000-4000-8000-000000000001.png'
  await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}uploads/${stray}`, Body: png() }))
  await app.db.update(uploadedFiles).set({ createdAt: new Date(Date.now() - 25 * 3_600_000) })
  // Run as if a day had passed, so the stray object (written just now) is past the grace period too.
  const aDayOn = new Date(Date.now() + 25 * 3_600_000)
  t.same(await app.services.uploads.removeOrphans(24, aDayOn), { removed: 1, strayFiles: 1 })
  t.same(await keysUnder(s3, 'uploads'), [`${used.id}.png`], 'the unused upload and the stray object are gone; the avatar stays')
  t.same(await app.services.uploads.removeOrphans(24, aDayOn), { removed: 0, strayFiles: 0 }, 'idempotent')
})

t.test('an 80 MB upload streams to the bucket and back with memory bounded well below its size', async (t) => {
  const s3 = await s3TestEnv(t)
  // Twice the bound below: a file held whole, or most of it, fails it.
  const size = 80 * 1024 * 1024
  const app = await buildTestApp(t, { ...s3.env, UPLOAD_MAX_BYTES: String(90 * 1024 * 1024), UPLOAD_QUOTA_BYTES: String(100 * 1024 * 1024), S3_PART_SIZE_BYTES: String(5 * 1024 * 1024), HTTP_REQUEST_TIMEOUT_MS: '300000' })
  const ada = await register(app, { email: 'ada@example.com' })
  const address = await app.listen({ port: 0, host: '127.0.0.1' })

  // A PNG signature and then zeros, made chunk by chunk as they are sent: the test holds 64 KiB at a time.
  const boundary = '----shopbig'
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`)
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  const signature = png()
  const chunk = Buffer.alloc(64 * 1024)
  const expected = createHash('sha256').update(signature)
  let sent = signature.length
  while (sent < size) { const n = Math.min(chunk.length, size - sent); expected.update(chunk.subarray(0, n)); sent += n }
  const sha256 = expected.digest('hex')
  async function* body() {
    yield head
    yield signature
    for (let done = signature.length; done < size;) { const n = Math.min(chunk.length, size - done); yield chunk.subarray(0, n); done += n }
    yield tail
  }

  // Two measures, sampled while the bytes flow: RSS (what the brief of memory is, garbage
  // included, V8 collecting when it likes) and live memory (heap and buffers after a full
  // collection every 250 ms), which a file held whole would take past its size.
  v8.setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  const baseline = process.memoryUsage()
  const peaks = { rss: 0, live: 0 }
  const live = (m: NodeJS.MemoryUsage) => m.heapUsed + m.arrayBuffers - baseline.heapUsed - baseline.arrayBuffers
  const rssSampler = setInterval(() => { peaks.rss = Math.max(peaks.rss, process.memoryUsage().rss - baseline.rss) }, 10)
  const liveSampler = setInterval(() => { gc(); peaks.live = Math.max(peaks.live, live(process.memoryUsage())) }, 250)
  t.teardown(() => { clearInterval(rssSampler); clearInterval(liveSampler) })
  const started = Date.now()
  // node:http with pipeline: the client sends only as fast as the API takes the bytes.
  const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpRequest(`${address}/uploads?purpose=avatar`, {
      method: 'POST', headers: { ...ada.headers, 'content-type': `multipart/form-data; boundary=${boundary}` },
    }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (d: string) => { text += d }).on('end', () => resolve({ status: response.statusCode!, body: text }))
    })
    req.on('error', reject)
    pipeline(Readable.from(body()), req).catch(reject)
  })
  const uploadPeaks = { ...peaks }
  t.comment(`upload took ${Date.now() - started} ms`)
  t.equal(res.status, 201, res.body)
  const file = JSON.parse(res.body) as { id: string; sizeBytes: number; sha256: string; url: string }
  t.equal(file.sizeBytes, size)
  t.equal(file.sha256, sha256, 'hashed on the way, the bytes sent')

  gc()
  Object.assign(peaks, { rss: 0, live: 0 }, { rss: process.memoryUsage().rss - baseline.rss })
  const back = await fetch(`${address}${file.url}`)
  t.equal(back.status, 200)
  const readHash = createHash('sha256')
  let read = 0
  for await (const part of back.body as unknown as AsyncIterable<Uint8Array>) { readHash.update(part); read += part.length }
  const readPeaks = { ...peaks }
  clearInterval(rssSampler); clearInterval(liveSampler)
  t.equal(read, size)
  t.equal(readHash.digest('hex'), sha256, 'the same bytes come back, streamed from the bucket')
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`
  t.comment(`${mib(size)} file; upload: peak RSS growth ${mib(uploadPeaks.rss)}, peak live memory growth ${mib(uploadPeaks.live)}; `
    + `read back: peak RSS growth ${mib(readPeaks.rss)}, peak live memory growth ${mib(readPeaks.live)}`)
  // Parts of 5 MiB, two in flight: live memory grows by a few parts (measured 21-33 MiB, the
  // most on a loaded CI machine), never by the file.
  t.ok(uploadPeaks.live < 40 * 2 ** 20, `upload: live memory grew ${mib(uploadPeaks.live)}, under 40 MiB`)
  t.ok(readPeaks.live < 40 * 2 ** 20, `read back: live memory grew ${mib(readPeaks.live)}, under 40 MiB`)
})

t.test("a private file (a customer's data export) is read through a signed link of the bucket, which expires", async (t) => {
  const s3 = await s3TestEnv(t)
  const app = await buildTestApp(t, { ...s3.env, S3_SIGNED_URL_TTL_SECONDS: '2' })
  const ada = await register(app, { email: 'ada@example.com' })
  const exportId = (await app.inject({ method: 'POST', url: '/users/me/export', headers: ada.headers })).json().id as string
  t.same(await app.services.dataExports.runDue(), { built: 1, failed: 0 })
  t.same(await keysUnder(s3, 'exports'), [`${exportId}.tgz`], 'kept apart from the public uploads')
  t.same(await keysUnder(s3, 'uploads'), [])

  const url = (await app.inject({ method: 'GET', url: `/users/me/export/${exportId}`, headers: ada.headers })).json().downloadUrl as string
  t.equal((await app.inject({ method: 'GET', url: url.replace(/token=.*/, 'token=not-the-token') })).statusCode, 404, 'no link without its token')
  const redirect = await app.inject({ method: 'GET', url })
  t.equal(redirect.statusCode, 302)
  t.match(redirect.headers['cache-control'], /no-store/)
  const signed = redirect.headers.location as string
  t.match(signed, /X-Amz-Signature=/)

  const archive = await fetch(signed)
  t.equal(archive.status, 200, 'the signed link works')
  t.equal(archive.headers.get('content-type'), 'application/gzip')
  t.match(archive.headers.get('content-disposition'), `shop-data-${exportId}.tar.gz`)
  const data = gunzipSync(Buffer.from(await archive.arrayBuffer()))
  t.ok(data.includes(Buffer.from('ada@example.com')), "the archive holds the customer's data")
  const unsigned = await fetch(signed.split('?')[0]!)
  t.equal(unsigned.status, 403, 'the object itself is not public')

  await sleep(3500)
  const expired = await fetch(signed)
  t.equal(expired.status, 403, 'the signed link has expired')
})

t.test('an admin catalog export and an orders export are downloaded through a signed link of the bucket, after the admin check', async (t) => {
  const s3 = await s3TestEnv(t)
  const app = await buildTestApp(t, { ...s3.env, S3_SIGNED_URL_TTL_SECONDS: '2' })
  const admin = await registerAdmin(app)
  const ada = await register(app, { email: 'ada@example.com' })
  await createProduct(app, admin.headers, { name: 'Kettle', variants: [{ sku: 'KETTLE', priceMinor: 1999, stock: 5 }] })
  const started = [
    (await app.inject({ method: 'POST', url: '/exports/products', headers: admin.headers })).json(),
    (await app.inject({ method: 'POST', url: '/exports/orders', headers: admin.headers, query: { from: new Date(Date.now() - 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() } })).json(),
  ] as { id: string; subject: string }[]
  await app.services.catalogIo.runDue()
  t.same(await keysUnder(s3, 'catalog-files'), started.map((j) => `${j.id}.csv`).sort(), 'kept in the private catalog-files area')

  const signedLinks: string[] = []
  for (const { id, subject } of started) {
    const job = (await app.inject({ method: 'GET', url: `/exports/${id}`, headers: admin.headers })).json()
    t.equal(job.downloadUrl, `/exports/${id}/file`)
    t.equal((await app.inject({ method: 'GET', url: job.downloadUrl })).statusCode, 401, 'no link without a token')
    t.equal((await app.inject({ method: 'GET', url: job.downloadUrl, headers: ada.headers })).statusCode, 403, 'no link for a customer')
    const redirect = await app.inject({ method: 'GET', url: job.downloadUrl, headers: admin.headers })
    t.equal(redirect.statusCode, 302, `${subject}: a redirect to the store`)
    t.match(redirect.headers['cache-control'], /no-store/)
    const signed = redirect.headers.location as string
    t.match(signed, /X-Amz-Signature=/)
    const csv = await fetch(signed)
    t.equal(csv.status, 200, `${subject}: the signed link works`)
    t.match(csv.headers.get('content-type'), /^text\/csv/)
    t.match(csv.headers.get('content-disposition'), new RegExp(`^attachment; filename="${subject}-\\d{4}-\\d{2}-\\d{2}\\.csv"$`))
    const body = await csv.text()
    t.ok(body.replace(/^\ufeff/, '').length > 0, 'the CSV')
    if (subject === 'products') t.match(body, 'KETTLE')
    t.equal((await fetch(signed.split('?')[0]!)).status, 403, `${subject}: the object itself is not public`)
    signedLinks.push(signed)
  }
  await sleep(3500)
  for (const signed of signedLinks) t.equal((await fetch(signed)).status, 403, 'the signed link has expired')
})
