import t from 'tap'
import { randomUUID } from 'node:crypto'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import { png, upload } from './uploads-fixtures.js'

// A sweep over every operation of the served contract (the same document as openapi/openapi.json,
// which `npm run openapi:check` keeps current), so a new route is covered without editing this
// test. What each operation must do is read from the contract: `security` (who may call it),
// `x-roles` (emitted from the route's requireRole hook: the admin's operations), its path, query
// and body parameters. test/auth-first.test.ts proves the 401s without a token.

type Schema = Record<string, unknown> & { $ref?: string; type?: string; properties?: Record<string, Schema>; required?: string[]; anyOf?: Schema[]; oneOf?: Schema[]; items?: Schema; enum?: unknown[] }
interface Parameter { name: string; in: 'path' | 'query' | 'header'; required?: boolean; schema: Schema }
interface Operation {
  operationId: string; summary?: string; security?: Record<string, string[]>[]; 'x-roles'?: string[]; 'x-body-limit'?: number
  parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> }
}
interface Op extends Operation { method: string; path: string }
type Headers = Record<string, string>

const PROBLEM = 'application/problem+json; charset=utf-8'
const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

// The sweep sends a few thousand requests from one address: the rate limit is tested elsewhere.
// The catalog import takes files as large as uploads here, so one file over that size proves both limits.
const app = await buildTestApp(t, { UPLOAD_DIR: t.testdir(), CATALOG_FILES_DIR: t.testdir(), RATE_LIMIT_MAX: '1000000', CATALOG_IMPORT_MAX_BYTES: String(5 * 1024 * 1024) })
const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json() as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } }
const ops: Op[] = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ ...op, method: method.toUpperCase(), path })))
const params = (op: Op, where: Parameter['in']) => (op.parameters ?? []).filter((p) => p.in === where)
const resolve = (schema: Schema): Schema => schema.$ref ? resolve(doc.components.schemas[schema.$ref.replace('#/components/schemas/', '')]!) : schema
const bearerOnly = (op: Op) => (op.security ?? []).length > 0 && !(op.security ?? []).some((s) => Object.keys(s).length === 0) && (op.security ?? []).some((s) => 'bearerAuth' in s)
/** Operations a guest order's token opens (no account): swept with another order's token. */
const orderTokenOnly = (op: Op) => (op.security ?? []).length > 0 && (op.security ?? []).every((s) => 'orderToken' in s)

// ---- the world the sweep runs in, built through the API ----
const admin = await registerAdmin(app)
const ada = await register(app, { email: 'ada@example.com' })
const eve = await register(app, { email: 'eve@example.com' })
const carol = await register(app, { email: 'carol@example.com' })
const variants = [{ priceMinor: 1200, stock: 1000 }, { priceMinor: 900, stock: 1000 }]
const product = await createProduct(app, admin.headers, { name: 'Swept shirt', variants })
await createProduct(app, admin.headers, { name: 'Another shirt', variants })
await createProduct(app, admin.headers, { name: 'Third shirt', variants })

async function call(method: string, url: string, headers: Headers, payload?: object, status = [200, 201, 204]) {
  const res = await app.inject({ method: method as 'GET', url, headers: { ...headers, 'idempotency-key': randomUUID() }, ...(payload ? { payload } : {}) })
  if (!status.includes(res.statusCode)) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.body ? res.json() : undefined
}
const addressBody = { recipientName: 'Ada', line1: '1 Main Street', city: 'Berlin', postalCode: '10115', country: 'DE' }
/** A customer's paid order of a product's first variant, and their review of it. */
async function buyAndReview(who: { headers: Headers }, title: string) {
  const address = await call('POST', '/users/me/addresses', who.headers, addressBody)
  await call('POST', '/cart/items', who.headers, { variantId: product.variants[0].id, quantity: 1 })
  const order = await call('POST', '/orders', who.headers, { addressId: address.id })
  const payment = await call('POST', `/orders/${order.id}/payments`, who.headers, { provider: 'test', paymentMethod: 'tok_success' })
  await call('POST', `/payments/${payment.id}/confirm`, who.headers, { paymentMethod: 'tok_success' })
  const review = await call('POST', `/products/${product.id}/reviews`, who.headers, { rating: 4, title, body: 'Fits well.' })
  return { address, order, payment, review }
}
const adas = await buyAndReview(ada, 'Ada likes it')
const carols = await buyAndReview(carol, 'Carol likes it too')
// Ada keeps a second, unpaid order, a cart line, a wishlist item and an avatar.
await call('POST', '/cart/items', ada.headers, { variantId: product.variants[1].id, quantity: 1 })
await call('POST', '/orders', ada.headers, { addressId: adas.address.id })
await call('POST', '/cart/items', ada.headers, { variantId: product.variants[1].id, quantity: 2 })
await call('PUT', `/wishlist/items/${product.id}`, ada.headers)
const avatar = (await upload(app, ada.headers, 'avatar', 'ada.png', 'image/png', png())).json()
// Admin-side objects, two of each listing's kind so every listing has a second page.
const coupons = [await call('POST', '/coupons', admin.headers, { code: 'SWEEP10', kind: 'percentage', value: 10 }), await call('POST', '/coupons', admin.headers, { code: 'SWEEP20', kind: 'percentage', value: 20 })]
const category = await call('POST', '/categories', admin.headers, { name: 'Swept', slug: 'swept' })
const endpoint = await call('POST', '/webhooks/endpoints', admin.headers, { url: 'http://127.0.0.1:9/swept', events: ['product.updated'] })
await call('POST', '/webhooks/endpoints', admin.headers, { url: 'http://127.0.0.1:9/swept-too', events: ['order.paid'] })
for (const name of ['Swept shirt', 'Swept shirt (2)']) await call('PATCH', `/products/${product.id}`, admin.headers, { name })
// Deliveries are made from the outbox right after each commit.
for (let i = 0; i < 50 && (await call('GET', `/webhooks/endpoints/${endpoint.id}/deliveries`, admin.headers)).items.length < 2; i++) await new Promise((r) => setTimeout(r, 100))
// Ada's and Carol's orders delivered, each with a return asked for.
const returnOf = async (who: { headers: Headers }, orderId: string) => {
  for (const status of ['fulfilled', 'shipped', 'delivered']) await call('PATCH', `/orders/${orderId}/status`, admin.headers, { status })
  const { items } = await call('GET', `/orders/${orderId}`, who.headers)
  return call('POST', `/orders/${orderId}/returns`, who.headers, { items: [{ orderItemId: items[0].id, quantity: 1, reason: 'damaged' }] })
}
const adasReturn = await returnOf(ada, adas.order.id)
await returnOf(carol, carols.order.id)
for (const delta of [5, -2]) await call('POST', `/products/${product.id}/variants/${product.variants[0].id}/stock-adjustments`, admin.headers, { delta, reason: 'correction' })

// Ada's objects by the path parameter that names them; others are the catalog's or the admin's.
const adaIds: Record<string, string> = {
  addressId: adas.address.id, orderId: adas.order.id, paymentId: adas.payment.id, reviewId: adas.review.id,
  uploadId: avatar.id, variantId: product.variants[1].id, productId: product.id, userId: ada.body.user.id,
  couponId: coupons[0].id, categoryId: category.id, slug: product.slug, provider: 'test', endpointId: endpoint.id, returnId: adasReturn.id,
  // Not an object's id: a value its pattern accepts.
  currency: 'EUR', size: 'w480.webp',
}
const pathOf = (op: Op, ids: Record<string, string> = adaIds) => op.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(ids[name] ?? randomUUID()))

// Strings that fit the patterns in the contract (a TOTP code, a country, a coupon code, a slug).
const PATTERN_CANDIDATES = ['123456', 'DE', 'EUR', 'SWEEP10', 'sweep-slug', 'x']
/** A value the schema accepts: its example, default or first enum value, else the smallest that fits. */
function sample(schema: Schema, name = ''): unknown {
  const s = resolve(schema)
  const known: Record<string, unknown> = { paymentMethod: 'tok_success', provider: 'test', quantity: 1, purpose: 'avatar', from: new Date(Date.now() - 30 * 86_400_000).toISOString(), to: new Date(Date.now() + 86_400_000).toISOString() }
  if (name in known) return known[name]
  if (Array.isArray(s.examples) && s.examples.length) return s.examples[0]
  if (s.default !== undefined) return s.default
  if (s.enum) return s.enum[0]
  const choice = s.anyOf ?? s.oneOf
  if (choice) return sample(choice.find((c) => resolve(c).type !== 'null') ?? choice[0]!, name)
  switch (s.type) {
    case 'object': {
      const props = s.properties ?? {}
      const keys = s.required?.length ? s.required : Object.keys(props).slice(0, Number(s.minProperties ?? 0))
      return Object.fromEntries(keys.map((k) => [k, sample(props[k] ?? {}, k)]))
    }
    case 'array': return Array.from({ length: Number(s.minItems ?? 0) }, () => sample(s.items ?? {}))
    case 'integer': case 'number': return Math.max(Number(s.minimum ?? 1), Math.min(1, Number(s.maximum ?? 1)))
    case 'boolean': return true
    case 'string':
      if (s.format === 'uuid') return randomUUID()
      if (s.format === 'email') return 'someone@example.com'
      if (s.format === 'date-time') return new Date().toISOString()
      if (typeof s.pattern === 'string') return PATTERN_CANDIDATES.find((c) => new RegExp(s.pattern as string, 'u').test(c)) ?? 'x'
      return 'x'.repeat(Math.max(1, Number(s.minLength ?? 1)))
    default: return {}
  }
}
const jsonBody = (op: Op) => op.requestBody?.content['application/json']
/** The query an operation requires, with acceptable values. */
const requiredQuery = (op: Op) => Object.fromEntries(params(op, 'query').filter((p) => p.required).map((p) => [p.name, String(sample(p.schema, p.name))]))
const withQuery = (url: string, query: Record<string, string>) => Object.keys(query).length ? `${url}?${new URLSearchParams(query)}` : url

function send(op: Op, headers: Headers, opts: { url?: string; query?: Record<string, string>; body?: unknown; raw?: string | Buffer; contentType?: string } = {}) {
  const url = withQuery(opts.url ?? pathOf(op), opts.query ?? requiredQuery(op))
  const body = opts.raw ?? (jsonBody(op) ? JSON.stringify(opts.body ?? sample(jsonBody(op)!.schema)) : undefined)
  return app.inject({
    method: op.method as 'GET', url, payload: body,
    headers: { ...headers, ...(body !== undefined ? { 'content-type': opts.contentType ?? 'application/json' } : {}), 'idempotency-key': randomUUID() },
  })
}
const label = (op: Op) => `${op.method} ${op.path}`

t.test('the contract names the admin operations (x-roles), and a customer gets 403 from every one', async (t) => {
  const adminOps = ops.filter((op) => op['x-roles']?.includes('admin'))
  t.ok(adminOps.length >= 30, `${adminOps.length} admin operations`)
  // The summaries say "(admin)" for people; x-roles comes from the route's own guard.
  t.same(ops.filter((op) => /\(admin\)$/.test(op.summary ?? '')).map(label), adminOps.map(label), 'every "(admin)" summary has x-roles, and only those')
  for (const op of adminOps) {
    const res = await send(op, ada.headers, { query: { limit: '-5', unknown: '1' }, body: { not: 'what it wants' } })
    t.equal(res.statusCode, 403, label(op))
    t.equal(res.headers['content-type'], PROBLEM, label(op))
  }
})

// Operations where another customer may act on something of Ada's by its id, and what they get.
const SHARED: Record<string, { status: number; why: string }> = {
  addWishlistItem: { status: 200, why: 'a product is public; Eve saves it to her own list' },
  createReview: { status: 403, why: 'a product is public; Eve has not bought it' },
  voteReviewHelpful: { status: 200, why: 'a published review is public; anyone signed in may find it helpful' },
}

t.test("with another customer's token, every operation on an id of Ada's is 404, and nothing of Ada's changes", async (t) => {
  const before = await adaState()
  // The shared operations last: Eve saving Ada's product to her own list would make Eve's removal of it legitimate.
  const swept = ops.filter((op) => bearerOnly(op) && !op['x-roles'] && params(op, 'path').length)
    .sort((a, b) => Number(a.operationId in SHARED) - Number(b.operationId in SHARED))
  for (const op of swept) {
    const res = await send(op, eve.headers)
    const expected = SHARED[op.operationId]?.status ?? 404
    t.equal(res.statusCode, expected, `${label(op)}: ${res.body.slice(0, 200)}`)
    if (expected === 404) t.equal(res.headers['content-type'], PROBLEM, label(op))
  }
  t.ok(swept.length >= 15, `${swept.length} operations swept`)
  t.same(await adaState(), before, "Ada's address, order, payment, review, cart, wishlist and file are as they were")
})

t.test("with another guest order's token, every order-token operation on a guest order is 404, and the order is as it was", async (t) => {
  const guestOrder = async (email: string) => {
    const { cartToken } = await call('POST', '/cart/guest', {})
    const cart = { 'x-cart-token': cartToken }
    await call('POST', '/cart/items', cart, { variantId: product.variants[0].id, quantity: 1 })
    await call('PUT', '/cart/contact', cart, { email })
    const placed = await call('POST', '/orders/guest', cart, { shippingAddress: addressBody })
    const headers = { 'x-order-token': placed.orderToken }
    const payment = await call('POST', `/orders/guest/${placed.order.id}/payments`, headers, { provider: 'test', paymentMethod: 'tok_success' })
    return { ids: { orderId: placed.order.id as string, paymentId: payment.id as string }, headers }
  }
  const gail = await guestOrder('gail@example.com')
  const gus = await guestOrder('gus@example.com')
  const gails = () => call('GET', `/orders/guest/${gail.ids.orderId}`, gail.headers)
  const before = await gails()
  const swept = ops.filter(orderTokenOnly)
  for (const op of swept) {
    const res = await send(op, gus.headers, { url: pathOf(op, gail.ids) })
    t.equal(res.statusCode, 404, `${label(op)}: ${res.body.slice(0, 200)}`)
    t.equal(res.headers['content-type'], PROBLEM, label(op))
  }
  t.ok(swept.length >= 5, `${swept.length} operations swept`)
  t.same(await gails(), before, "Gail's order is as it was, and her token still opens it")
})

// Ada's private objects (the catalog's products and variants are public), and body fields naming them.
const PRIVATE = ['addressId', 'orderId', 'paymentId', 'reviewId', 'uploadId'] as const
const BODY_ALIASES: Record<string, string> = { avatarId: 'uploadId' }
const privateIdOf = (field: string) => { const name = BODY_ALIASES[field] ?? field; return (PRIVATE as readonly string[]).includes(name) ? adaIds[name] : undefined }

t.test("an id of Ada's in another customer's body is refused, and no answer to Eve shows anything of Ada's", async (t) => {
  const before = await adaState()
  // Eve has something to check out, so a checkout to Ada's address is not refused for an empty cart.
  await call('POST', '/cart/items', eve.headers, { variantId: product.variants[1].id, quantity: 1 })
  let bodies = 0
  for (const op of ops.filter((o) => bearerOnly(o) && !o['x-roles'] && jsonBody(o))) {
    const schema = resolve(jsonBody(op)!.schema)
    for (const field of Object.keys(schema.properties ?? {}).filter((f) => privateIdOf(f))) {
      const body = { ...(sample(schema) as object), [field]: privateIdOf(field) }
      const res = await send(op, eve.headers, { url: pathOf(op, {}), body })
      t.ok([400, 404].includes(res.statusCode), `${label(op)} with Ada's ${field}: ${res.statusCode} ${res.body.slice(0, 200)}`)
      bodies++
    }
  }
  t.ok(bodies >= 2, `${bodies} body fields swept`)

  // Every read Eve may make without a path id, with Ada's ids wherever a query names one (userId).
  const secrets = [...PRIVATE.map((k) => adaIds[k]!), adaIds.userId!, 'ada@example.com']
  let reads = 0
  for (const op of ops.filter((o) => o.method === 'GET' && (o.security ?? []).length && !o['x-roles'] && !params(o, 'path').length)) {
    const query = Object.fromEntries(params(op, 'query').filter((p) => adaIds[p.name]).map((p) => [p.name, adaIds[p.name]!]))
    const res = await send(op, eve.headers, { query: { ...requiredQuery(op), ...query } })
    t.ok(res.statusCode < 500, `${label(op)}: ${res.statusCode}`)
    for (const secret of secrets) t.notOk(res.body.includes(secret), `${label(op)}${Object.keys(query).length ? ` ?${new URLSearchParams(query)}` : ''} does not show ${secret}`)
    reads++
  }
  t.ok(reads >= 5, `${reads} reads swept`)
  t.same(await adaState(), before, "nothing of Ada's changed")
})

async function adaState() {
  const get = async (url: string) => { const res = await app.inject({ method: 'GET', url, headers: ada.headers }); return { status: res.statusCode, body: res.json() } }
  const file = await app.inject({ method: 'GET', url: `/uploads/${avatar.id}` })
  const reviews = (await app.inject({ method: 'GET', url: `/products/${product.id}/reviews` })).json().items.find((r: { id: string }) => r.id === adas.review.id)
  return {
    address: await get(`/users/me/addresses/${adas.address.id}`), order: await get(`/orders/${adas.order.id}`),
    payment: await get(`/payments/${adas.payment.id}`), cart: (await get('/cart')).body.items, wishlist: (await get('/wishlist')).body,
    // Eve may find Ada's review helpful (SHARED); nothing else of it may change.
    review: { ...reviews, helpfulCount: undefined }, file: file.statusCode,
  }
}

t.test('every body over its limit is 413 problem+json', async (t) => {
  let swept = 0
  for (const op of ops.filter((o) => o.requestBody)) {
    let res
    if (jsonBody(op)) {
      // Each JSON operation states its limit (x-body-limit, from the route's bodyLimit or the default).
      const limit = op['x-body-limit']
      t.ok(limit && limit <= 1024 * 1024, `${label(op)} reads at most ${limit} bytes`)
      res = await send(op, admin.headers, { raw: JSON.stringify({ pad: 'x'.repeat(limit ?? app.config.bodyLimit) }) })
    } else {
      // multipart: a file one byte over its own limit
      const boundary = 'sweep-boundary'
      const raw = Buffer.concat([
        Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\nContent-Type: image/png\r\n\r\n`),
        png(), Buffer.alloc(app.config.uploads.maxBytes), Buffer.from(`\r\n--${boundary}--\r\n`),
      ])
      res = await send(op, admin.headers, { raw, contentType: `multipart/form-data; boundary=${boundary}` })
    }
    t.equal(res.statusCode, 413, label(op))
    t.equal(res.headers['content-type'], PROBLEM, label(op))
    swept++
  }
  t.ok(swept >= 35, `${swept} operations swept`)
})

t.test('unknown query fields and out-of-range limits are 400 on every operation', async (t) => {
  let swept = 0
  for (const op of ops) {
    const headers = bearerOnly(op) ? admin.headers : {}
    const unknown = await send(op, headers, { query: { ...requiredQuery(op), 'not-a-field': '1' } })
    t.equal(unknown.statusCode, 400, `${label(op)} ?not-a-field: ${unknown.body.slice(0, 200)}`)
    t.match(unknown.json(), { errors: [{ path: '/querystring/not-a-field' }] }, label(op))
    const limit = params(op, 'query').find((p) => p.name === 'limit')
    if (limit) {
      const max = Number(resolve(limit.schema).maximum)
      t.ok(Number.isFinite(max), `${label(op)} states its largest limit`)
      for (const value of ['0', '-1', String(max + 1), '1.5', 'ten']) {
        const res = await send(op, headers, { query: { ...requiredQuery(op), limit: value } })
        t.equal(res.statusCode, 400, `${label(op)} ?limit=${value}`)
        t.match(res.json(), { errors: [{ path: /^\/querystring\/limit/ }] }, `${label(op)} ?limit=${value}`)
      }
      const ok = await send(op, headers, { query: { ...requiredQuery(op), limit: String(max) } })
      t.equal(ok.statusCode, 200, `${label(op)} ?limit=${max}`)
    }
    swept++
  }
  t.equal(swept, ops.length)
})

t.test('every listing answers 400 to a malformed cursor, never 500', async (t) => {
  await app.activity.flush() // the activity log is written in batches; it has two pages by now
  const listings = ops.filter((op) => params(op, 'query').some((p) => p.name === 'cursor'))
  const adminIds = { ...adaIds, variantId: product.variants[0].id }
  const universal = ['!!!', '%E2%82%AC', 'A'.repeat(512), b64('null'), b64('{}'), b64('[]'), b64('"text"'), b64('[[[[[[]]]]]]'), b64('[1,2,3,4,5,6,7,8]'), b64('{"__proto__":{"x":1}}'), b64('[') ]
  let cases = 0
  for (const op of listings) {
    const headers = bearerOnly(op) ? admin.headers : {}
    const url = pathOf(op, adminIds)
    const sort = params(op, 'query').find((p) => p.name === 'sort')
    for (const sortValue of (sort ? resolve(sort.schema).enum as string[] : [undefined])) {
      // Relevance ranks a search: it needs one (the swept products are all shirts).
      const base = { ...requiredQuery(op), ...(sortValue ? { sort: sortValue } : {}), ...(sortValue === 'relevance' ? { q: 'shirt' } : {}) }
      const where = `${label(op)}${sortValue ? ` sort=${sortValue}` : ''}`
      const first = await send(op, headers, { url, query: { ...base, limit: '1' } })
      t.equal(first.statusCode, 200, `${where}: ${first.body.slice(0, 200)}`)
      const real = first.json().nextCursor as string | null
      t.ok(real, `${where} has a second page to page into`)
      const key = real ? JSON.parse(Buffer.from(real, 'base64url').toString()) as unknown[] : []
      // Exactly 400: values that cannot be a position in this listing.
      const malformed = [...universal.map((c) => decodeURIComponent(c)), ...(real ? [b64([...key, 1]), b64(key.slice(0, -1)), b64(Object.fromEntries(key.map((v, i) => [i, v])))] : [])]
      // Never a 5xx, though the value may be a valid position (1.5 in a listing sorted by a decimal).
      const odd: string[] = []
      key.forEach((value, i) => {
        const at = (v: unknown) => b64(key.map((k, j) => (j === i ? v : k)))
        malformed.push(at(null), at({}), at([value]), at(typeof value === 'number' ? String(value) : 12345), at(true))
        if (typeof value === 'string' && /^[0-9a-f-]{36}$/.test(value)) malformed.push(at('not-a-uuid'), at(`${value}x`))
        if (typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value)) malformed.push(at('0000-01-01T00:00:00.000Z'), at('2021-02-30T00:00:00.000Z'), at('+275760-09-13T00:00:00.000Z'), at('2021-01-01T25:00:00.000Z'), at('2021-01-01'))
        if (typeof value === 'number') odd.push(at(value + 0.5), at(-value - 1), at(1e308), at(2 ** 53 + 2), at(-0))
        if (typeof value === 'string') odd.push(at(''), at('x'.repeat(1001)), at("'; drop table users; --"), at('\u0000'), at('9'.repeat(40)), at('-1.5'))
      })
      for (const cursor of malformed) {
        const res = await send(op, headers, { url, query: { ...base, cursor } })
        t.equal(res.statusCode, 400, `${where} cursor=${Buffer.from(cursor, 'base64url').toString().slice(0, 80)}: ${res.body.slice(0, 160)}`)
        t.equal(res.headers['content-type'], PROBLEM)
        cases++
      }
      for (const cursor of odd) {
        const res = await send(op, headers, { url, query: { ...base, cursor } })
        t.ok([200, 400].includes(res.statusCode), `${where} cursor=${Buffer.from(cursor, 'base64url').toString().slice(0, 80)}: ${res.statusCode} ${res.body.slice(0, 160)}`)
        cases++
      }
    }
  }
  t.ok(listings.length >= 8, `${listings.length} listings, ${cases} cursors`)
})
