import fp from 'fastify-plugin'
import { createCache, type Cache } from '../src/cache.js'

declare module 'fastify' {
  interface FastifyInstance { cache: Cache }
}

export default fp(async (app) => {
  // Lookups are counted by the metrics plugin, registered later; read when a lookup happens.
  app.decorate('cache', createCache(app.redis, app.log, app.config.cacheTtlSeconds, (namespace, hit) => app.metrics.cacheLookup(namespace, hit), app.redisHealth))
}, { name: 'cache', dependencies: ['config', 'redis'] })
