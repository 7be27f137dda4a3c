import t from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'

// What the framework answers before a route runs is problem+json too, and the contract says what
// the server checks (issue 14: each of these answered otherwise before).

t.test('a known path with another method is 405 with Allow; an unknown path stays 404', async (t) => {
  const app = await buildTestApp(t)
  const trace = await app.inject({ method: 'TRACE', url: '/products' })
  t.equal(trace.statusCode, 405)
  t.match(trace.headers['content-type'], /^application\/problem\+json/)
  t.match(String(trace.headers.allow), /GET/)
  t.match(String(trace.headers.allow), /POST/)
  const deleteList = await app.inject({ method: 'DELETE', url: '/orders' })
  t.equal(deleteList.statusCode, 405)
  t.equal((await app.inject({ method: 'PUT', url: '/products/8d4b9a5e-3f38-4f0d-9a52-2f0c5d1f6b11/variants' })).statusCode, 405, 'a parametrised path too')
  t.equal((await app.inject({ method: 'GET', url: '/no-such-thing' })).statusCode, 404)
})

t.test('a path segment over 200 characters is 414 problem+json, as documented', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: `/products/${'x'.repeat(300)}` })
  t.equal(res.statusCode, 414)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  t.match(res.json(), { status: 414, title: 'URI Too Long' })
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  t.ok(doc.paths['/products/{productId}'].get.responses['414'], '414 is in the contract')
  t.ok(doc.paths['/products'].post.responses['413'] && doc.paths['/products'].post.responses['415'], 'so are 413 and 415 where a body is sent')
})

t.test('analytics defaults are optional in the contract and applied by the server', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  const required = (path: string) => doc.paths[path].get.parameters.filter((p: { required?: boolean }) => p.required).map((p: { name: string }) => p.name).sort()
  t.same(required('/analytics/low-stock'), [])
  t.same(required('/analytics/top-products'), ['from', 'to'])
  t.equal((await app.inject({ method: 'GET', url: '/analytics/low-stock', headers: admin.headers })).statusCode, 200)
})

t.test('the Idempotency-Key pattern is in the contract and enforced by it', async (t) => {
  const app = await buildTestApp(t)
  const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json()
  const header = doc.paths['/orders'].post.parameters.find((p: { name: string }) => p.name === 'idempotency-key')
  t.equal(header.schema.pattern, '^[A-Za-z0-9._:-]{8,255}$')
  const buyer = await register(app, { email: 'keys@example.com' })
  const res = await app.inject({ method: 'POST', url: '/orders', headers: { ...buyer.headers, 'idempotency-key': 'has spaces in it' }, payload: { addressId: '8d4b9a5e-3f38-4f0d-9a52-2f0c5d1f6b11' } })
  t.equal(res.statusCode, 400)
})
