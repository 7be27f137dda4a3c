import fp from 'fastify-plugin'
import { randomUUID } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { activityEntry, activityModel, type ActivityDoc, type ActivityType } from '../db/models/activity.js'
import { dayRetention } from '../src/mongo-retention.js'
import type { AccessClaims } from './auth.js'

export interface ActivityLog {
  /** Records in the background: a failing write is logged and never fails the request. */
  record(req: FastifyRequest, type: ActivityType, data?: Record<string, unknown>, userId?: string | null): void
  flush(): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance { activity: ActivityLog }
  /** What an admin action's entry records instead of the route's params (an erasure names the anonymous account, not the person). */
  interface FastifyRequest { auditParams?: Record<string, unknown> }
}

export default fp(async (app) => {
  const entries = activityModel(app.mongo)
  const retention = dayRetention(entries, 'at')
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
        await retention.note(batch.map((e) => e.at))
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
  const enqueue = (entry: ActivityDoc) => {
    if (buffer.length >= MAX_BUFFERED) {
      app.metrics.activityDropped.inc()
      return
    }
    buffer.push(entry)
    if (buffer.length >= BATCH) flushSoon()
    else if (!timer) {
      timer = setTimeout(() => { timer = undefined; flushSoon() }, FLUSH_MS)
      timer.unref()
    }
  }

  // Anonymous product views are counted, not logged one by one: one entry per product and
  // VIEW_WINDOW_MS carries `views` (how many) and `since` (the first of them), with no IP. An
  // entry per view made the MongoDB write, not the read, the cost of a cached product page (npm run
  // bench: 1.6x the baseline with it, 4.65x without), and an IP per anonymous page view is
  // personal data not worth keeping. Signed-in views stay entries of their own: a user's history.
  const VIEW_WINDOW_MS = 10_000
  const MAX_COUNTED_PRODUCTS = 10_000
  const anonymousViews = new Map<string, { views: number; since: Date }>()
  let viewTimer: NodeJS.Timeout | undefined
  const countView = (productId: string) => {
    const counted = anonymousViews.get(productId)
    if (counted) counted.views++
    else if (anonymousViews.size >= MAX_COUNTED_PRODUCTS) app.metrics.activityDropped.inc()
    else anonymousViews.set(productId, { views: 1, since: new Date() })
    if (!viewTimer) {
      viewTimer = setTimeout(writeViewCounts, VIEW_WINDOW_MS)
      viewTimer.unref()
    }
  }
  const writeViewCounts = () => {
    clearTimeout(viewTimer)
    viewTimer = undefined
    const at = new Date()
    for (const [productId, { views, since }] of anonymousViews) {
      enqueue(activityEntry({ _id: randomUUID(), type: 'product_view', userId: null, at, ip: null, data: { productId, views, since: since.toISOString() } }))
    }
    anonymousViews.clear()
  }

  const activity: ActivityLog = {
    record(req, type, data = {}, userId) {
      const who = userId !== undefined ? userId : ((req.user as AccessClaims | null)?.sub ?? null)
      if (type === 'product_view' && who === null && typeof data.productId === 'string') return countView(data.productId)
      enqueue(activityEntry({ _id: randomUUID(), type, userId: who, at: new Date(), ip: req.ip, data }))
    },
    async flush() {
      writeViewCounts()
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
      activity.record(req, 'admin_action', { method: req.method, route: req.routeOptions.url, params: req.auditParams ?? req.params as Record<string, unknown>, status: reply.statusCode })
    }
    done()
  })
  app.addHook('onClose', () => activity.flush())
  // Its retention job is in plugins/background.ts.
}, { name: 'activity', dependencies: ['mongo', 'auth'] })
