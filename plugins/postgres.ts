import fp from 'fastify-plugin'
import { openDb, type Db } from '../db/client.js'

declare module 'fastify' {
  interface FastifyInstance { db: Db }
}

export default fp(async (app) => {
  const { postgres } = app.config
  const handle = await openDb({ ...postgres, serveEmbeddedOn: postgres.pglitePort, command: 'the API', onIdleError: (err) => app.log.warn({ store: 'postgres', err: err.message }, 'idle PostgreSQL connection lost') })
  app.addHook('onClose', async () => { await handle.close() })
  if (postgres.migrate) await handle.migrate()
  app.log.info({ store: 'postgres', kind: handle.kind, location: handle.location, migrated: postgres.migrate },
    handle.kind === 'pglite' ? 'PostgreSQL: embedded PGlite (set DATABASE_URL for a server)' : 'PostgreSQL: server')
  if (handle.servedUrl) app.log.info({ store: 'postgres', url: handle.servedUrl }, `PGlite: served to psql and the CLI commands at ${handle.servedUrl} (PGSSLMODE=disable)`)
  if (handle.kind === 'pglite' && postgres.migrate) {
    // The embedded mode is a demo: an empty catalog gets the deterministic demo catalog.
    const { catalogIsEmpty, seedCatalog } = await import('../db/seed.js')
    if (await catalogIsEmpty(handle.db)) {
      const made = await seedCatalog(handle.db)
      app.log.info({ store: 'postgres', ...made }, 'PGlite: seeded the demo catalog (npm run db:seed -- --help for sizes)')
    }
  }
  app.decorate('db', handle.db)
}, { name: 'postgres', dependencies: ['config'] })
