import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers.js'

// The dev loop: how long after a save `npm run dev` answers again from the new process (its
// /health uptime is younger than the save). Measured for the current `npm run dev` and, as the
// baseline in the same run, for plain `tsx watch src/server.ts` (stores opened by the API at
// each restart). Embedded stores, a throwaway data directory. `SAVES` saves each (default 5).

const SAVES = Number(process.env.SAVES ?? 5)
const touched = 'routes/health/index.ts'

async function measure(label: string, command: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'devloop-'))
  const port = await freePort()
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), PGLITE_PORT: String(await freePort()), PGLITE_DATA_DIR: join(dir, 'pglite'), FERRETDB_DATA_DIR: join(dir, 'ferretdb'), UPLOAD_DIR: join(dir, 'uploads'), LOG_LEVEL: 'warn' }
  delete env.DATABASE_URL; delete env.MONGODB_URL; delete env.REDIS_URL
  const child = spawn(command[0]!, command.slice(1), { env, stdio: 'ignore', detached: true })
  const uptime = async () => {
    try { return ((await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as { uptimeSeconds: number }).uptimeSeconds } catch { return undefined }
  }
  const upAfter = async (since: number) => {
    for (;;) {
      const u = await uptime()
      if (u !== undefined && u * 1000 < Date.now() - since) { lastUptimeMs = Math.round(u * 1000); return Date.now() - since }
      if (Date.now() - since > 120_000) throw new Error(`${label}: no answer within 120 s`)
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  let lastUptimeMs = 0
  const first = await upAfter(Date.now() - 1)
  const source = readFileSync(touched, 'utf8')
  const times: number[] = []
  const beforeStart: number[] = []
  try {
    for (let i = 0; i < SAVES; i++) {
      await new Promise((r) => setTimeout(r, 1500))
      const saved = Date.now()
      writeFileSync(touched, `${source}// saved ${i}\n`)
      times.push(await upAfter(saved))
      beforeStart.push(times[times.length - 1]! - lastUptimeMs)
      writeFileSync(touched, source)
      await upAfter(Date.now())
    }
  } finally {
    writeFileSync(touched, source)
    process.kill(-child.pid!, 'SIGTERM')
    await new Promise((r) => setTimeout(r, 1500))
    rmSync(dir, { recursive: true, force: true })
  }
  times.sort((a, b) => a - b)
  beforeStart.sort((a, b) => a - b)
  return { label, firstStartMs: first, medianRestartMs: times[Math.floor(times.length / 2)]!, restartsMs: times, medianBeforeNewProcessMs: beforeStart[Math.floor(beforeStart.length / 2)]! }
}

const baseline = await measure('tsx watch src/server.ts (baseline)', [process.execPath, 'node_modules/tsx/dist/cli.mjs', 'watch', '--clear-screen=false', 'src/server.ts'])
const dev = await measure('npm run dev', [process.execPath, 'node_modules/tsx/dist/cli.mjs', 'src/dev.ts'])
for (const r of [baseline, dev]) console.log(`${r.label}: first start ${r.firstStartMs} ms, restart after a save: median ${r.medianRestartMs} ms (${r.restartsMs.join(', ')}), of which ${r.medianBeforeNewProcessMs} ms before the new process started`)
console.log(`npm run dev restarts in ${(dev.medianRestartMs / baseline.medianRestartMs).toFixed(2)}x the baseline's time`)
