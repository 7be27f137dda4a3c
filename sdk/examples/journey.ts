// A storefront's journey through the installed package, as test/sdk-package.test.ts runs it in a
// scratch project: browse, a customer's cart and checkout (its answer lost once on the way back),
// pay, a guest's cart and order, refreshes racing, and a long listing paged to its end. Reads
// SHOP_URL, SHOP_EMAIL and SHOP_PASSWORD; prints one JSON line of what it saw.
import { createShopClient, ok, ProblemError, type ClientState } from '@shop-api/sdk'

const baseUrl = process.env['SHOP_URL']!
const credentials = { email: process.env['SHOP_EMAIL']!, password: process.env['SHOP_PASSWORD']! }
let refreshCalls = 0
const counting = (request: Request) => {
  if (new URL(request.url).pathname === '/auth/refresh') refreshCalls++
  return fetch(request)
}
const address = { recipientName: 'Sam Shopper', line1: '1 High St', city: 'York', postalCode: 'YO1 1AA', country: 'GB' }

// Browse. The first answer to /categories is a 503 with Retry-After: 1; the client waits it out.
const shop = createShopClient({ baseUrl, fetch: counting, retryDelayMs: 50 })
const startedBrowsing = Date.now()
const tree = await ok(shop.api.GET('/categories'))
const waitedForRetryAfterMs = Date.now() - startedBrowsing
const found = await ok(shop.api.GET('/products', { params: { query: { inStock: true, limit: 5 } } }))
const product = await ok(shop.api.GET('/products/{productId}', { params: { path: { productId: found.items[0]!.id } } }))
const variant = product.variants.find((v) => v.stock > 1)!

// A customer: sign in, fill the cart, check out. The proxy drops the first checkout's answer
// after the API made the order; the retry carries the same Idempotency-Key and gets that order.
const me = await shop.signIn(credentials)
await ok(shop.api.POST('/cart/items', { body: { variantId: variant.id, quantity: 1 } }))
const options = await ok(shop.api.GET('/cart/shipping-options', { params: { query: { country: 'GB' } } }))
const order = await ok(shop.api.POST('/orders', { body: { shippingAddress: address, shippingOptionId: options.options[0]?.id } }))
const created = await ok(shop.api.POST('/orders/{orderId}/payments', { params: { path: { orderId: order.id } }, body: { provider: 'test', paymentMethod: 'tok_success' } }))
const payment = await ok(shop.api.POST('/payments/{paymentId}/confirm', { params: { path: { paymentId: created.id } }, body: { paymentMethod: 'tok_success' } }))
const paid = await ok(shop.api.GET('/orders/{orderId}', { params: { path: { orderId: order.id } } }))
const myOrders = await ok(shop.api.GET('/orders', { params: { query: { limit: 10 } } }))

// Refreshes racing. One client: five calls find the access token refused and share one refresh.
shop.setTokens({ ...shop.state.tokens!, accessToken: 'an.expired.token' })
const before = refreshCalls
const five = await Promise.all(Array.from({ length: 5 }, () => ok(shop.api.GET('/users/me'))))
const refreshesForFive = refreshCalls - before
// A write refused for its token is sent again, body and all, after the refresh.
shop.setTokens({ ...shop.state.tokens!, accessToken: 'an.expired.token' })
const cartAfterRefresh = await ok(shop.api.POST('/cart/items', { body: { variantId: variant.id, quantity: 1 } }))
// Two tabs sharing one saved session refresh at once: the API's grace lets both keep it.
const saved: ClientState = shop.state
const tabs = [createShopClient({ baseUrl, state: saved }), createShopClient({ baseUrl, state: saved })]
const raced = await Promise.all(tabs.map((tab) => tab.refresh()))
const afterRace = await Promise.all(tabs.map(async (tab) => (await ok(tab.api.GET('/users/me'))).email))

// A guest: a cart by token, an order by token (both kept by the client), paid.
const guest = createShopClient({ baseUrl })
await guest.startGuestCart()
await ok(guest.api.POST('/cart/items', { body: { variantId: variant.id, quantity: 1 } }))
await ok(guest.api.PUT('/cart/contact', { body: { email: 'guest@example.com' } }))
const guestOptions = await ok(guest.api.GET('/cart/shipping-options', { params: { query: { country: 'GB' } } }))
const placed = await ok(guest.api.POST('/orders/guest', { body: { shippingAddress: address, shippingOptionId: guestOptions.options[0]?.id } }))
const guestPayment = await ok(guest.api.POST('/orders/guest/{orderId}/payments', { params: { path: { orderId: placed.order.id } }, body: { provider: 'test', paymentMethod: 'tok_success' } }))
await ok(guest.api.POST('/orders/guest/{orderId}/payments/{paymentId}/confirm', { params: { path: { orderId: placed.order.id, paymentId: guestPayment.id } }, body: { paymentMethod: 'tok_success' } }))
const guestOrder = await ok(guest.api.GET('/orders/guest/{orderId}', { params: { path: { orderId: placed.order.id } } }))

// A long listing, to its end, 25 at a time.
const slugs: string[] = []
for await (const item of shop.list('/products', { params: { query: { limit: 25 } } })) slugs.push(item.slug)

// Errors are problem documents.
let problem: ProblemError | undefined
try { await ok(shop.api.GET('/orders/{orderId}', { params: { path: { orderId: '00000000-0000-4000-8000-000000000000' } } })) } catch (error) { if (error instanceof ProblemError) problem = error }

console.log(JSON.stringify({
  categories: tree.items.length, waitedForRetryAfterMs, signedInAs: me.user.email,
  order: { id: order.id, status: paid.status, payment: payment.status }, myOrderIds: myOrders.items.map((o) => o.id),
  fiveCallsOk: five.every((u) => u.email === credentials.email), refreshesForFive, writeAfterRefresh: cartAfterRefresh.itemCount, raced, afterRace,
  guestOrder: { id: guestOrder.id, status: guestOrder.status, tokenKept: Boolean(guest.state.orderTokens[placed.order.id]) },
  listed: slugs.length, distinct: new Set(slugs).size,
  problem: problem && { status: problem.status, title: problem.problem.title },
}))
