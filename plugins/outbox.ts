import fp from 'fastify-plugin'
import { createFaults, type Faults } from '../src/faults.js'
import { createOutbox, type Outbox } from '../src/outbox.js'

declare module 'fastify' {
  interface FastifyInstance { outbox: Outbox; faults: Faults }
}

// The outbox (src/outbox.ts). Its handlers and the job that drains what was not handled at once
// are registered with the other background work in plugins/background.ts.
export default fp(async (app) => {
  app.decorate('outbox', createOutbox(app.db, app.log))
  app.decorate('faults', createFaults())
}, { name: 'outbox', dependencies: ['postgres'] })
