import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { Writable } from 'node:stream'
import { startEmbeddedFerretDb } from '../src/embedded-ferretdb.js'
import pg from 'pg'
import { Redis } from 'ioredis'
import mongoose from 'mongoose'
import { buildApp, type App, type BuildOptions } from '../src/app.js'
import { loadConfig } from '../src/config.js'

// The one way tests build the app: real PostgreSQL, Redis and FerretDB started by
// test/services.sh. Each call gets its own PostgreSQL database (cloned from the migrated
// template that test/setup.ts prepares), its own MongoDB database and its own Redis key prefix,
// so test files running in parallel never see each other's data.

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/postgres'
// The streaming replica of TEST_DATABASE_URL (test/read-replicas.test.ts); set it empty to skip those tests.
export const TEST_DATABASE_REPLICA_URL = process.env.TEST_DATABASE_REPLICA_URL ?? 'postgres://postgres@127.0.0.1:55433/postgres'
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:56379'
// Seed nodes of the three-master Redis Cluster of test/services.sh; set it empty to skip the cluster test.
export const TEST_REDIS_CLUSTER_NODES = process.env.TEST_REDIS_CLUSTER_NODES ?? '127.0.0.1:57001,127.0.0.1:57002,127.0.0.1:57003'
export const TEST_MONGODB_URL = process.env.TEST_MONGODB_URL ?? 'mongodb://127.0.0.1:57017/'
export const TEST_STRIPE_API_URL = process.env.TEST_STRIPE_API_URL ?? 'http://127.0.0.1:57111'
// The S3-compatible server (MinIO) of test/services.sh, for STORAGE=s3.
export const TEST_S3_ENDPOINT = process.env.TEST_S3_ENDPOINT ?? 'http://127.0.0.1:57600'
export const TEST_S3_ACCESS_KEY_ID = process.env.TEST_S3_ACCESS_KEY_ID ?? 'shoptest'
export const TEST_S3_SECRET_ACCESS_KEY = process.env.TEST_S3_SECRET_ACCESS_KEY ?? 'shoptest-secret-key'
// Set TEST_TEMPLATE_DB to run two suites side by side on the same PostgreSQL (test/setup.ts drops and rebuilds it).
export const TEMPLATE_DB = process.env.TEST_TEMPLATE_DB ?? 'shop_test_template'

interface Teardown { teardown(fn: () => unknown): void }

export function databaseUrl(name: string) {
  const url = new URL(TEST_DATABASE_URL)
  url.pathname = `/${name}`
  return url.toString()
}

export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL })
  await client.connect()
  try { return await client.query<T>(sql, params) } finally { await client.end() }
}

/** A fresh database cloned from the migrated template; dropped at teardown. */
export async function createTestDatabase(t: Teardown): Promise<{ name: string; url: string }> {
  const name = `test_${randomBytes(6).toString('hex')}`
  // Cloning needs the template to have no other sessions; parallel clones can briefly collide.
  // FILE_COPY copies the template's files: PostgreSQL 15's default (WAL_LOG) writes all of them
  // to the WAL, 5 MB a database that the read replica then replays too (measured: 80-195 ms a
  // clone, 53-57 ms with FILE_COPY, whose checkpoints cost little with the test server's fsync off).
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(`create database ${name} template ${TEMPLATE_DB} strategy file_copy`)
      break
    } catch (err) {
      if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err
      await new Promise((r) => setTimeout(r, 50 * attempt))
    }
  }
  t.teardown(() => adminQuery(`drop database if exists ${name} with (force)`))
  return { name, url: databaseUrl(name) }
}

/** The environment of an app on isolated test stores: this database, a MongoDB database and a Redis prefix of the same name. */
export function testEnv(database: { name: string; url: string }, env: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: database.url,
    DB_MIGRATE: 'false',
    MONGODB_URL: `${TEST_MONGODB_URL}${database.name}`,
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: `${database.name}:`,
    // Background schedules are off unless a test is about them.
    JOBS: 'off',
    ...env,
  }
}

/** Builds the app against isolated test stores; `env` overrides any setting, `opts` the silent logger. */
export async function buildTestApp(t: Teardown, env: Record<string, string> = {}, opts: BuildOptions = { logger: false }): Promise<App> {
  const config = loadConfig(testEnv(await createTestDatabase(t), env))
  const app = await buildApp(config, opts)
  t.teardown(async () => {
    // The activity log writes what it holds when the app closes, which made the dropped MongoDB
    // database again: written out first, the drop is the last word.
    if (app.hasDecorator('activity')) await app.activity.flush()
    await app.mongo.dropDatabase().catch(() => {})
    await app.close()
    await deleteRedisKeys(config.redis.keyPrefix)
  })
  return app
}

export async function deleteRedisKeys(prefix: string) {
  const redis = new Redis(TEST_REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      if (keys.length) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
}

/**
 * A port no server listens on, for a server the test starts. Picked below the kernel's range for
 * outgoing connections' ports (Linux: 32768-60999): a port the kernel chose (listen on 0) could be
 * taken by any outgoing connection between this pick and the server's bind (seen in CI: a Redis
 * Cluster node's bus port, "Address already in use"). Never the same port twice in one process.
 */
const handedOut = new Set<number>()
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12768)
    // Taken before the check, so that concurrent calls cannot both find it free.
    if (handedOut.has(port)) continue
    handedOut.add(port)
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
    if (free) return port
  }
}

/** A FerretDB of the test's own (SQLite, temp dir), which the test may stop to take MongoDB away. */
export async function startOwnFerretDb(t: Teardown) {
  const dir = mkdtempSync(join(tmpdir(), 'ferretdb-'))
  const ferret = await startEmbeddedFerretDb({ dataDir: dir })
  t.teardown(async () => { await ferret.stop(); rmSync(dir, { recursive: true, force: true }) })
  return { url: ferret.url, stop: ferret.stop }
}

/** A Redis server of the test's own, which the test may kill, start again on the same port, or hang (SIGSTOP). */
export async function startOwnRedis(t: Teardown) {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'redis-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let redis: TestProcess
  const start = async () => {
    // Without libfaketime: the suite may run with its clock moved (faketime), which hangs
    // redis-server at start; Redis's expiries are relative, so it needs no moved clock.
    const { LD_PRELOAD: _faketime, ...env } = process.env
    redis = startProcess(t, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], { name: 'redis-server', env })
    await redis.waitForOutput(/Ready to accept connections/, 10_000)
  }
  const kill = async () => { redis.signal('SIGCONT'); redis.signal('SIGKILL'); await redis.exited }
  await start()
  return { url: `redis://127.0.0.1:${port}`, kill, start, hang: () => redis.signal('SIGSTOP'), resume: () => redis.signal('SIGCONT') }
}

/**
 * A Redis Cluster of the test's own (`masters` masters with `replicas` replicas each, every node a
 * redis-server the test may kill or start again), so a test can take a master away without
 * touching the shared cluster other tests use. A short node timeout makes failover quick.
 */
export async function startOwnRedisCluster(t: TestLike, { masters = 3, replicas = 1, nodeTimeoutMs = 1000 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'redis-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { LD_PRELOAD: _faketime, ...env } = process.env
  const ports: number[] = []
  for (let i = 0; i < masters * (1 + replicas); i++) ports.push(await freePort())
  const busPorts = new Map<number, number>()
  for (const port of ports) busPorts.set(port, await freePort())
  const nodes = new Map<number, TestProcess>()
  const start = async (port: number) => {
    const nodeDir = join(dir, String(port))
    mkdirSync(nodeDir, { recursive: true })
    const node = startProcess(t, ['redis-server', '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--cluster-enabled', 'yes', '--cluster-port', String(busPorts.get(port)), '--cluster-config-file', 'nodes.conf',
      '--cluster-node-timeout', String(nodeTimeoutMs), '--repl-diskless-sync-delay', '0', '--dir', nodeDir], { name: `redis-cluster-${port}`, env })
    nodes.set(port, node)
    await node.waitForOutput(/Ready to accept connections/, 10_000)
  }
  await Promise.all(ports.map(start))
  await runProcess(t, ['redis-cli', '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], { env, name: 'redis-cli' })
  const ask = async <T>(port: number, fn: (r: Redis) => Promise<T>) => {
    const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null })
    try { await r.connect(); return await fn(r) } finally { r.disconnect() }
  }
  const state = (port: number) => ask(port, async (r) => /cluster_state:(\w+)/.exec(String(await r.cluster('INFO')))?.[1] ?? 'unknown').catch(() => 'unreachable')
  const down = new Set<number>()
  const alive = () => ports.filter((p) => !down.has(p))
  /** The node serving `slot` as master, as a live node sees the cluster now. */
  const masterOf = async (slot: number) => {
    const slots = await ask(alive()[0]!, (r) => r.cluster('SLOTS'))
    return slots.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1]
  }
  await waitUntil('the cluster to serve every slot', async () => (await Promise.all(ports.map(state))).every((s) => s === 'ok'), 20_000, 100)
  // A replica that has not finished its first sync cannot take over: wait for every link.
  const link = (port: number) => ask(port, async (r) => /role:slave[\s\S]*master_link_status:(\w+)/.exec(await r.info('replication'))?.[1] ?? 'master').catch(() => 'unreachable')
  await waitUntil('every replica to be in sync', async () => (await Promise.all(ports.map(link))).every((s) => s === 'up' || s === 'master'), 20_000, 100)
  return {
    /** Every node, as REDIS_CLUSTER_NODES wants them. */
    nodes: ports.map((p) => `127.0.0.1:${p}`).join(','),
    ports,
    state,
    masterOf,
    keySlot: (key: string) => ask(alive()[0]!, (r) => r.cluster('KEYSLOT', key)) as Promise<number>,
    /** Kills a node (SIGKILL: no goodbye to the cluster), and resolves once it is gone. */
    async kill(port: number) { const node = nodes.get(port)!; down.add(port); node.signal('SIGKILL'); await node.exited },
    /** Stops (SIGSTOP) or continues (SIGCONT) a node: a stopped replica misses what its master writes. */
    pause(port: number) { nodes.get(port)!.signal('SIGSTOP') },
    resume(port: number) { nodes.get(port)!.signal('SIGCONT') },
    /** The port of a replica of the master on `port`. */
    async replicaOf(port: number) {
      const lines = String(await ask(port, (r) => r.cluster('NODES'))).trim().split('\n').map((l) => l.split(' '))
      const id = lines.find((l) => l[1]!.startsWith(`127.0.0.1:${port}@`))![0]
      const replica = lines.find((l) => l[3] === id)
      return replica ? Number(/:(\d+)@/.exec(replica[1]!)![1]) : undefined
    },
    /** Starts a killed node again from its directory (it rejoins as it was, or as a replica). */
    async start(port: number) { await start(port); down.delete(port) },
  }
}

// One way to start a process in a test: the API (`tsx('src/server.ts')`), the worker, a CLI
// command, redis-server. The process runs in its own process group with its output kept; each
// wait names what it waits for and has a deadline, and fails the test with the process's output
// when the condition does not come (or the process exits first); teardown kills the whole group.
// Processes on the shared stores take them from createTestStores, which drops them at teardown.

/** Long enough for a tsx boot on a loaded two-core machine; a start that takes longer is broken. */
export const PROCESS_WAIT_MS = 60_000
const POLL_MS = 50
const OUTPUT_TAIL = 4000

export interface Exit { code: number | null; signal: NodeJS.Signals | null }
export interface TestProcess {
  readonly name: string
  readonly pid: number
  /** stdout and stderr, interleaved as they came. */
  output(): string
  stdout(): string
  stderr(): string
  /** The JSON lines of stdout (pino's log lines), parsed. */
  logs(): Record<string, unknown>[]
  /** Settles when the process has exited and its output is read; never rejects. */
  readonly exited: Promise<Exit>
  /** Signals the whole process group; nothing once the process has exited. */
  signal(sig: NodeJS.Signals): void
  /** Until `probe` answers something other than undefined or false (a throw counts as not yet); answers that. */
  waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs?: number): Promise<T>
  /** Until GET `url` answers 2xx, on a fresh connection each time (no keep-alive left open to the process). */
  waitForHttp(url: string, timeoutMs?: number): Promise<{ status: number; body: string }>
  /** Until its output has a line matching `pattern`; answers the line. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** Until it exits by itself. */
  waitForExit(timeoutMs?: number): Promise<Exit>
  /** Signals the group (SIGTERM by default) and waits for the exit. */
  stop(sig?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>
}
/** A test, as far as the process helpers need it (tap's Test). */
interface TestLike extends Teardown { passing?(): boolean }

// test/run.mjs runs the suite on a compiled copy of the checkout and names it here.
const BUILD_DIR = process.env.TEST_BUILD_DIR
/**
 * `node --import tsx script ...args`: how the project's scripts run. Under test/run.mjs, the
 * script's compiled copy as plain `node` instead (the tsx loader costs a second of CPU a process).
 */
export const tsx = (script: string, ...args: string[]) => {
  const compiled = BUILD_DIR && !isAbsolute(script) ? join(BUILD_DIR, script.replace(/\.ts$/, '.js')) : undefined
  return compiled && existsSync(compiled) ? [process.execPath, compiled, ...args] : [process.execPath, '--import', 'tsx', script, ...args]
}
/** The script a `tsx()` command runs, as the checkout names it. */
const scriptOf = (command: string[]) => {
  const script = command[2] === 'tsx' ? command[3]! : command[1]!
  return BUILD_DIR && script.startsWith(`${BUILD_DIR}/`) ? script.slice(BUILD_DIR.length + 1) : script
}

const liveGroups = new Set<number>()
let killOnExit = false

/**
 * Starts `command` in a process group of its own. `env` is its whole environment (default: this
 * process's). At teardown the group is killed (SIGKILL) and, if the test failed, the output's
 * tail is printed so an assertion failure comes with what the process said.
 */
export function startProcess(t: TestLike, command: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; name?: string } = {}): TestProcess {
  // Named by its script when it is one of ours (tsx), else by its program.
  const name = opts.name ?? (command[0] === process.execPath ? scriptOf(command) : command[0]!)
  const child = spawn(command[0]!, command.slice(1), { cwd: opts.cwd, env: (opts.env ?? process.env) as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  let stdout = ''
  let stderr = ''
  let partial = ''
  const logs: Record<string, unknown>[] = []
  let exit: Exit | undefined
  let spawnError: Error | undefined
  let shown = false
  // Wakes the waits on new output and on exit, so they do not have to poll for those.
  let wake: () => void = () => {}
  let changed = new Promise<void>((r) => { wake = r })
  const notify = () => { const w = wake; changed = new Promise<void>((r) => { wake = r }); w() }

  child.stdout!.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    stdout += text
    output += text
    const lines = (partial + text).split('\n')
    partial = lines.pop()!
    for (const line of lines) if (line.startsWith('{')) { try { logs.push(JSON.parse(line) as Record<string, unknown>) } catch { /* not a log line */ } }
    notify()
  })
  child.stderr!.on('data', (chunk: Buffer) => { const text = chunk.toString('utf8'); stderr += text; output += text; notify() })
  const exited = new Promise<Exit>((resolve) => {
    let code: Exit | undefined
    const done = (e: Exit) => { if (exit) return; exit = e; if (child.pid) liveGroups.delete(child.pid); notify(); resolve(e) }
    child.once('error', (err) => { spawnError = err; done({ code: null, signal: null }) })
    // 'close' comes once the output is read; a grandchild holding the pipes must not hold the test.
    child.once('exit', (c, s) => { code = { code: c, signal: s }; setTimeout(() => done(code!), 2000).unref() })
    child.once('close', (c, s) => done(code ?? { code: c, signal: s }))
  })
  if (child.pid) {
    liveGroups.add(child.pid)
    if (!killOnExit) {
      killOnExit = true
      // A test process that ends without its teardowns (a crash, tap's timeout) leaves nothing running.
      process.once('exit', () => { for (const pgid of liveGroups) { try { process.kill(-pgid, 'SIGKILL') } catch { /* gone */ } } })
    }
  }

  const describeExit = (e: Exit) => spawnError ? `could not start: ${spawnError.message}` : `exited with ${e.signal ?? `code ${e.code}`}`
  const tail = () => { shown = true; const out = output.length > OUTPUT_TAIL ? `...${output.slice(-OUTPUT_TAIL)}` : output; return `\n--- ${name} (pid ${child.pid}) output ---\n${out || '(none)'}\n--- end of ${name} output ---` }
  const signal = (sig: NodeJS.Signals) => { if (!exit && child.pid) { try { process.kill(-child.pid, sig) } catch { /* already gone */ } } }

  async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = PROCESS_WAIT_MS): Promise<T> {
    const started = performance.now()
    let last: unknown
    for (;;) {
      const ended = exit
      const wakeUp = changed
      try {
        const value = await probe()
        if (value !== undefined && value !== false) return value
      } catch (err) { last = err }
      const lastTry = last === undefined ? '' : ` (last try: ${last instanceof Error ? last.message : String(last)})`
      if (ended) throw new Error(`${name} ${describeExit(ended)} before ${what}${lastTry}${tail()}`)
      const left = timeoutMs - (performance.now() - started)
      if (left <= 0) throw new Error(`${name}: ${what} did not happen within ${timeoutMs} ms${lastTry}${tail()}`)
      await Promise.race([wakeUp, new Promise((r) => setTimeout(r, Math.min(POLL_MS, left)))])
    }
  }

  const proc: TestProcess = {
    name, pid: child.pid ?? -1, exited, signal, waitFor,
    output: () => output, stdout: () => stdout, stderr: () => stderr, logs: () => logs,
    waitForHttp: (url, timeoutMs) => waitFor(`${url} answers 2xx`, () => httpOk(url), timeoutMs),
    waitForOutput: (pattern, timeoutMs) => waitFor(`output matching ${pattern}`, () => output.split('\n').find((line) => pattern.test(line)), timeoutMs),
    waitForExit: (timeoutMs) => waitFor('its exit', () => exit, timeoutMs),
    stop: (sig = 'SIGTERM', timeoutMs) => { signal(sig); return waitFor(`its exit after ${sig}`, () => exit, timeoutMs) },
  }
  t.teardown(async () => {
    signal('SIGCONT')
    signal('SIGKILL')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000).unref())])
    if (t.passing?.() === false && !shown) process.stderr.write(`${tail()}\n`)
  })
  return proc
}

/** GET `url` on a connection of its own (closed after): answers the status and body when 2xx; throws otherwise. */
function httpOk(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(url, { agent: false, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        const status = res.statusCode ?? 0
        if (status >= 200 && status < 300) resolve({ status, body })
        else reject(new Error(`HTTP ${status}: ${body.slice(0, 200)}`))
      })
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')))
    req.on('error', reject)
  })
}

/** Runs `command` to its end (see startProcess); fails the test with the output if it has not exited within `timeoutMs`. */
export async function runProcess(t: TestLike, command: string[], opts: { env?: Record<string, string | undefined>; cwd?: string; name?: string; timeoutMs?: number } = {}) {
  const proc = startProcess(t, command, opts)
  const { code, signal } = await proc.waitForExit(opts.timeoutMs)
  return { code, signal, stdout: proc.stdout(), stderr: proc.stderr(), output: proc.output() }
}

/** Until `probe` answers something other than undefined or false (a throw counts as not yet); fails naming `what` after `timeoutMs`. */
export async function waitUntil<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = PROCESS_WAIT_MS, intervalMs = POLL_MS): Promise<T> {
  const started = performance.now()
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (err) { last = err }
    if (performance.now() - started >= timeoutMs) throw new Error(`${what} did not happen within ${timeoutMs} ms${last === undefined ? '' : ` (last try: ${last instanceof Error ? last.message : String(last)})`}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

/**
 * Isolated stores for processes the test starts: a database cloned from the template, and the
 * MongoDB database and Redis prefix of the same name (testEnv); at teardown the Redis keys and
 * the MongoDB database go, then the database. `env` is testEnv's overrides.
 */
export async function createTestStores(t: Teardown, env: Record<string, string> = {}) {
  const database = await createTestDatabase(t)
  t.teardown(() => dropMongoAndRedis(database.name))
  return { database, env: testEnv(database, env) }
}

async function dropMongoAndRedis(name: string) {
  // A teardown that throws skips the ones after it (the database's drop): each failure is said and passed over.
  const warn = (what: string) => (err: Error) => { process.stderr.write(`teardown: could not ${what} of ${name}: ${err.message}\n`) }
  await deleteRedisKeys(`${name}:`).catch(warn('delete the Redis keys'))
  const mongo = mongoose.createConnection(`${TEST_MONGODB_URL}${name}`, { serverSelectionTimeoutMS: 10_000 })
  mongo.on('error', () => {})
  await mongo.asPromise().then(() => mongo.dropDatabase()).catch(warn('drop the MongoDB database'))
  await mongo.close().catch(() => {})
}

/**
 * An empty database and the committed migrations, to test an upgrade: apply those before the
 * migration tagged `…_<name>`, write data as the shop had it then, and apply the rest.
 */
export async function upgradeFixture(t: Teardown, name: string) {
  const db = await createTestDatabase(t)
  const client = new pg.Client({ connectionString: db.url })
  await client.connect()
  t.teardown(() => client.end())
  await client.query('drop schema public cascade; create schema public; drop schema if exists drizzle cascade')
  const { readMigrationFiles } = await import('drizzle-orm/migrator')
  const migrations = readMigrationFiles({ migrationsFolder: 'drizzle' })
  const journal = JSON.parse(await readFile('drizzle/meta/_journal.json', 'utf8')) as { entries: { tag: string }[] }
  const at = journal.entries.findIndex((e) => e.tag.endsWith(`_${name}`))
  if (at < 0) throw new Error(`no migration named ${name}`)
  const apply = async (list: typeof migrations) => { for (const m of list) for (const stmt of m.sql) await client.query(stmt) }
  await apply(migrations.slice(0, at))
  return { client, upgrade: () => apply(migrations.slice(at)) }
}

/** A logger stream for an app under test: every JSON line it writes, parsed, in order. */
export function captureLogs() {
  const lines: LogLine[] = []
  const stream = new Writable({ write(chunk, _enc, done) { for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as LogLine); done() } })
  return { lines, stream }
}
export type LogLine = { level: number; time: number; msg: string; err?: unknown } & Record<string, unknown>

const TEST_S3_BUCKET = 'shop-test'

/**
 * Settings for STORAGE=s3 on the test S3 server: one bucket (made if missing, its uploads areas
 * readable by anyone), a key prefix of
 * this test's own, whose objects are deleted when the test ends. `client` reads the bucket directly.
 */
export async function s3TestEnv(t: Teardown, env: Record<string, string> = {}) {
  const { CreateBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, PutBucketPolicyCommand, S3Client } = await import('@aws-sdk/client-s3')
  const client = new S3Client({
    endpoint: TEST_S3_ENDPOINT, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: TEST_S3_ACCESS_KEY_ID, secretAccessKey: TEST_S3_SECRET_ACCESS_KEY },
  })
  await client.send(new CreateBucketCommand({ Bucket: TEST_S3_BUCKET })).catch((err: Error) => {
    if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes(err.name)) throw err
  })
  // As in production with S3_PUBLIC_URL: anyone may read the uploads area, nothing else.
  await client.send(new PutBucketPolicyCommand({
    Bucket: TEST_S3_BUCKET,
    Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: ['*'] }, Action: ['s3:GetObject'], Resource: [`arn:aws:s3:::${TEST_S3_BUCKET}/*/uploads/*`] }] }),
  }))
  const prefix = `test-${randomBytes(8).toString('hex')}/`
  t.teardown(async () => {
    let ContinuationToken: string | undefined
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: TEST_S3_BUCKET, Prefix: prefix, ContinuationToken }))
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }))
      if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket: TEST_S3_BUCKET, Delete: { Objects: keys } }))
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (ContinuationToken)
    client.destroy()
  })
  return {
    client, bucket: TEST_S3_BUCKET, prefix,
    env: {
      STORAGE: 's3', S3_BUCKET: TEST_S3_BUCKET, S3_ENDPOINT: TEST_S3_ENDPOINT, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: prefix,
      S3_ACCESS_KEY_ID: TEST_S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY: TEST_S3_SECRET_ACCESS_KEY, ...env,
    },
  }
}
