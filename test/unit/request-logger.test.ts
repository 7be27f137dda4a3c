import t from 'tap'
import { Writable } from 'node:stream'
import { pino, type LoggerOptions } from 'pino'
import { loggerOptions, requestChildLogger } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'

// Each request's logger is made without pino's redaction of its bindings (src/app.ts
// requestChildLogger): the lines it writes must be byte for byte those of pino's own child, and
// what the redaction paths name is still redacted in them.

function capture() {
  const lines: string[] = []
  const logger = pino({ ...(loggerOptions(loadConfig({})) as LoggerOptions), timestamp: false }, new Writable({ write(chunk, _enc, done) { lines.push(String(chunk)); done() } }))
  return { logger, lines }
}

t.test('a request\'s log lines are those of pino\'s child({ reqId })', async (t) => {
  for (const reqId of ['0b6d2a4e-8c1f-4a52-9a57-2f1e3c4d5b6a', 'client-given.id_1', 'quote"and\\slash']) {
    const ours = capture()
    const pinos = capture()
    const write = (log: ReturnType<typeof pino>) => {
      log.info('incoming request')
      log.warn({ body: { password: 'hunter2', email: 'a@example.com' } }, 'with a secret')
      log.child({ orderId: 'o-1' }).error({ session: { token: 't' }, attempt: 2 }, 'from a grandchild')
    }
    write(requestChildLogger(ours.logger, { reqId }, {}) as unknown as ReturnType<typeof pino>)
    write(pinos.logger.child({ reqId }, {}))
    t.same(ours.lines, pinos.lines, `the same bytes for ${reqId}`)
    t.equal(JSON.parse(ours.lines[0]!).reqId, reqId)
    t.equal(JSON.parse(ours.lines[1]!).body.password, '[redacted]', 'a redaction path still applies')
    t.equal(JSON.parse(ours.lines[2]!).session.token, '[redacted]')
    t.equal(JSON.parse(ours.lines[2]!).orderId, 'o-1')
  }
})

t.test('the request logger keeps a route\'s own level', async (t) => {
  const { logger, lines } = capture()
  const child = requestChildLogger(logger, { reqId: 'r' }, { level: 'error' }) as unknown as ReturnType<typeof pino>
  child.warn('dropped')
  child.error('kept')
  t.same(lines.map((l) => JSON.parse(l).msg), ['kept'])
})
