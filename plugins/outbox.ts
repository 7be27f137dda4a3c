import fp from 'fastify-plugin'
import { activityModel, type ActivityType } from '../db/models/activity.js'
import { createFaults, type Faults } from '../src/faults.js'
import { createOutbox, type Outbox } from '../src/outbox.js'

declare module 'fastify' {
  interface FastifyInstance { outbox: Outbox; faults: Faults }
}

const isDuplicateKey = (err: unknown) => (err as { code?: number }).code === 11000

// The outbox (src/outbox.ts), its handlers for side effects every domain shares, and the job
// that drains what was not handled at once. Domain handlers (the cart clear) are registered by
// the plugin that owns that domain's workflow (plugins/money.ts).
export default fp(async (app) => {
  const outbox = createOutbox(app.db, app.log)
  app.decorate('outbox', outbox)
  app.decorate('faults', createFaults())

  outbox.on('cache.invalidate', async (payload) => { await app.cache.bump(String(payload.namespace)) })
  // The entry's id is the event's, so a second delivery is a duplicate key, not a second entry.
  const entries = activityModel(app.mongo)
  outbox.on('activity.record', async (payload, event) => {
    try {
      await entries.collection.insertOne({ _id: event.id as never, type: payload.type as ActivityType, userId: (payload.userId as string | null) ?? null, ip: (payload.ip as string | null) ?? null, at: new Date(String(payload.at)), data: (payload.data as Record<string, unknown>) ?? {} })
    } catch (err) {
      if (!isDuplicateKey(err)) throw err
    }
  })

  app.jobs.every('outbox-drain', 2_000, () => outbox.drain())
  app.jobs.every('outbox-purge', 3_600_000, () => outbox.purge())
}, { name: 'outbox', dependencies: ['postgres', 'mongo', 'cache', 'jobs'] })
