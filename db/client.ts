import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { sql, type SQL, type SQLWrapper } from 'drizzle-orm'
import { PgDialect } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePg, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator'
import pg from 'pg'
import * as schema from './schema/index.js'
import { busy, embeddedUrl, holderOf, serveEmbedded, takeLock } from './embedded.js'

// One way to open the database, shared by the app, the CLI scripts and the tests:
// node-postgres when a URL is given, otherwise PGlite (embedded, single process).

export type Db = NodePgDatabase<typeof schema>
/** A transaction handle, as drizzle passes it to `db.transaction`. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0]
export interface DbHandle {
  db: Db
  kind: 'postgres' | 'pglite'
  /** Where the data lives, for the start-up log; never includes a password. */
  location: string
  /** The embedded database's address while this process serves it (psql, drizzle-kit, CLI). */
  servedUrl?: string
  migrate(): Promise<void>
  close(): Promise<void>
}

const migrationsFolder = fileURLToPath(new URL('../drizzle', import.meta.url))
// Any fixed 64-bit number; instances starting together take turns applying migrations.
const MIGRATION_LOCK_ID = 7_361_842_001

export interface OpenDbOptions {
  url?: string
  pgliteDataDir: string
  poolMax: number
  /** The API: open the embedded directory itself and serve it on this port (db/embedded.ts). */
  serveEmbeddedOn?: number
  /** What holds the embedded directory, for the message another process shows. */
  command?: string
  /** Called when an idle pooled connection dies (server restart, admin kill). */
  onIdleError?: (err: Error) => void
  /**
   * Bounds every statement: the server cancels it after this long, and the client gives up a
   * second later when no answer comes at all (a hung server or network). Unset: unbounded (the
   * CLI scripts, which may seed or migrate for minutes).
   */
  statementTimeoutMs?: number
  /** Time to open a connection or to wait for a free one in the pool (default 5000). */
  connectTimeoutMs?: number
  /** STORE_CURRENCY, for the migration that turns single-currency prices into this currency's (0011). */
  storeCurrency?: string
}

export async function openDb(opts: OpenDbOptions): Promise<DbHandle> {
  if (!opts.url && !opts.pgliteDataDir.startsWith('memory://')) {
    // The embedded directory: through the API that serves it, or opened here and locked.
    const holder = holderOf(opts.pgliteDataDir)
    if (holder?.port && opts.serveEmbeddedOn === undefined) {
      const handle = await openDb({ ...opts, url: embeddedUrl(holder.port), poolMax: Math.min(opts.poolMax, 4), statementTimeoutMs: undefined })
      return { ...handle, location: `${opts.pgliteDataDir}, served by the API (pid ${holder.pid}) on port ${holder.port}` }
    }
    if (holder) throw busy(opts.pgliteDataDir, holder)
    const lock = takeLock(opts.pgliteDataDir, opts.command ?? process.argv.slice(1).join(' '))
    try {
      return await openPglite(opts, lock)
    } catch (err) {
      lock.release()
      throw err
    }
  }
  if (opts.url) {
    const timeout = opts.statementTimeoutMs
    const pool = new pg.Pool({
      connectionString: opts.url, max: opts.poolMax, connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      ...(timeout ? { statement_timeout: timeout, query_timeout: timeout + 1000, idle_in_transaction_session_timeout: timeout + 2000 } : {}),
    })
    // Without a listener, pg re-throws an idle client's error and the process dies; the pool
    // drops that client and the next query opens a new connection.
    pool.on('error', (err) => opts.onIdleError?.(err))
    // A checked-out client (a transaction) has no pool listener: a cut connection would crash the
    // process. Its queries fail with the error already, and the pool drops it on release.
    pool.on('connect', (client) => {
      client.on('error', () => {})
      guardTransactionClient(client)
    })
    const db = drizzlePg({ client: pool, schema })
    return {
      db,
      kind: 'postgres',
      location: postgresLocation(opts.url),
      async migrate() {
        // A connection of its own, without the statement timeout: migrations and the wait for
        // another instance's migration lock may take longer than any API statement.
        const client = new pg.Client({ connectionString: opts.url })
        await client.connect()
        try {
          await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID])
          if (opts.storeCurrency) await client.query("select set_config('shop.store_currency', $1, false)", [opts.storeCurrency])
          await migratePg(drizzlePg({ client, schema }), { migrationsFolder })
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => {})
          await client.end()
        }
      },
      close: () => pool.end(),
    }
  }
  return openPglite(opts)
}

/** Where a postgres:// URL points, for logs: host, port and database, no credentials. */
export function postgresLocation(url: string): string {
  const u = new URL(url)
  return `${u.hostname}:${u.port || 5432}${u.pathname}`
}

const isBegin = (config: unknown) => /^\s*begin\b/i.test(typeof config === 'string' ? config : String((config as { text?: unknown } | null)?.text ?? ''))

/**
 * Works around drizzle-orm 0.45's pooled `transaction()` (drizzle-team/drizzle-orm#6114, #6241):
 * a BEGIN that fails is outside its try/finally, so the client is never released and the pool
 * shrinks for good (found by test/store-faults.test.ts: three of ten clients lost to one stall);
 * and a client whose query got no answer (query_timeout) goes back to the pool with that query
 * still pending, so the next user waits behind it. Here a client whose query got no answer or
 * lost its connection is closed (the pool drops it on release), and a failed BEGIN releases it.
 */
function guardTransactionClient(client: pg.PoolClient) {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  client.query = ((...args: unknown[]) => {
    const result = query(...args)
    if (!(result instanceof Promise)) return result
    return result.catch((err: Error) => {
      if (/Query read timeout|Connection terminated|not queryable/i.test(err.message)) client.connection.stream.destroy()
      if (isBegin(args[0])) {
        client.release(err)
        client.release = () => {} // should a later drizzle release it too
      }
      throw err
    })
  }) as typeof client.query
}

async function openPglite(opts: OpenDbOptions, lock?: ReturnType<typeof takeLock>): Promise<DbHandle> {
  if (!opts.pgliteDataDir.startsWith('memory://')) mkdirSync(opts.pgliteDataDir, { recursive: true })
  // Loaded only when used: a process on a server (the dev loop's API, production) never pays for it.
  const [{ PGlite }, { drizzle: drizzlePglite }, { migrate: migratePglite }] = await Promise.all([
    import('@electric-sql/pglite'), import('drizzle-orm/pglite'), import('drizzle-orm/pglite/migrator'),
  ])
  const client = new PGlite(opts.pgliteDataDir)
  await client.waitReady
  const served = lock && opts.serveEmbeddedOn !== undefined ? await serveEmbedded(client, opts.serveEmbeddedOn) : undefined
  if (served) lock!.setPort(served.port)
  // Same query API as node-postgres for everything the services use.
  const db = drizzlePglite({ client, schema }) as unknown as Db
  return {
    db,
    kind: 'pglite',
    location: served ? `${opts.pgliteDataDir}, served on ${embeddedUrl(served.port)}` : opts.pgliteDataDir,
    servedUrl: served ? embeddedUrl(served.port) : undefined,
    async migrate() {
      if (opts.storeCurrency) await client.query("select set_config('shop.store_currency', $1, false)", [opts.storeCurrency])
      await migratePglite(db as never, { migrationsFolder })
    },
    async close() {
      await served?.stop()
      await client.close()
      lock?.release()
    },
  }
}

/**
 * The handle a statement prepared for `given` runs on. A read handle of db/replicas.ts (drizzle's
 * withReplicas) carries its primary's session, but sends its selects through its replica handle:
 * a statement asked for on it runs there too, so customers' reads keep going to the replicas (and
 * falling back as they do).
 */
const runsOn = <D extends Db | Tx>(given: D): D => (given as { $replicas?: D[] }).$replicas?.[0] ?? given

/** The driver connection drizzle runs a session's (and its prepared queries') statements on. */
type OnClient = { client: unknown }
const clientOf = (db: Db | Tx) => (db._.session as unknown as OnClient).client

/**
 * Values as one array parameter of a type (for `= any(...)` and `unnest(...)`): one placeholder
 * however many there are, so a statement's text does not change with their number. pg writes the
 * array literal, quoting each value.
 */
export function arrayParam(values: readonly (string | number | null)[], type: 'uuid' | 'int' | 'text' | 'jsonb'): SQL {
  return sql`${sql.param(values)}::${sql.raw(type)}[]`
}

/**
 * Ids for a prepared statement's `= any($n::uuid[])` filter, at least ten of them (the first one
 * repeated; `= any` matches each row once however often an id is given). PostgreSQL costs an
 * array parameter at ten elements in a generic plan: a cart's few ids made every custom plan look
 * cheaper, and it planned each execution anew (a checkout's variants: 0.73 ms of planning for
 * 0.08 ms of execution). At ten the two cost the same and it keeps the generic plan. Only for
 * filters: a statement that unnests or counts the array would see the repeats.
 */
export function idsForPlan(ids: readonly string[]): string[] {
  if (!ids.length || ids.length >= GENERIC_ARRAY_LENGTH) return [...ids]
  return [...ids, ...Array<string>(GENERIC_ARRAY_LENGTH - ids.length).fill(ids[0]!)]
}
/** The length PostgreSQL assumes for an array it cannot see (estimate_array_length). */
const GENERIC_ARRAY_LENGTH = 10

/**
 * A prepared statement built once, run on the pool or transaction it is asked for. Building is
 * the cost a hot statement saves (drizzle's query building was 10-15% of the API's CPU in cart
 * reads and checkouts), and a transaction would otherwise build its own copy on every checkout.
 * Drizzle binds a prepared query to the connection of whoever prepared it, so for another one it
 * is run through a view of it with that connection (`client`, the same field in the node-postgres
 * and PGlite drivers; drizzle-orm is pinned, and every checkout and cart test runs this). One is
 * built per driver: a node-postgres query cannot run on a PGlite connection. Only selects may be
 * asked for on a read handle (app.dbRead).
 */
export function prepareOnce<D extends Db | Tx, T extends object>(prepare: (db: D) => T): (db: D) => T {
  const byDriver = new Map<unknown, T>()
  return (given) => {
    const db = runsOn(given)
    const driver = db._.session.constructor
    let statement = byDriver.get(driver)
    if (statement === undefined) byDriver.set(driver, statement = prepare(db))
    const client = clientOf(db)
    if ((statement as unknown as OnClient).client === client) return statement
    if (!client || !('client' in statement)) throw new Error('prepareOnce: drizzle no longer keeps the connection where this expects it')
    return Object.create(statement, { client: { value: client } }) as T
  }
}

const dialect = new PgDialect()
/**
 * A raw statement (sql`...`) run as a named prepared statement. PostgreSQL plans an unnamed
 * statement on every run; a named one is parsed once per connection and, once a generic plan is
 * as good, no longer planned (pg_stat_statements under the checkout bursts: planning took as long
 * as executing). `name` stands for one statement text: a statement whose text varies (a fragment
 * chosen by an argument) takes a name per shape.
 */
export async function executeNamed<T extends Record<string, unknown>>(db: Db | Tx, name: string, query: SQL): Promise<T[]> {
  return prepareRows<T>(db, name, query).execute()
}

/**
 * A query (sql`...` or a query builder, with placeholders) prepared as `name`, built once, whose
 * rows come back as the driver parses them, keyed by their column names: no drizzle mapping
 * (timestamps and numerics stay text). For the hottest reads, whose columns are named for Node
 * (a listing page: 21 rows, where the mapping was 8% of the API's CPU, #29).
 */
export function prepareRows<T extends Record<string, unknown>>(db: Db | Tx, name: string, query: SQLWrapper) {
  const prepared = runsOn(db)._.session.prepareQuery(dialect.sqlToQuery(query.getSQL()), undefined, name, false)
  return { async execute(params?: Record<string, unknown>) { return (await prepared.execute(params) as { rows: T[] }).rows } }
}

export async function pingDb(db: Db) {
  await db.execute(sql`select 1`)
}

/** The PostgreSQL error under a failed query (drizzle wraps the driver's error in `cause`). */
export function pgError(err: unknown): { code: string; constraint?: string } | undefined {
  for (let e = err as { code?: unknown; constraint?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return { code: e.code, constraint: e.constraint }
  }
  return undefined
}

/** True when a query failed on a unique constraint (optionally, that one). */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const pg = pgError(err)
  return pg?.code === '23505' && (constraint === undefined || pg.constraint === constraint)
}

/** True when a query failed on a foreign key (a referenced row is missing, or still referenced). */
export const isForeignKeyViolation = (err: unknown) => pgError(err)?.code === '23503'

/** True when a query failed on a CHECK constraint. */
export const isCheckViolation = (err: unknown) => pgError(err)?.code === '23514'
