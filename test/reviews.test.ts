import t from 'tap'
import { eq } from 'drizzle-orm'
import { products } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { quickCustomers, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

const ADDRESS = { recipientName: 'A', line1: '1 Road', city: 'Town', postalCode: '12345', country: 'DE' }

/** Buys the product through the API and pays with the test provider. */
async function buy(app: App, headers: Record<string, string>, variantId: string, pay = true) {
  await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId } })
  const order = (await app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: ADDRESS } })).json()
  if (!pay) return order
  const payment = (await app.inject({ method: 'POST', url: `/orders/${order.id}/payments`, headers, payload: { provider: 'test', paymentMethod: 'tok_success' } })).json()
  await app.inject({ method: 'POST', url: `/payments/${payment.id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } })
  return order
}
const ratingOf = async (app: App, id: string) => {
  const [p] = await app.db.select({ count: products.ratingCount, sum: products.ratingSum, avg: products.ratingAvg }).from(products).where(eq(products.id, id))
  return p!
}

t.test('only verified buyers review, once; edit, delete, helpful votes; aggregates follow', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ stock: 50 }] })
  const vid = p.variants[0].id
  const buyer = await register(app, { email: 'buyer@example.com', name: 'Bea' })
  const unpaid = await register(app, { email: 'unpaid@example.com' })
  const stranger = await register(app, { email: 'stranger@example.com' })
  const review = (headers: Record<string, string>, payload: object) => app.inject({ method: 'POST', url: `/products/${p.id}/reviews`, headers, payload })

  await buy(app, buyer.headers, vid)
  await buy(app, unpaid.headers, vid, false)
  t.equal((await review(stranger.headers, { rating: 5, title: 'Great' })).statusCode, 403, 'never bought it')
  t.equal((await review(unpaid.headers, { rating: 5, title: 'Great' })).statusCode, 403, 'an unpaid order does not count')
  for (const bad of [{ rating: 0, title: 'x' }, { rating: 6, title: 'x' }, { rating: 3, title: '' }, { rating: 3, title: 'x', status: 'approved' }, { rating: 3.5, title: 'x' }]) {
    t.equal((await review(buyer.headers, bad)).statusCode, 400, JSON.stringify(bad))
  }
  const created = await review(buyer.headers, { rating: 4, title: 'Good', body: 'Nice fabric' })
  t.equal(created.statusCode, 201)
  t.match(created.json(), { rating: 4, status: 'approved', authorName: 'Bea', verifiedPurchase: true })
  t.equal((await review(buyer.headers, { rating: 5, title: 'Again' })).statusCode, 409, 'once per product')
  t.match(await ratingOf(app, p.id), { count: 1, sum: 4 })
  t.same((await app.inject({ method: 'GET', url: `/products/${p.id}` })).json().rating, { average: 4, count: 1 }, 'the product shows it')

  const id = created.json().id
  t.equal((await app.inject({ method: 'PATCH', url: `/reviews/${id}`, headers: stranger.headers, payload: { rating: 1 } })).statusCode, 404, "someone else's review")
  await app.inject({ method: 'PATCH', url: `/reviews/${id}`, headers: buyer.headers, payload: { rating: 2 } })
  t.match(await ratingOf(app, p.id), { count: 1, sum: 2 })

  const vote = (headers: Record<string, string>) => app.inject({ method: 'POST', url: `/reviews/${id}/helpful`, headers })
  t.equal((await vote(buyer.headers)).statusCode, 409, 'not on my own review')
  await Promise.all([vote(stranger.headers), vote(stranger.headers), vote(unpaid.headers)])
  t.equal((await vote(stranger.headers)).json().helpfulCount, 2, 'one vote per user')

  t.equal((await app.inject({ method: 'DELETE', url: `/reviews/${id}`, headers: stranger.headers })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/reviews/${id}`, headers: buyer.headers })).statusCode, 204)
  t.match(await ratingOf(app, p.id), { count: 0, sum: 0 })
})

t.test('moderation: pending reviews do not count until approved; listing pages and sorts', async (t) => {
  const app = await buildTestApp(t, { REVIEWS_AUTO_APPROVE: 'false' })
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ stock: 50 }] })
  const buyers = await quickCustomers(app, 5)
  const ids: string[] = []
  for (const [i, b] of buyers.entries()) {
    await buy(app, b.headers, p.variants[0].id)
    ids.push((await app.inject({ method: 'POST', url: `/products/${p.id}/reviews`, headers: b.headers, payload: { rating: i + 1, title: `R${i}` } })).json().id)
  }
  t.match(await ratingOf(app, p.id), { count: 0, sum: 0 }, 'pending reviews do not count')
  t.same((await app.inject({ method: 'GET', url: `/products/${p.id}/reviews` })).json().items, [], 'nor show')
  t.equal((await app.inject({ method: 'GET', url: '/reviews?status=pending', headers: admin.headers })).json().items.length, 5)
  for (const id of ids) await app.inject({ method: 'PATCH', url: `/reviews/${id}/moderation`, headers: admin.headers, payload: { status: 'approved' } })
  await app.inject({ method: 'PATCH', url: `/reviews/${ids[0]}/moderation`, headers: admin.headers, payload: { status: 'rejected' } })
  t.match(await ratingOf(app, p.id), { count: 4, sum: 2 + 3 + 4 + 5 })
  const sorted = (await app.inject({ method: 'GET', url: `/products/${p.id}/reviews?sort=rating_desc&limit=3` })).json()
  t.same(sorted.items.map((r: { rating: number }) => r.rating), [5, 4, 3])
  const next = (await app.inject({ method: 'GET', url: `/products/${p.id}/reviews?sort=rating_desc&limit=3&cursor=${sorted.nextCursor}` })).json()
  t.same(next.items.map((r: { rating: number }) => r.rating), [2])
  t.equal((await app.inject({ method: 'PATCH', url: `/reviews/${ids[1]}/moderation`, headers: buyers[1]!.headers, payload: { status: 'rejected' } })).statusCode, 403)
})

t.test('the rating aggregate stays exact under parallel reviews', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20' })
  const admin = await registerAdmin(app)
  const p = await createProduct(app, admin.headers, { variants: [{ stock: 100 }] })
  const buyers = await quickCustomers(app, 30)
  for (const b of buyers) await buy(app, b.headers, p.variants[0].id)
  const results = await Promise.all(buyers.map((b, i) => app.inject({ method: 'POST', url: `/products/${p.id}/reviews`, headers: b.headers, payload: { rating: (i % 5) + 1, title: 'Parallel' } })))
  t.same([...new Set(results.map((r) => r.statusCode))], [201])
  const expectedSum = buyers.reduce((s, _, i) => s + (i % 5) + 1, 0)
  const rating = await ratingOf(app, p.id)
  t.match(rating, { count: 30, sum: expectedSum })
  t.equal(Number(rating.avg), Math.round((expectedSum / 30) * 100) / 100)
})
