import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres'
import { withReplicas } from 'drizzle-orm/pg-core'
import pg from 'pg'
import { postgresLocation, type Db } from './client.js'
import * as schema from './schema/index.js'

// The read handle for reads that tolerate replication lag (catalog lists and detail for
// customers, the category tree, analytics). drizzle's withReplicas sends its selects to the
// replicas and anything else (writes, transactions) to the primary. Below it, one pg client
// stands for all the replicas and picks one in use per query. A replica is in use once a probe
// finds it answering and at most maxLagMs behind the primary; a replica that fails to connect, or
// falls behind while a write waits for it (replicasCaughtUp), is out of use for downMs and then
// probed again. The read that failed runs once more on the primary, so a dead replica costs one
// slow query, never an error. A replica in use is also checked every maxLagMs, whether or not
// anything is written through this API (another service, a script, a replica whose replay
// stalls): one that has not replayed the primary's position within maxLagMs is taken out, so no
// read is served by a replica much more than twice maxLagMs behind.

/** Where a read went: a replica, or the primary because the replica failed or none was up. */
export type ReplicaReadResult = 'replica' | 'fallback-error' | 'fallback-down'

export interface ReplicaOptions {
  urls: string[]
  poolMax: number
  downMs: number
  /** How far behind the primary a replica may be when a write waits for it, or when it comes back after being down. */
  maxLagMs: number
  onRead?: (result: ReplicaReadResult) => void
  /** A replica failed to connect (marked down) or answered again after being down. */
  onHealth?: (event: { location: string; up: boolean; err?: string }) => void
}

export interface ReadHandle {
  db: Db
  close(): Promise<void>
}

// Not connecting, gone, or not (yet) holding what the query needs: the replica is no use now.
const DOWN_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE',
  '57P01', '57P02', '57P03', '53300', '3D000'])
// This query only: cancelled by a recovery conflict or the statement timeout, or the replica has
// not replayed a migration yet. The primary answers it; the replica stays in use.
const RETRY_CODES = new Set(['40001', '57014', '42P01', '42703'])
const CONNECTION_MESSAGES = /timeout exceeded when trying to connect|Connection terminated|connection error|not queryable|Query read timeout/i

function classify(err: unknown): 'down' | 'retry' | undefined {
  const { code, message } = err as { code?: string; message?: string }
  if (code && (DOWN_CODES.has(code) || code.startsWith('08'))) return 'down'
  if (code && RETRY_CODES.has(code)) return 'retry'
  if (message && CONNECTION_MESSAGES.test(message)) return 'down'
  return undefined
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const CAUGHT_UP = new WeakMap<object, () => Promise<void>>()

/**
 * Waits until every replica in use behind this read handle has replayed all commits so far; a
 * no-op on the primary. Catalog writes call it before they bump the cache version, so no cache
 * entry of the new version is filled from a replica that has not seen the write: a replica that
 * does not catch up within maxLagMs is taken out of use (its reads go to the primary).
 */
export function replicasCaughtUp(db: Db): Promise<void> {
  return CAUGHT_UP.get(db)?.() ?? Promise.resolve()
}

// Where the primary's next record goes: every commit so far ends at or before it. A replay
// position is the end of the last record replayed, so a replica at or past it has every commit.
// - Right at the start of a page the insert position lies past the page's header (24 bytes, 40 at
//   a segment's start), where no record ends: the page's start is the position then. (Going back a
//   fixed 40 bytes instead lands on the start of a commit record of 40 bytes or fewer, and a
//   replica that stopped just before the commit would count as caught up.)
// - Replicas are sent only WAL the primary has flushed, and records after the last commit (a page
//   pruned by a read, a transaction still open) wait for the next commit to be flushed: on a quiet
//   primary a replica could never reach the position. So the statement takes a transaction id,
//   and its own commit, after the position, has the WAL writer flush everything up to it within
//   wal_writer_delay (200 ms by default), whatever synchronous_commit says.
// (The transaction id is an output column: in an unused column of the subquery, PostgreSQL would
// drop the call, as EXPLAIN VERBOSE shows.)
const COMMITTED_POSITION = `select (l - case when off % seg = 40 then 40 when off % blk = 24 then 24 else 0 end)::text as lsn, pg_current_xact_id()::text as flushed_by
  from (select l, l - '0/0'::pg_lsn as off, current_setting('wal_block_size')::int as blk, pg_size_bytes(current_setting('wal_segment_size')) as seg
        from pg_current_wal_insert_lsn() as l) as p`

/** The primary's WAL position that covers every commit so far. */
export async function committedPosition(primaryPool: pg.Pool): Promise<string> {
  const { rows } = await primaryPool.query<{ lsn: string }>(COMMITTED_POSITION)
  return rows[0]!.lsn
}

export function openReadReplicas(primary: Db, opts: ReplicaOptions): ReadHandle {
  const primaryPool = (primary as unknown as { $client: pg.Pool }).$client
  const replicas = opts.urls.map((url) => {
    // Small pools that give up quickly (a replica cut off by the network times out on the client
    // side): the primary is always there to answer instead.
    const pool = new pg.Pool({ connectionString: url, max: opts.poolMax, connectionTimeoutMillis: 2000, statement_timeout: 15_000, query_timeout: 16_000, idleTimeoutMillis: 30_000 })
    // Not used until a probe finds it caught up with the primary.
    const replica = { location: postgresLocation(url), pool, up: false, retryAt: 0, probing: false, reported: false }
    pool.on('error', (err) => markDown(replica, err))
    return replica
  })
  type Replica = (typeof replicas)[number]
  let next = 0
  // Counts catalog writes that wait for the replicas: a probe that overlapped one checks again.
  let writes = 0

  function markDown(replica: Replica, err: Error) {
    replica.retryAt = Date.now() + opts.downMs
    if (replica.up || !replica.reported) opts.onHealth?.({ location: replica.location, up: false, err: err.message })
    replica.up = false
    replica.reported = true
  }

  const primaryPosition = () => committedPosition(primaryPool)

  /** True once the replica has replayed past `lsn` (a replay position is a record's end), false after maxLagMs. */
  async function replayed(replica: Replica, lsn: string): Promise<boolean> {
    const deadline = Date.now() + opts.maxLagMs
    for (;;) {
      const { rows } = await replica.pool.query<{ done: boolean }>('select not pg_is_in_recovery() or pg_last_wal_replay_lsn() >= $1::pg_lsn as done', [lsn])
      if (rows[0]!.done) return true
      if (Date.now() >= deadline) return false
      await sleep(10)
    }
  }

  /** A replica comes (back) into use only when it answers and is not behind. */
  async function probe(replica: Replica) {
    replica.probing = true
    try {
      for (let seen = -1; seen !== writes;) {
        seen = writes
        if (!(await replayed(replica, await primaryPosition()))) throw new Error(`more than ${opts.maxLagMs} ms behind the primary`)
      }
      replica.up = true
      replica.reported = false
      opts.onHealth?.({ location: replica.location, up: true })
    } catch (err) {
      markDown(replica, err as Error)
    } finally {
      replica.probing = false
    }
  }

  /** The next replica in turn that is in use; one whose pause is over is probed meanwhile. */
  function pick(): Replica | undefined {
    const now = Date.now()
    for (const replica of replicas) if (!replica.up && !replica.probing && replica.retryAt <= now) void probe(replica)
    for (let i = 0; i < replicas.length; i++) {
      const replica = replicas[(next + i) % replicas.length]!
      if (replica.up) {
        next = (next + i + 1) % replicas.length
        return replica
      }
    }
    return undefined
  }

  /** Takes out of use each replica in use that does not replay the primary's position now within maxLagMs. */
  async function enforceLag() {
    const inUse = replicas.filter((r) => r.up)
    if (!inUse.length) return
    let lsn: string
    try {
      lsn = await primaryPosition()
    } catch (err) {
      // The write committed, but which replicas have it is unknown: none is used until probed.
      for (const replica of inUse) markDown(replica, err as Error)
      return
    }
    await Promise.all(inUse.map(async (replica) => {
      try {
        if (!(await replayed(replica, lsn))) markDown(replica, new Error(`more than ${opts.maxLagMs} ms behind the primary`))
      } catch (err) {
        markDown(replica, err as Error)
      }
    }))
  }

  async function caughtUp() {
    writes++
    await enforceLag()
  }

  // The lag bound when nothing is written here: one check at a time, every maxLagMs.
  let checking: Promise<void> | undefined
  const lagTimer = setInterval(() => {
    checking ??= enforceLag().finally(() => { checking = undefined })
  }, opts.maxLagMs)
  lagTimer.unref()

  // Stands in for a pg.Pool under drizzle: its queries (plain and prepared) all go through query().
  const router = {
    async query(config: unknown, values?: unknown) {
      const replica = pick()
      if (!replica) {
        opts.onRead?.('fallback-down')
        return primaryPool.query(config as pg.QueryConfig, values as unknown[])
      }
      try {
        const result = await replica.pool.query(config as pg.QueryConfig, values as unknown[])
        opts.onRead?.('replica')
        return result
      } catch (err) {
        const kind = classify(err)
        if (!kind) throw err
        if (kind === 'down') markDown(replica, err as Error)
        opts.onRead?.('fallback-error')
        return primaryPool.query(config as pg.QueryConfig, values as unknown[])
      }
    },
  }
  const routed = drizzlePg({ client: router as unknown as pg.Pool, schema })
  const db = withReplicas(primary, [routed])
  // withReplicas sends raw SQL to the primary; through this handle it is a read (analytics).
  db.execute = routed.execute.bind(routed)
  CAUGHT_UP.set(db, caughtUp)
  for (const replica of replicas) void probe(replica)
  return {
    db,
    async close() {
      clearInterval(lagTimer)
      await checking
      while (replicas.some((r) => r.probing)) await sleep(10)
      await Promise.all(replicas.map((r) => r.pool.end()))
    },
  }
}
