import type { FastifyBaseLogger } from 'fastify'
import type { MongoClient, ServerHeartbeatStartedEvent } from 'mongodb'

// The MongoDB driver's server monitor can hang for good. A check that writes to a socket the
// server has just closed waits for a 'drain' event that never comes: node emits neither 'drain'
// nor 'error' for a write to a destroyed socket, and the driver (mongodb 7.8 and 7.9,
// `Connection.writeCommand`) waits on 'drain' alone. From then on the monitor starts no other
// check, the server stays Unknown, and every operation fails its server selection until the
// process restarts. Seen in CI: test/store-faults.test.ts's MongoDB "down" phase, after a cut
// mid-response, never recovered, and the driver emitted no event for 35 s.
//
// A check ends within its socket timeout (connectTimeoutMS, twice that when it connects first);
// an awaited check (the streaming protocol, servers that report a topologyVersion) waits up to
// heartbeatFrequencyMS more. One that has not ended a second after that has hung: the client is
// closed and connected again, which starts a new monitor (the models keep working: they hold the
// same client).

export interface MonitorWatchOptions {
  connectTimeoutMs: number
  heartbeatFrequencyMs: number
  log: FastifyBaseLogger
  /** How often the watch looks (ms). */
  everyMs?: number
}

/** Reconnects `client` when its server check hangs; returns a function that ends the watch. */
export function watchServerMonitor(client: MongoClient, { connectTimeoutMs, heartbeatFrequencyMs, log, everyMs = 1000 }: MonitorWatchOptions): () => void {
  // The check in progress per server (a replica set has several monitors).
  const checks = new Map<string, { startedAt: number; limitMs: number }>()
  // Set while the client is closed and not yet connected again (a server still away): each look retries.
  let disconnected = false
  let reconnecting: Promise<void> | undefined
  const started = (event: ServerHeartbeatStartedEvent) => {
    checks.set(event.connectionId, { startedAt: Date.now(), limitMs: 2 * connectTimeoutMs + (event.awaited ? heartbeatFrequencyMs : 0) + 1000 })
  }
  const ended = (event: { connectionId: string }) => { checks.delete(event.connectionId) }
  client.on('serverHeartbeatStarted', started)
  client.on('serverHeartbeatSucceeded', ended)
  client.on('serverHeartbeatFailed', ended)
  const connect = () => client.connect().then(() => {
    disconnected = false
    log.info({ store: 'mongo' }, 'MongoDB: connected again after a hung monitor')
  }, (err: Error) => log.warn({ store: 'mongo', err: err.message }, 'MongoDB: connecting again after a hung monitor failed; retrying'))
  const timer = setInterval(() => {
    if (reconnecting) return
    if (disconnected) {
      reconnecting = connect().finally(() => { reconnecting = undefined })
      return
    }
    const now = Date.now()
    const hung = [...checks].find(([, check]) => now - check.startedAt >= check.limitMs)
    if (!hung) return
    log.error({ store: 'mongo', server: hung[0], checkMs: now - hung[1].startedAt }, 'MongoDB: the driver\'s server check has not ended (a hung monitor); reconnecting')
    checks.clear()
    disconnected = true
    reconnecting = client.close().catch(() => {}).then(connect).finally(() => { reconnecting = undefined })
  }, everyMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    client.off('serverHeartbeatStarted', started)
    client.off('serverHeartbeatSucceeded', ended)
    client.off('serverHeartbeatFailed', ended)
  }
}
