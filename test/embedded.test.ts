import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lockPathOf, takeLock } from '../db/embedded.js'
import { freePort } from './helpers.js'

// The embedded mode is one database with many clients: the API serves its PGlite directory on
// a local port, and the CLI commands reach it through the API while it runs, instead of opening
// the same directory a second time (which silently lost the other's writes before).

const dir = mkdtempSync(join(tmpdir(), 'embedded-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const dataDir = join(dir, 'pglite')

async function startApi(port: string, pglitePort: string) {
  let output = ''
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { PATH: process.env.PATH ?? '', PORT: port, PGLITE_DATA_DIR: dataDir, PGLITE_PORT: pglitePort, EMBEDDED_MONGO: 'off', LOG_LEVEL: 'info', UPLOAD_DIR: join(dir, 'uploads') },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout.on('data', (d) => { output += d })
  child.stderr.on('data', (d) => { output += d })
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  let done = false
  void exited.then(() => { done = true })
  for (let i = 0; i < 300 && !done; i++) {
    try { if ((await fetch(`http://127.0.0.1:${port}/health`)).ok) break } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, exited, output: () => output, stop: async () => { child.kill('SIGTERM'); return exited } }
}
const cli = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, ['--import', 'tsx', ...args], {
  env: { PATH: process.env.PATH ?? '', PGLITE_DATA_DIR: dataDir, ...env }, encoding: 'utf8', timeout: 60_000,
})
const login = async (port: string) => (await fetch(`http://127.0.0.1:${port}/auth/login`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'owner@example.com', password: 'owner password 123' }),
})).json() as Promise<{ user?: { role: string } }>

t.test('create-admin against a running embedded API: the API sees the account, and it survives a restart', { timeout: 180_000 }, async (t) => {
  const port = String(await freePort())
  const pglitePort = String(await freePort())
  const api = await startApi(port, pglitePort)
  t.teardown(() => api.child.kill('SIGKILL'))
  t.match(api.output(), new RegExp(`served to psql and the CLI commands at postgres://postgres@127\\.0\\.0\\.1:${pglitePort}/postgres`))
  t.match(JSON.parse(readFileSync(lockPathOf(dataDir), 'utf8')), { pid: api.child.pid, port: Number(pglitePort) })

  const created = cli(['db/create-admin.ts', '--email', 'owner@example.com'], { ADMIN_PASSWORD: 'owner password 123' })
  t.equal(created.status, 0, created.stderr)
  t.equal((await login(port)).user?.role, 'admin', 'the running API signs the new admin in at once')

  const second = await startApi(String(await freePort()), String(await freePort()))
  t.not(await second.exited, 0, 'a second API on the same directory refuses to start')
  t.match(second.output(), /is served by another API \(pid \d+, port \d+\)/)

  t.equal(await api.stop(), 0, 'the API stops cleanly')
  t.notOk(existsSync(lockPathOf(dataDir)), 'and lets go of the directory')
  const again = await startApi(port, pglitePort)
  t.teardown(() => again.child.kill('SIGKILL'))
  t.equal((await login(port)).user?.role, 'admin', 'the account is still there after a restart')
  await again.stop()
})

t.test('a process that opened the directory itself keeps others out with a clear message', { timeout: 60_000 }, async (t) => {
  const lock = takeLock(dataDir, 'npm run db:seed')
  t.teardown(() => lock.release())
  const refused = cli(['db/create-admin.ts', '--email', 'other@example.com'], { ADMIN_PASSWORD: 'other password 123' })
  t.not(refused.status, 0)
  t.match(refused.stderr, /is open by another process \(pid \d+: npm run db:seed\); wait for it to finish/)
})
