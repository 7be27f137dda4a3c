import t from 'tap'
import { buildTestApp, startOwnFerretDb } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// MongoDB away (its server stopped): what needs it (carts) answers 503 store-unavailable at once,
// without waiting on buffered commands; what does not (the catalog) keeps answering; /ready names it.
t.test('MongoDB away: catalog reads keep answering, carts answer 503, /ready names mongo', async (t) => {
  const ferret = await startOwnFerretDb(t)
  const app = await buildTestApp(t, { MONGODB_URL: `${ferret.url}outage` })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { name: 'Still here' })
  const [customer] = await quickCustomers(app, 1)
  t.equal((await app.inject({ method: 'GET', url: '/cart', headers: customer!.headers })).statusCode, 200)

  await ferret.stop()
  const reads = await Promise.all(Array.from({ length: 10 }, () => app.inject({ method: 'GET', url: `/products/${product.id}` })))
  t.same([...new Set(reads.map((r) => r.statusCode))], [200], 'catalog reads answer (the activity log loses its entries only)')
  const started = performance.now()
  for (const res of [
    await app.inject({ method: 'GET', url: '/cart', headers: customer!.headers }),
    await app.inject({ method: 'POST', url: '/cart/items', headers: customer!.headers, payload: { variantId: product.variants[0].id, quantity: 1 } }),
  ]) {
    t.equal(res.statusCode, 503)
    t.equal(res.json().type, 'urn:problem-type:store-unavailable')
  }
  t.comment(`cart answers without MongoDB: ${((performance.now() - started) / 2).toFixed(0)} ms each`)
  const ready = await app.inject({ method: 'GET', url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().checks.mongo, 'down')
})
