import { and, eq, gt, isNull, lt, or, isNotNull } from 'drizzle-orm'
import { orderAccessTokens, orders } from '../../db/schema/index.js'
import type { Db, Tx } from '../../db/client.js'
import { NotFound } from '../../src/errors.js'
import { randomToken, sha256 } from '../../src/sessions.js'

// Order access tokens: the guest's capability for one order (read, pay, confirm, cancel while
// unpaid). A 256-bit random secret, shown once (checkout answer) or mailed (order mail, lookup),
// stored only as its SHA-256, scoped to one order id, revocable and expiring after
// ORDER_ACCESS_TOKEN_TTL_HOURS. Every way a token can fail (unknown, another order's, revoked,
// expired) answers the same 404 as an order that does not exist.

export function createOrderAccess({ db, ttlHours }: { db: Db; ttlHours: number }) {
  const live = (hash: string) => and(eq(orderAccessTokens.tokenHash, hash), isNull(orderAccessTokens.revokedAt), gt(orderAccessTokens.expiresAt, new Date()))

  return {
    /** A fresh token for the order (in `tx` when given, so it commits with the order). */
    async issue(orderId: string, tx: Db | Tx = db) {
      const token = randomToken()
      const expiresAt = new Date(Date.now() + ttlHours * 3_600_000)
      await tx.insert(orderAccessTokens).values({ orderId, tokenHash: sha256(token), expiresAt })
      return { token, expiresAt }
    },

    /** The order this token opens, when it is `orderId`'s and alive; else 404 as if the order did not exist. */
    async resolve(orderId: string, token: string | undefined) {
      if (!token) throw new NotFound('order', orderId)
      const [row] = await db.select({ order: orders }).from(orderAccessTokens).innerJoin(orders, eq(orders.id, orderAccessTokens.orderId))
        .where(and(live(sha256(token)), eq(orderAccessTokens.orderId, orderId)))
      if (!row) throw new NotFound('order', orderId)
      return row.order
    },

    /** Revokes this token (others of the same order stay); 404 when it opens nothing. */
    async revoke(orderId: string, token: string) {
      const revoked = await db.update(orderAccessTokens).set({ revokedAt: new Date() })
        .where(and(live(sha256(token)), eq(orderAccessTokens.orderId, orderId))).returning({ id: orderAccessTokens.id })
      if (!revoked.length) throw new NotFound('order', orderId)
    },

    /** Deletes tokens expired or revoked more than a day ago (a job). */
    async purge(now = new Date()) {
      const dayAgo = new Date(now.getTime() - 86_400_000)
      const gone = await db.delete(orderAccessTokens).where(or(lt(orderAccessTokens.expiresAt, dayAgo), and(isNotNull(orderAccessTokens.revokedAt), lt(orderAccessTokens.revokedAt, dayAgo)))).returning({ id: orderAccessTokens.id })
      return { removed: gone.length }
    },
  }
}
export type OrderAccess = ReturnType<typeof createOrderAccess>
