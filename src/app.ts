import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { symbols as pinoSymbols } from 'pino'
import { AjvCompiler } from '@fastify/ajv-compiler'
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { Config } from './config.js'
import { bindRequestLog, traceLogFields } from './tracing.js'
import { limitPasswordHashing } from './passwords.js'
import configPlugin from '../plugins/config.js'
import postgresPlugin from '../plugins/postgres.js'
import mongoPlugin from '../plugins/mongo.js'
import redisPlugin from '../plugins/redis.js'
import securityPlugin from '../plugins/security.js'
import errorsPlugin, { MAX_PARAM_LENGTH, frameworkProblem } from '../plugins/errors.js'
import openapiPlugin from '../plugins/openapi.js'
import mailerPlugin from '../plugins/mailer.js'
import authPlugin from '../plugins/auth.js'
import cachePlugin from '../plugins/cache.js'
import jobsPlugin from '../plugins/jobs.js'
import activityPlugin from '../plugins/activity.js'
import outboxPlugin from '../plugins/outbox.js'
import metricsPlugin from '../plugins/metrics.js'
import servicesPlugin from '../plugins/services.js'
import backgroundPlugin from '../plugins/background.js'
import healthRoutes from '../routes/health/index.js'
import authRoutes from '../routes/auth/index.js'
import usersRoutes from '../routes/users/index.js'
import categoriesRoutes from '../routes/categories/index.js'
import productsRoutes from '../routes/products/index.js'
import cartRoutes from '../routes/cart/index.js'
import wishlistRoutes from '../routes/wishlist/index.js'
import couponsRoutes from '../routes/coupons/index.js'
import inventoryRoutes from '../routes/inventory/index.js'
import ordersRoutes from '../routes/orders/index.js'
import paymentsRoutes from '../routes/payments/index.js'
import activityRoutes from '../routes/activity/index.js'
import reviewsRoutes from '../routes/reviews/index.js'
import uploadsRoutes from '../routes/uploads/index.js'
import analyticsRoutes from '../routes/analytics/index.js'
import shippingRoutes from '../routes/shipping/index.js'
import pricingRoutes from '../routes/pricing/index.js'
import returnsRoutes from '../routes/returns/index.js'
import webhooksRoutes from '../routes/webhooks/index.js'
import catalogIoRoutes from '../routes/catalog-io/index.js'
import { schemas as healthSchemas } from '../routes/health/schemas.js'
import { schemas as authSchemas } from '../routes/auth/schemas.js'
import { schemas as userSchemas } from '../routes/users/schemas.js'
import { schemas as categorySchemas } from '../routes/categories/schemas.js'
import { schemas as productSchemas } from '../routes/products/schemas.js'
import { schemas as cartSchemas } from '../routes/cart/schemas.js'
import { schemas as wishlistSchemas } from '../routes/wishlist/schemas.js'
import { schemas as couponSchemas } from '../routes/coupons/schemas.js'
import { schemas as inventorySchemas } from '../routes/inventory/schemas.js'
import { schemas as orderSchemas } from '../routes/orders/schemas.js'
import { schemas as paymentSchemas } from '../routes/payments/schemas.js'
import { schemas as activitySchemas } from '../routes/activity/schemas.js'
import { schemas as reviewSchemas } from '../routes/reviews/schemas.js'
import { schemas as uploadSchemas } from '../routes/uploads/schemas.js'
import { schemas as analyticsSchemas } from '../routes/analytics/schemas.js'
import { schemas as shippingSchemas } from '../routes/shipping/schemas.js'
import { schemas as pricingSchemas } from '../routes/pricing/schemas.js'
import { schemas as returnSchemas } from '../routes/returns/schemas.js'
import { schemas as webhookSchemas } from '../routes/webhooks/schemas.js'
import { schemas as catalogIoSchemas } from '../routes/catalog-io/schemas.js'
import { serializeError } from './log-errors.js'

// A plugin's start-up may take more than Fastify's 10 s default: the embedded PGlite migrates and
// seeds its demo catalog in WebAssembly, and a busy machine (CI runs many tests at once) slows it.
const PLUGIN_TIMEOUT_MS = 60_000

/**
 * Runs `boot`; when it fails part-way, closes what the plugins loaded so far had opened (pools,
 * clients, timers) before rethrowing, so a caller that catches the error can still exit.
 */
async function closingOnFailure(app: FastifyInstance, boot: () => Promise<unknown>) {
  try {
    await boot()
  } catch (err) {
    await app.close().catch(() => {})
    throw err
  }
}

/**
 * The stores, services and background work, in one order for the API and the worker; `api` adds
 * what only serves HTTP clients: the gateway (headers, CORS, rate limits), problem documents, the
 * contract and the activity log of requests.
 */
async function registerCore(app: FastifyInstance, config: Config, { api }: { api: boolean }) {
  await app.register(configPlugin, { config })
  await app.register(redisPlugin)
  await app.register(postgresPlugin)
  await app.register(mongoPlugin)
  if (api) {
    await app.register(securityPlugin)
    await app.register(errorsPlugin)
    await app.register(openapiPlugin)
  }
  await app.register(mailerPlugin)
  await app.register(authPlugin)
  await app.register(cachePlugin)
  await app.register(jobsPlugin)
  if (api) await app.register(activityPlugin)
  await app.register(outboxPlugin)
  await app.register(metricsPlugin)
  await app.register(servicesPlugin)
  await app.register(backgroundPlugin)
}

// Every contract schema is registered once at the root, so any domain can $ref another's
// (auth answers with users' User) and OpenAPI names each component after its $id.
const contractSchemas = [...healthSchemas, ...userSchemas, ...authSchemas, ...categorySchemas, ...productSchemas, ...cartSchemas, ...wishlistSchemas, ...couponSchemas, ...inventorySchemas, ...orderSchemas, ...paymentSchemas, ...activitySchemas, ...reviewSchemas, ...uploadSchemas, ...analyticsSchemas, ...shippingSchemas, ...pricingSchemas, ...returnSchemas, ...webhookSchemas, ...catalogIoSchemas]

const NO_QUERY = Type.Object({}, { additionalProperties: false })

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/

// Query strings and path params arrive as text, so they are coerced to the schema's types.
// JSON bodies are not: a price of null or "10" is a 400, never silently 0 or 10.
const ajvPool = AjvCompiler()
type AjvOptions = Parameters<typeof ajvPool>[1]
const withCoercion = (options: AjvOptions, coerceTypes: 'array' | false) =>
  ({ ...options, customOptions: { ...options?.customOptions, coerceTypes } }) as AjvOptions
// Response serializers are compiled on a route's first response instead of at start-up: the
// same fast-json-stringify functions (same output, same filtering of undeclared fields), but
// compiling all of them up front took about half a second of every start and every dev reload.
const serializerPool = SerializerSelector()
const buildSerializer: typeof serializerPool = (externalSchemas, options) => {
  const compile = serializerPool(externalSchemas, options)
  return (route) => {
    let serialize: ((data: unknown) => string) | undefined
    return (data: unknown) => (serialize ??= compile(route) as (data: unknown) => string)(data)
  }
}

const buildValidator: typeof ajvPool = (externalSchemas, options) => {
  const coercing = ajvPool(externalSchemas, withCoercion(options, 'array'))
  const strict = ajvPool(externalSchemas, withCoercion(options, false))
  return (route) => (route.httpPart === 'body' ? strict : coercing)(route)
}

export function loggerOptions(config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    redact: {
      paths: [
        'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
        '*.password', '*.newPassword', '*.currentPassword', '*.token', '*.refreshToken', '*.accessToken',
        '*.cardNumber', '*.cvc',
      ],
      censor: '[redacted]',
    },
    // Errors without the values database errors quote (statement parameters, failing rows).
    serializers: { err: serializeError },
    // With tracing on, each line written inside a request names its trace and span.
    mixin: traceLogFields,
    // Human-readable logs for a developer at a terminal, JSON everywhere else.
    ...(process.stdout.isTTY && config.env !== 'production' ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  }
}

type ChildLoggerFactory = NonNullable<FastifyServerOptions['childLoggerFactory']>
type RequestLogger = ReturnType<ChildLoggerFactory>
const chindingsOf = (logger: RequestLogger) => (logger as unknown as Record<symbol, unknown>)[pinoSymbols.chindingsSym]

/**
 * Each request's logger, as fastify's default makes it (pino's `child({ reqId })`), at 0.08 µs
 * instead of 1.45 µs. pino passes a child's bindings through the redaction of log lines, and our
 * wildcard paths (`*.password`) walk even a string: about 5% of a `/health` request's CPU. The
 * request id is a plain string (minted, or checked by genReqId) that no redaction path can match,
 * so it is appended to the child's bindings as the same JSON pino would write: the log lines are
 * byte for byte what they were.
 */
export function requestChildLogger(logger: RequestLogger, bindings: Parameters<ChildLoggerFactory>[1], opts: Parameters<ChildLoggerFactory>[2]): RequestLogger {
  // Not a pino logger (logging off): the default way.
  if (typeof chindingsOf(logger) !== 'string') return logger.child(bindings, opts)
  const child = logger.child({}, opts)
  let appended = chindingsOf(child) as string
  for (const [key, value] of Object.entries(bindings)) appended += `,${JSON.stringify(key)}:${JSON.stringify(value)}`
  ;(child as unknown as Record<symbol, unknown>)[pinoSymbols.chindingsSym] = appended
  return child
}

export interface BuildOptions {
  /** Overrides the logger (tests pass false or a level). */
  logger?: FastifyServerOptions['logger']
}

/** Builds the whole API: infrastructure plugins first, then the encapsulated domain routes. */
export async function buildApp(config: Config, opts: BuildOptions = {}) {
  limitPasswordHashing(config.auth.passwordHashing)
  const app = Fastify({
    logger: opts.logger ?? loggerOptions(config),
    trustProxy: config.trustProxy,
    // JSON bodies are small by default; catalog writes set a larger bodyLimit on their routes, and
    // uploads (multipart streams) are bounded by UPLOAD_MAX_BYTES instead.
    bodyLimit: config.bodyLimit,
    // Timeouts chosen, not inherited (Node's and Fastify's defaults leave a slow client holding a
    // socket for minutes or forever): a whole request within requestTimeout, its headers within
    // headersTimeout, an idle keep-alive socket closed after keepAliveTimeout (above the idle
    // timeout of the proxy in front, so the proxy closes first), any silent socket after
    // connectionTimeout. Node checks the first two every connectionsCheckingInterval.
    requestTimeout: config.http.requestTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    connectionTimeout: config.http.connectionTimeoutMs,
    http: { headersTimeout: config.http.headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, config.http.headersTimeoutMs) },
    // /products and /products/ are one resource; the contract names the form without the slash.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    pluginTimeout: PLUGIN_TIMEOUT_MS,
    childLoggerFactory: (logger, bindings, opts) => requestChildLogger(logger, bindings, opts),
    // A caller's own request id is kept when it is safe to log; otherwise we mint one.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    ajv: {
      customOptions: {
        // Unknown properties are an error (400), never silently dropped.
        removeAdditional: false,
        useDefaults: true,
        allErrors: false,
      },
    },
    schemaController: { compilersFactory: { buildValidator, buildSerializer } },
    frameworkErrors: frameworkProblem,
  }).withTypeProvider<TypeBoxTypeProvider>()

  // A callback hook, not an async one: no promise per request.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    bindRequestLog(req.log)
    done()
  })

  await closingOnFailure(app, async () => {
    await registerCore(app, config, { api: true })

    for (const schema of contractSchemas) app.addSchema(schema)
    // An operation that declares no query parameters refuses any, as bodies refuse unknown fields:
    // `?limit=5` on a route that does not page is a client's mistake, answered 400, not ignored.
    app.addHook('onRoute', (route) => {
      if (route.schema?.operationId && !route.schema.querystring) route.schema = { ...route.schema, querystring: NO_QUERY }
    })
    await app.register(healthRoutes)
    await app.register(authRoutes, { prefix: '/auth' })
    await app.register(usersRoutes, { prefix: '/users' })
    await app.register(categoriesRoutes, { prefix: '/categories' })
    await app.register(productsRoutes, { prefix: '/products' })
    await app.register(cartRoutes, { prefix: '/cart' })
    await app.register(wishlistRoutes, { prefix: '/wishlist' })
    await app.register(couponsRoutes, { prefix: '/coupons' })
    await app.register(inventoryRoutes, { prefix: '/inventory' })
    await app.register(ordersRoutes, { prefix: '/orders' })
    await app.register(paymentsRoutes, { prefix: '/payments' })
    await app.register(activityRoutes, { prefix: '/activity' })
    await app.register(reviewsRoutes)
    await app.register(uploadsRoutes, { prefix: '/uploads' })
    await app.register(analyticsRoutes, { prefix: '/analytics' })
    await app.register(shippingRoutes)
    await app.register(pricingRoutes)
    await app.register(returnsRoutes)
    await app.register(webhooksRoutes, { prefix: '/webhooks' })
    await app.register(catalogIoRoutes)
  })
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>

/**
 * The background worker (`npm run worker`, src/worker.ts): the same stores, services and
 * background work as the API (plugins/services.ts, plugins/background.ts), no API routes, and
 * jobs always on: the schedules, the outbox drain and the queue workers run here while the API
 * runs with JOBS=off. It answers GET /health on WORKER_PORT.
 */
export async function buildWorker(config: Config, opts: BuildOptions = {}) {
  const app = Fastify({ logger: opts.logger ?? loggerOptions(config), pluginTimeout: PLUGIN_TIMEOUT_MS })
  await closingOnFailure(app, () => registerCore(app, { ...config, jobs: true }, { api: false }))
  // Its health: 200 while every store answers (a worker without them does nothing), 503 otherwise;
  // the queues' backlog rides along.
  app.get('/health', async (_req, reply) => {
    const report = await app.services.health.readiness()
    return reply.code(report.ready ? 200 : 503).send({ role: 'worker', ...report, queues: await app.jobs.counts() })
  })
  return app
}
