// Real data for schemathesis (test/schemathesis.sh), as a small service the run talks to:
// - it holds a real SMTP server (MAIL_PORT) the API mails to, so reset and verification tokens
//   come from real mails;
// - POST /setup {baseUrl, email, password}: signs in as the fuzzing admin (again every few
//   minutes: a run can outlast the 15-minute access token on a loaded machine), then creates, through the API and as the fuzzing admin, a catalog, a
//   cart, a wishlist, an address, a coupon, orders in each state, payments and reviews, and answers
//   a schemathesis config that gives every operation with ids in its path ids that exist;
// - POST /before {operation, pathParameters, body}: called by test/schemathesis_hooks.py before
//   each request; makes the state that request needs (a cart line to delete, a fresh payment to
//   confirm, a token from a mail) and answers what to put into the request.
// Operations that delete or consume get objects of their own, renewed before each call.
// Usage: MAIL_PORT=... FIXTURES_PORT=... DATABASE_URL=... node --import tsx test/schemathesis-fixtures.ts
import { createServer } from 'node:http'
import * as OTPAuth from 'otpauth'
import pg from 'pg'
import { waitUntil } from './helpers.js'
import { startMailbox } from './mail.js'
import { startOidcProvider, type TestAccount } from './oidc-provider.js'

const mailbox = await startMailbox({ teardown: () => {} }, Number(process.env.MAIL_PORT))
const db = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
// A real OpenID Connect provider (OIDC_PORT), which the API knows as `local`; accounts are added as hooks need them.
const idpAccounts: Record<string, TestAccount> = { 'fuzz-idp': { email: 'fuzz-idp@example.com', email_verified: true, name: 'Fuzz Idp' } }
const idp = await startOidcProvider({ teardown: () => {} }, idpAccounts, Number(process.env.OIDC_PORT))

let base = ''
let auth: Record<string, string> = {}
let keys = 0

class CallError extends Error { constructor(message: string, readonly status: number) { super(message) } }
async function call<T = Record<string, unknown>>(method: string, path: string, body?: object, idempotent = false, headers = auth): Promise<T> {
  const all: Record<string, string> = { ...headers, ...(body ? { 'content-type': 'application/json' } : {}), ...(idempotent ? { 'idempotency-key': `fixture-${Date.now()}-${++keys}` } : {}) }
  const res = await fetch(base + path, { method, headers: all, body: body ? JSON.stringify(body) : undefined })
  const text = await res.text()
  if (!res.ok) throw new CallError(`fixture ${method} ${path}: ${res.status} ${text}`, res.status)
  return (text ? JSON.parse(text) : {}) as T
}
/** `path` read until the worker has finished it (schemathesis.sh runs a worker beside the API). */
const finished = (path: string, done: (job: { status: string }) => boolean) =>
  waitUntil(`fixture GET ${path}: the worker finished it`, async () => done(await call<{ status: string }>('GET', path)), 60_000, 250)
/** A call whose refusal with one of `statuses` is expected (the state is already as wanted). */
const tolerate = (statuses: number[], request: Promise<unknown>) => request.catch((err: unknown) => {
  if (!(err instanceof CallError && statuses.includes(err.status))) throw err
})

type Product = { id: string; slug: string; variants: { id: string }[] }
const product = (name: string) => call<Product>('POST', '/products', {
  name, slug: `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Date.now()}`, status: 'active',
  variants: ['A', 'B'].map((suffix, i) => ({ sku: `${name.toUpperCase().replace(/[^A-Z0-9]/g, '').slice(0, 8)}-${Date.now()}-${suffix}`, priceMinor: [2500, 900][i]!, stock: 1_000_000 })),
})
// France: the demo seed's shipping zones give it exactly one option, so checkouts need not choose.
const address = { recipientName: 'Fuzz Admin', line1: '1 Rue de Test', city: 'Paris', postalCode: '75001', country: 'FR' }
/** Makes sure the fuzzer's cart holds this line (a checkout or a delete may have taken it). */
const ensureLine = (variantId: string) => call('POST', '/cart/items', { variantId, quantity: 1 })
async function order(...variantIds: string[]) {
  for (const variantId of variantIds) await ensureLine(variantId)
  return call<{ id: string }>('POST', '/orders', { shippingAddress: address }, true)
}
const pay = (orderId: string, paymentMethod = 'tok_success') => call<{ id: string }>('POST', `/orders/${orderId}/payments`, { provider: 'test', paymentMethod }, true)
/** Registers an account and verifies its address through the link in its mail (sign-in waits for it). */
async function registerVerified(input: { email: string; password: string; name: string }) {
  await call('POST', '/auth/register', input, false, {})
  const [, token] = await mailbox.waitFor(input.email, /verify-email\?token=([\w-]+)/)
  await call('POST', '/auth/verify-email', { token }, false, {})
}
/** A customer of its own, signed in: for operations that need the account's password or its second factor. */
async function account() {
  const email = `fuzz-${Date.now()}-${++keys}@example.com`
  const password = 'fuzz-account-password-1'
  await registerVerified({ email, password, name: 'Fuzz Account' })
  const { tokens } = await call<{ tokens: { accessToken: string } }>('POST', '/auth/login', { email, password }, false, {})
  return { email, password, headers: { authorization: `Bearer ${tokens.accessToken}` } }
}
/** Plays the browser through the provider as a new or given account; answers the callback body. */
async function authorizeAt(startPath: string, headers: Record<string, string>, idpAccount: string) {
  const { authorizationUrl } = await call<{ authorizationUrl: string }>('POST', startPath, undefined, false, headers)
  idp.signInAs(idpAccount)
  return idp.authorize(authorizationUrl)
}
/** A customer of its own with a provider account linked to it. */
async function linkedAccount() {
  const user = await account()
  const subject = `fuzz-linked-${++keys}`
  idpAccounts[subject] = { email: `${subject}@example.com`, email_verified: true }
  await call('POST', '/auth/oidc/local/link/callback', await authorizeAt('/auth/oidc/local/link/start', user.headers, subject), false, user.headers)
  return user
}
const totpCode = (secret: string) => new OTPAuth.TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: OTPAuth.Secret.fromBase32(secret) }).generate()
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')
async function upload() {
  const form = new FormData()
  form.append('file', new Blob([PNG], { type: 'image/png' }), 'fuzz.png')
  const res = await fetch(`${base}/uploads?purpose=product_image`, { method: 'POST', headers: auth, body: form })
  if (!res.ok) throw new CallError(`fixture POST /uploads: ${res.status} ${await res.text()}`, res.status)
  return (await res.json()) as { id: string }
}
const category = (name: string) => call<{ id: string; slug: string }>('POST', '/categories', { name, slug: `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Date.now()}-${++keys}` })
const coupon = () => call<{ id: string; code: string }>('POST', '/coupons', { code: `FUZZ${Date.now()}${++keys}`, kind: 'percentage', value: 10 })
const confirm = (paymentId: string) => call('POST', `/payments/${paymentId}/confirm`, { paymentMethod: 'tok_success' })
async function paidOrderOf(variantId: string) {
  const placed = await order(variantId)
  await confirm((await pay(placed.id)).id)
  return placed
}
async function deliveredOrderOf(variantId: string) {
  const placed = await paidOrderOf(variantId)
  for (const status of ['fulfilled', 'shipped', 'delivered']) await call('PATCH', `/orders/${placed.id}/status`, { status })
  return call<{ id: string; items: { id: string }[] }>('GET', `/orders/${placed.id}`)
}
type Return = { id: string; orderId: string; items: { id: string; quantity: number }[] }
/** A return of one unit of a delivered order, moved along to `status`. */
async function requestedReturn(variantId: string, status: 'requested' | 'approved' | 'received' = 'requested') {
  const delivered = await deliveredOrderOf(variantId)
  const asked = await call<Return>('POST', `/orders/${delivered.id}/returns`, { items: [{ orderItemId: delivered.items[0]!.id, quantity: 1, reason: 'damaged' }] })
  if (status !== 'requested') await call('POST', `/returns/${asked.id}/approve`)
  if (status === 'received') await call('POST', `/returns/${asked.id}/receive`, { items: asked.items.map((item) => ({ returnItemId: item.id, quantity: item.quantity, resellable: true })) })
  return asked
}

/** A guest cart (no account) holding one line and a contact email; answers its X-Cart-Token header. */
async function guestCart(variantId: string) {
  const { cartToken } = await call<{ cartToken: string }>('POST', '/cart/guest', undefined, false, {})
  const headers = { 'x-cart-token': cartToken }
  await call('POST', '/cart/items', { variantId, quantity: 1 }, false, headers)
  await call('PUT', '/cart/contact', { email: `fuzz-guest-${++keys}@example.com` }, false, headers)
  return headers
}
/** A guest order of its own and its order token (X-Order-Token), optionally with a payment started. */
async function guestOrder(variantId: string, payment?: string) {
  const placed = await call<{ order: { id: string }; orderToken: string }>('POST', '/orders/guest', { shippingAddress: address }, true, await guestCart(variantId))
  const headers = { 'x-order-token': placed.orderToken }
  const paid = payment ? await call<{ id: string }>('POST', `/orders/guest/${placed.order.id}/payments`, { provider: 'test', paymentMethod: payment }, true, headers) : null
  return { orderId: placed.order.id, headers, paymentId: paid?.id ?? '' }
}

type Fixtures = Awaited<ReturnType<typeof setup>>
async function setup() {
  // The fuzzer changes, deletes and archives `main`, `deletable` and `variantHost`; `shelf`,
  // `reviewed` and `mover` are only touched by the hooks, so what they renew stays possible.
  const main = await product('Fuzz Main')
  const deletable = await product('Fuzz Deletable')
  const variantHost = await product('Fuzz Variants')
  const shelf = await product('Fuzz Shelf')
  const reviewed = await product('Fuzz Reviewed')
  const mover = await product('Fuzz Mover')
  const saved = await call<{ id: string }>('POST', '/users/me/addresses', address)
  const cartCoupon = await coupon() // applied by the hooks; the fuzzer edits `fuzzCoupon`
  const fuzzCoupon = await coupon()
  const shelfCategory = await category('Fuzz Shelf')
  const fuzzCategory = await category('Fuzz Edited')
  const image = await upload()
  const sizedImage = await upload() // only read, through its sizes (the fuzzer deletes `image`)
  const memberAccount = { email: `fuzz-member-${Date.now()}@example.com`, password: 'fuzz-member-password-1' }
  await registerVerified({ ...memberAccount, name: 'Fuzz Member' })
  const member = await call<{ user: { id: string } }>('POST', '/auth/login', memberAccount, false, {})
  // A customer of its own for the admin's erasure (which takes the account away), and an export of the fuzzer's own.
  const erasableAccount = { email: `fuzz-erasable-${Date.now()}@example.com`, password: 'fuzz-erasable-password-1' }
  await registerVerified({ ...erasableAccount, name: 'Fuzz Erasable' })
  const erasable = await call<{ user: { id: string } }>('POST', '/auth/login', erasableAccount, false, {})
  const dataExport = await call<{ id: string }>('POST', '/users/me/export')
  // A catalog import (a small CSV body) and a catalog export: jobs to read, cancel and download.
  const catalogImport = await fetch(`${base}/imports/products?dryRun=true`, { method: 'POST', headers: { ...auth, 'content-type': 'text/csv' }, body: `handle,name,sku,price_EUR\nfuzz-import,Fuzz Import,FUZZ-IMPORT-${Date.now()},1.00\n` })
    .then(async (res) => { if (res.status !== 202) throw new Error(`fixture POST /imports/products: ${res.status} ${await res.text()}`); return res.json() as Promise<{ id: string }> })
  const catalogExport = await call<{ id: string }>('POST', '/exports/products')
  // Their files exist once the worker has made them: before that, their downloads are 404s.
  await finished(`/users/me/export/${dataExport.id}`, (job) => job.status === 'ready')
  await finished(`/exports/${catalogExport.id}`, (job) => job.status === 'completed')
  await finished(`/imports/${catalogImport.id}`, (job) => job.status === 'completed')
  // The 1x1 PNG's one size is its own width (an image is never enlarged).
  const sizePath = `/uploads/${sizedImage.id}/sizes/w1.webp`
  await waitUntil(`fixture GET ${sizePath}: the worker made it`, async () => (await fetch(base + sizePath)).status === 200, 60_000, 250)

  const pending = await order(shelf.variants[1]!.id) // read, cancel by the fuzzer; status changes
  const toPay = await order(shelf.variants[1]!.id) // a payment is started by the fuzzer
  const paidOrder = await order(main.variants[0]!.id)
  const captured = await pay(paidOrder.id) // refunded by the fuzzer
  await confirm(captured.id)
  await paidOrderOf(reviewed.variants[0]!.id) // makes the fuzzer a verified buyer of `reviewed`
  const review = await call<{ id: string }>('POST', `/products/${main.id}/reviews`, { rating: 5, title: 'Fuzz review', body: 'Bought and reviewed for the fuzzer.' })
  const deletableReview = await call<{ id: string }>('POST', `/products/${reviewed.id}/reviews`, { rating: 4, title: 'Fuzz review', body: 'Another.' })

  await call('PUT', `/wishlist/items/${main.id}`)
  await call('PUT', `/wishlist/items/${shelf.id}`)
  // A return asked for on a delivered order; zones, options and tax rates of their own (after the
  // orders: a second option reaching DE would make those checkouts choose one).
  const returned = await requestedReturn(shelf.variants[0]!.id)
  await ensureLine(shelf.variants[0]!.id)
  const { options: [shippingOption] } = await call<{ options: { id: string }[] }>('GET', '/cart/shipping-options?country=FR')
  const zone = await call<{ id: string }>('POST', '/shipping/zones', { name: 'Fuzz Nordics', countries: ['SE', 'NO'] })
  const option = await call<{ id: string }>('POST', `/shipping/zones/${zone.id}/options`, { name: 'Fuzz Post', priceMinor: 900 })
  const rate = await call<{ id: string }>('POST', '/tax-rates', { name: 'Fuzz SE', country: 'SE', rateBps: 2500 })
  // A stock location serving only the fuzzer's own zone (the orders above ship to FR and DE).
  const shelfLocation = await call<{ id: string }>('POST', '/inventory/locations', { name: 'Fuzz Shelf', priority: 500 })
  await call('PUT', `/shipping/zones/${zone.id}/locations`, { locationIds: [shelfLocation.id] })
  // Webhook endpoints (port 9 refuses connections: attempts are recorded as failures) and a delivery.
  const hook = await call<{ id: string }>('POST', '/webhooks/endpoints', { url: 'http://127.0.0.1:9/fuzz', events: ['product.updated'] })
  await call('PATCH', `/products/${mover.id}`, { description: 'A product.updated event for the fuzzer' })
  const [delivery] = (await call<{ items: { id: string }[] }>('GET', `/webhooks/endpoints/${hook.id}/deliveries`)).items
  if (!delivery) throw new Error('fixture: no webhook delivery')
  // A customer whose password the fuzzer resets, with tokens read from the mails it gets.
  const resetter = { email: `fuzz-reset-${Date.now()}@example.com`, password: 'fuzz-reset-password-1', name: 'Fuzz Reset' }
  await call('POST', '/auth/register', resetter, false, {})
  // A guest order the fuzzer reads with its order token; the hooks make fresh ones for what consumes.
  const guest = await guestOrder(shelf.variants[1]!.id, 'tok_success')
  // A customer group with the member in it, a draft price list with a price, a product with a USD
  // price and stock to transfer from the default location: the group-member, price and transfer
  // operations then reach past their 404s.
  const group = await call<{ id: string }>('POST', '/customer-groups', { name: `Fuzz Trade ${Date.now()}` })
  await call('POST', `/customer-groups/${group.id}/members`, { userId: member.user.id })
  const priced = await product('Fuzz Priced')
  const pricedVariant = priced.variants[0]!.id
  const priceList = await call<{ id: string }>('POST', '/price-lists', { name: 'Fuzz Sale', kind: 'sale', status: 'draft' })
  await call('PUT', `/price-lists/${priceList.id}/prices`, { prices: [{ variantId: pricedVariant, currency: 'EUR', amountMinor: 2000 }] })
  await call('PUT', `/products/${priced.id}/variants/${pricedVariant}/prices/USD`, { amountMinor: 2700 })
  const defaultLocation = (await call<{ items: { id: string; isDefault: boolean }[] }>('GET', '/inventory/locations')).items.find((l) => l.isDefault)
  if (!defaultLocation) throw new Error('fixture: no default stock location')

  const operations: [string, Record<string, string>][] = [
    ['GET /products/{productId}', { productId: main.id }],
    ['PATCH /products/{productId}', { productId: main.id }],
    ['DELETE /products/{productId}', { productId: deletable.id }],
    ['GET /products/by-slug/{slug}', { slug: main.slug }],
    ['POST /products/{productId}/variants', { productId: variantHost.id }],
    ['PATCH /products/{productId}/variants/{variantId}', { productId: main.id, variantId: main.variants[0]!.id }],
    ['DELETE /products/{productId}/variants/{variantId}', { productId: variantHost.id, variantId: variantHost.variants[1]!.id }],
    ['GET /products/{productId}/variants/{variantId}/stock-adjustments', { productId: main.id, variantId: main.variants[0]!.id }],
    ['POST /products/{productId}/variants/{variantId}/stock-adjustments', { productId: main.id, variantId: main.variants[0]!.id }],
    ['GET /products/{productId}/reviews', { productId: main.id }],
    ['POST /products/{productId}/reviews', { productId: main.id }],
    ['PATCH /cart/items/{variantId}', { variantId: shelf.variants[0]!.id }],
    ['DELETE /cart/items/{variantId}', { variantId: shelf.variants[1]!.id }],
    ['DELETE /wishlist/items/{productId}', { productId: shelf.id }],
    ['PUT /wishlist/items/{productId}', { productId: main.id }],
    ['POST /wishlist/items/{productId}/move-to-cart', { productId: mover.id }],
    ['GET /orders/{orderId}', { orderId: paidOrder.id }],
    ['PATCH /orders/{orderId}/status', { orderId: pending.id }],
    ['POST /orders/{orderId}/cancel', { orderId: pending.id }],
    ['POST /orders/{orderId}/payments', { orderId: toPay.id }],
    ['GET /payments/{paymentId}', { paymentId: captured.id }],
    ['POST /payments/{paymentId}/refunds', { paymentId: captured.id }],
    ['POST /payments/webhooks/{provider}', { provider: 'test' }],
    ['PATCH /reviews/{reviewId}', { reviewId: review.id }],
    ['PATCH /reviews/{reviewId}/moderation', { reviewId: review.id }],
    ['POST /reviews/{reviewId}/helpful', { reviewId: review.id }],
    ['DELETE /reviews/{reviewId}', { reviewId: deletableReview.id }],
    ['GET /users/me/addresses/{addressId}', { addressId: saved.id }],
    ['PATCH /users/me/addresses/{addressId}', { addressId: saved.id }],
    ['DELETE /users/me/addresses/{addressId}', { addressId: saved.id }], // renewed by its hook
    ['GET /categories/by-slug/{slug}', { slug: fuzzCategory.slug }],
    ['PATCH /categories/{categoryId}', { categoryId: fuzzCategory.id }],
    ['DELETE /categories/{categoryId}', { categoryId: fuzzCategory.id }], // renewed by its hook
    ['GET /coupons/{couponId}', { couponId: fuzzCoupon.id }],
    ['PATCH /coupons/{couponId}', { couponId: fuzzCoupon.id }],
    ['DELETE /coupons/{couponId}', { couponId: fuzzCoupon.id }], // renewed by its hook
    ['GET /uploads/{uploadId}', { uploadId: image.id }],
    ['DELETE /uploads/{uploadId}', { uploadId: image.id }], // renewed by its hook
    ['POST /orders/{orderId}/returns', { orderId: returned.orderId }], // renewed by its hook, as are the steps below
    ['GET /returns/{returnId}', { returnId: returned.id }],
    ['POST /returns/{returnId}/approve', { returnId: returned.id }],
    ['POST /returns/{returnId}/reject', { returnId: returned.id }],
    ['POST /returns/{returnId}/receive', { returnId: returned.id }],
    ['POST /returns/{returnId}/refund', { returnId: returned.id }],
    ['GET /shipping/zones/{zoneId}', { zoneId: zone.id }],
    ['PATCH /shipping/zones/{zoneId}', { zoneId: zone.id }],
    ['DELETE /shipping/zones/{zoneId}', { zoneId: zone.id }], // renewed by its hook
    ['POST /shipping/zones/{zoneId}/options', { zoneId: zone.id }],
    ['GET /shipping/zones/{zoneId}/locations', { zoneId: zone.id }],
    ['PUT /shipping/zones/{zoneId}/locations', { zoneId: zone.id }],
    ['PUT /shipping/zones/{zoneId}/locations/{locationId}', { zoneId: zone.id, locationId: shelfLocation.id }],
    ['DELETE /shipping/zones/{zoneId}/locations/{locationId}', { zoneId: zone.id, locationId: shelfLocation.id }],
    ['PATCH /shipping/options/{optionId}', { optionId: option.id }],
    ['DELETE /shipping/options/{optionId}', { optionId: option.id }], // renewed by its hook
    ['PATCH /tax-rates/{taxRateId}', { taxRateId: rate.id }],
    ['DELETE /tax-rates/{taxRateId}', { taxRateId: rate.id }], // renewed by its hook
    ['GET /webhooks/endpoints/{endpointId}', { endpointId: hook.id }],
    ['PATCH /webhooks/endpoints/{endpointId}', { endpointId: hook.id }],
    ['DELETE /webhooks/endpoints/{endpointId}', { endpointId: hook.id }], // renewed by its hook
    ['POST /webhooks/endpoints/{endpointId}/rotate-secret', { endpointId: hook.id }],
    ['GET /webhooks/endpoints/{endpointId}/deliveries', { endpointId: hook.id }],
    ['GET /webhooks/deliveries/{deliveryId}', { deliveryId: delivery.id }],
    ['POST /webhooks/deliveries/{deliveryId}/replay', { deliveryId: delivery.id }],
    ['POST /auth/oidc/{provider}/start', { provider: 'local' }],
    ['POST /auth/oidc/{provider}/callback', { provider: 'local' }],
    ['POST /auth/oidc/{provider}/link/start', { provider: 'local' }],
    ['POST /auth/oidc/{provider}/link/callback', { provider: 'local' }],
    ['DELETE /auth/identities/{provider}', { provider: 'local' }],
    ['GET /orders/guest/{orderId}', { orderId: guest.orderId }],
    ['POST /orders/guest/{orderId}/cancel', { orderId: guest.orderId }], // renewed by its hook, as are the guest operations below
    ['DELETE /orders/guest/{orderId}/token', { orderId: guest.orderId }],
    ['POST /orders/guest/{orderId}/payments', { orderId: guest.orderId }],
    ['POST /orders/guest/{orderId}/payments/{paymentId}/confirm', { orderId: guest.orderId, paymentId: guest.paymentId }],
    ['GET /users/{userId}', { userId: member.user.id }],
    ['PATCH /users/{userId}/role', { userId: member.user.id }],
    ['POST /users/{userId}/deactivate', { userId: member.user.id }],
    ['POST /users/{userId}/reactivate', { userId: member.user.id }],
    ['POST /users/{userId}/erasure', { userId: erasable.user.id }],
    ['GET /users/me/export/{exportId}', { exportId: dataExport.id }],
    ['GET /users/me/export/{exportId}/download', { exportId: dataExport.id }],
    ['GET /imports/{jobId}', { jobId: catalogImport.id }],
    ['POST /imports/{jobId}/cancel', { jobId: catalogImport.id }], // a second cancel is the documented 409
    ['GET /exports/{jobId}', { jobId: catalogExport.id }],
    ['POST /exports/{jobId}/cancel', { jobId: catalogExport.id }],
    ['GET /exports/{jobId}/file', { jobId: catalogExport.id }], // 404 until the worker has built it
    ['GET /customer-groups/{groupId}/members', { groupId: group.id }],
    ['POST /customer-groups/{groupId}/members', { groupId: group.id }],
    ['DELETE /customer-groups/{groupId}/members/{userId}', { groupId: group.id, userId: member.user.id }],
    ['DELETE /users/{userId}/two-factor', { userId: member.user.id }],
    ['GET /price-lists/{priceListId}', { priceListId: priceList.id }],
    ['PATCH /price-lists/{priceListId}', { priceListId: priceList.id }],
    ['PUT /price-lists/{priceListId}/prices', { priceListId: priceList.id }],
    ['DELETE /price-lists/{priceListId}/prices/{variantId}/{currency}', { priceListId: priceList.id, variantId: pricedVariant, currency: 'EUR' }],
    ['DELETE /products/{productId}/variants/{variantId}/prices/{currency}', { productId: priced.id, variantId: pricedVariant, currency: 'USD' }],
    ['GET /uploads/{uploadId}/sizes/{size}', { uploadId: sizedImage.id, size: 'w1.webp' }],
  ]
  const stock = { variantId: pricedVariant, fromLocationId: defaultLocation.id, toLocationId: shelfLocation.id, group: group.id, groupMember: member.user.id, priceList: priceList.id }
  return { dataExport: dataExport.id, shelf, reviewed, mover, saved, coupon: cartCoupon, category: shelfCategory, resetter, zone, shippingOption: shippingOption!, guest, stock, operations }
}

function toml(operations: [string, Record<string, string>][]) {
  const quote = (value: string) => JSON.stringify(value)
  const lines = ['# Generated by test/schemathesis-fixtures.ts for one run; ids of objects that exist.']
  for (const [name, params] of operations) {
    lines.push('', '[[operations]]', `include-name = ${quote(name)}`)
    lines.push(`parameters = { ${Object.entries(params).map(([k, v]) => `${quote(`path.${k}`)} = ${quote(v)}`).join(', ')} }`)
  }
  return `${lines.join('\n')}\n`
}

/** What a request needs replaced: path parameters, body fields (merged into an object body), headers. */
interface Patch { pathParameters?: Record<string, string>; query?: Record<string, string>; headers?: Record<string, string>; body?: Record<string, unknown>; replaceBody?: unknown }
type Before = (request: { pathParameters: Record<string, string>; query: Record<string, unknown>; body: unknown }) => Promise<Patch>
const REAL_CURRENCIES = ['EUR', 'USD', 'GBP', 'JPY', 'CHF', 'SEK', 'NOK', 'DKK', 'PLN', 'CZK', 'KWD', 'CAD']
const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A fresh order of the fuzzer's, with a payment started by `paymentMethod`; the lines the fixture keeps in the cart are put back. */
/** The fuzzer checks out the same cart meanwhile: a 409 means try again. */
async function retryConflicts<T>(make: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try { return await make() } catch (err) {
      if (!(err instanceof CallError && err.status === 409) || attempt >= 5) throw err
    }
  }
}
const freshPayment = (f: Fixtures, paymentMethod: string) => retryConflicts(async () => pay((await order(f.shelf.variants[1]!.id)).id, paymentMethod))
/** An order in the status from which `target` is a step of the state machine. */
const STATUS_PATH: Record<string, string[]> = { cancelled: [], fulfilled: ['paid'], shipped: ['paid', 'fulfilled'], delivered: ['paid', 'fulfilled', 'shipped'] }
async function orderBefore(f: Fixtures, target: string) {
  const steps = STATUS_PATH[target] ?? []
  const placed = await retryConflicts(() => steps.length ? paidOrderOf(f.shelf.variants[1]!.id) : order(f.shelf.variants[1]!.id))
  for (const status of steps.slice(1)) await call('PATCH', `/orders/${placed.id}/status`, { status })
  return placed
}
/** Analytics ranges: `from` before `to`, at most 366 days (what the server checks across the two). */
function dateRange(query: Record<string, unknown>): Patch {
  if (typeof query.from !== 'string' || typeof query.to !== 'string') return {}
  const from = Date.parse(query.from)
  const to = Date.parse(query.to)
  if (Number.isNaN(from) || Number.isNaN(to) || (from < to && to - from <= 366 * 86_400_000)) return {}
  const day = 86_400_000
  const start = from + day > Date.parse('9999-12-31T00:00:00Z') ? from - day : from
  return { query: { from: new Date(start).toISOString(), to: new Date(start + day).toISOString() } }
}

function beforeHooks(f: Fixtures): Record<string, Before> {
  // A product's body names a category and uploads: real ones where the fuzzer sent some.
  const productIds = (body: unknown): Patch => {
    if (!isObject(body)) return {}
    const patch: Record<string, unknown> = {}
    if (typeof body.categoryId === 'string' && f.category) patch.categoryId = f.category.id
    if (Array.isArray(body.imageIds)) patch.imageIds = []
    return { body: patch }
  }
  // A category's parent: a real one where the fuzzer sent one.
  const realParent: Before = async ({ body }) => (isObject(body) && typeof body.parentId === 'string' ? { body: { parentId: f.category.id } } : {})
  // Approving and rejecting each need a return that is still requested.
  const freshRequestedReturn: Before = async () => ({ pathParameters: { returnId: (await retryConflicts(() => requestedReturn(f.shelf.variants[0]!.id))).id } })
  let reviewId = ''
  let events = 0
  // The fixture's group and price list, made again when the fuzzer has deleted them (its stateful
  // phase deletes what the list operations show).
  let groupId = f.stock.group
  let priceListId = f.stock.priceList
  const exists = (path: string) => call('GET', path).then(() => true, (err: unknown) => { if (err instanceof CallError && err.status === 404) return false; throw err })
  const liveGroup = async () => {
    if (!(await exists(`/customer-groups/${groupId}/members`))) groupId = (await call<{ id: string }>('POST', '/customer-groups', { name: `Fuzz Trade ${Date.now()}-${++keys}` })).id
    return groupId
  }
  const livePriceList = async () => {
    if (!(await exists(`/price-lists/${priceListId}`))) priceListId = (await call<{ id: string }>('POST', '/price-lists', { name: 'Fuzz Sale', kind: 'sale', status: 'draft' })).id
    return priceListId
  }
  // Real ids where the fuzzer sent ids of its own (anything else is left to be refused as it is).
  const realIds = (body: unknown, ids: Record<string, string>): Patch =>
    (isObject(body) ? { body: Object.fromEntries(Object.entries(ids).filter(([field]) => typeof body[field] === 'string')) } : {})
  return {
    // The link's token is the key: a fresh one from the ready export (links are short-lived).
    'GET /users/me/export/{exportId}/download': async () => {
      const { downloadUrl } = await call<{ downloadUrl: string | null }>('GET', `/users/me/export/${f.dataExport}`)
      const token = downloadUrl ? new URL(downloadUrl, base).searchParams.get('token') : null
      return token ? { pathParameters: { exportId: f.dataExport }, query: { token } } : {}
    },
    'GET /customer-groups/{groupId}/members': async () => ({ pathParameters: { groupId: await liveGroup() } }),
    'POST /customer-groups/{groupId}/members': async ({ body }) => ({ ...realIds(body, { userId: f.stock.groupMember }), pathParameters: { groupId: await liveGroup() } }),
    // Each removal takes a member that is there (a second removal is the documented 404).
    'DELETE /customer-groups/{groupId}/members/{userId}': async () => {
      const groupId = await liveGroup()
      await call('POST', `/customer-groups/${groupId}/members`, { userId: f.stock.groupMember })
      return { pathParameters: { groupId, userId: f.stock.groupMember } }
    },
    'POST /inventory/transfers': async ({ body }) => realIds(body, { variantId: f.stock.variantId, fromLocationId: f.stock.fromLocationId, toLocationId: f.stock.toLocationId }),
    'GET /price-lists/{priceListId}': async () => ({ pathParameters: { priceListId: await livePriceList() } }),
    'PATCH /price-lists/{priceListId}': async () => ({ pathParameters: { priceListId: await livePriceList() } }),
    'PUT /price-lists/{priceListId}/prices': async ({ body }) => ({
      pathParameters: { priceListId: await livePriceList() },
      // The fixture's variant, and a real currency per item where the fuzzer sent a code of three
      // letters (random ones are mostly not ISO 4217 codes, each refused with a 400).
      ...(isObject(body) && Array.isArray(body.prices)
        ? { body: { prices: body.prices.map((price, i) => (isObject(price) ? { ...price,
          ...(typeof price.variantId === 'string' ? { variantId: f.stock.variantId } : {}),
          ...(typeof price.currency === 'string' && /^[A-Z]{3}$/.test(price.currency) ? { currency: REAL_CURRENCIES[i % REAL_CURRENCIES.length] } : {}) } : price)) } }
        : {}),
    }),
    // Each removal takes a price that is there, on a draft list of its own (the fuzzer may delete
    // the shared one between the hook's two calls).
    'DELETE /price-lists/{priceListId}/prices/{variantId}/{currency}': async () => {
      const { id: priceListId } = await call<{ id: string }>('POST', '/price-lists', { name: `Fuzz Removal ${++keys}`, kind: 'sale', status: 'draft' })
      await call('PUT', `/price-lists/${priceListId}/prices`, { prices: [{ variantId: f.stock.variantId, currency: 'EUR', amountMinor: 2000 }] })
      return { pathParameters: { priceListId, variantId: f.stock.variantId, currency: 'EUR' } }
    },
    'POST /categories': realParent,
    'PATCH /categories/{categoryId}': realParent,
    'DELETE /categories/{categoryId}': async () => ({ pathParameters: { categoryId: (await category('Fuzz Doomed')).id } }),
    'DELETE /coupons/{couponId}': async () => ({ pathParameters: { couponId: (await coupon()).id } }),
    'POST /coupons/validate': async () => { await ensureLine(f.shelf.variants[0]!.id); return { body: { code: f.coupon.code } } },
    'DELETE /uploads/{uploadId}': async () => ({ pathParameters: { uploadId: (await upload()).id } }),
    // The fuzzing admin's address book fills up (20 at most): a customer of its own deletes.
    'DELETE /users/me/addresses/{addressId}': async () => {
      const user = await account()
      const created = await call<{ id: string }>('POST', '/users/me/addresses', address, false, user.headers)
      return { headers: user.headers, pathParameters: { addressId: created.id } }
    },
    'POST /cart/merge': async () => {
      const guest = await call<{ cartToken: string }>('POST', '/cart/guest', undefined, false, {})
      await call('POST', '/cart/items', { variantId: f.shelf.variants[0]!.id, quantity: 1 }, false, { 'x-cart-token': guest.cartToken })
      return { body: { cartToken: guest.cartToken } }
    },
    // These act on the caller's own account: each runs as a customer of its own, whose password
    // (and second factor) the hook knows, so the fuzzing admin's account stays as it is.
    'POST /auth/2fa/enable': async () => {
      const user = await account()
      const { secret } = await call<{ secret: string }>('POST', '/auth/2fa/setup', undefined, false, user.headers)
      return { headers: user.headers, body: { code: totpCode(secret) } }
    },
    'POST /auth/2fa/disable': async () => {
      const user = await account()
      const { secret } = await call<{ secret: string }>('POST', '/auth/2fa/setup', undefined, false, user.headers)
      await call('POST', '/auth/2fa/enable', { code: totpCode(secret) }, false, user.headers)
      return { headers: user.headers, body: { password: user.password } }
    },
    'POST /users/me/email': async () => { const user = await account(); return { headers: user.headers, body: { password: user.password } } },
    'POST /users/me/password': async () => { const user = await account(); return { headers: user.headers, body: { currentPassword: user.password } } },
    'POST /orders/{orderId}/returns': async () => {
      const delivered = await retryConflicts(() => deliveredOrderOf(f.shelf.variants[0]!.id))
      return { pathParameters: { orderId: delivered.id }, body: { items: [{ orderItemId: delivered.items[0]!.id, quantity: 1, reason: 'damaged' }] } }
    },
    'POST /returns/{returnId}/approve': freshRequestedReturn,
    'POST /returns/{returnId}/reject': freshRequestedReturn,
    'POST /returns/{returnId}/receive': async () => {
      const approved = await retryConflicts(() => requestedReturn(f.shelf.variants[0]!.id, 'approved'))
      return { pathParameters: { returnId: approved.id }, body: { items: approved.items.map((item) => ({ returnItemId: item.id, quantity: item.quantity, resellable: true })) } }
    },
    'POST /returns/{returnId}/refund': async () => ({ pathParameters: { returnId: (await retryConflicts(() => requestedReturn(f.shelf.variants[0]!.id, 'received'))).id } }),
    'DELETE /shipping/zones/{zoneId}': async () => ({ pathParameters: { zoneId: (await call<{ id: string }>('POST', '/shipping/zones', { name: `Fuzz Doomed ${++keys}`, countries: [] })).id } }),
    'DELETE /shipping/options/{optionId}': async () => ({ pathParameters: { optionId: (await call<{ id: string }>('POST', `/shipping/zones/${f.zone.id}/options`, { name: `Fuzz Doomed ${++keys}`, priceMinor: 100 })).id } }),
    'POST /webhooks/endpoints': async () => ({ body: { url: `http://127.0.0.1:9/fuzz-${++keys}` } }),
    'PATCH /webhooks/endpoints/{endpointId}': async ({ body }) => (isObject(body) && typeof body.url === 'string' ? { body: { url: `http://127.0.0.1:9/fuzz-${++keys}` } } : {}),
    // Sign-in with the provider: a code and state from a real authorization, as the browser brings them.
    'POST /auth/oidc/{provider}/callback': async () => ({ pathParameters: { provider: 'local' }, replaceBody: await authorizeAt('/auth/oidc/local/start', {}, 'fuzz-idp') }),
    'POST /auth/oidc/{provider}/link/callback': async () => {
      const user = await account()
      const subject = `fuzz-link-${++keys}`
      idpAccounts[subject] = { email: `${subject}@example.com`, email_verified: true }
      return { headers: user.headers, pathParameters: { provider: 'local' }, replaceBody: await authorizeAt('/auth/oidc/local/link/start', user.headers, subject) }
    },
    // A provider account with the verified email of a password account: the callback asks its owner to confirm.
    'POST /auth/oidc/confirm-link': async () => {
      const user = await account()
      const subject = `fuzz-confirm-${++keys}`
      idpAccounts[subject] = { email: user.email, email_verified: true }
      const { linkToken } = await call<{ linkToken: string }>('POST', '/auth/oidc/local/callback', await authorizeAt('/auth/oidc/local/start', {}, subject), false, {})
      return { replaceBody: { linkToken, email: user.email, password: user.password } }
    },
    'DELETE /auth/identities/{provider}': async () => ({ headers: (await linkedAccount()).headers, pathParameters: { provider: 'local' } }),
    'DELETE /webhooks/endpoints/{endpointId}': async () => ({ pathParameters: { endpointId: (await call<{ id: string }>('POST', '/webhooks/endpoints', { url: 'http://127.0.0.1:9/fuzz-doomed', events: ['order.paid'] })).id } }),
    'DELETE /tax-rates/{taxRateId}': async () => ({ pathParameters: { taxRateId: (await call<{ id: string }>('POST', '/tax-rates', { name: `Fuzz Doomed ${++keys}`, country: 'IS', rateBps: 1000 })).id } }),
    'PATCH /orders/{orderId}/status': async ({ body }) => {
      const placed = await orderBefore(f, isObject(body) && typeof body.status === 'string' ? body.status : 'cancelled')
      return { pathParameters: { orderId: placed.id } }
    },
    'GET /analytics/sales': async ({ query }) => dateRange(query),
    'GET /analytics/payments': async ({ query }) => dateRange(query),
    'GET /analytics/customers': async ({ query }) => dateRange(query),
    'GET /analytics/top-products': async ({ query }) => dateRange(query),
    'PATCH /cart/items/{variantId}': async () => { await ensureLine(f.shelf.variants[0]!.id); return {} },
    'DELETE /cart/items/{variantId}': async () => { await ensureLine(f.shelf.variants[1]!.id); return {} },
    'PUT /cart/coupon': async () => { await ensureLine(f.shelf.variants[0]!.id); return { body: { code: f.coupon.code } } },
    'POST /orders': async ({ body }) => {
      await ensureLine(f.shelf.variants[1]!.id)
      const patch: Record<string, unknown> = {}
      if (!isObject(body) || body.addressId !== undefined || body.shippingAddress === undefined) patch.addressId = f.saved.id
      if (isObject(body) && typeof body.couponCode === 'string') patch.couponCode = f.coupon.code
      if (isObject(body) && typeof body.shippingOptionId === 'string') patch.shippingOptionId = f.shippingOption.id
      if (isObject(body) && isObject(body.shippingAddress)) patch.shippingAddress = { ...body.shippingAddress, country: 'FR', region: undefined }
      return { body: patch }
    },
    // Guest checkout: a guest cart of its own with a line and a contact email, shipping to France.
    'POST /orders/guest': async ({ body }) => {
      const patch: Record<string, unknown> = { shippingAddress: isObject(body) && isObject(body.shippingAddress) ? { ...body.shippingAddress, country: 'FR', region: undefined } : address }
      if (isObject(body) && typeof body.couponCode === 'string') patch.couponCode = f.coupon.code
      if (isObject(body) && typeof body.shippingOptionId === 'string') patch.shippingOptionId = f.shippingOption.id
      return { headers: await guestCart(f.shelf.variants[1]!.id), body: patch }
    },
    // A guest order's operations carry its order token; what consumes the order or the token gets a fresh one.
    'GET /orders/guest/{orderId}': async () => ({ headers: f.guest.headers, pathParameters: { orderId: f.guest.orderId } }),
    'GET /orders/guest/{orderId}/returns': async () => ({ headers: f.guest.headers, pathParameters: { orderId: f.guest.orderId } }),
    'POST /orders/guest/{orderId}/returns': async () => ({ headers: f.guest.headers, pathParameters: { orderId: f.guest.orderId } }),
    'POST /orders/{orderId}/guest-link': async () => ({ pathParameters: { orderId: f.guest.orderId } }),
    'POST /orders/guest/{orderId}/cancel': async () => { const g = await guestOrder(f.shelf.variants[1]!.id); return { headers: g.headers, pathParameters: { orderId: g.orderId } } },
    'DELETE /orders/guest/{orderId}/token': async () => { const g = await guestOrder(f.shelf.variants[1]!.id); return { headers: g.headers, pathParameters: { orderId: g.orderId } } },
    'POST /orders/guest/{orderId}/payments': async () => { const g = await guestOrder(f.shelf.variants[1]!.id); return { headers: g.headers, pathParameters: { orderId: g.orderId } } },
    'POST /orders/guest/{orderId}/payments/{paymentId}/confirm': async () => {
      const g = await guestOrder(f.shelf.variants[1]!.id, 'tok_success')
      return { headers: g.headers, pathParameters: { orderId: g.orderId, paymentId: g.paymentId }, body: { paymentMethod: 'tok_success' } }
    },
    'POST /products': async ({ body }) => productIds(body),
    'PATCH /products/{productId}': async ({ body }) => productIds(body),
    'POST /wishlist/items/{productId}/move-to-cart': async () => {
      await call('PUT', `/wishlist/items/${f.mover.id}`)
      await tolerate([404], call('DELETE', `/cart/items/${f.mover.variants[0]!.id}`))
      return { body: { variantId: f.mover.variants[0]!.id } }
    },
    'DELETE /reviews/{reviewId}': async () => {
      // One review per customer and product: a new one when the last was deleted.
      await tolerate([409], call<{ id: string }>('POST', `/products/${f.reviewed.id}/reviews`, { rating: 3, title: 'Fuzz review', body: 'To be deleted.' })
        .then((created) => { reviewId = created.id }))
      return reviewId ? { pathParameters: { reviewId } } : {}
    },
    'POST /payments/{paymentId}/confirm': async () => {
      const payment = await freshPayment(f, 'tok_success')
      return { pathParameters: { paymentId: payment.id }, body: { paymentMethod: 'tok_success' } }
    },
    'POST /payments/webhooks/{provider}': async () => {
      // The provider's own id of a payment that waits for its webhook; the hook signs the body.
      const payment = await freshPayment(f, 'tok_async')
      const { rows } = await db.query<{ provider_payment_id: string }>('select provider_payment_id from payments where id = $1', [payment.id])
      return { pathParameters: { provider: 'test' }, replaceBody: { id: `evt_fuzz_${Date.now()}_${++events}`, type: 'payment.succeeded', data: { paymentId: rows[0]!.provider_payment_id } } }
    },
    'POST /auth/password/reset': async () => {
      await call('POST', '/auth/password/forgot', { email: f.resetter.email }, false, {})
      const [, token] = await mailbox.waitFor(f.resetter.email, /reset-password\?token=([\w-]+)/)
      return { body: { token } }
    },
    'POST /auth/verify-email': async () => {
      const email = `fuzz-verify-${Date.now()}-${++events}@example.com`
      await call('POST', '/auth/register', { email, password: 'fuzz-verify-password-1', name: 'Fuzz Verify' }, false, {})
      const [, token] = await mailbox.waitFor(email, /verify-email\?token=([\w-]+)/)
      return { body: { token } }
    },
  }
}

let hooks: Record<string, Before> = {}
let serial: Promise<unknown> = Promise.resolve()
const readJson = async (req: AsyncIterable<Buffer>) => { const chunks: Buffer[] = []; for await (const c of req) chunks.push(c); return JSON.parse(Buffer.concat(chunks).toString() || '{}') }
createServer((req, res) => {
  const answer = (status: number, body: unknown, type = 'application/json') => { res.writeHead(status, { 'content-type': type }); res.end(typeof body === 'string' ? body : JSON.stringify(body)) }
  readJson(req).then(async (input) => {
    if (req.url === '/setup') {
      base = input.baseUrl
      const signIn = async () => {
        const { tokens } = await call<{ tokens: { accessToken: string } }>('POST', '/auth/login', { email: input.email, password: input.password }, false, {})
        auth = { authorization: `Bearer ${tokens.accessToken}` }
      }
      await signIn()
      setInterval(() => { signIn().catch((err: unknown) => console.error(err)) }, 5 * 60_000).unref()
      const fixtures = await setup()
      hooks = beforeHooks(fixtures)
      return answer(200, toml(fixtures.operations), 'text/plain')
    }
    // One at a time: two hooks renewing the same cart would race each other.
    if (req.url === '/before') {
      const run = serial.then(() => hooks[input.operation]?.(input) ?? {})
      serial = run.catch(() => {})
      // The admin's current token, unless the hook names an account of its own.
      const patch: { headers?: Record<string, string> } = await run
      return answer(200, { ...patch, headers: { ...auth, ...patch.headers } })
    }
    answer(404, { error: 'unknown' })
  }).catch((err: Error) => { console.error(err); answer(500, { error: err.message }) })
}).listen(Number(process.env.FIXTURES_PORT), '127.0.0.1')
