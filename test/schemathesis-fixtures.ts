// Real data for schemathesis (test/schemathesis.sh): creates, through the API and as the fuzzing
// admin, a catalog, a cart, a wishlist, an address, orders in each state, payments and a review,
// then prints a schemathesis.toml that gives every operation with ids in its path ids that exist.
// Operations that delete get their own objects, so a delete cannot take the others' data away.
// Usage: BASE_URL=... TOKEN=... node --import tsx test/schemathesis-fixtures.ts > schemathesis.toml

const base = process.env.BASE_URL!
const auth = { authorization: `Bearer ${process.env.TOKEN}` }
let keys = 0

async function call<T = Record<string, unknown>>(method: string, path: string, body?: object, idempotent = false): Promise<T> {
  const headers: Record<string, string> = { ...auth, ...(body ? { 'content-type': 'application/json' } : {}), ...(idempotent ? { 'idempotency-key': `fixture-${Date.now()}-${++keys}` } : {}) }
  const res = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined })
  const text = await res.text()
  if (!res.ok) throw new Error(`fixture ${method} ${path}: ${res.status} ${text}`)
  return (text ? JSON.parse(text) : {}) as T
}

type Product = { id: string; slug: string; variants: { id: string }[] }
const product = (name: string) => call<Product>('POST', '/products', {
  name, slug: `${name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${Date.now()}`, status: 'active',
  variants: [{ sku: `${name.slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, '')}-${Date.now()}-A`, priceMinor: 2500, stock: 100_000 }, { sku: `${name.slice(0, 8).toUpperCase().replace(/[^A-Z0-9]/g, '')}-${Date.now()}-B`, priceMinor: 900, stock: 100_000 }],
})
const address = { recipientName: 'Fuzz Admin', line1: '1 Test Street', city: 'Berlin', postalCode: '10115', country: 'DE' }
async function order(...variantIds: string[]) {
  for (const variantId of variantIds) await call('POST', '/cart/items', { variantId, quantity: 1 })
  return call<{ id: string }>('POST', '/orders', { shippingAddress: address }, true)
}
const pay = (orderId: string) => call<{ id: string }>('POST', `/orders/${orderId}/payments`, { provider: 'test', paymentMethod: 'tok_success' }, true)
const confirm = (paymentId: string) => call('POST', `/payments/${paymentId}/confirm`, { paymentMethod: 'tok_success' })

const main = await product('Fuzz Main')
const deletable = await product('Fuzz Deletable')
const variantHost = await product('Fuzz Variants')
const saved = await call<{ id: string }>('POST', '/users/me/addresses', address)

const pending = await order(main.variants[1]!.id) // read, cancel by the fuzzer; status changes
const toPay = await order(main.variants[1]!.id) // a payment is started by the fuzzer
const awaiting = await order(main.variants[1]!.id)
const unconfirmed = await pay(awaiting.id)
const paidOrder = await order(main.variants[0]!.id, deletable.variants[0]!.id)
const captured = await pay(paidOrder.id)
await confirm(captured.id)
const review = await call<{ id: string }>('POST', `/products/${main.id}/reviews`, { rating: 5, title: 'Fuzz review', body: 'Bought and reviewed for the fuzzer.' })
const deletableReview = await call<{ id: string }>('POST', `/products/${deletable.id}/reviews`, { rating: 4, title: 'Fuzz review', body: 'Another.' })

// The fuzzing admin's cart and wishlist hold these lines.
await call('POST', '/cart/items', { variantId: main.variants[0]!.id, quantity: 1 })
await call('POST', '/cart/items', { variantId: deletable.variants[1]!.id, quantity: 1 })
await call('PUT', `/wishlist/items/${main.id}`)
await call('PUT', `/wishlist/items/${deletable.id}`)

// Webhook endpoints (port 9 refuses connections: attempts are recorded as failures) and a delivery.
const hook = await call<{ id: string }>('POST', '/webhooks/endpoints', { url: 'http://127.0.0.1:9/fuzz', events: ['product.updated'] })
const deletableHook = await call<{ id: string }>('POST', '/webhooks/endpoints', { url: 'http://127.0.0.1:9/fuzz-deletable', events: ['order.paid'] })
await call('PATCH', `/products/${variantHost.id}`, { description: 'A product.updated event for the fuzzer' })
const [delivery] = (await call<{ items: { id: string }[] }>('GET', `/webhooks/endpoints/${hook.id}/deliveries`)).items
if (!delivery) throw new Error('fixture: no webhook delivery')

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
  ['PATCH /cart/items/{variantId}', { variantId: main.variants[0]!.id }],
  ['DELETE /cart/items/{variantId}', { variantId: deletable.variants[1]!.id }],
  ['DELETE /wishlist/items/{productId}', { productId: deletable.id }],
  ['PUT /wishlist/items/{productId}', { productId: main.id }],
  ['POST /wishlist/items/{productId}/move-to-cart', { productId: main.id }],
  ['GET /orders/{orderId}', { orderId: paidOrder.id }],
  ['PATCH /orders/{orderId}/status', { orderId: pending.id }],
  ['POST /orders/{orderId}/cancel', { orderId: pending.id }],
  ['POST /orders/{orderId}/payments', { orderId: toPay.id }],
  ['GET /payments/{paymentId}', { paymentId: captured.id }],
  ['POST /payments/{paymentId}/confirm', { paymentId: unconfirmed.id }],
  ['POST /payments/{paymentId}/refunds', { paymentId: captured.id }],
  ['PATCH /reviews/{reviewId}', { reviewId: review.id }],
  ['PATCH /reviews/{reviewId}/moderation', { reviewId: review.id }],
  ['POST /reviews/{reviewId}/helpful', { reviewId: review.id }],
  ['DELETE /reviews/{reviewId}', { reviewId: deletableReview.id }],
  ['GET /users/me/addresses/{addressId}', { addressId: saved.id }],
  ['PATCH /users/me/addresses/{addressId}', { addressId: saved.id }],
  ['GET /webhooks/endpoints/{endpointId}', { endpointId: hook.id }],
  ['PATCH /webhooks/endpoints/{endpointId}', { endpointId: hook.id }],
  ['DELETE /webhooks/endpoints/{endpointId}', { endpointId: deletableHook.id }],
  ['POST /webhooks/endpoints/{endpointId}/rotate-secret', { endpointId: hook.id }],
  ['GET /webhooks/endpoints/{endpointId}/deliveries', { endpointId: hook.id }],
  ['GET /webhooks/deliveries/{deliveryId}', { deliveryId: delivery.id }],
  ['POST /webhooks/deliveries/{deliveryId}/replay', { deliveryId: delivery.id }],
]

const toml = (value: string) => JSON.stringify(value)
console.log('# Generated by test/schemathesis-fixtures.ts for one run; ids of objects that exist.')
for (const [name, params] of operations) {
  console.log(`\n[[operations]]\ninclude-name = ${toml(name)}`)
  console.log(`parameters = { ${Object.entries(params).map(([k, v]) => `${toml(`path.${k}`)} = ${toml(v)}`).join(', ')} }`)
}
