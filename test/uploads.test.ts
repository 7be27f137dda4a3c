import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import { png, upload } from './uploads-fixtures.js'

t.test('types are decided by the bytes: a PNG named .txt is a PNG, HTML named .png is refused', async (t) => {
  const dir = t.testdir()
  const app = await buildTestApp(t, { UPLOAD_DIR: dir, UPLOAD_MAX_BYTES: '4096' })
  const { headers } = await register(app, { email: 'uploader@example.com' })
  const image = png()

  const disguised = await upload(app, headers, 'avatar', '../../etc/notes<script>.txt', 'text/plain', image)
  t.equal(disguised.statusCode, 201, disguised.body)
  t.match(disguised.json(), { mime: 'image/png', sizeBytes: image.length, purpose: 'avatar', originalName: 'notes_script_.txt' })
  const served = await app.inject({ method: 'GET', url: disguised.json().url })
  t.equal(served.statusCode, 200)
  t.equal(served.headers['content-type'], 'image/png')
  t.equal(served.headers['x-content-type-options'], 'nosniff')
  t.equal(served.headers['content-disposition'], 'inline; filename="notes_script_.txt"')
  t.same(served.rawPayload, image, 'the same bytes come back')

  for (const [name, type, bytes] of [
    ['page.png', 'image/png', Buffer.from('<!doctype html><html><script>alert(1)</script></html>')],
    ['logo.svg', 'image/svg+xml', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')],
    ['empty.png', 'image/png', Buffer.alloc(0)],
    ['doc.png', 'image/png', Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n')],
  ] as const) {
    const res = await upload(app, headers, 'avatar', name, type, bytes)
    t.equal(res.statusCode, 400, name)
    t.equal(res.json().type, 'urn:problem-type:unsupported-file-type')
  }
  const big = await upload(app, headers, 'avatar', 'big.png', 'image/png', Buffer.concat([image, Buffer.alloc(8192)]))
  t.equal(big.statusCode, 413)
  t.equal(big.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal((await app.inject({ method: 'POST', url: '/uploads?purpose=avatar', headers, payload: { file: 'x' } })).statusCode, 400, 'not multipart')
  t.equal((await upload(app, headers, 'product_image', 'p.png', 'image/png', image)).statusCode, 403, 'product images are for admins')
  t.equal((await upload(app, {}, 'avatar', 'p.png', 'image/png', image)).statusCode, 401)
})

t.test('owner or admin may delete; product images and avatars use uploads', async (t) => {
  const dir = t.testdir()
  const app = await buildTestApp(t, { UPLOAD_DIR: dir })
  const admin = await registerAdmin(app)
  const ada = await register(app, { email: 'ada@example.com' })
  const eve = await register(app, { email: 'eve@example.com' })
  const avatar = (await upload(app, ada.headers, 'avatar', 'me.png', 'image/png', png())).json()

  const me = await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.headers, payload: { avatarId: avatar.id } })
  t.equal(me.json().avatarUrl, `/uploads/${avatar.id}`)
  t.equal((await app.inject({ method: 'PATCH', url: '/users/me', headers: eve.headers, payload: { avatarId: avatar.id } })).statusCode, 400, "Eve cannot use Ada's upload")
  t.equal((await app.inject({ method: 'DELETE', url: `/uploads/${avatar.id}`, headers: eve.headers })).statusCode, 404, "Eve cannot delete Ada's file")
  t.equal((await app.inject({ method: 'GET', url: `/uploads/${avatar.id}` })).statusCode, 200)

  const image = (await upload(app, admin.headers, 'product_image', 'shirt.png', 'image/png', png())).json()
  const product = await createProduct(app, admin.headers, { name: 'Pictured' })
  const withImage = await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { imageIds: [image.id] } })
  t.same(withImage.json().imageIds, [image.id])
  t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { imageIds: [avatar.id] } })).statusCode, 400, 'an avatar is not a product image')
  t.equal((await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { imageIds: ['00000000-0000-4000-8000-000000000000'] } })).statusCode, 400)

  t.equal((await app.inject({ method: 'DELETE', url: `/uploads/${image.id}`, headers: admin.headers })).statusCode, 204)
  t.same((await app.inject({ method: 'GET', url: `/products/${product.id}` })).json().imageIds, [], 'the product no longer points at it')
  t.equal((await app.inject({ method: 'GET', url: `/uploads/${image.id}` })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/uploads/${avatar.id}`, headers: ada.headers })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: '/users/me', headers: ada.headers })).json().avatarUrl, null)
})

t.test('a deleted file stops being served at once: caches revalidate every use (no-cache, ETag) instead of keeping it a year', async (t) => {
  const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir() })
  const ada = await register(app, { email: 'ada@example.com' })
  const file = (await upload(app, ada.headers, 'avatar', 'me.png', 'image/png', png())).json()

  const served = await app.inject({ method: 'GET', url: file.url })
  t.equal(served.statusCode, 200)
  t.equal(served.headers['cache-control'], 'public, no-cache', 'before: public, max-age=31536000, immutable')
  t.equal(served.headers.etag, `"${file.sha256}"`)
  const revalidated = await app.inject({ method: 'GET', url: file.url, headers: { 'if-none-match': served.headers.etag as string } })
  t.equal(revalidated.statusCode, 304)
  t.equal(revalidated.rawPayload.length, 0, 'a 304 carries no body')
  t.equal((await app.inject({ method: 'GET', url: file.url, headers: { 'if-none-match': `W/"other", ${served.headers.etag}` } })).statusCode, 304)
  t.equal((await app.inject({ method: 'GET', url: file.url, headers: { 'if-none-match': '"stale"' } })).statusCode, 200)

  t.equal((await app.inject({ method: 'DELETE', url: file.url, headers: ada.headers })).statusCode, 204)
  const gone = await app.inject({ method: 'GET', url: file.url, headers: { 'if-none-match': served.headers.etag as string } })
  t.equal(gone.statusCode, 404, "a cache's revalidation learns at once that the file is gone")
})

t.test('each account keeps at most UPLOAD_QUOTA_FILES files and UPLOAD_QUOTA_BYTES bytes; admins have their own, larger quota', async (t) => {
  const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir(), UPLOAD_QUOTA_FILES: '3', UPLOAD_QUOTA_BYTES: '4096', UPLOAD_ADMIN_QUOTA_FILES: '5' })
  const ada = await register(app, { email: 'ada@example.com' })
  const admin = await registerAdmin(app)
  const image = png()

  const kept = []
  for (let i = 0; i < 3; i++) kept.push((await upload(app, ada.headers, 'avatar', `${i}.png`, 'image/png', image)).json())
  const fourth = await upload(app, ada.headers, 'avatar', '3.png', 'image/png', image)
  t.equal(fourth.statusCode, 413)
  t.equal(fourth.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal(fourth.json().type, 'urn:problem-type:upload-quota-files')
  t.equal((await app.inject({ method: 'DELETE', url: kept[0].url, headers: ada.headers })).statusCode, 204)
  t.equal((await upload(app, ada.headers, 'avatar', '3.png', 'image/png', image)).statusCode, 201, 'deleting a file frees its place')

  const eve = await register(app, { email: 'eve@example.com' })
  const big = Buffer.concat([image, Buffer.alloc(3000)])
  t.equal((await upload(app, eve.headers, 'avatar', 'big.png', 'image/png', big)).statusCode, 201)
  const over = await upload(app, eve.headers, 'avatar', 'big2.png', 'image/png', big)
  t.equal(over.statusCode, 413)
  t.equal(over.json().type, 'urn:problem-type:upload-quota-bytes')

  // Racing uploads cannot share out the last place: the check and the insert hold a per-owner lock.
  const dan = await register(app, { email: 'dan@example.com' })
  const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => upload(app, dan.headers, 'avatar', `r${i}.png`, 'image/png', image)))
  t.same(racing.map((r) => r.statusCode).sort(), [201, 201, 201, 413, 413, 413])

  const adminUploads = await Promise.all(Array.from({ length: 6 }, (_, i) => upload(app, admin.headers, 'product_image', `p${i}.png`, 'image/png', image)))
  t.same(adminUploads.map((r) => r.statusCode).sort(), [201, 201, 201, 201, 201, 413], 'the admin quota is its own (5 here)')
  const { readdirSync } = await import('node:fs')
  t.equal(readdirSync(app.config.uploads.dir).length, 3 - 1 + 1 + 1 + 3 + 5, 'refused uploads leave no file behind')
})

t.test('the orphan job deletes uploads no product or avatar uses after the grace period, rows and files', async (t) => {
  const dir = t.testdir()
  const app = await buildTestApp(t, { UPLOAD_DIR: dir, UPLOAD_ORPHAN_GRACE_HOURS: '24' })
  const admin = await registerAdmin(app)
  const ada = await register(app, { email: 'ada@example.com' })
  const put = async (headers: Record<string, string>, purpose: string) => (await upload(app, headers, purpose, 'f.png', 'image/png', png())).json()
  const [orphanImage, productImage, orphanAvatar, avatar, recent] = [
    await put(admin.headers, 'product_image'), await put(admin.headers, 'product_image'),
    await put(ada.headers, 'avatar'), await put(ada.headers, 'avatar'), await put(ada.headers, 'avatar'),
  ]
  const product = await createProduct(app, admin.headers, { name: 'Pictured' })
  await app.inject({ method: 'PATCH', url: `/products/${product.id}`, headers: admin.headers, payload: { imageIds: [productImage.id] } })
  await app.inject({ method: 'PATCH', url: '/users/me', headers: ada.headers, payload: { avatarId: avatar.id } })
  const { uploadedFiles } = await import('../db/schema/index.js')
  const { sql } = await import('drizzle-orm')
  await app.db.update(uploadedFiles).set({ createdAt: new Date(Date.now() - 25 * 3_600_000) }).where(sql`${uploadedFiles.id} <> ${recent.id}`)

  const { createUploadService } = await import('../routes/uploads/service.js')
  const { createLocalStorage } = await import('../src/storage.js')
  const service = createUploadService({ db: app.db, storage: createLocalStorage(dir), quota: app.config.uploads.quota })
  // A file whose row was never written (a crash between the two), old and new.
  const { writeFileSync, utimesSync } = await import('node:fs')
  const { join } = await import('node:path')
  const strayOld = '00000000-0000-4000-8000-000000000001.png'
  const strayNew = '00000000-0000-4000-8000-000000000002.png'
  writeFileSync(join(dir, strayOld), png()); writeFileSync(join(dir, strayNew), png())
  // Both ages set from this process's clock, which the orphan job reads, not left to the file system's.
  const dayAgo = new Date(Date.now() - 25 * 3_600_000)
  utimesSync(join(dir, strayOld), dayAgo, dayAgo)
  utimesSync(join(dir, strayNew), new Date(), new Date())
  t.same(await service.removeOrphans(24), { removed: 2, strayFiles: 1 })
  for (const gone of [orphanImage, orphanAvatar]) t.equal((await app.inject({ method: 'GET', url: gone.url })).statusCode, 404)
  for (const kept of [productImage, avatar, recent]) t.equal((await app.inject({ method: 'GET', url: kept.url })).statusCode, 200)
  const { readdirSync } = await import('node:fs')
  t.same(readdirSync(dir).map((f) => f.split('.')[0]).sort(), [productImage.id, avatar.id, recent.id, strayNew.split('.')[0]].sort(), 'their files are gone too, and the old stray file')
  t.same(await service.removeOrphans(24), { removed: 0, strayFiles: 0 }, 'idempotent')
})
