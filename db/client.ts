import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { sql } from 'drizzle-orm'
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
}

export async function openDb(opts: OpenDbOptions): Promise<DbHandle> {
  if (!opts.url && !opts.pgliteDataDir.startsWith('memory://')) {
    // The embedded directory: through the API that serves it, or opened here and locked.
    const holder = holderOf(opts.pgliteDataDir)
    if (holder?.port && opts.serveEmbeddedOn === undefined) {
      const handle = await openDb({ ...opts, url: embeddedUrl(holder.port), poolMax: Math.min(opts.poolMax, 4) })
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
    const pool = new pg.Pool({ connectionString: opts.url, max: opts.poolMax, connectionTimeoutMillis: 5000 })
    // Without a listener, pg re-throws an idle client's error and the process dies; the pool
    // drops that client and the next query opens a new connection.
    pool.on('error', (err) => opts.onIdleError?.(err))
    const db = drizzlePg({ client: pool, schema })
    const u = new URL(opts.url)
    return {
      db,
      kind: 'postgres',
      location: `${u.hostname}:${u.port || 5432}${u.pathname}`,
      async migrate() {
        const client = await pool.connect()
        try {
          await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_ID])
          await migratePg(drizzlePg({ client, schema }), { migrationsFolder })
        } finally {
          await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]).catch(() => {})
          client.release()
        }
      },
      close: () => pool.end(),
    }
  }
  return openPglite(opts)
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
    migrate: () => migratePglite(db as never, { migrationsFolder }),
    async close() {
      await served?.stop()
      await client.close()
      lock?.release()
    },
  }
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
