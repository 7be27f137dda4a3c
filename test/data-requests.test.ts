import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createGunzip } from 'node:zlib'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { buffer } from 'node:stream/consumers'
import tar from 'tar-stream'
import pg from 'pg'
import { Redis } from 'ioredis'
import { eq, inArray } from 'drizzle-orm'
import { activityModel } from '../db/models/activity.js'
import { dataExports, erasureRequests, orders, uploadedFiles, users, webhookDeliveries } from '../db/schema/index.js'
import { buildTestApp, TEST_REDIS_URL } from './helpers.js'
import { startMailbox } from './mail.js'
import { customerWithData, dumpMongo, dumpPostgres, dumpRedis, filesIn, findTraces, person, shopProduct } from './data-requests-fixtures.js'
import { png } from './uploads-fixtures.js'
import { registerAdmin } from './users.js'

// "Export my data" and "Erase me" (#24), through HTTP against real stores. Two customers with
// the same kinds of data each time: one is exported or erased, the other is the control that
// proves the search would have found something.

const PROBLEM = 'application/problem+json; charset=utf-8'
const uploadDir = mkdtempSync(join(tmpdir(), 'erase-uploads-'))
const exportDir = mkdtempSync(join(tmpdir(), 'erase-exports-'))
const mailbox = await startMailbox(t)
const app = await buildTestApp(t, { UPLOAD_DIR: uploadDir, DATA_EXPORT_DIR: exportDir, SMTP_URL: mailbox.url, RATE_LIMIT_MAX: '100000' })
const admin = await registerAdmin(app)
const product = await shopProduct(app, admin)
const range = `from=${encodeURIComponent(new Date(Date.now() - 86_400_000).toISOString())}&to=${encodeURIComponent(new Date(Date.now() + 86_400_000).toISOString())}`

/** The entries of a tar.gz, by name. */
async function untar(bytes: Buffer) {
  const entries = new Map<string, Buffer>()
  const extract = tar.extract()
  extract.on('entry', (header, stream, next) => { buffer(stream).then((b) => { entries.set(header.name, b); next() }, next) })
  await pipeline(Readable.from([bytes]), createGunzip(), extract)
  return entries
}

t.test('an export holds exactly the customer\'s data, behind a short-lived link', async (t) => {
  const ada = await customerWithData(app, admin, product, person('ada'))
  const bob = await customerWithData(app, admin, product, person('bob'), ada.reviewId)

  const asked = await app.inject({ method: 'POST', url: '/users/me/export', headers: ada.headers })
  t.equal(asked.statusCode, 202, asked.body)
  t.match(asked.json(), { status: 'pending', downloadUrl: null })
  const again = await app.inject({ method: 'POST', url: '/users/me/export', headers: ada.headers })
  t.equal(again.json().id, asked.json().id, 'asking again while one is pending answers that one')
  const exportId = asked.json().id as string
  t.equal((await app.inject({ method: 'GET', url: `/users/me/export/${exportId}`, headers: bob.headers })).statusCode, 404, "another customer's export is a 404")

  t.same(await app.services.dataExports.runDue(), { built: 1, failed: 0 })
  const ready = await app.inject({ method: 'GET', url: `/users/me/export/${exportId}`, headers: ada.headers })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'ready', downloadUrl: /^\/users\/me\/export\/.+\/download\?token=/ })
  const url = ready.json().downloadUrl as string

  // The archive is not among the public uploads, and a link works only with its token, for its export.
  t.same(filesIn(exportDir), [`${exportId}.tgz`])
  t.notOk(filesIn(uploadDir).includes(`${exportId}.tgz`))
  t.equal((await app.inject({ method: 'GET', url: `/uploads/${exportId}` })).statusCode, 404)
  for (const bad of [url.replace(/token=.*/, 'token=not-the-token'), url.replace(exportId, bob.orderId), url.replace(/\?token=.*/, '')]) {
    const res = await app.inject({ method: 'GET', url: bad })
    t.ok([400, 404].includes(res.statusCode), `${bad}: ${res.statusCode}`)
    t.equal(res.headers['content-type'], PROBLEM)
  }
  const redis = new Redis(TEST_REDIS_URL)
  t.teardown(() => redis.disconnect())
  const [linkKey] = await redis.keys(`${app.config.redis.keyPrefix}export-link:*`)
  const ttl = await redis.ttl(linkKey!)
  t.ok(ttl > 0 && ttl <= app.config.privacy.linkTtlSeconds, `the link expires (in ${ttl} s)`)

  const download = await app.inject({ method: 'GET', url })
  t.equal(download.statusCode, 200)
  t.equal(download.headers['content-type'], 'application/gzip')
  t.match(download.headers['cache-control'], /no-store/)
  const entries = await untar(download.rawPayload)
  const [avatarRow] = await app.db.select().from(uploadedFiles).where(eq(uploadedFiles.id, ada.avatar.id))
  t.same([...entries.keys()].sort(), ['data.json', `files/${avatarRow!.storageKey}`])
  t.same(entries.get(`files/${avatarRow!.storageKey}`), png(), 'the uploaded file, byte for byte')
  const text = entries.get('data.json')!.toString()
  const data = JSON.parse(text)

  // Everything of Ada's, from every store.
  t.match(data.account, { id: ada.id, email: ada.email, name: ada.name, avatarId: ada.avatar.id })
  t.same(data.addresses.map((a: { id: string }) => a.id), [ada.addressId])
  t.same(data.orders.map((o: { id: string }) => o.id), [ada.orderId])
  t.equal(data.orders[0].items.length, 1)
  t.same(data.orders[0].payments.map((p: { id: string }) => p.id), [ada.paymentId])
  t.same(data.returns.map((r: { id: string }) => r.id), [ada.returnId])
  t.same(data.reviews.map((r: { id: string }) => r.id), [ada.reviewId])
  t.equal(data.cart.lines.length, 1, 'the cart line added after the order')
  t.same(data.wishlist.map((w: { productId: string }) => w.productId), [product.id])
  const activity = await activityModel(app.mongo).countDocuments({ userId: ada.id })
  t.ok(activity > 0)
  t.equal(data.activity.length, activity, 'every activity entry of hers')
  t.same(data.uploads.map((u: { id: string }) => u.id), [ada.avatar.id])
  // No secrets, and nothing of Bob's (who has the same kinds of data and voted on Ada's review).
  for (const secret of ['password_hash', 'passwordHash', 'totpSecret', 'codeHash']) t.notOk(text.includes(secret), `no ${secret}`)
  for (const [what, value] of Object.entries({ email: bob.email, name: bob.name, line: bob.line1, id: bob.id, address: bob.addressId, order: bob.orderId, payment: bob.paymentId, return: bob.returnId, review: bob.reviewId, avatar: bob.avatar.id })) {
    t.notOk(text.includes(value), `nothing of Bob's: his ${what}`)
  }

  // Past its time the archive is deleted by the purge job; the export says so.
  await app.db.update(dataExports).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(dataExports.id, exportId))
  t.same(await app.services.dataExports.purgeExpired(), { expired: 1 })
  t.same(filesIn(exportDir), [])
  t.match((await app.inject({ method: 'GET', url: `/users/me/export/${exportId}`, headers: ada.headers })).json(), { status: 'expired', downloadUrl: null })
  t.equal((await app.inject({ method: 'GET', url })).statusCode, 404, 'the old link opens nothing')
  const next = await app.inject({ method: 'POST', url: '/users/me/export', headers: ada.headers })
  t.not(next.json().id, exportId, 'a new export can be asked once the last is done')
})

t.test('an erasure leaves no trace of the person in any store; orders, totals and analytics stay', async (t) => {
  const endpoint = await app.inject({ method: 'POST', url: '/webhooks/endpoints', headers: admin.headers, payload: { url: 'http://127.0.0.1:9/erased', events: ['customer.erased'] } })
  t.equal(endpoint.statusCode, 201, endpoint.body)
  const cara = await customerWithData(app, admin, product, person('cara'))
  const dan = await customerWithData(app, admin, product, person('dan'), cara.reviewId)
  const call = (method: 'GET' | 'POST', url: string, headers = cara.headers, payload?: object) => app.inject({ method, url, headers, ...(payload ? { payload } : {}) })

  // Refused while an order is unpaid, then while a return is open.
  await call('POST', '/cart/items', cara.headers, { variantId: product.variants[1].id, quantity: 1 })
  const unpaid = await app.inject({ method: 'POST', url: '/orders', headers: { ...cara.headers, 'idempotency-key': 'cara-unpaid-1' }, payload: { addressId: cara.addressId } })
  t.equal(unpaid.statusCode, 201, unpaid.body)
  const refusedUnpaid = await call('POST', '/users/me/erasure')
  t.equal(refusedUnpaid.statusCode, 409)
  t.equal(refusedUnpaid.json().type, 'urn:problem-type:erasure-unpaid-order')
  t.equal((await call('POST', `/orders/${unpaid.json().id}/cancel`)).statusCode, 200)
  const { items } = (await call('GET', `/orders/${cara.orderId}`)).json()
  const open = await call('POST', `/orders/${cara.orderId}/returns`, cara.headers, { items: [{ orderItemId: items[0].id, quantity: 1, reason: 'defective' }] })
  t.equal(open.statusCode, 201, open.body)
  const refusedReturn = await call('POST', '/users/me/erasure')
  t.equal(refusedReturn.statusCode, 409)
  t.equal(refusedReturn.json().type, 'urn:problem-type:erasure-open-return')
  t.equal((await call('POST', `/returns/${open.json().id}/reject`, admin.headers, { reason: 'Too late' })).statusCode, 200)

  // A built export and a pending one: both go.
  await call('POST', '/users/me/export')
  await app.services.dataExports.runDue()
  await call('POST', '/users/me/export')

  await app.outbox.drain({ all: true })
  await app.activity.flush()
  const analytics = async () => Object.fromEntries(await Promise.all(['sales', 'shipping-tax', 'returns', 'customers', 'payments', 'top-products'].map(async (name) => {
    const res = await app.inject({ method: 'GET', url: `/analytics/${name}?${range}`, headers: admin.headers })
    return [name, res.json()]
  })))
  const before = await analytics()
  const caraOrders = await app.db.select().from(orders).where(eq(orders.userId, cara.id))
  const fileOf = async (uploadId: string) => (await app.db.select().from(uploadedFiles).where(eq(uploadedFiles.id, uploadId)))[0]!.storageKey
  const [caraFile, danFile] = [await fileOf(cara.avatar.id), await fileOf(dan.avatar.id)]
  const caraExports = (await app.db.select().from(dataExports).where(eq(dataExports.userId, cara.id))).map((e) => `${e.id}.tgz`)
  t.ok(filesIn(exportDir).some((f) => caraExports.includes(f)), 'her built export is on disk')
  t.equal(caraOrders.length, 2, 'the delivered order and the cancelled one')

  // Ask, then confirm with the mailed token (a wrong token is refused, and nothing starts).
  t.equal((await call('POST', '/users/me/erasure')).statusCode, 202)
  const [, token] = await mailbox.waitFor(cara.email, /erase-account\?token=(\S+)/)
  const wrong = await call('POST', '/users/me/erasure/confirm', cara.headers, { token: 'not-the-token' })
  t.equal(wrong.statusCode, 409)
  t.equal(wrong.json().type, 'urn:problem-type:erasure-token-invalid')
  t.equal((await call('POST', '/users/me/erasure/confirm', dan.headers, { token: token! })).statusCode, 409, "someone else's token is refused")
  t.equal((await call('POST', '/users/me/erasure')).statusCode, 202)
  const [, token2] = await mailbox.waitFor(cara.email, /erase-account\?token=(\S+)/)
  const confirmed = await call('POST', '/users/me/erasure/confirm', cara.headers, { token: token2! })
  t.equal(confirmed.statusCode, 202, confirmed.body)
  t.match(confirmed.json(), { status: 'running', step: 'requested' })
  t.equal((await call('GET', '/users/me')).statusCode, 401, 'her sessions ended at once')

  t.same(await app.services.erasure.runDue(), { completed: 1, failed: 0 })
  await app.outbox.drain({ all: true })
  await app.activity.flush()

  // Search every store for her.
  const client = new pg.Client({ connectionString: app.config.postgres.url })
  await client.connect()
  t.teardown(() => client.end())
  const stores = async () => ({
    postgres: await dumpPostgres(client),
    mongo: await dumpMongo(app.mongo.db!),
    redis: await dumpRedis(app.config.redis.keyPrefix),
    uploads: Object.fromEntries(filesIn(uploadDir).map((f) => [f, ''])),
    exports: Object.fromEntries(filesIn(exportDir).map((f) => [f, ''])),
  })
  const [caraAvatar] = await app.db.select().from(uploadedFiles).where(eq(uploadedFiles.id, cara.avatar.id))
  t.notOk(caraAvatar, 'her upload row is gone')
  const after = await stores()
  const needles = (p: typeof cara) => [p.email, p.name, p.line1, p.id, p.addressId, p.reviewId, p.avatar.id]
  t.same(findTraces(after, needles(cara)), [], 'no trace of her email, name, address, account, address, review or upload ids')
  t.ok(findTraces(after, needles(dan)).length > 5, 'the same search finds the other customer')
  t.notOk(filesIn(uploadDir).includes(caraFile), 'her file is gone from disk')
  t.ok(filesIn(uploadDir).includes(danFile), "Dan's is not")
  t.same(filesIn(exportDir).filter((f) => caraExports.includes(f)), [], 'her export archive is gone')

  // Her orders stay, with the same money, under an anonymous account.
  const [request] = await app.db.select().from(erasureRequests)
  t.match(request, { status: 'completed', userId: null, step: 'account' })
  const kept = await app.db.select().from(orders).where(inArray(orders.id, caraOrders.map((o) => o.id)))
  t.same(kept.map((o) => [o.id, o.status, o.totalMinor, o.refundedMinor, o.taxMinor]).sort(), caraOrders.map((o) => [o.id, o.status, o.totalMinor, o.refundedMinor, o.taxMinor]).sort())
  t.ok(kept.every((o) => o.userId === request!.tombstoneId && o.shippingAddress.recipientName === 'Erased customer' && o.shippingAddress.country === 'GB'))
  const [tombstone] = await app.db.select().from(users).where(eq(users.id, request!.tombstoneId))
  t.match(tombstone, { name: 'Erased customer', email: `erased-${request!.tombstoneId}@erased.invalid`, isActive: false, passwordHash: null })
  t.same(await analytics(), before, 'every analytics answer is as it was')

  // Subscribers are told, with no personal data (the search above covered the body too).
  const deliveries = await app.db.select().from(webhookDeliveries).where(eq(webhookDeliveries.eventType, 'customer.erased'))
  t.equal(deliveries.length, 1)
  t.match(JSON.parse(deliveries[0]!.body), { type: 'customer.erased', data: { erasureId: request!.id, customerId: request!.tombstoneId } })

  // A second run finds nothing to do and changes nothing.
  t.same(await app.services.erasure.runDue(), { completed: 0, failed: 0 })
  const again = await stores()
  t.same(again.postgres.orders, after.postgres.orders)
  t.same(again.postgres.users, after.postgres.users)
})

t.test('an admin erases an account on request, audited', async (t) => {
  const eve = await customerWithData(app, admin, product, person('eve'))
  t.equal((await app.inject({ method: 'POST', url: `/users/${eve.id}/erasure`, headers: eve.headers })).statusCode, 403, 'customers cannot')
  const self = await app.inject({ method: 'POST', url: `/users/${admin.user.id}/erasure`, headers: admin.headers })
  t.equal(self.statusCode, 409)
  t.equal((await app.inject({ method: 'POST', url: '/users/00000000-0000-4000-8000-000000000000/erasure', headers: admin.headers })).statusCode, 404)
  const res = await app.inject({ method: 'POST', url: `/users/${eve.id}/erasure`, headers: admin.headers })
  t.equal(res.statusCode, 202, res.body)
  const twice = await app.inject({ method: 'POST', url: `/users/${eve.id}/erasure`, headers: admin.headers })
  t.equal(twice.json().id, res.json().id, 'asking again while it runs answers the same request')
  await app.activity.flush()
  t.same(await app.services.erasure.runDue(), { completed: 1, failed: 0 })
  await app.activity.flush()
  const [request] = await app.db.select().from(erasureRequests).where(eq(erasureRequests.id, res.json().id))
  t.match(request, { status: 'completed', requestedBy: admin.user.id })
  const audit = await activityModel(app.mongo).find({ type: 'admin_action', userId: admin.user.id, 'data.route': '/users/:userId/erasure' }).lean()
  t.equal(audit.length, 2, 'both admin requests are in the activity log')
  t.ok(audit.every((a) => (a.data.params as { userId: string }).userId === request!.tombstoneId), 'naming the anonymous account, not the person')
  t.same(findTraces({ mongo: await dumpMongo(app.mongo.db!) }, [eve.id, eve.email, eve.name]), [])
})
