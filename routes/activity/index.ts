import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { ensureIndexes } from '../../src/mongo-indexes.js'
import { decodeCursor, paged, toPage } from '../../src/pagination.js'
import { activityModel, type ActivityDoc } from '../../db/models/activity.js'
import { ActivityPage, ActivityQuery } from './schemas.js'

const activityRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const entries = activityModel(app.mongo)
  if (app.mongo.readyState === 1) await ensureIndexes([entries])

  app.get('', {
    onRequest: app.requireRole('admin'),
    schema: {
      tags: ['analytics'], operationId: 'listActivity', summary: 'The activity log, newest first (admin)', security: BEARER,
      querystring: ActivityQuery, response: { 200: Type.Ref(ActivityPage), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef },
    },
  }, async (req) => {
    const { userId, type, from, to, limit, cursor } = paged(req.query)
    const at: Record<string, Date> = {}
    if (from) at.$gte = new Date(from)
    if (to) at.$lt = new Date(to)
    const filter: Record<string, unknown> = { ...(userId ? { userId } : {}), ...(type ? { type } : {}), ...(from || to ? { at } : {}) }
    if (cursor) {
      const [before, id] = decodeCursor(cursor, ['date', 'uuid'])
      filter.$or = [{ at: { ...at, $lt: new Date(before) } }, { at: new Date(before), _id: { $lt: id } }]
    }
    const rows = await entries.find(filter).sort({ at: -1, _id: -1 }).limit(limit + 1).lean<ActivityDoc[]>()
    const page = toPage(rows, limit, (r) => [r.at.toISOString(), r._id])
    return { items: page.items.map((r) => ({ id: r._id, type: r.type, userId: r.userId, at: r.at.toISOString(), ip: r.ip, data: r.data })), nextCursor: page.nextCursor }
  })
}
export default activityRoutes
