import fp from 'fastify-plugin'
import { Redis } from 'ioredis'
import RedisMock from 'ioredis-mock'

declare module 'fastify' {
  interface FastifyInstance { redis: Redis }
}

// One client for cache, sessions and rate limits. Without REDIS_URL an in-process ioredis-mock
// stands in: same API, but its data lives in this process only, so it is for one instance.
export default fp(async (app) => {
  const { url, keyPrefix } = app.config.redis
  let redis: Redis
  if (url) {
    redis = new Redis(url, { keyPrefix, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 })
    // Errors surface through the commands that hit them; the client reconnects on its own.
    redis.on('error', (err) => app.log.warn({ store: 'redis', err: err.message }, 'redis connection error'))
    await redis.connect()
    app.log.info({ store: 'redis', kind: 'redis', location: `${redis.options.host}:${redis.options.port}` }, 'Redis: server')
  } else {
    redis = new RedisMock({ keyPrefix }) as unknown as Redis
    app.log.warn({ store: 'redis', kind: 'in-process' }, 'Redis: in-process stand-in (ioredis-mock); single instance only, set REDIS_URL for a server')
  }
  app.decorate('redis', redis)
  app.addHook('onClose', async () => { await redis.quit().catch(() => redis.disconnect()) })
}, { name: 'redis', dependencies: ['config'] })
