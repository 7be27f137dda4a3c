import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'
import type { IncomingMessage, ServerResponse } from 'node:http'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { TooManyRequests } from '../src/errors.js'
import { createSyncedRateLimitStore } from '../src/rate-limit-store.js'

export interface KeyedLimit {
  /** Names the counter family in Redis, e.g. 'login-account'. */
  name: string
  max: number
  windowSeconds: number
  /** The thing being protected (an account, a user); runs after body validation. */
  key: (req: FastifyRequest) => string
}

declare module 'fastify' {
  interface FastifyInstance {
    /** A preHandler that limits by a key from the request, in addition to the per-IP limit. */
    limitBy(limit: KeyedLimit): (req: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

/**
 * helmet's headers for these options. They depend on nothing in the request, so helmet's
 * middleware runs once, against a recorder, instead of per request: @fastify/helmet built the
 * middleware anew for every request (its option parsing was 4-6% of the API's busy time).
 */
export function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader: (name: string, value: string | number | string[]) => { headers[name.toLowerCase()] = String(value) },
    removeHeader: (name: string) => { delete headers[name.toLowerCase()] },
  }
  helmet(options)({} as IncomingMessage, recorder as unknown as ServerResponse, (err?: unknown) => { if (err) throw err })
  return headers
}

// The gateway: security headers, CORS from an allowlist, and a global rate limit whose counters
// live in the shared Redis so every instance counts together.
export default fp(async (app) => {
  const { corsOrigins, rateLimit: limits } = app.config

  const securityHeaders = helmetHeaders({
    // A JSON API serves no active content; /docs sets its own CSP (see plugins/openapi.ts).
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  })
  // A callback hook, not an async one: no promise per request. A route may still replace one (uploads, /docs).
  app.addHook('onRequest', (_req, reply, done) => {
    reply.headers(securityHeaders)
    done()
  })

  await app.register(cors, {
    // An origin outside the allowlist gets no Access-Control-Allow-Origin, so browsers block it.
    origin: corsOrigins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    // Every header a browser client sends (sdk/ fills the first five by itself).
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Cart-Token', 'X-Order-Token', 'X-Request-Id'],
    // Joined once here: given a list, @fastify/cors joins it again for every response.
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'X-Cache', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'].join(', '),
    maxAge: 600,
  })

  // Counted in this process and synchronised with Redis in batches, exactly near a limit (see
  // src/rate-limit-store.ts): no Redis round trip per request.
  const counts = createSyncedRateLimitStore(app.redis, app.log, 'rl:', app.redisHealth)
  app.addHook('onClose', counts.flush)
  await app.register(rateLimit, {
    global: true,
    max: limits.max,
    timeWindow: limits.windowMs,
    store: counts.Store,
    // A Redis outage must not take the shop down with it, nor the limit off: while Redis is
    // away the store counts in this process alone (a limit per instance). skipOnError: an
    // unexpected store failure lets the request through rather than answering 500.
    skipOnError: true,
    errorResponseBuilder: (_req, ctx) => new TooManyRequests(`Rate limit of ${ctx.max} requests per ${ctx.after} exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  })

  // @fastify/rate-limit runs at most one limiter per request, so limits keyed by something other
  // than the IP (brute force on one account from many addresses) use rate-limiter-flexible on
  // the same Redis.
  app.decorate('limitBy', (limit: KeyedLimit) => {
    const limiter = new RateLimiterRedis({ storeClient: app.redis, keyPrefix: `rl-${limit.name}`, points: limit.max, duration: limit.windowSeconds })
    // Brute-force limits stay on while Redis is away: counted in this process meanwhile.
    const inProcess = new RateLimiterMemory({ keyPrefix: `rl-${limit.name}`, points: limit.max, duration: limit.windowSeconds })
    return async (req: FastifyRequest, reply: FastifyReply) => {
      try {
        await (app.redisHealth.available ? limiter : inProcess).consume(limit.key(req))
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) {
          // Same policy as the global limiter: a Redis failure lets the request through.
          app.redisHealth.failed(err as Error)
          req.log.warn({ err, limit: limit.name }, 'rate limiter unavailable')
          return
        }
        const seconds = Math.max(1, Math.ceil(err.msBeforeNext / 1000))
        reply.header('retry-after', seconds)
        throw new TooManyRequests(`Too many attempts; retry in ${seconds} s`)
      }
    }
  })
}, { name: 'security', dependencies: ['config', 'redis'] })
