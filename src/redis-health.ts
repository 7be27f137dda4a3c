import type { RedisClient } from './redis-client.js'
import type { FastifyBaseLogger } from 'fastify'

/**
 * Whether Redis answers, as the optional users of Redis (the cache, the rate limits) see it.
 * After a failure they go without Redis at once instead of each request waiting on a dead or hung
 * server; one probe at a time (a PING, at most every `retryMs`) finds out when it is back.
 */
export interface RedisHealth {
  readonly available: boolean
  /** Reports a failed command: Redis is treated as away until a probe answers. */
  failed(err: Error): void
}

export const ALWAYS_AVAILABLE: RedisHealth = { available: true, failed() {} }

export function createRedisHealth(redis: RedisClient, log: FastifyBaseLogger, retryMs = 1000): RedisHealth {
  let down = false
  let retryAt = 0
  let probing = false
  const markDown = (reason: string) => {
    if (!down) log.warn({ store: 'redis', reason }, 'Redis unavailable: cache and rate limits go without it')
    down = true
    retryAt = Date.now() + retryMs
  }
  const markUp = () => {
    if (down) log.info({ store: 'redis' }, 'Redis is back')
    down = false
  }
  redis.on('ready', markUp)
  redis.on('close', () => markDown('connection closed'))
  return {
    get available() {
      if (!down) return true
      if (!probing && Date.now() >= retryAt) {
        probing = true
        redis.ping().then(markUp, (err: Error) => markDown(err.message)).finally(() => { probing = false })
      }
      return false
    },
    failed(err) { markDown(err.message) },
  }
}
