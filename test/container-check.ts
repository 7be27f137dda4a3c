import { readFileSync } from 'node:fs'
import pg from 'pg'
import { CreateBucketCommand, DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { TEST_DATABASE_URL, TEST_S3_ACCESS_KEY_ID, TEST_S3_ENDPOINT, TEST_S3_SECRET_ACCESS_KEY } from './helpers.js'
import { multipartBody, png } from './uploads-fixtures.js'

// What test/container.sh checks against the running image: it serves, it is ready on its
// stores, it migrated the empty database itself, it runs as a non-root user, a customer can
// buy and pay, and files go to the object store (STORAGE=s3, the test MinIO). Exits non-zero with a line saying what failed.

const base = process.env.BASE_URL!
const failures: string[] = []
const check = (ok: boolean, what: string) => { console.log(`container: ${ok ? 'ok' : 'FAILED'} - ${what}`); if (!ok) failures.push(what) }
const call = async (method: string, path: string, body?: object, headers: Record<string, string> = {}) => {
  const res = await fetch(base + path, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined })
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of the API under test, read loosely
  return { status: res.status, body: await res.json().catch(() => null) as Record<string, any> }
}

check((await call('GET', '/health')).status === 200, '/health answers 200')
const ready = await call('GET', '/ready')
check(ready.status === 200, `/ready answers 200 (${JSON.stringify(ready.body)})`)
check(process.env.CONTAINER_USER !== '0' && process.env.CONTAINER_USER !== undefined, `runs as a non-root user (uid ${process.env.CONTAINER_USER})`)

const url = new URL(TEST_DATABASE_URL)
url.pathname = `/${process.env.CONTAINER_DB}`
const db = new pg.Client({ connectionString: url.toString() })
await db.connect()
const journal = JSON.parse(readFileSync('drizzle/meta/_journal.json', 'utf8')) as { entries: unknown[] }
const applied = await db.query('select count(*)::int as n from drizzle.__drizzle_migrations')
check(applied.rows[0].n === journal.entries.length, `applied all ${journal.entries.length} migrations to the empty database`)

const adminSignup = await call('POST', '/auth/register', { email: 'ops@example.com', name: 'Ops', password: 'a long admin password' })
// Not about verification (sign-in waits for it): verified and promoted in the database.
await db.query(`update users set role = 'admin', email_verified_at = now() where email = 'ops@example.com'`)
const adminLogin = await call('POST', '/auth/login', { email: 'ops@example.com', password: 'a long admin password' })
const admin = { authorization: `Bearer ${adminLogin.body?.tokens?.accessToken}` }
check(adminSignup.status === 202 && adminLogin.status === 200, 'an admin signs in')
const product = await call('POST', '/products', { name: 'Container Mug', slug: 'container-mug', status: 'active', variants: [{ sku: 'MUG-CTR', priceMinor: 1500, stock: 5 }] }, admin)
check(product.status === 201, `a product is created (${product.status})`)

await call('POST', '/auth/register', { email: 'buyer@example.com', name: 'Buyer', password: 'a long buyer password' })
await db.query(`update users set email_verified_at = now() where email = 'buyer@example.com'`)
const buyer = await call('POST', '/auth/login', { email: 'buyer@example.com', password: 'a long buyer password' })
const auth = { authorization: `Bearer ${buyer.body?.tokens?.accessToken}` }
await call('POST', '/cart/items', { variantId: product.body?.variants?.[0]?.id, quantity: 2 }, auth)
const order = await call('POST', '/orders', { shippingAddress: { recipientName: 'Buyer', line1: '2 Port Road', city: 'Hamburg', postalCode: '20457', country: 'DE' } }, { ...auth, 'idempotency-key': 'container-checkout-1' })
check(order.status === 201, `checkout (${order.status})`)
const payment = await call('POST', `/orders/${order.body?.id}/payments`, { provider: 'test', paymentMethod: 'tok_success' }, { ...auth, 'idempotency-key': 'container-payment-1' })
const confirmed = await call('POST', `/payments/${payment.body?.id}/confirm`, { paymentMethod: 'tok_success' }, auth)
check(confirmed.body?.status === 'succeeded', 'the payment is captured')
check((await call('GET', `/orders/${order.body?.id}`, undefined, auth)).body?.status === 'paid', 'the order is paid')
await db.end()

// An avatar goes to the bucket, under the run's prefix, and comes back through the API.
const Bucket = process.env.CONTAINER_S3_BUCKET!
const prefix = process.env.CONTAINER_S3_PREFIX!
const s3 = new S3Client({ endpoint: TEST_S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: TEST_S3_ACCESS_KEY_ID, secretAccessKey: TEST_S3_SECRET_ACCESS_KEY } })
await s3.send(new CreateBucketCommand({ Bucket })).catch((err: Error) => { if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(err.name)) throw err })
try {
  const image = png()
  const form = multipartBody('me.png', 'image/png', image)
  const uploaded = await fetch(`${base}/uploads?purpose=avatar`, { method: 'POST', headers: { ...auth, 'content-type': form.contentType }, body: form.payload })
  const file = await uploaded.json() as { id?: string; url?: string }
  check(uploaded.status === 201, `an upload is stored (${uploaded.status})`)
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: `${prefix}uploads/${file.id}.png` })).catch(() => undefined)
  check(head?.ContentLength === image.length, `the upload is an object of the bucket (${prefix}uploads/${file.id}.png)`)
  const back = await fetch(`${base}${file.url}`, { headers: auth })
  check(back.status === 200 && Buffer.from(await back.arrayBuffer()).equals(image), 'the API serves it back from the bucket')
} finally {
  const listed = await s3.send(new ListObjectsV2Command({ Bucket, Prefix: prefix }))
  const keys = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }))
  if (keys.length) await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys } }))
  s3.destroy()
}
if (failures.length) { console.error(`container: ${failures.length} failed`); process.exit(1) }
console.log('container: all checks passed')
