import { and, asc, eq, inArray, isNull, lt, lte, sql, type SQL } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { outbox } from '../db/schema/index.js'
import { arrayParam, executeNamed, prepareOnce, type Db, type Tx } from '../db/client.js'
import type { OutboxEvent, OutboxTopic, OutboxTopics } from './side-effects.js'
import { step } from './tracing.js'
import { failureText } from './log-errors.js'

// The transactional outbox: a side effect of a committed change (cart clear, cache
// invalidation, activity entry) is written as a row in the same transaction as the change, then
// handled after the commit, at once by the request that made it and again by the drain job for
// whatever failed or was cut short by a crash. Delivery is at least once, so every handler is
// idempotent; events of one key (a cart) are handled in the order they were written. Topics and
// their payloads are one typed map (OutboxTopics in src/side-effects.ts).

/** The event a handler runs: its id, its key, and which run this is (1 on its first claim, more on a retry). */
export interface OutboxEventRef { id: string; key: string | null; attempt: number }
export type OutboxHandler<T extends OutboxTopic> = (payload: OutboxTopics[T], event: OutboxEventRef) => Promise<void>
/** Writes events in the transaction of outbox.transaction that handed it out. */
export type Emit = (events: OutboxEvent[]) => Promise<void>
/** The one handler of each topic (of these topics). */
type Handlers<T extends OutboxTopic = OutboxTopic> = { [K in T]?: OutboxHandler<K> }
export interface RunResult { done: number; failed: number }
export interface TransactionOptions<R> {
  /** The tracing step around the transaction (e.g. 'checkout.transaction'). */
  span?: string
  /**
   * What comes between the commit and the events (counters, cache, fault points), given the
   * result. It may run the events itself with `runEvents` (in a tracing step of its own, or
   * before more work); else they run once it returns. When it throws they are left to the drain
   * job, as after a crash.
   */
  afterCommit?: (result: R, runEvents: () => Promise<RunResult>) => unknown
}

/** How long a claimed event is left to its claimer before another drainer may take it. */
const CLAIM_MS = 30_000
const BATCH = 100
const backoffMs = (attempts: number) => Math.min(1000 * 2 ** Math.min(attempts, 10), 300_000)

export function createOutbox(db: Db, log: FastifyBaseLogger) {
  const handlers: Handlers = {}

  function dispatch<T extends OutboxTopic>(topic: T, payload: OutboxTopics[T], event: OutboxEventRef) {
    const handler = handlers[topic]
    if (!handler) throw new Error(`no outbox handler for ${topic}`)
    return handler(payload, event)
  }

  // The claim (one statement per shape) and the mark, built once and prepared (db/client.ts
  // prepareOnce): every write with side effects runs both once.
  type ClaimShape = 'ids' | 'key' | 'all' | 'due'
  const prepareClaim = (shape: ClaimShape) => prepareOnce((on: Db) => {
    const due: SQL[] = [isNull(outbox.processedAt)]
    if (shape === 'ids') due.push(sql`${outbox.id} = any(${sql.placeholder('ids')}::uuid[])`)
    if (shape === 'key') due.push(eq(outbox.key, sql.placeholder('key')))
    if (shape === 'due') due.push(lte(outbox.availableAt, sql`now()`))
    const picked = on.select({ id: outbox.id }).from(outbox).where(and(...due)).orderBy(asc(outbox.createdAt)).limit(BATCH).for('update', { skipLocked: true })
    return on.update(outbox)
      .set({ attempts: sql`${outbox.attempts} + 1`, availableAt: sql`now() + make_interval(secs => ${CLAIM_MS / 1000})` })
      .where(inArray(outbox.id, picked)).returning().prepare(`outbox_claim_${shape}`)
  })
  const claimStatements = { ids: prepareClaim('ids'), key: prepareClaim('key'), all: prepareClaim('all'), due: prepareClaim('due') }
  const markDone = prepareOnce((on: Db) => on.update(outbox).set({ processedAt: sql`now()`, lastError: null })
    .where(sql`${outbox.id} = any(${sql.placeholder('ids')}::uuid[])`).prepare('outbox_mark_done'))

  /** Claims due events (optionally only these ids, or one key) so no other drainer runs them meanwhile. */
  async function claim(filter: { ids?: string[]; key?: string; all?: boolean }) {
    const shape: ClaimShape = filter.ids ? 'ids' : filter.key ? 'key' : filter.all ? 'all' : 'due'
    const rows = await claimStatements[shape](db).execute({ ids: filter.ids, key: filter.key })
    return rows.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
  }

  async function handle(rows: Awaited<ReturnType<typeof claim>>) {
    const done: string[] = []
    let failed = 0
    const blockedKeys = new Set<string>()
    try {
      await handleEach(rows, done, blockedKeys, () => { failed++ })
    } finally {
      // One statement marks every handled event (a checkout has five): each was its own pool
      // take and round trip. Cut short before it, they run again, as after any crash.
      if (done.length) await markDone(db).execute({ ids: done })
    }
    return { done: done.length, failed }
  }

  async function handleEach(rows: Awaited<ReturnType<typeof claim>>, done: string[], blockedKeys: Set<string>, fail: () => void) {
    for (const row of rows) {
      // A later event of a key whose earlier event failed waits for it.
      if (row.key && blockedKeys.has(row.key)) {
        await db.update(outbox).set({ availableAt: sql`now()` }).where(eq(outbox.id, row.id))
        continue
      }
      try {
        // The row as add() wrote it: its topic names its payload's type.
        const event = { topic: row.topic, payload: row.payload } as OutboxEvent
        await dispatch(event.topic, event.payload, { id: row.id, key: row.key, attempt: row.attempts })
        done.push(row.id)
      } catch (err) {
        fail()
        if (row.key) blockedKeys.add(row.key)
        const message = failureText(err)
        log.warn({ outboxId: row.id, topic: row.topic, attempts: row.attempts, err: message }, 'outbox event failed; will retry')
        await db.update(outbox).set({ lastError: message, availableAt: new Date(Date.now() + backoffMs(row.attempts)) })
          .where(eq(outbox.id, row.id)).catch(() => { /* the claim expires on its own */ })
      }
    }
  }

  /** Writes events in the caller's transaction; returns their ids for `runNow` (writers use `transaction`). */
  async function add(tx: Tx, events: OutboxEvent[]): Promise<string[]> {
    if (!events.length) return []
    // One prepared statement whatever the number of events (columns as arrays, unnested).
    const rows = await executeNamed<{ id: string }>(tx, 'outbox_add', sql`insert into ${outbox} (topic, key, payload)
      select * from unnest(${arrayParam(events.map((e) => e.topic), 'text')}, ${arrayParam(events.map((e) => e.key ?? null), 'text')}, ${arrayParam(events.map((e) => JSON.stringify(e.payload)), 'jsonb')})
      returning id`)
    return rows.map((r) => r.id)
  }

  /** Handles just-committed events now; what fails stays for the drain job. Never throws. */
  async function runNow(ids: string[]): Promise<RunResult> {
    if (!ids.length) return { done: 0, failed: 0 }
    try {
      return await handle(await claim({ ids }))
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'outbox not handled now; the drain job will')
      return { done: 0, failed: ids.length }
    }
  }

  return {
    /** Registers the one handler of a topic. */
    on<T extends OutboxTopic>(topic: T, handler: OutboxHandler<T>) {
      const ofTopic: Handlers<T> = handlers
      ofTopic[topic] = handler
    },

    add,
    runNow,

    /**
     * A change and its side effects, the way every writer does it: `work` runs in one transaction
     * and writes its events through `emit`, in that transaction; after the commit (and
     * `afterCommit`) they are handled at once, and what fails stays for the drain job. Returns
     * what `work` returned.
     */
    async transaction<R>(work: (tx: Tx, emit: Emit) => Promise<R>, options: TransactionOptions<R> = {}): Promise<R> {
      const ids: string[] = []
      const commit = () => db.transaction((tx) => work(tx, async (events) => { ids.push(...await add(tx, events)) }))
      const result = await (options.span ? step(options.span, commit) : commit())
      let ran = false
      const runEvents = () => { ran = true; return runNow(ids) }
      await options.afterCommit?.(result, runEvents)
      if (!ran) await runNow(ids)
      return result
    },

    /**
     * Handles what is due (the job), or everything pending of one key (a checkout settling its
     * cart first), or everything pending at all (`all`, for tests and shutdown).
     */
    async drain(filter: { key?: string; all?: boolean } = {}) {
      let done = 0
      let failed = 0
      for (;;) {
        const rows = await claim(filter)
        const result = await handle(rows)
        done += result.done
        failed += result.failed
        if (rows.length < BATCH || result.failed) break
      }
      return { done, failed }
    },

    /** Unhandled events (for readiness and tests). */
    async pending() {
      const [row] = await db.select({ n: sql<number>`count(*)::int` }).from(outbox).where(isNull(outbox.processedAt))
      return row!.n
    },

    /** Removes handled events older than `days`. */
    async purge(days = 7) {
      const gone = await db.delete(outbox).where(and(lt(outbox.processedAt, sql`now() - make_interval(days => ${days})`))).returning({ id: outbox.id })
      return { removed: gone.length }
    },
  }
}
export type Outbox = ReturnType<typeof createOutbox>
