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

// A delivered order with a return asked for; zones, options and tax rates of their own (after
// the orders: a second option reaching DE would make those checkouts choose one).
const delivered = await order(main.variants[0]!.id)
await confirm((await pay(delivered.id)).id)
for (const status of ['fulfilled', 'shipped', 'delivered']) await call('PATCH', `/orders/${delivered.id}/status`, { status })
const deliveredItems = (await call<{ items: { id: string }[] }>('GET', `/orders/${delivered.id}`)).items
const returned = await call<{ id: string }>('POST', `/orders/${delivered.id}/returns`, { items: [{ orderItemId: deliveredItems[0]!.id, quantity: 1, reason: 'damaged' }] })
const zone = await call<{ id: string }>('POST', '/shipping/zones', { name: 'Fuzz Nordics', countries: ['SE', 'NO'] })
const deletableZone = await call<{ id: string }>('POST', '/shipping/zones', { name: 'Fuzz Baltics', countries: ['EE', 'LV'] })
const option = await call<{ id: string }>('POST', `/shipping/zones/${zone.id}/options`, { name: 'Fuzz Post', priceMinor: 900 })
const deletableOption = await call<{ id: string }>('POST', `/shipping/zones/${zone.id}/options`, { name: 'Fuzz Courier', priceMinor: 1900 })
const rate = await call<{ id: string }>('POST', '/tax-rates', { name: 'Fuzz SE', country: 'SE', rateBps: 2500 })
const deletableRate = await call<{ id: string }>('POST', '/tax-rates', { name: 'Fuzz NO', country: 'NO', rateBps: 2500 })

// The fuzzing admin's cart and wishlist hold these lines.
await call('POST', '/cart/items', { variantId: main.variants[0]!.id, quantity: 1 })
await call('POST', '/cart/items', { variantId: deletable.variants[1]!.id, quantity: 1 })
await call('PUT', `/wishlist/items/${main.id}`)
await call('PUT', `/wishlist/items/${deletable.id}`)

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
  ['POST /orders/{orderId}/returns', { orderId: delivered.id }],
  ['GET /returns/{returnId}', { returnId: returned.id }],
  ['POST /returns/{returnId}/approve', { returnId: returned.id }],
  ['POST /returns/{returnId}/reject', { returnId: returned.id }],
  ['POST /returns/{returnId}/receive', { returnId: returned.id }],
  ['POST /returns/{returnId}/refund', { returnId: returned.id }],
  ['GET /shipping/zones/{zoneId}', { zoneId: zone.id }],
  ['PATCH /shipping/zones/{zoneId}', { zoneId: zone.id }],
  ['DELETE /shipping/zones/{zoneId}', { zoneId: deletableZone.id }],
  ['POST /shipping/zones/{zoneId}/options', { zoneId: zone.id }],
  ['PATCH /shipping/options/{optionId}', { optionId: option.id }],
  ['DELETE /shipping/options/{optionId}', { optionId: deletableOption.id }],
  ['PATCH /tax-rates/{taxRateId}', { taxRateId: rate.id }],
  ['DELETE /tax-rates/{taxRateId}', { taxRateId: deletableRate.id }],
]

const toml = (value: string) => JSON.stringify(value)
console.log('# Generated by test/schemathesis-fixtures.ts for one run; ids of objects that exist.')
for (const [name, params] of operations) {
  console.log(`\n[[operations]]\ninclude-name = ${toml(name)}`)
  console.log(`parameters = { ${Object.entries(params).map(([k, v]) => `${toml(`path.${k}`)} = ${toml(v)}`).join(', ')} }`)
}
