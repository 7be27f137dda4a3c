import t from 'tap'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { startTracing } from '../src/telemetry.js'

// OpenTelemetry, as src/server.ts starts it, with an in-memory exporter: a checkout through HTTP
// gives one trace whose request span names the route template, with the workflow's steps and
// real PostgreSQL, MongoDB and Redis spans beneath it. The instrumentations patch pg, ioredis
// and mongodb as they load, so the app and the helpers (which import them) come in only after
// tracing has started.
const exporter = new InMemorySpanExporter()
const sdk = await startTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
t.teardown(() => sdk.shutdown())
const { buildTestApp, captureLogs } = await import('./helpers.js')
const { loggerOptions } = await import('../src/app.js')
const { loadConfig } = await import('../src/config.js')
const { register, registerAdmin } = await import('./users.js')
const { createProduct } = await import('./catalog.js')
const { tracingWanted } = await import('../src/tracing.js')

const ADDRESS = { recipientName: 'Katherine Johnson', line1: '1 Langley Road', city: 'Hampton', postalCode: '23666', country: 'US' }

/** The app with its production logger options, writing JSON lines into `lines`. */
async function tracedApp(t: Parameters<typeof buildTestApp>[0]) {
  const { lines, stream } = captureLogs()
  const logger = { ...(loggerOptions(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'info' })) as object), stream }
  const app = await buildTestApp(t, { LOG_LEVEL: 'info' }, { logger })
  return { app, lines }
}

const requestSpan = (method: string, route: string) => {
  const found = exporter.getFinishedSpans().filter((s) => s.name === `${method} ${route}`)
  if (found.length !== 1) throw new Error(`${found.length} spans named ${method} ${route}`)
  return found[0]!
}
/** Every span below `root`, with its path of span names from the root. */
function descendants(root: ReadableSpan) {
  const spans = exporter.getFinishedSpans()
  const out: { span: ReadableSpan; path: string[] }[] = []
  const walk = (parent: ReadableSpan, path: string[]) => {
    for (const s of spans) {
      if (s.parentSpanContext?.spanId !== parent.spanContext().spanId) continue
      out.push({ span: s, path: [...path, s.name] })
      walk(s, [...path, s.name])
    }
  }
  walk(root, [])
  return out
}
const db = (s: ReadableSpan) => s.attributes['db.system.name'] ?? s.attributes['db.system']

t.test('a checkout is one trace: the request, its workflow steps, and the stores beneath', async (t) => {
  const { app, lines } = await tracedApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 1500, stock: 10 }] })
  const buyer = await register(app, { email: 'katherine@example.com' })
  t.equal((await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId: product.variants[0].id, quantity: 2 } })).statusCode, 200)
  exporter.reset()
  lines.length = 0

  const res = await app.inject({ method: 'POST', url: '/orders', headers: { ...buyer.headers, 'idempotency-key': 'trace-checkout-1' }, payload: { shippingAddress: ADDRESS } })
  t.equal(res.statusCode, 201)
  const root = requestSpan('POST', '/orders')
  t.equal(root.attributes['http.route'], '/orders', 'the route template')
  t.equal(root.attributes['http.response.status_code'], 201)
  t.notOk(root.parentSpanContext, 'a root span')
  const below = descendants(root)
  t.ok(below.every(({ span }) => span.spanContext().traceId === root.spanContext().traceId))

  const steps = below.filter(({ span }) => span.name.startsWith('checkout.')).map(({ span }) => span.name)
  // No settle step: no clear of this cart was pending (routes/orders/workflows/checkout.ts, step 1).
  t.same(steps, ['checkout.read-cart', 'checkout.transaction', 'checkout.reserve-stock', 'checkout.side-effects'], 'each step, in order')
  const under = (step: string, system: string) => below.filter(({ span, path }) => path.includes(step) && db(span) === system)
  const pgInTx = under('checkout.transaction', 'postgresql')
  t.ok(pgInTx.length >= 5, `PostgreSQL queries in the transaction step (${pgInTx.length})`)
  // The stock reservation is the transaction's last write (its level's row lock is held the least).
  t.ok(under('checkout.reserve-stock', 'postgresql').some(({ path }) => path.includes('checkout.transaction')), 'the stock reservation inside the transaction')
  t.ok(under('checkout.reserve-stock', 'postgresql').some(({ span }) => String(span.attributes['db.query.text']).includes('stock_levels')), 'writes the stock levels')
  t.ok(under('checkout.read-cart', 'mongodb').length >= 1, 'the cart read from MongoDB')
  t.ok(below.some(({ span }) => db(span) === 'redis'), 'Redis (the rate limit) under the request')

  // The request's log lines carry its trace; the line fastify writes on arrival precedes the span.
  const own = lines.filter((l) => l.reqId === res.headers['x-request-id'] && l.msg !== 'incoming request')
  t.ok(own.length >= 1, `${own.length} log lines of the request`)
  for (const line of own) t.equal(line.traceId, root.spanContext().traceId, `traced: ${String(line.msg)}`)

  exporter.reset()
  const order = res.json()
  t.equal((await app.inject({ method: 'POST', url: `/orders/${order.id}/payments`, headers: { ...buyer.headers, 'idempotency-key': 'trace-pay-1' }, payload: { provider: 'test', paymentMethod: 'tok_success' } })).statusCode, 201)
  const payment = descendants(requestSpan('POST', '/orders/:orderId/payments')).map(({ span }) => span.name).filter((n) => n.startsWith('payment.'))
  t.same(payment, ['payment.record', 'payment.side-effects', 'payment.provider-create', 'payment.settle', 'payment.follow-up'], 'the payment workflow steps')
})

t.test('a 5xx names its trace in the problem and the log', async (t) => {
  const { app, lines } = await tracedApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 900, stock: 3 }] })
  const buyer = await register(app, { email: 'dorothy@example.com' })
  await app.inject({ method: 'POST', url: '/cart/items', headers: buyer.headers, payload: { variantId: product.variants[0].id, quantity: 1 } })
  exporter.reset()
  app.faults.failOnce('checkout.after-order-commit')
  const res = await app.inject({ method: 'POST', url: '/orders', headers: { ...buyer.headers, 'idempotency-key': 'trace-fault-1' }, payload: { shippingAddress: ADDRESS } })
  t.equal(res.statusCode, 500)
  const root = requestSpan('POST', '/orders')
  t.equal(res.json().traceId, root.spanContext().traceId, 'the problem names the trace')
  t.equal(lines.find((l) => l.msg === 'request failed')?.traceId, root.spanContext().traceId, 'so does the error log line')

  const rejected = await app.inject({ method: 'POST', url: '/orders', headers: buyer.headers, payload: { shippingAddress: 'nowhere' } })
  t.equal(rejected.statusCode, 400)
  t.notOk('traceId' in rejected.json(), 'a 4xx does not')
})

t.test('tracing is off unless the OTEL_* variables ask for it', async (t) => {
  t.notOk(tracingWanted({}), 'off by default')
  t.ok(tracingWanted({ OTEL_TRACES_EXPORTER: 'otlp' }))
  t.ok(tracingWanted({ OTEL_TRACES_EXPORTER: 'console' }))
  t.notOk(tracingWanted({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), 'none wins over an endpoint')
  t.ok(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), 'an endpoint alone')
  t.ok(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }))
  t.notOk(tracingWanted({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' }), 'the SDK switch wins')
})
