import { createHash } from 'node:crypto'
import { and, eq, lt, sql } from 'drizzle-orm'
import { idempotencyKeys } from '../db/schema/index.js'
import type { Db } from '../db/client.js'
import { BadRequest, Conflict, Unprocessable } from './errors.js'

// Idempotency-Key with Stripe's semantics: the first response (status and body) is stored and
// replayed for 24 hours; the same key with a different request is a 422; a retry that arrives
// while the first is still running waits for it, and answers 409 if it takes too long. A failed
// first attempt stores nothing, so a retry runs again.

export const IDEMPOTENCY_TTL_HOURS = 24
const WAIT_MS = 15_000
const KEY_PATTERN = /^[A-Za-z0-9._:-]{8,255}$/

export interface StoredResponse { status: number; body: unknown }

const hashRequest = (request: unknown) => createHash('sha256').update(JSON.stringify(request ?? null)).digest('hex')

export function createIdempotency(db: Db) {
  const fresh = sql`now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})`

  async function claim(userId: string, scope: string, key: string, requestHash: string) {
    // An expired record of the same key no longer counts.
    await db.delete(idempotencyKeys).where(and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key), lt(idempotencyKeys.createdAt, fresh)))
    const inserted = await db.insert(idempotencyKeys).values({ userId, scope, key, requestHash }).onConflictDoNothing().returning({ key: idempotencyKeys.key })
    return inserted.length === 1
  }

  return {
    /** Runs `work` once per (user, scope, key); later calls get the stored response. */
    async run(input: { userId: string; scope: string; key: string | undefined; request: unknown }, work: () => Promise<StoredResponse>): Promise<StoredResponse & { replayed: boolean }> {
      if (input.key === undefined) return { ...(await work()), replayed: false }
      if (!KEY_PATTERN.test(input.key)) throw new BadRequest('Idempotency-Key must be 8 to 255 letters, digits or ._:-', 'invalid-idempotency-key')
      const { userId, scope, key } = input
      const requestHash = hashRequest(input.request)
      const where = and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.scope, scope), eq(idempotencyKeys.key, key))

      const execute = async () => {
        let response: StoredResponse
        try {
          response = await work()
        } catch (err) {
          await db.delete(idempotencyKeys).where(where)
          throw err
        }
        await db.update(idempotencyKeys).set({ responseStatus: response.status, responseBody: response.body as object, completedAt: new Date() }).where(where)
        return { ...response, replayed: false }
      }

      const deadline = Date.now() + WAIT_MS
      for (;;) {
        if (await claim(userId, scope, key, requestHash)) return execute()
        const [row] = await db.select().from(idempotencyKeys).where(where)
        // Gone: the first attempt failed and let go of the key; try to claim it again.
        if (!row) continue
        if (row.requestHash !== requestHash) throw new Unprocessable('This Idempotency-Key was used with a different request', 'idempotency-key-reused')
        if (row.completedAt && row.responseStatus !== null) return { status: row.responseStatus, body: row.responseBody, replayed: true }
        if (Date.now() > deadline) throw new Conflict('A request with this Idempotency-Key is still being processed; retry later', 'idempotency-in-progress')
        await new Promise((r) => setTimeout(r, 50))
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
