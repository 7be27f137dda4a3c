import fp from 'fastify-plugin'
import mongoose, { type Connection } from 'mongoose'
import { FerretDbUnavailable, buildFerretDb, startEmbeddedFerretDb } from '../src/embedded-ferretdb.js'
import { watchServerMonitor } from '../src/mongo-monitor.js'

declare module 'fastify' {
  interface FastifyInstance { mongo: Connection }
}

const DEFAULT_DB = 'shop'

export default fp(async (app) => {
  const { url, embedded, ferretdbBin, ferretdbDataDir, timeoutMs, poolMax } = app.config.mongo
  let target = url
  let kind = 'server'
  let stopEmbedded = async () => {}
  if (!target && embedded === 'ferretdb') {
    try {
      const ferret = await startEmbeddedFerretDb({ binary: ferretdbBin, dataDir: ferretdbDataDir, build: buildFerretDb, log: (message) => app.log.info({ store: 'mongo' }, message) })
      stopEmbedded = ferret.stop
      target = `${ferret.url}${DEFAULT_DB}`
      kind = `embedded FerretDB (${ferret.binary}, SQLite under ${ferretdbDataDir})`
    } catch (err) {
      if (!(err instanceof FerretDbUnavailable)) throw err
      app.log.error({ store: 'mongo' }, `MongoDB: unavailable; carts, wishlists and the activity log will fail: ${err.message}`)
    }
  }

  // Fail fast instead of buffering commands when the server is away; /ready reports it.
  let stopWatch = () => {}
  const connection = mongoose.createConnection()
  connection.set('bufferCommands', false)
  if (target) {
    const u = new URL(target)
    await connection.openUri(target, {
      dbName: u.pathname.replace(/^\//, '') || DEFAULT_DB,
      // A hung or unreachable server costs a request a few timeouts at most (a retried read), then
      // 503: without socketTimeoutMS a stalled connection waits forever, and connecting waits 30 s.
      serverSelectionTimeoutMS: timeoutMs,
      connectTimeoutMS: timeoutMs,
      socketTimeoutMS: timeoutMs,
      // A bounded pool, and a bounded wait for it: a burst queues here, not on the server.
      maxPoolSize: poolMax,
      waitQueueTimeoutMS: timeoutMs,
      bufferCommands: false,
      // Command events for the latency metrics (plugins/metrics.ts), collected only when served.
      monitorCommands: Boolean(app.config.metricsToken),
    })
    app.log.info({ store: 'mongo', kind, location: `${u.host}/${connection.name}` }, `MongoDB: ${kind}`)
    const client = connection.getClient()
    stopWatch = watchServerMonitor(client, { connectTimeoutMs: timeoutMs, heartbeatFrequencyMs: client.options.heartbeatFrequencyMS, log: app.log })
  } else if (embedded === 'off') {
    app.log.warn({ store: 'mongo' }, 'MongoDB: not configured (EMBEDDED_MONGO=off and no MONGODB_URL)')
  }
  app.decorate('mongo', connection)
  app.addHook('onClose', async () => {
    stopWatch()
    await connection.close()
    await stopEmbedded()
  })
}, { name: 'mongo', dependencies: ['config'] })
