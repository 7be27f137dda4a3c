import t from 'tap'
import createClient from 'openapi-fetch'
import { deflateSync } from 'node:zlib'
import type { paths } from '../openapi/schema.js'
import { signTestWebhook } from '../routes/payments/providers.js'
import { eq } from 'drizzle-orm'
import { payments, users } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { startMailbox } from './mail.js'

// The whole journey through the generated SDK (openapi-typescript types + openapi-fetch) against
// a listening server, as a client application would use it.

function tinyPng() {
  const table = Array.from({ length: 256 }, (_, n) => { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; return c >>> 0 })
  const crc = (b: Buffer) => { let c = 0xffffffff; for (const x of b) c = table[(c ^ x) & 0xff]! ^ (c >>> 8); return (c ^ 0xffffffff) >>> 0 }
  const chunk = (type: string, data: Buffer) => { const body = Buffer.concat([Buffer.from(type), data]); const out = Buffer.alloc(body.length + 8); out.writeUInt32BE(data.length, 0); body.copy(out, 4); out.writeUInt32BE(crc(body), body.length + 4); return out }
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(1, 0); ihdr.writeUInt32BE(1, 4); ihdr[8] = 8; ihdr[9] = 2
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from([0, 1, 2, 3]))), chunk('IEND', Buffer.alloc(0))])
}

t.test('shopper and admin journeys through the SDK', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url, UPLOAD_DIR: t.testdir(), TAX_RATE_BPS: '2000' })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const baseUrl = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const api = createClient<paths>({ baseUrl })
  const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

  // Admin: the first admin, then a category and a product with an image; stock adjusted.
  const adminReg = await api.POST('/auth/register', { body: { email: 'owner@example.com', password: 'owner password 1', name: 'Owner' } })
  t.equal(adminReg.response.status, 202)
  await app.db.update(users).set({ role: 'admin', emailVerifiedAt: new Date() }).where(eq(users.email, 'owner@example.com'))
  const adminLogin = await api.POST('/auth/login', { body: { email: 'owner@example.com', password: 'owner password 1' } })
  const admin = as(adminLogin.data!.tokens.accessToken)
  const category = await api.POST('/categories', { ...admin, body: { name: 'Knitwear', slug: 'knitwear' } })
  t.equal(category.response.status, 201)
  const form = new FormData()
  form.append('file', new Blob([tinyPng()], { type: 'image/png' }), 'sweater.png')
  const uploaded = await fetch(`${baseUrl}/uploads?purpose=product_image`, { method: 'POST', headers: admin.headers, body: form })
  t.equal(uploaded.status, 201)
  const image = await uploaded.json() as { id: string }
  const product = await api.POST('/products', { ...admin, body: {
    name: 'Merino Sweater', slug: 'merino-sweater', description: 'Warm merino wool', status: 'active', categoryId: category.data!.id,
    imageIds: [image.id], variants: [{ sku: 'MER-M', priceMinor: 8900, stock: 3, options: { size: 'M' } }],
  } })
  t.equal(product.response.status, 201)
  const variantId = product.data!.variants[0]!.id
  const adjusted = await api.POST('/products/{productId}/variants/{variantId}/stock-adjustments', { ...admin, params: { path: { productId: product.data!.id, variantId } }, body: { delta: 7, reason: 'restock' } })
  t.equal(adjusted.data!.stock, 10)
  await api.POST('/coupons', { ...admin, body: { code: 'WELCOME10', kind: 'percentage', value: 10 } })

  // Shopper: register, verify by mail, browse and search.
  const reg = await api.POST('/auth/register', { body: { email: 'shopper@example.com', password: 'shopper password 1', name: 'Shopper' } })
  t.equal(reg.response.status, 202)
  const [, token] = await mailbox.waitFor('shopper@example.com', /token=([A-Za-z0-9_-]{20,})/)
  const verified = await api.POST('/auth/verify-email', { body: { token: token! } })
  t.equal(verified.data!.emailVerified, true)
  const signIn = await api.POST('/auth/login', { body: { email: 'shopper@example.com', password: 'shopper password 1' } })
  const shopper = as(signIn.data!.tokens.accessToken)
  const found = await api.GET('/products', { params: { query: { q: 'merino', limit: 10 } } })
  t.same(found.data!.items.map((p) => p.slug), ['merino-sweater'])
  const bySlug = await api.GET('/products/by-slug/{slug}', { params: { path: { slug: 'merino-sweater' } } })
  t.same(bySlug.data!.imageIds, [image.id])
  t.equal((await fetch(`${baseUrl}/uploads/${image.id}`)).headers.get('content-type'), 'image/png')

  // Cart, coupon, checkout.
  await api.POST('/cart/items', { ...shopper, body: { variantId, quantity: 2 } })
  const withCoupon = await api.PUT('/cart/coupon', { ...shopper, body: { code: 'welcome10' } })
  t.equal(withCoupon.data!.couponCode, 'WELCOME10')
  const checkout = await api.POST('/orders', { headers: { ...shopper.headers, 'idempotency-key': 'journey-checkout-1' }, body: { shippingAddress: { recipientName: 'Shopper', line1: '1 High St', city: 'York', postalCode: 'YO1 1AA', country: 'GB' } } })
  t.equal(checkout.response.status, 201)
  const order = checkout.data!
  const goods = 2 * 8900 - Math.round(2 * 8900 * 0.1)
  t.match(order, { discountMinor: 1780, shippingMinor: 0, taxMinor: Math.round(goods * 0.2), totalMinor: goods + Math.round(goods * 0.2) })

  // Pay with the test provider; the provider's webhook confirms it.
  const payment = await api.POST('/orders/{orderId}/payments', { headers: { ...shopper.headers, 'idempotency-key': 'journey-pay-1' }, params: { path: { orderId: order.id } }, body: { provider: 'test', paymentMethod: 'tok_async' } })
  t.equal(payment.response.status, 201)
  const providerPaymentId = (await app.db.select().from(payments).where(eq(payments.id, payment.data!.id)))[0]!.providerPaymentId
  const event = JSON.stringify({ id: 'evt_journey_1', type: 'payment.succeeded', data: { paymentId: providerPaymentId } })
  const hook = await fetch(`${baseUrl}/payments/webhooks/test`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-shop-signature': signTestWebhook(app.config.payments.webhookSecret, event) }, body: event })
  t.equal(hook.status, 200)
  const paid = await api.GET('/orders/{orderId}', { ...shopper, params: { path: { orderId: order.id } } })
  t.equal(paid.data!.status, 'paid')

  // Review the product bought.
  const review = await api.POST('/products/{productId}/reviews', { ...shopper, params: { path: { productId: product.data!.id } }, body: { rating: 5, title: 'Lovely', body: 'Soft and warm' } })
  t.equal(review.response.status, 201)
  t.same((await api.GET('/products/{productId}', { params: { path: { productId: product.data!.id } } })).data!.rating, { average: 5, count: 1 })

  // Admin sees the sale.
  const now = new Date()
  const sales = await api.GET('/analytics/sales', { ...admin, params: { query: { from: new Date(now.getTime() - 3_600_000).toISOString(), to: new Date(now.getTime() + 3_600_000).toISOString() } } })
  t.match(sales.data!, { orders: 1, revenueMinor: order.totalMinor })
  const errorShape = await api.GET('/orders/{orderId}', { ...shopper, params: { path: { orderId: '00000000-0000-4000-8000-000000000000' } } })
  t.match(errorShape.error, { status: 404, title: 'Not Found' }, 'errors are typed problem documents too')
})
