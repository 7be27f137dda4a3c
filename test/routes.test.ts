import t from 'tap'
import { readFileSync } from 'node:fs'
import { OPENAPI_FILE } from '../openapi/generate.js'
import { buildTestApp } from './helpers.js'

// Walks the route table (every operation of the contract) and requests a concrete URL for each:
// the route that answers must be the route that was meant. A static path such as
// /products/by-slug/:slug captured by /products/:productId would fail here. Recorded when the
// response leaves, since authentication may end a request before later onRequest hooks run.
t.test('no route is shadowed by another route', async (t) => {
  const app = await buildTestApp(t)
  const matched = new Map<string, string | undefined>()
  app.addHook('onResponse', async (req) => { matched.set(req.id, req.routeOptions.url) })

  const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'))
  let checked = 0
  for (const [path, item] of Object.entries<Record<string, unknown>>(doc.paths)) {
    const pattern = path.replace(/\{(\w+)\}/g, ':$1')
    const url = path.replace(/\{(\w+)\}/g, (_, name: string) => (name.endsWith('Id') ? '00000000-0000-4000-8000-000000000000' : 'sample-slug'))
    for (const method of Object.keys(item)) {
      const res = await app.inject({ method: method.toUpperCase() as 'GET', url, headers: { 'x-request-id': `probe-${checked}` } })
      t.equal(matched.get(`probe-${checked}`), pattern, `${method.toUpperCase()} ${url} reaches ${pattern}`)
      t.not(res.statusCode, 500, `${method.toUpperCase()} ${url} does not crash`)
      checked++
    }
  }
  t.ok(checked > 40, `${checked} operations walked`)
})
