// One app for test/bench/metrics-overhead.bench.ts, in a process of its own (process metrics are
// per process). Environment: BENCH_DB_NAME and BENCH_DB_URL, plus any app setting. On each
// message { path, requests } it answers the path that many times (10 in flight) through
// fastify's whole request lifecycle (inject: no sockets) and replies the CPU time it took; with
// `profile` it also samples the CPU and replies the share of busy samples in metrics code.
import { Session } from 'node:inspector/promises'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { testEnv } from '../helpers.js'

const app = await buildApp(loadConfig(testEnv({ name: process.env.BENCH_DB_NAME!, url: process.env.BENCH_DB_URL! }, {
  DB_POOL_MAX: '20', RATE_LIMIT_MAX: '100000000', ...(process.env.METRICS_TOKEN ? { METRICS_TOKEN: process.env.METRICS_TOKEN } : {}),
})), { logger: false })
await app.ready()

async function answer(path: string, requests: number) {
  let left = requests
  await Promise.all(Array.from({ length: 10 }, async () => {
    while (left-- > 0) {
      const res = await app.inject({ method: 'GET', url: path })
      if (res.statusCode !== 200) throw new Error(`${path}: ${res.statusCode}`)
    }
  }))
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }
/** Busy samples whose innermost owner is metrics code (prom-client, src/metrics.ts, plugins/metrics.ts), not the Redis send it wraps. */
function metricsShare(profile: { nodes: ProfileNode[]; samples: number[] }) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const owner = (id: number) => {
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName, url } = byId.get(cur)!.callFrame
      if (functionName === 'sendCommand' && url.includes('ioredis/built/Redis.js')) return 'redis'
      if (/prom-client|src\/metrics\.ts|plugins\/metrics\.ts/.test(url)) return 'metrics'
    }
    return 'app'
  }
  let busy = 0
  let metrics = 0
  for (const id of profile.samples) {
    if (['(idle)', '(program)'].includes(byId.get(id)!.callFrame.functionName)) continue
    busy++
    if (owner(id) === 'metrics') metrics++
  }
  return metrics / busy
}

process.on('message', (message: { path?: string; requests?: number; profile?: boolean; stop?: boolean }) => {
  if (message.stop) { void app.close().then(() => process.exit(0)); return }
  void (async () => {
    const session = new Session()
    if (message.profile) {
      session.connect()
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval: 50 })
      await session.post('Profiler.start')
    }
    const cpu = process.cpuUsage()
    await answer(message.path!, message.requests!)
    const used = process.cpuUsage(cpu)
    const share = message.profile ? metricsShare((await session.post('Profiler.stop')).profile as never) : undefined
    process.send!({ cpuMicros: used.user + used.system, share })
  })()
})
process.send!({ ready: true })
