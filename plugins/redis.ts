import fp from 'fastify-plugin'
import RedisMock from 'ioredis-mock'
import { ALWAYS_AVAILABLE, createRedisHealth, type RedisHealth } from '../src/redis-health.js'
import { connectRedis, hasRedisServer, redisLocation, type RedisClient } from '../src/redis-client.js'

declare module 'fastify' {
  interface FastifyInstance { redis: RedisClient; redisHealth: RedisHealth }
}

// One client for cache, sessions and rate limits: a server (REDIS_URL), a Redis Cluster
// (REDIS_CLUSTER_NODES) or, with neither, an in-process ioredis-mock: same API, but its data
// lives in this process only, so it is for one instance.
export default fp(async (app) => {
  const { keyPrefix, commandTimeoutMs } = app.config.redis
  let redis: RedisClient
  let health = ALWAYS_AVAILABLE
  if (hasRedisServer(app.config.redis)) {
    // A command fails rather than waits: at once while disconnected (no offline queue), after
    // commandTimeoutMs when the server does not answer. Callers that can do without Redis ask
    // redisHealth first, so only the first of them pays that.
    redis = connectRedis(app.config.redis, { keyPrefix, lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, enableOfflineQueue: false, commandTimeout: commandTimeoutMs })
    // Errors surface through the commands that hit them; the client reconnects on its own.
    redis.on('error', (err: Error) => app.log.warn({ store: 'redis', err: err.message }, 'redis connection error'))
    await redis.connect()
    health = createRedisHealth(redis, app.log)
    const kind = app.config.redis.clusterNodes?.length ? 'cluster' : 'redis'
    app.log.info({ store: 'redis', kind, location: redisLocation(app.config.redis) }, `Redis: ${kind === 'cluster' ? 'cluster' : 'server'}`)
  } else {
    redis = new RedisMock({ keyPrefix }) as unknown as RedisClient
    app.log.warn({ store: 'redis', kind: 'in-process' }, 'Redis: in-process stand-in (ioredis-mock); single instance only, set REDIS_URL for a server')
  }
  app.decorate<RedisClient>('redis', redis)
  app.decorate('redisHealth', health)
  app.addHook('onClose', async () => { await redis.quit().catch(() => redis.disconnect()) })
}, { name: 'redis', dependencies: ['config'] })
