import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { activityModel, type ActivityType } from '../db/models/activity.js'
import type { AccessClaims } from './auth.js'

export interface ActivityLog {
  /** Records in the background: a failing write is logged and never fails the request. */
  record(req: FastifyRequest, type: ActivityType, data?: Record<string, unknown>, userId?: string | null): void
  flush(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance { activity: ActivityLog }
}

export default fp(async (app) => {
  const entries = activityModel(app.mongo)
  const pending = new Set<Promise<unknown>>()
  const activity: ActivityLog = {
    record(req, type, data = {}, userId) {
      const who = userId !== undefined ? userId : ((req.user as AccessClaims | null)?.sub ?? null)
      // Through a promise chain, so even a synchronous driver throw becomes a logged rejection.
      const write = Promise.resolve()
        .then(() => entries.collection.insertOne({ _id: randomUUID() as never, type, userId: who, at: new Date(), ip: req.ip, data }))
        .catch((err: Error) => req.log.warn({ err: err.message, type }, 'activity not recorded'))
        .finally(() => pending.delete(write))
      pending.add(write)
    },
    async flush() { await Promise.all([...pending]) },
  }
  app.decorate('activity', activity)

  // Every successful admin write is an admin action, whichever domain it touched.
  app.addHook('onResponse', async (req, reply) => {
    const user = req.user as AccessClaims | null
    if (user?.role === 'admin' && req.method !== 'GET' && req.method !== 'HEAD' && reply.statusCode < 400) {
      activity.record(req, 'admin_action', { method: req.method, route: req.routeOptions.url, params: req.params as Record<string, unknown>, status: reply.statusCode })
    }
  })
  app.addHook('onClose', () => activity.flush())
  app.jobs.every('activity-retention', 3_600_000, async () => {
    const { deletedCount } = await entries.deleteMany({ at: { $lt: new Date(Date.now() - app.config.activityRetentionDays * 86_400_000) } })
    return { removed: deletedCount }
  })
}, { name: 'activity', dependencies: ['mongo', 'jobs', 'auth'] })
