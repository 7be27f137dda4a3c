import t from 'tap'
import { connect } from 'node:net'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { multipartBody, png } from './uploads-fixtures.js'

const PROBLEM = 'application/problem+json; charset=utf-8'

/** Writes raw bytes on a fresh connection; resolves with what the server sent and when it closed. */
function rawExchange(port: number, bytes: string): Promise<{ received: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    let received = ''
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes))
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { received += chunk })
    socket.on('error', reject)
    socket.on('close', () => resolve({ received, closedAfterMs: Date.now() - started }))
    // A server that never closes fails the test instead of hanging it.
    setTimeout(() => { socket.destroy(); resolve({ received, closedAfterMs: Infinity }) }, 8000).unref()
  })
}

t.test('slow headers, a slow body and an idle keep-alive socket are cut at the configured times', async (t) => {
  const app = await buildTestApp(t, {
    HTTP_HEADERS_TIMEOUT_MS: '300', HTTP_REQUEST_TIMEOUT_MS: '600', HTTP_KEEP_ALIVE_TIMEOUT_MS: '300', HTTP_CONNECTION_TIMEOUT_MS: '5000',
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  t.match(app.server, { headersTimeout: 300, requestTimeout: 600, keepAliveTimeout: 300, timeout: 5000 })

  // Before: no request timeout at all (Fastify's 0) and Node's 60 s for headers.
  const slowHeaders = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: shop\r\n')
  t.match(slowHeaders.received, /^HTTP\/1\.1 408/, 'headers that never finish: 408')
  t.ok(slowHeaders.closedAfterMs < 2500, `closed after ${slowHeaders.closedAfterMs} ms`)

  const slowBody = await rawExchange(port, 'POST /auth/login HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email":')
  t.match(slowBody.received, /^HTTP\/1\.1 408/, 'a body that never finishes: 408')
  t.ok(slowBody.closedAfterMs < 3000, `closed after ${slowBody.closedAfterMs} ms`)

  const idle = await rawExchange(port, 'GET /health HTTP/1.1\r\nHost: shop\r\n\r\n')
  t.match(idle.received, /^HTTP\/1\.1 200/)
  t.match(idle.received, /keep-alive/i)
  t.ok(idle.closedAfterMs < 2500, `an idle keep-alive socket closed after ${idle.closedAfterMs} ms`)
})

t.test('the defaults are deliberate, and inconsistent timeouts do not start', async (t) => {
  const app = await buildTestApp(t)
  t.match(app.server, { headersTimeout: 10_000, requestTimeout: 30_000, keepAliveTimeout: 72_000, timeout: 120_000 })
  const { loadConfig } = await import('../src/config.js')
  t.throws(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' }), /HTTP_HEADERS_TIMEOUT_MS=5000: at most HTTP_REQUEST_TIMEOUT_MS/)
  t.throws(() => loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '90000', HTTP_CONNECTION_TIMEOUT_MS: '60000' }), /HTTP_CONNECTION_TIMEOUT_MS=60000: must be above/)
})

t.test('JSON bodies are small (413 problem+json beyond BODY_LIMIT_BYTES); an upload has its own, larger limit', async (t) => {
  const dir = t.testdir()
  const app = await buildTestApp(t, { UPLOAD_DIR: dir })
  t.equal(app.config.bodyLimit, 256 * 1024, 'the default JSON limit is 256 KiB')
  const { headers } = await register(app, { email: 'limits@example.com' })

  const padded = (size: number) => JSON.stringify({ name: 'x'.repeat(size), email: 'a@example.com', password: 'long enough password' })
  const over = await app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': 'application/json' }, payload: padded(256 * 1024) })
  t.equal(over.statusCode, 413)
  t.equal(over.headers['content-type'], PROBLEM)
  t.match(over.json(), { status: 413, title: 'Payload Too Large' })
  const under = await app.inject({ method: 'POST', url: '/auth/register', headers: { 'content-type': 'application/json' }, payload: padded(200 * 1024) })
  t.equal(under.statusCode, 400, 'under the limit the body is read and validated (the name is too long)')

  // Catalog writes take more: a product at every maximum of its schema, in Cyrillic, is ~350 KiB.
  const admin = await registerAdmin(app)
  const fill = (n: number, c = 'ж') => c.repeat(n)
  const key = (prefix: string, i: number, length: number) => `${prefix}${i}`.padEnd(length, 'k')
  const maximal = {
    name: fill(200), slug: 'maximal', description: fill(20_000),
    attributes: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [key('a', i, 60), fill(500)])),
    variants: Array.from({ length: 100 }, (_, v) => ({
      sku: `SKU-${v}`.padEnd(64, 'X'), priceMinor: 100, stock: 1,
      options: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [key('o', i, 40), fill(100)])),
    })),
  }
  const size = Buffer.byteLength(JSON.stringify(maximal))
  t.ok(size > 256 * 1024, `${size} bytes`)
  const product = await app.inject({ method: 'POST', url: '/products', headers: admin.headers, payload: maximal })
  t.equal(product.statusCode, 201, product.body.slice(0, 300))

  // 600 KiB: over the JSON limit, well within UPLOAD_MAX_BYTES (5 MiB).
  const image = Buffer.concat([png(), Buffer.alloc(600 * 1024)])
  const body = multipartBody('big.png', 'image/png', image)
  const uploaded = await app.inject({ method: 'POST', url: '/uploads?purpose=avatar', headers: { ...headers, 'content-type': body.contentType }, payload: body.payload })
  t.equal(uploaded.statusCode, 201, uploaded.body)
  t.equal(uploaded.json().sizeBytes, image.length)
})
