import t, { type Test } from 'tap'
import { MongoClient, type ServerHeartbeatStartedEvent, type ServerHeartbeatSucceededEvent } from 'mongodb'
import { pino } from 'pino'
import { watchServerMonitor } from '../src/mongo-monitor.js'
import { TEST_MONGODB_URL, captureLogs } from './helpers.js'

// The watch over the MongoDB driver's server monitor (src/mongo-monitor.ts), on the real test
// FerretDB. The hang itself (a check writing to a socket the server has just closed) cannot be
// brought about on demand, so a check's start is announced here, as the driver does, and never
// ended; the reconnection that follows is real.

async function watched(t: Test, heartbeatFrequencyMS: number) {
  const client = new MongoClient(`${TEST_MONGODB_URL}monitor_watch`, { heartbeatFrequencyMS, serverSelectionTimeoutMS: 3000 })
  await client.connect()
  const logs = captureLogs()
  const log = pino({ level: 'info' }, logs.stream)
  let openings = 0
  client.on('topologyOpening', () => { openings++ })
  const stop = watchServerMonitor(client, { connectTimeoutMs: 200, heartbeatFrequencyMs: heartbeatFrequencyMS, log, everyMs: 100 })
  t.teardown(async () => { stop(); await client.close() })
  return { client, logs, opened: () => openings }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

t.test('a server check that never ends makes the client connect again, and it works after', async (t) => {
  // Checks every minute: no real check ends the announced one meanwhile.
  const { client, logs, opened } = await watched(t, 60_000)
  // Another server's checks ending meanwhile do not end this one's.
  client.emit('serverHeartbeatStarted', { connectionId: 'hung.example:27017', awaited: false } as ServerHeartbeatStartedEvent)
  client.emit('serverHeartbeatStarted', { connectionId: 'other.example:27017', awaited: false } as ServerHeartbeatStartedEvent)
  client.emit('serverHeartbeatSucceeded', { connectionId: 'other.example:27017' } as ServerHeartbeatSucceededEvent)
  const deadline = Date.now() + 10_000
  while (opened() === 0 && Date.now() < deadline) await sleep(50)
  t.equal(opened(), 1, 'the client connected again')
  while (!logs.lines.some((l) => /connected again/.test(l.msg)) && Date.now() < deadline) await sleep(50)
  t.ok(logs.lines.some((l) => l.level === 50 && /hung monitor/.test(l.msg)), 'an error names the hung monitor')
  t.ok(logs.lines.some((l) => /connected again after a hung monitor/.test(l.msg)), 'and the reconnection is logged')
  t.same(await client.db('monitor_watch').command({ ping: 1 }), { ok: 1 }, 'operations run after it')
})

t.test('checks that end, however often, never set it off', async (t) => {
  const { logs, opened } = await watched(t, 500)
  // Each check ends within a few ms, far inside the 1.4 s a check may take here.
  await sleep(3000)
  t.equal(opened(), 0, 'the client was never reopened')
  t.same(logs.lines.filter((l) => /hung monitor/.test(l.msg)), [])
})
