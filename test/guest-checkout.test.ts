import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { eq, isNotNull, sql } from 'drizzle-orm'
import { inventoryMovements, orderAccessTokens, orderItems, orders, productVariants } from '../db/schema/index.js'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { buildTestApp, createTestDatabase, freePort, testEnv, tsx } from './helpers.js'
import { startMailbox } from './mail.js'
import { quickCustomers, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Guest checkout through HTTP against real stores: a guest cart (X-Cart-Token) with a contact
// email becomes an order through the customer's checkout workflow; the order token
// (X-Order-Token) then opens that one order and nothing else.

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
type Headers = Record<string, string>

async function guestCart(app: App, variantId: string, quantity: number, email: string): Promise<Headers> {
  const created = await app.inject({ method: 'POST', url: '/cart/guest' })
  const headers = { 'x-cart-token': created.json().cartToken as string }
  const added = await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
  if (added.statusCode !== 200) throw new Error(`add: ${added.body}`)
  const contact = await app.inject({ method: 'PUT', url: '/cart/contact', headers, payload: { email } })
  if (contact.statusCode !== 200) throw new Error(`contact: ${contact.body}`)
  return headers
}
const guestCheckout = (app: App, headers: Headers, key?: string, payload: object = { shippingAddress: ADDRESS }) =>
  app.inject({ method: 'POST', url: '/orders/guest', headers: { ...headers, ...(key ? { 'idempotency-key': key } : {}) }, payload })
const asGuest = (token: string) => ({ 'x-order-token': token })
const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock

t.test('a guest buys, pays and confirms with the order token, gets the mail with its link, and the token opens that order only', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { name: 'Lamp', variants: [{ sku: 'LAMP-1', priceMinor: 4200, stock: 5 }] })
  const variantId = product.variants[0].id as string

  const cart = await guestCart(app, variantId, 2, 'Guest.One@Example.com')
  t.equal((await app.inject({ method: 'GET', url: '/cart', headers: cart })).json().email, 'guest.one@example.com', 'the contact email is kept, normalised')
  const res = await guestCheckout(app, cart, 'guest-checkout-0001')
  t.equal(res.statusCode, 201, res.body)
  const { order, orderToken, orderTokenExpiresAt } = res.json()
  t.match(order, { status: 'pending_payment', userId: null, guestEmail: 'guest.one@example.com', subtotalMinor: 8400 })
  t.ok(Date.parse(orderTokenExpiresAt) > Date.now(), 'the token expires in the future')
  t.equal(await stockOf(app, variantId), 3)
  t.same((await app.inject({ method: 'GET', url: '/cart', headers: cart })).json().lines, [], 'the guest cart is cleared after the commit')
  const [stored] = await app.db.select().from(orderAccessTokens).where(eq(orderAccessTokens.orderId, order.id))
  t.not(stored!.tokenHash, orderToken, 'only a hash of the token is stored')
  const { rows: keys } = await app.db.execute<{ body: string }>(sql`select response_body::text as body from idempotency_keys`)
  t.notOk(keys.some((k) => k.body.includes(orderToken)), 'nor is it in the stored answer')

  // The placed mail goes to the contact email with a link carrying its own token.
  const mailed = await mailbox.waitFor('guest.one@example.com', new RegExp(`your order ${order.number}[\\s\\S]*order-status/${order.id}#token=([A-Za-z0-9_-]{43})`))
  const mailToken = mailed[1]!
  t.not(mailToken, orderToken, 'the mail carries a token of its own')
  const read = await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(mailToken) })
  t.equal(read.statusCode, 200)
  t.same(read.json(), order, 'the mailed link reads the order as the checkout answered it')

  // Pay and confirm with the token, through the customer's payment workflows.
  const payment = await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/payments`, headers: { ...asGuest(orderToken), 'idempotency-key': 'guest-pay-0001' }, payload: { provider: 'test', paymentMethod: 'tok_success' } })
  t.equal(payment.statusCode, 201, payment.body)
  const confirmed = await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/payments/${payment.json().id}/confirm`, headers: asGuest(orderToken), payload: { paymentMethod: 'tok_success' } })
  t.equal(confirmed.statusCode, 200, confirmed.body)
  t.equal(confirmed.json().status, 'succeeded')
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(orderToken) })).json().status, 'paid')
  await mailbox.waitFor('guest.one@example.com', new RegExp(`received your payment of €[\\d.]+ for order ${order.number}`))
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/cancel`, headers: asGuest(orderToken) })).statusCode, 409, 'a paid order is not cancelled by the guest')

  // The token opens nothing else: another guest's order, the customer routes, an account.
  const other = (await guestCheckout(app, await guestCart(app, variantId, 1, 'guest.two@example.com'))).json()
  for (const [method, url] of [['GET', `/orders/guest/${other.order.id}`], ['POST', `/orders/guest/${other.order.id}/cancel`], ['DELETE', `/orders/guest/${other.order.id}/token`]] as const) {
    t.equal((await app.inject({ method, url, headers: asGuest(orderToken) })).statusCode, 404, `${method} ${url} with another order's token`)
  }
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${other.order.id}/payments`, headers: asGuest(orderToken), payload: { provider: 'test', paymentMethod: 'tok_success' } })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${other.order.id}/payments/${payment.json().id}/confirm`, headers: asGuest(orderToken), payload: { paymentMethod: 'tok_success' } })).statusCode, 404, 'a payment through another order')
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/payments/${payment.json().id}/confirm`, headers: asGuest(other.orderToken), payload: { paymentMethod: 'tok_success' } })).statusCode, 404, 'this payment with the other token')
  for (const url of [`/orders/${order.id}`, '/orders', '/users/me', `/payments/${payment.json().id}`]) {
    t.equal((await app.inject({ method: 'GET', url, headers: asGuest(orderToken) })).statusCode, 401, `${url} wants an account, not an order token`)
  }

  // A wrong, revoked or expired token is a 404 like an order that does not exist.
  const missing = await app.inject({ method: 'GET', url: '/orders/guest/00000000-0000-4000-8000-000000000000', headers: asGuest(orderToken) })
  const wrong = await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest('x'.repeat(43)) })
  const none = await app.inject({ method: 'GET', url: `/orders/guest/${order.id}` })
  t.equal(missing.statusCode, 404)
  t.equal(wrong.statusCode, 404)
  t.equal(none.statusCode, 400, 'no token at all is a malformed request')
  t.equal(wrong.json().type, missing.json().type)
  t.equal((await app.inject({ method: 'DELETE', url: `/orders/guest/${order.id}/token`, headers: asGuest(orderToken) })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(orderToken) })).statusCode, 404, 'revoked')
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(mailToken) })).statusCode, 200, 'the mailed link still works')
  await app.db.update(orderAccessTokens).set({ expiresAt: sql`now() - interval '1 second'` }).where(eq(orderAccessTokens.orderId, order.id))
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(mailToken) })).statusCode, 404, 'expired')

  // The admin sees the guest order with its email.
  const listed = (await app.inject({ method: 'GET', url: '/orders', headers: admin.headers })).json().items
  t.ok(listed.some((o: { id: string; guestEmail: string | null }) => o.id === order.id && o.guestEmail === 'guest.one@example.com'))

  // Analytics count guests and customers apart: this paid guest order, and a customer's.
  const [customer] = await quickCustomers(app, 1)
  await app.inject({ method: 'POST', url: '/cart/items', headers: customer!.headers, payload: { variantId, quantity: 1 } })
  const bought = (await app.inject({ method: 'POST', url: '/orders', headers: customer!.headers, payload: { shippingAddress: { recipientName: 'C', line1: '1 Way', city: 'Berlin', postalCode: '10115', country: 'DE' } } })).json()
  const paying = (await app.inject({ method: 'POST', url: `/orders/${bought.id}/payments`, headers: customer!.headers, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  t.equal((await app.inject({ method: 'POST', url: `/payments/${paying.id}/confirm`, headers: customer!.headers, payload: { paymentMethod: 'tok_success' } })).statusCode, 200)
  const range = `from=${new Date(Date.now() - 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`
  const sales = (await app.inject({ method: 'GET', url: `/analytics/sales?${range}`, headers: admin.headers })).json()
  t.same(sales.byBuyer, { guests: { orders: 1, revenueMinor: order.totalMinor }, customers: { orders: 1, revenueMinor: bought.totalMinor } }, 'guests and customers apart')
  t.equal(sales.orders, 2)
})

t.test('a guest cancels while unpaid: stock goes back', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000, stock: 4 }] })
  const variantId = product.variants[0].id as string
  const placed = (await guestCheckout(app, await guestCart(app, variantId, 3, 'undecided@example.com'))).json()
  t.equal(await stockOf(app, variantId), 1)
  const cancelled = await app.inject({ method: 'POST', url: `/orders/guest/${placed.order.id}/cancel`, headers: asGuest(placed.orderToken) })
  t.equal(cancelled.statusCode, 200, cancelled.body)
  t.equal(cancelled.json().status, 'cancelled')
  t.equal(await stockOf(app, variantId), 4)
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${placed.order.id}/cancel`, headers: asGuest(placed.orderToken) })).statusCode, 409)
})

t.test('a guest cart without a contact email, or naming a saved address, is refused and changes nothing', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 2 }] })
  const created = await app.inject({ method: 'POST', url: '/cart/guest' })
  const headers = { 'x-cart-token': created.json().cartToken as string }
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId: product.variants[0].id, quantity: 1 } })
  const res = await guestCheckout(app, headers)
  t.equal(res.statusCode, 409)
  t.equal(res.json().type, 'urn:problem-type:contact-required')
  t.equal((await guestCheckout(app, headers, undefined, { addressId: '00000000-0000-4000-8000-000000000000' })).statusCode, 400, 'a guest has no saved addresses')
  t.equal((await guestCheckout(app, { 'x-cart-token': 'y'.repeat(43) })).statusCode, 404, 'an unknown cart')
  t.equal((await guestCheckout(app, {})).statusCode, 400, 'no cart token')
  t.equal(await stockOf(app, product.variants[0].id), 2)
})

t.test('100 guests racing for 10 units buy exactly 10', async (t) => {
  // 400 requests from one address to set the carts up: above the default per-IP limit.
  const app = await buildTestApp(t, { DB_POOL_MAX: '20', RATE_LIMIT_MAX: '2000' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 10 }] })
  const variantId = product.variants[0].id as string
  const carts: Headers[] = []
  for (let i = 0; i < 100; i++) carts.push(await guestCart(app, variantId, 1, `racer${i}@example.com`))
  const results = await Promise.all(carts.map((c) => guestCheckout(app, c)))
  const statuses = results.map((r) => r.statusCode)
  t.equal(statuses.filter((s) => s === 201).length, 10, 'ten orders')
  t.equal(statuses.filter((s) => s === 409).length, 90, 'the rest are told it is gone')
  t.equal(await stockOf(app, variantId), 0)
  const { rows } = await app.db.execute<{ n: number; units: number }>(sql`select count(*)::int as n, coalesce(sum(i.quantity), 0)::int as units from orders o join order_items i on i.order_id = o.id`)
  t.same(rows[0], { n: 10, units: 10 })
})

t.test('the same Idempotency-Key retried replays the same order (with a fresh token); another body is 422', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1500, stock: 20 }] })
  const variantId = product.variants[0].id as string
  const cart = await guestCart(app, variantId, 2, 'retry@example.com')
  const results = await Promise.all(Array.from({ length: 10 }, () => guestCheckout(app, cart, 'guest-key-0001')))
  t.same([...new Set(results.map((r) => r.statusCode))], [201])
  t.equal(new Set(results.map((r) => JSON.stringify(r.json().order))).size, 1, 'one order, identical in every answer')
  t.equal(new Set(results.map((r) => r.json().orderToken)).size, 10, 'each answer its own token')
  t.equal(results.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 9)
  t.equal(await stockOf(app, variantId), 18, 'stock taken once')
  const later = await guestCheckout(app, cart, 'guest-key-0001')
  t.same(later.json().order, results[0]!.json().order, 'replayed later too')
  for (const r of [results[3]!, later]) t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${r.json().order.id}`, headers: asGuest(r.json().orderToken) })).statusCode, 200)
  const different = await guestCheckout(app, cart, 'guest-key-0001', { shippingAddress: { ...ADDRESS, city: 'Bath' } })
  t.equal(different.statusCode, 422)
  // Another cart using the same key is its own request, not a replay of this one.
  const another = await guestCheckout(app, await guestCart(app, variantId, 1, 'retry@example.com'), 'guest-key-0001')
  t.equal(another.statusCode, 201)
  t.not(another.json().order.id, later.json().order.id)
})

t.test('one email buys as a guest twice, also the email of an account: no "already exists", nothing revealed', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 900, stock: 20 }] })
  const variantId = product.variants[0].id as string
  const member = await register(app, { email: 'member@example.com' })

  const answers = []
  for (const email of ['twice@example.com', 'TWICE@example.com', 'member@example.com', 'Member@Example.com']) {
    const res = await guestCheckout(app, await guestCart(app, variantId, 1, email))
    t.equal(res.statusCode, 201, email)
    answers.push(res.json())
  }
  const shape = (a: { order: Record<string, unknown>; orderToken: string }) => ({ keys: Object.keys(a).sort(), orderKeys: Object.keys(a.order).sort(), userId: a.order.userId })
  t.same(shape(answers[2]), shape(answers[0]), 'an account\'s email answers like any other')
  t.same(answers.map((a) => a.order.userId), [null, null, null, null], 'no order is put into the account by typing its address')
  t.same((await app.inject({ method: 'GET', url: '/orders', headers: member.headers })).json().items, [], 'the account sees none of them')
  await mailbox.waitFor('member@example.com', new RegExp(`your order ${answers[3].order.number}`))
})

t.test('lookup by number and email: the same answer for a real and an invented order; the real one mails its link', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 5 }] })
  const placed = (await guestCheckout(app, await guestCart(app, product.variants[0].id, 1, 'forgetful@example.com'))).json()
  await mailbox.waitFor('forgetful@example.com', new RegExp(`your order ${placed.order.number}`))

  const lookup = (number: string, email: string) => app.inject({ method: 'POST', url: '/orders/guest/lookup', payload: { number, email } })
  const real = await lookup(placed.order.number, 'Forgetful@example.com')
  const invented = await lookup('SO-999999', 'forgetful@example.com')
  const wrongEmail = await lookup(placed.order.number, 'someone@example.com')
  for (const r of [real, invented, wrongEmail]) t.equal(r.statusCode, 202)
  t.equal(invented.body, real.body, 'byte-identical body')
  t.equal(wrongEmail.body, real.body)
  t.same(Object.keys(invented.headers).sort(), Object.keys(real.headers).sort(), 'the same headers')

  const link = await mailbox.waitFor('forgetful@example.com', new RegExp(`link to your order ${placed.order.number}[\\s\\S]*#token=([A-Za-z0-9_-]{43})`))
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${placed.order.id}`, headers: asGuest(link[1]!) })).statusCode, 200, 'the mailed link opens the order')
  await app.outbox.drain({ all: true })
  t.same(mailbox.received.filter((m) => m.to.includes('someone@example.com')), [], 'nothing to the wrong address')
})

t.test('a per-customer coupon limit counts per email for guests', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 5000, stock: 20 }] })
  const variantId = product.variants[0].id as string
  await app.inject({ method: 'POST', url: '/coupons', headers: admin.headers, payload: { code: 'ONCEEACH', kind: 'fixed', value: 700, perCustomerLimit: 1 } })
  const withCoupon = { shippingAddress: ADDRESS, couponCode: 'ONCEEACH' }

  const first = await guestCheckout(app, await guestCart(app, variantId, 1, 'thrifty@example.com'), undefined, withCoupon)
  t.equal(first.json().order.discountMinor, 700)
  const again = await guestCheckout(app, await guestCart(app, variantId, 1, 'Thrifty@Example.com'), undefined, withCoupon)
  t.equal(again.statusCode, 409, 'the same email, another cart')
  t.match(again.json().detail, /already used/)
  t.equal((await guestCheckout(app, await guestCart(app, variantId, 1, 'other@example.com'), undefined, withCoupon)).json().order.discountMinor, 700, 'another email still can')

  // A customer's use counts against a guest who gives the account's address.
  const member = await register(app, { email: 'member@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: member.headers, payload: { variantId, quantity: 1 } })
  t.equal((await app.inject({ method: 'POST', url: '/orders', headers: member.headers, payload: withCoupon })).json().discountMinor, 700)
  t.equal((await guestCheckout(app, await guestCart(app, variantId, 1, 'member@example.com'), undefined, withCoupon)).statusCode, 409)

  // Cancelling gives the use back.
  const placed = first.json()
  await app.inject({ method: 'POST', url: `/orders/guest/${placed.order.id}/cancel`, headers: asGuest(placed.orderToken) })
  t.equal((await guestCheckout(app, await guestCart(app, variantId, 1, 'thrifty@example.com'), undefined, withCoupon)).json().order.discountMinor, 700)
})

t.test('guest orders of one email are claimed into the account once its owner verifies the address, and only then', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 900, stock: 20 }] })
  const variantId = product.variants[0].id as string
  const placed = []
  for (const email of ['later@example.com', 'Later@Example.com']) placed.push((await guestCheckout(app, await guestCart(app, variantId, 1, email))).json().order.id)
  const someoneElses = (await guestCheckout(app, await guestCart(app, variantId, 1, 'someone@example.com'))).json().order.id

  const credentials = { email: 'later@example.com', password: 'correct horse battery' }
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { ...credentials, name: 'Later' } })).statusCode, 202)
  const signIn = async () => {
    const res = await app.inject({ method: 'POST', url: '/auth/login', payload: credentials })
    t.equal(res.statusCode, 200, res.body)
    return { authorization: `Bearer ${res.json().tokens.accessToken}` }
  }
  const mine = async (headers: Headers) => ((await app.inject({ method: 'GET', url: '/orders', headers })).json().items as { id: string }[]).map((o) => o.id).sort()
  // An account that has not proved the address cannot sign in at all, so it sees none of them.
  t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: credentials })).statusCode, 401, 'no session before the address is verified')
  t.same((await app.db.select({ id: orders.id }).from(orders).where(isNotNull(orders.userId))).map((o) => o.id), [], 'nothing claimed before verification')

  const [, token] = await mailbox.waitFor('later@example.com', /verify-email\?token=([\w-]+)/)
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token } })).statusCode, 200)
  const headers = await signIn()
  t.same(await mine(headers), [...placed].sort(), 'both guest orders, once')
  t.same(await mine(await signIn()), [...placed].sort(), 'signing in again claims nothing twice')
  t.notOk((await mine(headers)).includes(someoneElses), "another address's order stays the guest's")
  t.equal((await app.inject({ method: 'GET', url: `/orders/${placed[0]}`, headers })).json().guestEmail, 'later@example.com', 'the order keeps the email it was placed with')
})

t.test('one email holds at most GUEST_MAX_UNPAID_ORDERS unpaid guest orders, also when its checkouts race', async (t) => {
  const app = await buildTestApp(t, { GUEST_MAX_UNPAID_ORDERS: '2' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000, stock: 50 }] })
  const variantId = product.variants[0].id as string
  const carts = []
  for (let i = 0; i < 6; i++) carts.push(await guestCart(app, variantId, 1, i % 2 ? 'Hoarder@example.com' : 'hoarder@example.com'))
  const results = await Promise.all(carts.map((c) => guestCheckout(app, c)))
  t.same(results.map((r) => r.statusCode).sort(), [201, 201, 409, 409, 409, 409], 'two placed')
  t.ok(results.filter((r) => r.statusCode === 409).every((r) => r.json().type === 'urn:problem-type:too-many-unpaid-orders'))
  t.equal(await stockOf(app, variantId), 48, 'the refused ones reserved nothing')
  t.equal((await guestCheckout(app, await guestCart(app, variantId, 1, 'patient@example.com'))).statusCode, 201, 'another email is not held up')
  const held = results.find((r) => r.statusCode === 201)!.json()
  await app.inject({ method: 'POST', url: `/orders/guest/${held.order.id}/cancel`, headers: asGuest(held.orderToken) })
  t.equal((await guestCheckout(app, carts[results.findIndex((r) => r.statusCode === 409)]!)).statusCode, 201, 'once one is cancelled, the email may place another')
})

t.test('one client address holds at most GUEST_MAX_UNPAID_ORDERS_PER_CLIENT unpaid guest orders whatever emails it types; an IPv6 client counts per /64', async (t) => {
  const app = await buildTestApp(t, { GUEST_MAX_UNPAID_ORDERS_PER_CLIENT: '3' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1000, stock: 50 }] })
  const variantId = product.variants[0].id as string
  const from = (remoteAddress: string, headers: Headers) =>
    app.inject({ method: 'POST', url: '/orders/guest', headers, remoteAddress, payload: { shippingAddress: ADDRESS } })

  const carts = []
  for (let i = 0; i < 7; i++) carts.push(await guestCart(app, variantId, 1, `script-${i}@example.com`))
  const results = await Promise.all(carts.map((c) => from('203.0.113.7', c)))
  t.same(results.map((r) => r.statusCode).sort(), [201, 201, 201, 409, 409, 409, 409], 'three placed from one address, with seven emails')
  t.ok(results.filter((r) => r.statusCode === 409).every((r) => r.json().type === 'urn:problem-type:too-many-unpaid-orders'))
  t.equal(await stockOf(app, variantId), 47, 'the refused ones reserved nothing')
  const stored = await app.db.select({ client: orders.guestClient }).from(orders)
  t.ok(stored.every((o) => o.client && !o.client.includes('203.0.113')), 'the address is stored keyed, not readable')
  t.equal(new Set(stored.map((o) => o.client)).size, 1, 'one key for the one address')

  t.equal((await from('198.51.100.9', await guestCart(app, variantId, 1, 'neighbour@example.com'))).statusCode, 201, 'another address is not held up')
  // Two addresses of one IPv6 /64 are one client.
  t.equal((await from('2001:db8:1:2::10', await guestCart(app, variantId, 1, 'v6-a@example.com'))).statusCode, 201)
  t.equal((await from('2001:db8:1:2::10', await guestCart(app, variantId, 1, 'v6-b@example.com'))).statusCode, 201)
  t.equal((await from('2001:db8:1:2::99', await guestCart(app, variantId, 1, 'v6-c@example.com'))).statusCode, 201)
  const v6 = await from('2001:db8:1:2:ffff::1', await guestCart(app, variantId, 1, 'v6-d@example.com'))
  t.equal(v6.statusCode, 409, 'the fourth from the same /64 is refused')
  t.equal((await from('2001:db8:1:3::1', await guestCart(app, variantId, 1, 'v6-e@example.com'))).statusCode, 201, 'the next /64 is another client')

  // A paid order no longer counts (nor keeps the address); the address may place another.
  const placed = results.find((r) => r.statusCode === 201)!.json()
  const payment = await app.inject({ method: 'POST', url: `/orders/guest/${placed.order.id}/payments`, headers: { ...asGuest(placed.orderToken), 'idempotency-key': 'client-bound-pay-1' }, payload: { provider: 'test', paymentMethod: 'tok_success' } })
  t.equal(payment.statusCode, 201, payment.body)
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${placed.order.id}/payments/${payment.json().id}/confirm`, headers: asGuest(placed.orderToken), payload: { paymentMethod: 'tok_success' } })).json().status, 'succeeded')
  const [paid] = await app.db.select({ client: orders.guestClient }).from(orders).where(eq(orders.id, placed.order.id))
  t.equal(paid!.client, null, 'the paid order keeps no client key')
  t.equal((await from('203.0.113.7', carts[results.findIndex((r) => r.statusCode === 409)]!)).statusCode, 201, 'once one is paid, the address may place another')
})

t.test('SIGKILL while 40 guests check out: each retry with its key replays its order; one order per cart, stock moved once', { timeout: 180_000 }, async (t) => {
  const database = await createTestDatabase(t)
  const port = await freePort()
  // The 40 guests all come from this machine's one address.
  const env = testEnv(database, { HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000', DB_POOL_MAX: '20', GUEST_MAX_UNPAID_ORDERS_PER_CLIENT: '1000' })
  const seed = await buildApp(loadConfig(env), { logger: false })
  t.teardown(async () => { await seed.mongo.dropDatabase().catch(() => {}); await seed.close() })
  const admin = await registerAdmin(seed)
  const product = await createProduct(seed, admin.headers, { variants: [{ priceMinor: 1999, stock: 1000 }] })
  const variantId = product.variants[0].id as string
  const carts: Headers[] = []
  for (let i = 0; i < 40; i++) carts.push(await guestCart(seed, variantId, 1 + (i % 3), `crash${i}@example.com`))

  let server: ChildProcess | undefined
  const start = async () => {
    const [node, ...args] = tsx('src/server.ts')
    server = spawn(node!, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
    for (let i = 0; i < 200; i++) {
      try { if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) return } catch { /* not yet */ }
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error('the API did not start')
  }
  t.teardown(() => { server?.kill('SIGKILL') })
  const answers = new Map<number, Set<string>>()
  const attempt = async (cart: Headers, i: number) => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/orders/guest`, { method: 'POST', headers: { ...cart, 'idempotency-key': `guest-crash-${i}`, 'content-type': 'application/json' }, body: JSON.stringify({ shippingAddress: ADDRESS }) })
      const body = await res.json().catch(() => null) as { order?: { id: string } } | null
      if (res.status === 201 && body?.order) answers.set(i, (answers.get(i) ?? new Set()).add(body.order.id))
      return res.status
    } catch {
      return 0 // the process died under the request
    }
  }

  await start()
  const running = Promise.all(carts.map(attempt))
  // Killed once some orders have committed and others are still under way.
  const committed = async () => (await seed.db.execute<{ n: number }>(sql`select count(*)::int as n from orders`)).rows[0]!.n
  for (let i = 0; i < 300 && (await committed()) < 5; i++) await new Promise((r) => setTimeout(r, 20))
  const proc = server!
  const exited = new Promise((r) => proc.once('exit', r))
  proc.kill('SIGKILL')
  await exited
  const first = await running
  const atKill = await committed()
  t.comment(`killed with ${atKill} orders committed: ${first.filter((s) => s === 201).length} answered, ${first.filter((s) => s === 0).length} cut off`)
  t.ok(atKill > 0 && atKill < carts.length, 'the kill fell in the middle of the checkouts')
  await start()
  // Until every key has its answer: a retry that arrives within the dead attempt's lease waits or is told to retry.
  for (let pass = 0; pass < 20 && answers.size < carts.length; pass++) await Promise.all(carts.map((c, i) => (answers.has(i) ? null : attempt(c, i))))
  const replays = await Promise.all(carts.map(attempt))
  t.same([...new Set(replays)], [201], 'every key answers 201 after the restart')
  t.same([...answers.entries()].filter(([, ids]) => ids.size !== 1).map(([i]) => i), [], 'every answer of a key names the same order')
  server!.kill('SIGKILL')

  await seed.outbox.drain({ all: true })
  const placed = await seed.db.select().from(orders).where(isNotNull(orders.guestEmail))
  t.equal(placed.length, carts.length, 'one order per guest cart, none doubled')
  t.equal(new Set(placed.map((o) => o.guestEmail)).size, carts.length)
  const sold = (await seed.db.select({ quantity: orderItems.quantity }).from(orderItems)).reduce((n, r) => n + r.quantity, 0)
  t.equal(sold, carts.reduce((n, _, i) => n + 1 + (i % 3), 0), 'each cart bought what it held, once')
  t.equal(await stockOf(seed, variantId), 1000 - sold, 'stock moved once per order')
  t.equal((await seed.db.select().from(inventoryMovements).where(eq(inventoryMovements.reason, 'sale'))).length, carts.length, 'one sale movement per order')
})

t.test('a guest asks for a return with the order token and follows it; an admin resends the link; the return moves into the account that claims the order', async (t) => {
  const mailbox = await startMailbox(t)
  const app = await buildTestApp(t, { SMTP_URL: mailbox.url })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1500, stock: 10 }] })
  const variantId = product.variants[0].id as string
  const placed = (await guestCheckout(app, await guestCart(app, variantId, 2, 'returner@example.com'))).json()
  const { order, orderToken } = placed
  const paid = await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/payments`, headers: { ...asGuest(orderToken), 'idempotency-key': 'guest-return-pay-1' }, payload: { provider: 'test', paymentMethod: 'tok_success' } })
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/payments/${paid.json().id}/confirm`, headers: asGuest(orderToken), payload: { paymentMethod: 'tok_success' } })).statusCode, 200)
  const item = { orderItemId: order.items[0].id as string, quantity: 1, reason: 'damaged' }
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/returns`, headers: asGuest(orderToken), payload: { items: [item] } })).statusCode, 409, 'not before delivery')
  for (const status of ['fulfilled', 'shipped', 'delivered']) {
    t.equal((await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status } })).statusCode, 200)
  }

  const asked = await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/returns`, headers: asGuest(orderToken), payload: { items: [item] } })
  t.equal(asked.statusCode, 201, asked.body)
  t.match(asked.json(), { orderId: order.id, userId: null, status: 'requested', items: [{ orderItemId: item.orderItemId, quantity: 1 }] })
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/returns`, headers: asGuest(orderToken), payload: { items: [{ ...item, quantity: 2 }] } })).statusCode, 409, 'never more than was bought')
  const listed = await app.inject({ method: 'GET', url: `/orders/guest/${order.id}/returns`, headers: asGuest(orderToken) })
  t.same(listed.json().map((r: { id: string }) => r.id), [asked.json().id], 'the guest follows it with the token')
  const other = (await guestCheckout(app, await guestCart(app, variantId, 1, 'other@example.com'))).json()
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}/returns`, headers: asGuest(other.orderToken) })).statusCode, 404, "another order's token reads no returns")
  t.equal((await app.inject({ method: 'POST', url: `/orders/guest/${order.id}/returns`, headers: asGuest(other.orderToken), payload: { items: [item] } })).statusCode, 404, 'nor asks for one')
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/returns`, headers: admin.headers, payload: { items: [item] } })).statusCode, 404, 'the customer route is for the order\'s owner')

  // The admin resends the link: a fresh token mailed to the order's email, which opens the order.
  const linkIn = new RegExp(`order-status/${order.id}#token=([A-Za-z0-9_-]{43})`)
  await mailbox.waitFor('returner@example.com', linkIn) // the placed mail's link, taken first
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/guest-link`, headers: (await register(app, { email: 'nosy@example.com' })).headers })).statusCode, 403, 'admins only')
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/guest-link`, headers: admin.headers })).statusCode, 202)
  const [, linkToken] = await mailbox.waitFor('returner@example.com', linkIn)
  t.not(linkToken, orderToken)
  t.equal((await app.inject({ method: 'GET', url: `/orders/guest/${order.id}`, headers: asGuest(linkToken!) })).statusCode, 200, 'the resent link opens the order')
  const customer = await register(app, { email: 'customer@example.com' })
  const own = await app.inject({ method: 'POST', url: '/cart/items', headers: customer.headers, payload: { variantId, quantity: 1 } })
  t.equal(own.statusCode, 200)
  const customerOrder = (await app.inject({ method: 'POST', url: '/orders', headers: customer.headers, payload: { shippingAddress: ADDRESS } })).json()
  t.equal((await app.inject({ method: 'POST', url: `/orders/${customerOrder.id}/guest-link`, headers: admin.headers })).statusCode, 409, "a customer's order has no guest link")
  t.equal((await app.inject({ method: 'POST', url: '/orders/00000000-0000-4000-8000-000000000000/guest-link', headers: admin.headers })).statusCode, 404)

  // The owner of the address verifies it: the order and its return become the account's.
  const credentials = { email: 'returner@example.com', password: 'correct horse battery' }
  t.equal((await app.inject({ method: 'POST', url: '/auth/register', payload: { ...credentials, name: 'Returner' } })).statusCode, 202)
  const [, verify] = await mailbox.waitFor('returner@example.com', /verify-email\?token=([\w-]+)/)
  t.equal((await app.inject({ method: 'POST', url: '/auth/verify-email', payload: { token: verify } })).statusCode, 200)
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: credentials })
  const headers = { authorization: `Bearer ${login.json().tokens.accessToken}` }
  const mine = (await app.inject({ method: 'GET', url: '/returns', headers })).json().items as { id: string; userId: string }[]
  t.same(mine.map((r) => r.id), [asked.json().id], 'the return is in the account')
  t.equal(mine[0]!.userId, login.json().user.id)
})
