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
