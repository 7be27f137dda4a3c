import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  // One line naming the variable, then a non-zero exit: nothing starts on a bad configuration.
  process.stderr.write(`${err.message}\n`)
  process.exit(1)
}

const app = await buildApp(config)

closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an uncaught error')
  else app.log.info({ signal }, 'shutting down')
  await app.close()
})

await app.listen({ host: config.host, port: config.port })
app.log.info(`Swagger UI at http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port}/docs`)
