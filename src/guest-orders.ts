import { and, eq, inArray, isNull } from 'drizzle-orm'
import { orders, returns } from '../db/schema/index.js'
import type { Db } from '../db/client.js'
import { createHmac } from 'node:crypto'
import { normalizeIP } from '@fastify/rate-limit'

/**
 * The client address an unpaid guest order counts against: an IPv4 address or an IPv6 /64 (as
 * the per-IP rate limits count), kept as an HMAC under the server's secret so the stored value
 * names no address.
 */
export const guestClientKeyer = (secret: string) => (ip: string) =>
  createHmac('sha256', secret).update(`guest-client:${normalizeIP(ip)}`).digest('base64url')

/**
 * Guest orders placed with this address become the account's, when the account has proved it
 * owns the address (verified email): called on verification and on every sign-in. Once: only
 * orders without a user are taken, so a second call, or a later owner of the address, takes
 * nothing already claimed. Typing an address at checkout never moves an order into an account.
 * Returns the guest asked for with the order token come along, in the same transaction.
 */
export async function claimGuestOrders(db: Db, user: { id: string; email: string; emailVerifiedAt: Date | null }) {
  if (!user.emailVerifiedAt) return { claimed: 0 }
  return db.transaction(async (tx) => {
    const claimed = await tx.update(orders).set({ userId: user.id, guestClient: null, updatedAt: new Date() })
      .where(and(isNull(orders.userId), eq(orders.guestEmail, user.email))).returning({ id: orders.id })
    if (claimed.length) {
      await tx.update(returns).set({ userId: user.id, updatedAt: new Date() })
        .where(and(isNull(returns.userId), inArray(returns.orderId, claimed.map((o) => o.id))))
    }
    return { claimed: claimed.length }
  })
}
