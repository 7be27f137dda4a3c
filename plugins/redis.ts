import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'
import { ALWAYS_AVAILABLE, createRedisHealth, type RedisHealth } from '../src/redis-health.js'

declare module 'fastify' {
  interface FastifyInstance { redis: Redis; redisHealth: RedisHealth }
}

// One client for cache, sessions and rate limits. Without REDIS_URL an in-process ioredis-mock
// stands in: same API, but its data lives in this process only, so it is for one instance.
export default fp(async (app) => {
  const { url, keyPrefix, commandTimeoutMs } = app.config.redis
  let redis: Redis
  let health = ALWAYS_AVAILABLE
  if (url) {
    // A command fails rather than waits: at once while disconnected (no offline queue), after
    // commandTimeoutMs when the server does not answer. Callers that can do without Redis ask
    // redisHealth first, so only the first of them pays that.
    redis = new Redis(url, { keyPrefix, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, enableOfflineQueue: false, commandTimeout: commandTimeoutMs })
    // Errors surface through the commands that hit them; the client reconnects on its own.
    redis.on('error', (err) => app.log.warn({ store: 'redis', err: err.message }, 'redis connection error'))
    await redis.connect()
    health = createRedisHealth(redis, app.log)
    app.log.info({ store: 'redis', kind: 'redis', location: `${redis.options.host}:${redis.options.port}` }, 'Redis: server')
  } else {
    redis = new RedisMock({ keyPrefix }) as unknown as Redis
    app.log.warn({ store: 'redis', kind: 'in-process' }, 'Redis: in-process stand-in (ioredis-mock); single instance only, set REDIS_URL for a server')
  }
  app.decorate('redis', redis)
  app.decorate('redisHealth', health)
  app.addHook('onClose', async () => { await redis.quit().catch(() => redis.disconnect()) })
}, { name: 'redis', dependencies: ['config'] })
