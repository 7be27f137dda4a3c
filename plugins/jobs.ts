import fp from 'fastify-plugin'
import { createJobRunner, type JobRunner } from '../src/jobs.js'

declare module 'fastify' {
  interface FastifyInstance { jobs: JobRunner }
}

// Domains register their jobs while loading; the schedule starts once the app is ready.
export default fp(async (app) => {
  const runner = createJobRunner({ redis: app.config.redis, log: app.log })
  app.decorate('jobs', runner)
  if (app.config.jobs) app.addHook('onReady', () => runner.start())
  app.addHook('onClose', () => runner.close())
}, { name: 'jobs', dependencies: ['config'] })
