import fp from 'fastify-plugin'
import { hasRedisServer, type RedisClient } from '../src/redis-client.js'
import { createCache, type Cache } from '../src/cache.js'

declare module 'fastify' {
  interface FastifyInstance { cache: Cache }
}

export default fp(async (app) => {
  // With a Redis server, cache versions are kept in process and announced on a channel, which
  // needs a connection of its own (the in-process stand-in serves one instance: nothing to tell).
  const subscriber: RedisClient | undefined = hasRedisServer(app.config.redis) ? app.redis.duplicate() : undefined
  // Lookups are counted by the metrics plugin, registered later; read when a lookup happens.
  app.decorate('cache', createCache(app.redis, app.log, app.config.cacheTtlSeconds, (namespace, hit) => app.metrics.cacheLookup(namespace, hit), app.redisHealth, { subscriber, enabled: app.config.cacheEnabled }))
  if (subscriber) {
    app.addHook('onClose', async () => { await subscriber.quit().catch(() => subscriber.disconnect()) })
    // Not fatal: until it connects, versions are read on every lookup.
    await subscriber.connect().catch((err: Error) => app.log.warn({ err: err.message }, 'cache version channel not connected'))
  }
}, { name: 'cache', dependencies: ['config', 'redis'] })
