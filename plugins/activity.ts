import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { activityModel, type ActivityDoc, type ActivityType } from '../db/models/activity.js'
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
  // Entries are buffered and written in batches (one insertMany per BATCH or per FLUSH_MS), not
  // one insert per request. The buffer is bounded: when MongoDB is slow or away, entries beyond
  // MAX_BUFFERED are dropped and counted (shop_activity_dropped_total), never held without limit.
  const BATCH = 200
  const FLUSH_MS = 200
  const MAX_BUFFERED = 5000
  let buffer: ActivityDoc[] = []
  let writing: Promise<void> = Promise.resolve()
  let timer: NodeJS.Timeout | undefined
  const writeOut = async () => {
    while (buffer.length) {
      const batch = buffer.slice(0, BATCH)
      buffer = buffer.slice(BATCH)
      try {
        await entries.collection.insertMany(batch as never[], { ordered: false })
      } catch (err) {
        app.log.warn({ err: (err as Error).message, entries: batch.length }, 'activity not recorded')
      }
    }
  }
  // One write queued behind the running one at most: requests that arrive while a batch is being
  // written join the next batch instead of each queueing a write of its own (under load that made
  // one insertMany per round trip; MongoDB went from 13% to 9% of the busy time of product views).
  let queued = false
  const flushSoon = () => {
    if (queued) return
    queued = true
    writing = writing.then(() => { queued = false; return writeOut() })
  }
  const activity: ActivityLog = {
    record(req, type, data = {}, userId) {
      if (buffer.length >= MAX_BUFFERED) {
        app.metrics.activityDropped.inc()
        return
      }
      const who = userId !== undefined ? userId : ((req.user as AccessClaims | null)?.sub ?? null)
      buffer.push({ _id: randomUUID(), type, userId: who, at: new Date(), ip: req.ip, data })
      if (buffer.length >= BATCH) flushSoon()
      else if (!timer) {
        timer = setTimeout(() => { timer = undefined; flushSoon() }, FLUSH_MS)
        timer.unref()
      }
    },
    async flush() {
      flushSoon()
      await writing
    },
  }
  app.decorate('activity', activity)

  // Every successful admin write is an admin action, whichever domain it touched.
  // A callback hook, not an async one: no promise per request.
  app.addHook('onResponse', (req, reply, done) => {
    const user = req.user as AccessClaims | null
    if (user?.role === 'admin' && req.method !== 'GET' && req.method !== 'HEAD' && reply.statusCode < 400) {
      activity.record(req, 'admin_action', { method: req.method, route: req.routeOptions.url, params: req.params as Record<string, unknown>, status: reply.statusCode })
    }
    done()
  })
  app.addHook('onClose', () => activity.flush())
  // Its retention job is in plugins/background.ts.
}, { name: 'activity', dependencies: ['mongo', 'auth'] })
