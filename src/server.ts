import closeWithGrace from 'close-with-grace'
import { loadConfigOrExit } from './config.js'
import { tracingWanted } from './tracing.js'

// One line naming the variable, then a non-zero exit: nothing starts on a bad configuration.
const config = loadConfigOrExit()

// Tracing instruments pg, ioredis and mongodb as they load, so it starts before the app (which
// imports them) is imported. Off unless the OTEL_* variables ask for it (docs/operations.md#tracing).
const tracing = tracingWanted() ? await (await import('./telemetry.js')).startTracing() : undefined
const { buildApp } = await import('./app.js')
const app = await buildApp(config)

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an uncaught error')
  else app.log.info({ signal }, 'shutting down')
  // Fastify closes the connections that are idle when closing starts; one busy then becomes idle
  // once its answer is sent, and would hold the server open until its keep-alive ran out.
  const closeIdle = setInterval(() => app.server.closeIdleConnections(), 100)
  try {
    await app.close()
  } finally {
    clearInterval(closeIdle)
  }
  await tracing?.shutdown()
})

await app.listen({ host: config.host, port: config.port })
app.log.info(`Swagger UI at http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port}/docs`)
