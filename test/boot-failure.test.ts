import { writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createTestStores, freePort, runProcess, tsx } from './helpers.js'

// A boot that fails part-way (here MongoDB is unreachable, after Redis and PostgreSQL have
// connected) closes what had opened. Before, the pools and clients of the plugins already loaded
// stayed open: buildApp's caller got the error, but its process never exited (a test file then
// hung until tap's timeout instead of failing at once). A process that does not exit within
// 30 s (a few seconds is usual) fails the test with its output.

for (const builder of ['buildApp', 'buildWorker'] as const) {
  t.test(`${builder}: a failed boot closes the stores it had opened, so the process can exit`, async (t) => {
    const closedPort = await freePort()
    const { env } = await createTestStores(t, { MONGODB_URL: `mongodb://127.0.0.1:${closedPort}/boot`, MONGO_TIMEOUT_MS: '300' })
    const dir = mkdtempSync(join(tmpdir(), 'boot-failure-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const script = join(dir, 'boot.mts')
    writeFileSync(script, [
      `import { ${builder} } from ${JSON.stringify(new URL('../src/app.js', import.meta.url).pathname)}`,
      `import { loadConfig } from ${JSON.stringify(new URL('../src/config.js', import.meta.url).pathname)}`,
      `const config = loadConfig(JSON.parse(process.env.BOOT_ENV!))`,
      `await ${builder}(config, { logger: false }).then(() => console.log('booted'), (err: Error) => console.log('boot failed:', err.name))`,
    ].join('\n'))
    const started = performance.now()
    const result = await runProcess(t, tsx(script), { env: { ...process.env, BOOT_ENV: JSON.stringify(env) }, name: `${builder} boot`, timeoutMs: 30_000 })
    t.match(result.stdout, /boot failed: MongooseServerSelectionError/, 'the boot failed on MongoDB')
    t.equal(result.code, 0, `the process exited by itself (${(performance.now() - started).toFixed(0)} ms), nothing left open`)
  })
}
