import { createHash, randomUUID } from 'node:crypto'
import { and, eq, isNull, lt, sql } from 'drizzle-orm'
import type { AnyPgColumn } from 'drizzle-orm/pg-core'
import { idempotencyKeys } from '../db/schema/index.js'
import { prepareOnce, type Db, type Tx } from '../db/client.js'
import { BadRequest, Conflict, Unprocessable } from './errors.js'
import { IDEMPOTENCY_KEY_PATTERN } from './schema-types.js'

// Idempotency-Key with Stripe's semantics: the first response (status and body) is stored and
// replayed for 24 hours; the same key with a different request is a 422.
//
// Recovery points: the attempt holding a key holds a lease (renewed while it runs). Its work
// stores the response in the same transaction as the change it makes (`complete`), so a failure
// after that commit replays the response instead of running again. Work that spans a remote call
// records what it made first (`checkpoint`, e.g. the payment id) so that, when the attempt dies
// (crash, timeout), the retry takes the key over once the lease has lapsed and resumes from there.
// A retry that arrives while a live attempt runs waits for it, and answers 409 if it takes too long.
// A failed attempt that recorded nothing lets go of the key, so a retry runs afresh.

export const IDEMPOTENCY_TTL_HOURS = 24
const WAIT_MS = 15_000
/** A dead attempt's key is free again this long after its last renewal. */
export const LEASE_MS = 8_000
const KEY_PATTERN = new RegExp(IDEMPOTENCY_KEY_PATTERN)

export interface StoredResponse { status: number; body: unknown }

export interface IdempotentAttempt {
  /** What an earlier attempt of this key recorded before it died: resume from it. */
  resumeFrom: string | null
  /** Records, in the caller's transaction, what this attempt made. */
  checkpoint(tx: Tx, resourceId: string): Promise<void>
  /** Stores the response in the caller's transaction, so it commits with the work or not at all. */
  complete(tx: Tx, response: StoredResponse): Promise<void>
}

/** The attempt lost its key to another (its lease lapsed); its transaction must roll back. */
class LeaseLost extends Error {}

const hashRequest = (request: unknown) => createHash('sha256').update(JSON.stringify(request ?? null)).digest('hex')
const NO_KEY: IdempotentAttempt = { resumeFrom: null, checkpoint: async () => {}, complete: async () => {} }

export function createIdempotency(db: Db) {
  const fresh = sql`now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})`
  const leaseEnd = sql`now() + make_interval(secs => ${LEASE_MS / 1000})`

  // The claim and the completion run on every checkout and payment with a key: built once and
  // prepared (db/client.ts prepareOnce).
  const claimStatement = prepareOnce((on: Db) => {
    // An expired record of the same key no longer counts: it is replaced whole, as by a new
    // insert, in the same statement (a delete before the insert was a round trip more on every
    // checkout and payment).
    const expired = sql`${idempotencyKeys.createdAt} < ${fresh}`
    const replacedIfExpired = (column: AnyPgColumn) => sql`case when ${expired} then excluded.${sql.identifier(column.name)} else ${column} end`
    return on.insert(idempotencyKeys).values({
      userId: sql.placeholder('userId'), scope: sql.placeholder('scope'), key: sql.placeholder('key'),
      requestHash: sql.placeholder('requestHash'), leaseToken: sql.placeholder('leaseToken'), lockedUntil: leaseEnd,
    }).onConflictDoUpdate({
      target: [idempotencyKeys.userId, idempotencyKeys.scope, idempotencyKeys.key],
      set: {
        requestHash: replacedIfExpired(idempotencyKeys.requestHash), responseStatus: replacedIfExpired(idempotencyKeys.responseStatus),
        responseBody: replacedIfExpired(idempotencyKeys.responseBody), createdAt: replacedIfExpired(idempotencyKeys.createdAt),
        completedAt: replacedIfExpired(idempotencyKeys.completedAt), resourceId: replacedIfExpired(idempotencyKeys.resourceId),
        leaseToken: sql`excluded.${sql.identifier(idempotencyKeys.leaseToken.name)}`, lockedUntil: leaseEnd,
      },
      setWhere: sql`${expired} or (${idempotencyKeys.completedAt} is null and ${idempotencyKeys.requestHash} = excluded.${sql.identifier(idempotencyKeys.requestHash.name)}
        and (${idempotencyKeys.lockedUntil} is null or ${idempotencyKeys.lockedUntil} < now()))`,
    }).returning({ resourceId: idempotencyKeys.resourceId }).prepare('idempotency_claim')
  })
  const completeStatement = prepareOnce((tx: Tx) => tx.update(idempotencyKeys)
    .set({ responseStatus: sql`${sql.placeholder('status')}::int`, responseBody: sql`${sql.placeholder('body')}::jsonb`, completedAt: sql`now()` })
    .where(and(eq(idempotencyKeys.userId, sql.placeholder('userId')), eq(idempotencyKeys.scope, sql.placeholder('scope')), eq(idempotencyKeys.key, sql.placeholder('key')),
      eq(idempotencyKeys.leaseToken, sql.placeholder('leaseToken')), isNull(idempotencyKeys.completedAt)))
    .returning({ key: idempotencyKeys.key }).prepare('idempotency_complete'))

  /** Takes the key: a new record, or one whose attempt died (lease lapsed, no response). */
  async function claim(userId: string, scope: string, key: string, requestHash: string) {
    const leaseToken = randomUUID()
    const [claimed] = await claimStatement(db).execute({ userId, scope, key, requestHash, leaseToken })
    return claimed ? { leaseToken, resumeFrom: claimed.resourceId } : null
  }

  return {
    /** Runs `work` once per (user, scope, key); later calls get the stored response. */
    async run(input: { userId: string; scope: string; key: string | undefined; request: unknown }, work: (attempt: IdempotentAttempt) => Promise<StoredResponse>): Promise<StoredResponse & { replayed: boolean }> {
      if (input.key === undefined) return { ...(await work(NO_KEY)), replayed: false }
      if (!KEY_PATTERN.test(input.key)) throw new BadRequest('Idempotency-Key must be 8 to 255 letters, digits or ._:-', 'invalid-idempotency-key')
      const { userId, scope, key } = input
      const requestHash = hashRequest(input.request)
      const record = and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key))

      const execute = async (leaseToken: string, resumeFrom: string | null) => {
        const mine = and(record, eq(idempotencyKeys.leaseToken, leaseToken))
        const renew = setInterval(() => {
          db.update(idempotencyKeys).set({ lockedUntil: leaseEnd }).where(and(mine, isNull(idempotencyKeys.completedAt))).catch(() => { /* the lease lapses; a retry takes over */ })
        }, LEASE_MS / 3)
        renew.unref()
        let completed = false
        let checkpointed = resumeFrom !== null
        const attempt: IdempotentAttempt = {
          resumeFrom,
          async checkpoint(tx, resourceId) {
            const rows = await tx.update(idempotencyKeys).set({ resourceId }).where(and(mine, isNull(idempotencyKeys.completedAt))).returning({ key: idempotencyKeys.key })
            if (!rows.length) throw new LeaseLost()
            checkpointed = true
          },
          async complete(tx, response) {
            const rows = await completeStatement(tx).execute({ status: response.status, body: JSON.stringify(response.body), userId, scope, key, leaseToken })
            if (!rows.length) throw new LeaseLost()
            completed = true
          },
        }
        try {
          const response = await work(attempt)
          if (!completed) await attempt.complete(db as unknown as Tx, response)
          return { ...response, replayed: false }
        } catch (err) {
          if (err instanceof LeaseLost) return null
          // Nothing recorded: let the key go, a retry runs afresh. Something recorded: keep it and
          // end the lease, so the retry resumes from it at once.
          if (checkpointed) await db.update(idempotencyKeys).set({ lockedUntil: null }).where(and(mine, isNull(idempotencyKeys.completedAt))).catch(() => {})
          else await db.delete(idempotencyKeys).where(and(mine, isNull(idempotencyKeys.completedAt))).catch(() => {})
          throw err
        } finally {
          clearInterval(renew)
        }
      }

      const deadline = Date.now() + WAIT_MS
      for (;;) {
        const claimed = await claim(userId, scope, key, requestHash)
        if (claimed) {
          const result = await execute(claimed.leaseToken, claimed.resumeFrom)
          if (result) return result
          continue
        }
        const [row] = await db.select().from(idempotencyKeys).where(record)
        // Gone: the first attempt failed and let go of the key; try to claim it again.
        if (!row) continue
        if (row.requestHash !== requestHash) throw new Unprocessable('This Idempotency-Key was used with a different request', 'idempotency-key-reused')
        if (row.completedAt && row.responseStatus !== null) return { status: row.responseStatus, body: row.responseBody, replayed: true }
        if (Date.now() > deadline) throw new Conflict('A request with this Idempotency-Key is still being processed; retry later', 'idempotency-in-progress')
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 50))
      }
    },

    /** Deletes records past their 24 hours. */
    async purgeExpired() {
      const deleted = await db.delete(idempotencyKeys).where(lt(idempotencyKeys.createdAt, fresh)).returning({ key: idempotencyKeys.key })
      return { removed: deleted.length }
    },
  }
}
export type Idempotency = ReturnType<typeof createIdempotency>
