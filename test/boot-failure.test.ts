import { execFile } from 'node:child_process'
import { writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { createTestDatabase, freePort, testEnv } from './helpers.js'

// A boot that fails part-way (here MongoDB is unreachable, after Redis and PostgreSQL have
// connected) closes what had opened. Before, the pools and clients of the plugins already loaded
// stayed open: buildApp's caller got the error, but its process never exited (a test file then
// hung until tap's timeout instead of failing at once).
const run = promisify(execFile)

for (const builder of ['buildApp', 'buildWorker'] as const) {
  t.test(`${builder}: a failed boot closes the stores it had opened, so the process can exit`, async (t) => {
    const database = await createTestDatabase(t)
    const closedPort = await freePort()
    const env = testEnv(database, { MONGODB_URL: `mongodb://127.0.0.1:${closedPort}/boot`, MONGO_TIMEOUT_MS: '300' })
    const dir = mkdtempSync(join(tmpdir(), 'boot-failure-'))
    const script = join(dir, 'boot.mts')
    writeFileSync(script, [
      `import { ${builder} } from ${JSON.stringify(new URL('../src/app.js', import.meta.url).pathname)}`,
      `import { loadConfig } from ${JSON.stringify(new URL('../src/config.js', import.meta.url).pathname)}`,
      `const config = loadConfig(JSON.parse(process.env.BOOT_ENV!))`,
      `await ${builder}(config, { logger: false }).then(() => console.log('booted'), (err: Error) => console.log('boot failed:', err.name))`,
    ].join('\n'))
    const started = performance.now()
    const result = await run(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, BOOT_ENV: JSON.stringify(env) }, timeout: 15_000 })
      .then(({ stdout }) => ({ exited: true, stdout }), (err: { killed?: boolean; stdout?: string; stderr?: string }) => ({ exited: !err.killed, stdout: `${err.stdout ?? ''}${err.stderr ?? ''}` }))
    t.match(result.stdout, /boot failed: MongooseServerSelectionError/, 'the boot failed on MongoDB')
    t.ok(result.exited, `the process exited by itself (${(performance.now() - started).toFixed(0)} ms), nothing left open`)
  })
}
