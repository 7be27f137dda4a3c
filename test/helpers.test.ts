import t from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import mongoose from 'mongoose'
import { Redis } from 'ioredis'
import { TEST_MONGODB_URL, TEST_REDIS_URL, adminQuery, buildTestApp, createTestStores, freePort, startProcess, waitUntil } from './helpers.js'
import { registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

// The test helpers themselves (test/helpers.ts). For the processes tests start: a wait that does
// not come fails with the process's output, an early exit fails the wait at once, and teardown
// leaves no process behind. For the stores: teardown leaves no database, MongoDB database or
// Redis key behind.

const node = (code: string) => [process.execPath, '-e', code]

t.test('a condition that does not come within its deadline fails with the output', async (t) => {
  const proc = startProcess(t, node("console.log('hello from the child'); console.error('and from its stderr'); setInterval(() => {}, 1000)"), { name: 'talker' })
  await proc.waitForOutput(/hello from the child/, 30_000)
  const started = performance.now()
  await t.rejects(proc.waitForOutput(/never said/, 300), { message: /^talker: output matching \/never said\/ did not happen within 300 ms\n[\s\S]*hello from the child\n[\s\S]*and from its stderr/ })
  t.ok(performance.now() - started < 5000, 'at the deadline')
})

t.test('a process that exits first fails the wait at once, naming its exit', async (t) => {
  const port = await freePort()
  const proc = startProcess(t, node("console.error('no config here'); process.exit(3)"), { name: 'quitter' })
  const started = performance.now()
  await t.rejects(proc.waitForHttp(`http://127.0.0.1:${port}/health`, 60_000), { message: /^quitter exited with code 3 before http:\/\/127\.0\.0\.1:\d+\/health answers 2xx[\s\S]*no config here/ })
  t.ok(performance.now() - started < 30_000, 'not at the deadline')
  t.same(await proc.exited, { code: 3, signal: null })
})

t.test('freePort hands out bindable ports outside the range of outgoing connections, never one twice', async (t) => {
  const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number)
  const ports = await Promise.all(Array.from({ length: 200 }, () => freePort()))
  t.equal(new Set(ports).size, ports.length, 'no port twice')
  t.ok(ports.every((p) => p >= 1024 && p < low!), `every port below ${low}, where outgoing connections take theirs`)
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(ports[0], '127.0.0.1', resolve))
  t.teardown(() => server.close())
  t.pass('the first one binds')
})

t.test('a wait for the exit answers the code; stop signals and waits', async (t) => {
  const done = startProcess(t, node('process.exit(0)'))
  t.same(await done.waitForExit(30_000), { code: 0, signal: null })
  const server = startProcess(t, node("require('node:http').createServer((q, s) => s.end('ok')).listen(+process.env.PORT, () => console.log('up'))"), { env: { ...process.env, PORT: String(await freePort()) } })
  await server.waitForOutput(/^up$/, 30_000)
  t.same(await server.stop('SIGTERM', 30_000), { code: null, signal: 'SIGTERM' })
})

t.test('teardown kills the whole process group, children included', async (t) => {
  let grandchild = 0
  const alive = () => { try { process.kill(grandchild, 0); return true } catch { return false } }
  await t.test('a shell that started a child of its own', async (t) => {
    const shell = startProcess(t, ['bash', '-c', 'sleep 300 & echo "child $!"; wait'])
    grandchild = Number((await shell.waitForOutput(/^child \d+$/, 30_000)).split(' ')[1])
    t.ok(alive(), `its child (pid ${grandchild}) runs`)
  })
  await waitUntil(`pid ${grandchild} gone`, () => !alive(), 10_000)
  t.notOk(alive(), 'the shell\'s child is gone too')
})

t.test('createTestStores: at teardown the database, the MongoDB database and the Redis keys are gone', async (t) => {
  let name = ''
  const redis = new Redis(TEST_REDIS_URL)
  t.teardown(() => redis.disconnect())
  const mongo = await mongoose.createConnection(TEST_MONGODB_URL).asPromise()
  t.teardown(() => mongo.close())
  const mongoDatabases = async () => (await mongo.listDatabases()).databases.map((d) => d.name)
  await t.test('stores in use', async (t) => {
    const { database, env } = await createTestStores(t)
    name = database.name
    t.equal(env.REDIS_KEY_PREFIX, `${name}:`)
    await redis.set(`${env.REDIS_KEY_PREFIX}probe`, '1')
    await mongo.useDb(name).collection('probe').insertOne({ at: 1 })
    t.ok((await mongoDatabases()).includes(name), 'the MongoDB database exists while the test runs')
  })
  t.equal((await adminQuery('select 1 from pg_database where datname = $1', [name])).rowCount, 0, 'the database is dropped')
  t.same(await redis.keys(`${name}:*`), [], 'the Redis keys are deleted')
  t.notOk((await mongoDatabases()).includes(name), 'the MongoDB database is dropped')
})

t.test('buildTestApp: at teardown no MongoDB database is left, activity log included', async (t) => {
  const mongo = await mongoose.createConnection(TEST_MONGODB_URL).asPromise()
  t.teardown(() => mongo.close())
  let name = ''
  await t.test('an app that logs activity', async (t) => {
    const app = await buildTestApp(t)
    name = app.mongo.db!.databaseName
    const admin = await registerAdmin(app) // an admin's writes are logged
    const product = await createProduct(app, admin.headers, { variants: [{ priceMinor: 100, stock: 1 }] })
    t.equal((await app.inject({ method: 'GET', url: `/products/${product.id}` })).statusCode, 200) // a counted view
  })
  t.notOk((await mongo.listDatabases()).databases.some((d) => d.name === name), `MongoDB database ${name} dropped`)
})
