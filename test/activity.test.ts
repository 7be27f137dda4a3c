import t from 'tap'
import { buildTestApp, startOwnFerretDb } from './helpers.js'
import { DEFAULT_PASSWORD, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

const ADDRESS = { recipientName: 'A', line1: '1 Road', city: 'Town', postalCode: '12345', country: 'DE' }

t.test('each recorded action appears in the activity log; admins query it by user, type and time', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 5 }] })
  const buyer = await register(app, { email: 'watched@example.com' })
  const login = (await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'watched@example.com', password: DEFAULT_PASSWORD } })).json()
  const headers = { authorization: `Bearer ${login.tokens.accessToken}` }
  await app.inject({ method: 'GET', url: `/products/${product.id}`, headers })
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId: product.variants[0].id } })
  const order = (await app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: ADDRESS } })).json()
  await app.inject({ method: 'POST', url: `/orders/${order.id}/payments`, headers, payload: { provider: 'test', paymentMethod: 'tok_decline' } })
  await app.inject({ method: 'POST', url: `/orders/${order.id}/cancel`, headers })
  await app.inject({ method: 'POST', url: '/auth/logout', headers })
  await app.activity.flush()

  const mine = (await app.inject({ method: 'GET', url: `/activity?userId=${buyer.body.user.id}&limit=100`, headers: admin.headers })).json()
  t.same([...mine.items.map((e: { type: string }) => e.type)].reverse(), ['sign_in', 'product_view', 'cart_change', 'checkout', 'payment', 'order_status_change', 'sign_out'])
  t.match(mine.items.find((e: { type: string }) => e.type === 'checkout').data, { orderId: order.id, totalMinor: order.totalMinor })

  const adminActions = (await app.inject({ method: 'GET', url: '/activity?type=admin_action', headers: admin.headers })).json()
  t.match(adminActions.items[0], { userId: admin.user.id, data: { method: 'POST', route: '/products', status: 201 } })
  const page1 = (await app.inject({ method: 'GET', url: '/activity?limit=3', headers: admin.headers })).json()
  const page2 = (await app.inject({ method: 'GET', url: `/activity?limit=3&cursor=${page1.nextCursor}`, headers: admin.headers })).json()
  t.equal(new Set([...page1.items, ...page2.items].map((e: { id: string }) => e.id)).size, 6, 'pages do not overlap')
  const future = (await app.inject({ method: 'GET', url: `/activity?from=${new Date(Date.now() + 60_000).toISOString()}`, headers: admin.headers })).json()
  t.same(future.items, [])
  t.equal((await app.inject({ method: 'GET', url: '/activity', headers })).statusCode, 401, 'the signed-out token is dead')
  t.equal((await app.inject({ method: 'GET', url: '/activity', headers: buyer.headers })).statusCode, 403)
})

t.test('a dead MongoDB does not break sign-in', async (t) => {
  const ferret = await startOwnFerretDb(t)
  const app = await buildTestApp(t, { MONGODB_URL: `${ferret.url}activity` })
  await register(app, { email: 'resilient@example.com' })
  await ferret.stop()
  const login = await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'resilient@example.com', password: DEFAULT_PASSWORD } })
  t.equal(login.statusCode, 200)
  await app.activity.flush()
})

t.test('anonymous product views are counted per product, without an IP; signed-in views stay entries of their own', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const [often, once] = [await createProduct(app, admin.headers, { name: 'Often seen' }), await createProduct(app, admin.headers, { name: 'Seen once' })]
  for (let i = 0; i < 3; i++) await app.inject({ method: 'GET', url: `/products/${often.id}` })
  await app.inject({ method: 'GET', url: `/products/by-slug/${once.slug}` })
  const reader = await register(app, { email: 'reader@example.com' })
  await app.inject({ method: 'GET', url: `/products/${often.id}`, headers: reader.headers })
  await app.activity.flush()

  const views = (await app.inject({ method: 'GET', url: '/activity?type=product_view&limit=100', headers: admin.headers })).json().items as { userId: string | null; ip: string | null; data: Record<string, unknown> }[]
  const anonymous = views.filter((v) => v.userId === null)
  t.same(anonymous.map((v) => [v.data.productId, v.data.views]).sort(), [[often.id, 3], [once.id, 1]].sort(), 'one entry per product, with the count')
  t.ok(anonymous.every((v) => v.ip === null && typeof v.data.since === 'string'), 'no IP kept; since when it counts')
  const signedIn = views.filter((v) => v.userId !== null)
  t.same(signedIn.map((v) => [v.userId, v.data.productId]), [[reader.body.user.id, often.id]], 'a signed-in view is its own entry')
  t.ok(signedIn[0]!.ip, 'with the IP, as every signed-in action')
})
