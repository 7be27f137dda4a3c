import fp from 'fastify-plugin'
import { createCache, type Cache } from '../src/cache.js'

declare module 'fastify' {
  interface FastifyInstance { cache: Cache }
}

export default fp(async (app) => {
  app.decorate('cache', createCache(app.redis, app.log, app.config.cacheTtlSeconds))
}, { name: 'cache', dependencies: ['config', 'redis'] })
