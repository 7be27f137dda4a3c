import fp from 'fastify-plugin'
import helmet from '@fastify/helmet'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import { TooManyRequests } from '../src/errors.js'

// The gateway: security headers, CORS from an allowlist, and a global rate limit whose counters
// live in the shared Redis so every instance counts together.
export default fp(async (app) => {
  const { corsOrigins, rateLimit: limits } = app.config

  await app.register(helmet, {
    // A JSON API serves no active content; /docs sets its own CSP (see plugins/openapi.ts).
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  })

  await app.register(cors, {
    // An origin outside the allowlist gets no Access-Control-Allow-Origin, so browsers block it.
    origin: corsOrigins,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key', 'X-Cart-Token', 'X-Request-Id'],
    exposedHeaders: ['X-Request-Id', 'Retry-After', 'X-Cache', 'RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset'],
    maxAge: 600,
  })

  await app.register(rateLimit, {
    global: true,
    max: limits.max,
    timeWindow: limits.windowMs,
    redis: app.redis,
    nameSpace: 'rl:',
    // A Redis outage must not take the shop down with it: requests pass, the error is logged.
    skipOnError: true,
    errorResponseBuilder: (_req, ctx) => new TooManyRequests(`Rate limit of ${ctx.max} requests per ${ctx.after} exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  })
}, { name: 'security', dependencies: ['config', 'redis'] })
