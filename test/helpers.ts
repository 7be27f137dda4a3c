import { randomBytes } from 'node:crypto'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmbeddedFerretDb } from '../src/embedded-ferretdb.js'
import pg from 'pg'
import { Redis } from 'ioredis'
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
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(`create database ${name} template ${TEMPLATE_DB}`)
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

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** A FerretDB of the test's own (SQLite, temp dir), which the test may stop to take MongoDB away. */
export async function startOwnFerretDb(t: Teardown) {
  const dir = mkdtempSync(join(tmpdir(), 'ferretdb-'))
  const ferret = await startEmbeddedFerretDb({ dataDir: dir })
  t.teardown(async () => { await ferret.stop(); rmSync(dir, { recursive: true, force: true }) })
  return { url: ferret.url, stop: ferret.stop }
}

/** A redis-server of the test's own on a free port; `kill()` takes Redis away mid-test. */
/** A Redis server of the test's own, which the test may kill, start again on the same port, or hang (SIGSTOP). */
export async function startOwnRedis(t: Teardown) {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'redis-'))
  let redis: ReturnType<typeof spawn>
  let exited: Promise<unknown>
  const start = async () => {
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--dir', dir], { stdio: 'ignore' })
    exited = new Promise((resolve) => redis.once('exit', resolve))
    await new Promise((r) => setTimeout(r, 300))
  }
  const kill = async () => { redis.kill('SIGCONT'); redis.kill('SIGKILL'); await exited }
  await start()
  t.teardown(async () => { await kill(); rmSync(dir, { recursive: true, force: true }) })
  return { url: `redis://127.0.0.1:${port}`, kill, start, hang: () => redis.kill('SIGSTOP'), resume: () => redis.kill('SIGCONT') }
}
