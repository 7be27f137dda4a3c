import fp from 'fastify-plugin'
import { openDb, postgresLocation, type Db } from '../db/client.js'
import { openReadReplicas } from '../db/replicas.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
    /** For reads that tolerate replication lag (db/replicas.ts); the primary itself without DATABASE_REPLICA_URLS. */
    dbRead: Db
  }
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
      const made = await seedCatalog(handle.db, undefined, postgres.storeCurrency)
      app.log.info({ store: 'postgres', ...made }, 'PGlite: seeded the demo catalog (npm run db:seed -- --help for sizes)')
    }
  }
  app.decorate('db', handle.db)

  const { replicas } = postgres
  if (handle.kind === 'postgres' && replicas.urls.length) {
    const read = openReadReplicas(handle.db, {
      urls: replicas.urls, poolMax: replicas.poolMax, downMs: replicas.downSeconds * 1000, maxLagMs: replicas.maxLagMs,
      // The metrics plugin is registered later; these run only once requests are served.
      onRead: (result) => app.metrics.replicaRead(result),
      onHealth: ({ location, up, err }) => up
        ? app.log.info({ store: 'postgres', replica: location }, 'PostgreSQL replica in use: lag-tolerant reads go to it')
        : app.log.warn({ store: 'postgres', replica: location, err }, `PostgreSQL replica out of use (unreachable or behind); its reads go to the primary, probed again in ${replicas.downSeconds} s`),
    })
    app.addHook('onClose', async () => { await read.close() })
    app.log.info({ store: 'postgres', replicas: replicas.urls.map(postgresLocation) }, 'PostgreSQL: lag-tolerant reads go to the read replicas')
    app.decorate('dbRead', read.db)
  } else {
    app.decorate('dbRead', handle.db)
  }
}, { name: 'postgres', dependencies: ['config'] })
