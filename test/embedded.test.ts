import t, { type Test } from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { lockPathOf, takeLock } from '../db/embedded.js'
import { freePort, runProcess, startProcess, tsx } from './helpers.js'

// The embedded mode is one database with many clients: the API serves its PGlite directory on
// a local port, and the CLI commands reach it through the API while it runs, instead of opening
// the same directory a second time (which silently lost the other's writes before).

const dir = mkdtempSync(join(tmpdir(), 'embedded-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const dataDir = join(dir, 'pglite')

function startApi(t: Test, port: string, pglitePort: string) {
  return startProcess(t, tsx('src/server.ts'), {
    env: { PATH: process.env.PATH ?? '', PORT: port, PGLITE_DATA_DIR: dataDir, PGLITE_PORT: pglitePort, EMBEDDED_MONGO: 'off', LOG_LEVEL: 'info', UPLOAD_DIR: join(dir, 'uploads') },
  })
}
const createAdmin = (t: Test, email: string, env: Record<string, string> = {}) => runProcess(t, tsx('db/create-admin.ts', '--email', email), {
  env: { PATH: process.env.PATH ?? '', PGLITE_DATA_DIR: dataDir, ...env }, timeoutMs: 60_000,
})
const login = async (port: string) => (await fetch(`http://127.0.0.1:${port}/auth/login`, {
  method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'owner@example.com', password: 'owner password 123' }),
})).json() as Promise<{ user?: { role: string } }>

t.test('create-admin against a running embedded API: the API sees the account, and it survives a restart', { timeout: 180_000 }, async (t) => {
  const port = String(await freePort())
  const pglitePort = String(await freePort())
  const api = startApi(t, port, pglitePort)
  await api.waitForHttp(`http://127.0.0.1:${port}/health`)
  t.match(api.output(), new RegExp(`served to psql and the CLI commands at postgres://postgres@127\\.0\\.0\\.1:${pglitePort}/postgres`))
  t.match(JSON.parse(readFileSync(lockPathOf(dataDir), 'utf8')), { pid: api.pid, port: Number(pglitePort) })

  const created = await createAdmin(t, 'owner@example.com', { ADMIN_PASSWORD: 'owner password 123' })
  t.equal(created.code, 0, created.stderr)
  t.equal((await login(port)).user?.role, 'admin', 'the running API signs the new admin in at once')

  const second = startApi(t, String(await freePort()), String(await freePort()))
  t.not((await second.waitForExit()).code, 0, 'a second API on the same directory refuses to start')
  t.match(second.output(), /is served by another API \(pid \d+, port \d+\)/)

  t.equal((await api.stop()).code, 0, 'the API stops cleanly')
  t.notOk(existsSync(lockPathOf(dataDir)), 'and lets go of the directory')
  const again = startApi(t, port, pglitePort)
  await again.waitForHttp(`http://127.0.0.1:${port}/health`)
  t.equal((await login(port)).user?.role, 'admin', 'the account is still there after a restart')
  await again.stop()
})

t.test('a process that opened the directory itself keeps others out with a clear message', { timeout: 60_000 }, async (t) => {
  const lock = takeLock(dataDir, 'npm run db:seed')
  t.teardown(() => lock.release())
  const refused = await createAdmin(t, 'other@example.com', { ADMIN_PASSWORD: 'other password 123' })
  t.not(refused.code, 0)
  t.match(refused.stderr, /is open by another process \(pid \d+: npm run db:seed\); wait for it to finish/)
})
