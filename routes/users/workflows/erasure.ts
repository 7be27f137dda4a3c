import { and, eq, inArray, or, sql } from 'drizzle-orm'
import { Cluster } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import type { Model } from 'mongoose'
import {
  addresses, couponRedemptions, erasureRequests, idempotencyKeys, orderAccessTokens, orders, outbox as outboxTable, recoveryCodes, refunds,
  returnItems, returns, sentMail, userIdentities, users, webhookDeliveries,
} from '../../../db/schema/index.js'
import type { Db, Tx } from '../../../db/client.js'
import type { ActivityDoc } from '../../../db/models/activity.js'
import type { CartDoc } from '../../../db/models/cart.js'
import type { WishlistItemDoc } from '../../../db/models/wishlist.js'
import type { AccountMail } from '../../../src/account-mail.js'
import { accountStamp } from '../../../src/account-mail.js'
import { Conflict, NotFound } from '../../../src/errors.js'
import { claimLeased } from '../../../src/leases.js'
import { failureText } from '../../../src/log-errors.js'
import type { OneTimeTokens } from '../../../src/one-time-tokens.js'
import type { Outbox } from '../../../src/outbox.js'
import type { RedisClient } from '../../../src/redis-client.js'
import type { SessionStore } from '../../../src/sessions.js'
import { WEBHOOK } from '../../../src/side-effects.js'
import type { ReviewService } from '../../reviews/service.js'
import type { UploadService } from '../../uploads/service.js'
import type { DataExportService } from '../data-export.js'

// "Erase me": a customer asks (POST /users/me/erasure), confirms with the mailed token (POST
// /users/me/erasure/confirm), or an admin asks on their behalf (POST /users/{userId}/erasure);
// the worker then runs the steps below, in this order, recording in erasure_requests.step the
// last one done. Each step is idempotent, so a worker killed anywhere is taken over (after the
// lease) by the next run, which repeats the step it was in and goes on: the end state is that of
// one clean run (test/erasure-crash.test.ts kills it mid-way).
//
// What stays: orders, their items, payments, refunds, returns and coupon redemptions, which the
// shop must keep for its accounts. They move to a tombstone account (a new id, fixed when the
// erasure was asked, named 'Erased customer', with an erased-<id>@erased.invalid address and the
// person's sign-up date, so figures per customer and new customers per day do not change), and
// their personal data (shipping address but its country, guest email, return notes) is replaced.
// The old account id is gone from every store; nothing links the tombstone to the person.
// Reviews are deleted, not anonymised: their text is the person's own words and may name them,
// and the shop needs none of it for its accounts.

type RequestRow = typeof erasureRequests.$inferSelect
type UserRow = typeof users.$inferSelect

export const ERASURE_STEPS = ['sessions', 'exports', 'mongo', 'uploads', 'reviews', 'account-data', 'account'] as const
export type ErasureStep = typeof ERASURE_STEPS[number]

const OPEN_RETURN = ['requested', 'approved', 'received'] as const
export const ERASED_NAME = 'Erased customer'
export const erasedEmail = (tombstoneId: string) => `erased-${tombstoneId}@erased.invalid`

export interface ErasureDeps {
  db: Db
  redis: RedisClient
  redisKeyPrefix: string
  sessions: SessionStore
  outbox: Outbox
  tokens: OneTimeTokens
  accountMail: AccountMail
  uploads: UploadService
  reviews: ReviewService
  exports: DataExportService
  carts: Model<CartDoc>
  wishlists: Model<WishlistItemDoc>
  activity: Model<ActivityDoc>
  leaseSeconds: number
  log: FastifyBaseLogger
  /** Called after each step is recorded (tests watch progress). */
  onStep?: (requestId: string, step: ErasureStep) => void
}

export function toErasureRequest(row: RequestRow) {
  return { id: row.id, status: row.status, step: row.step, createdAt: row.createdAt.toISOString(), completedAt: row.completedAt?.toISOString() ?? null }
}

/** Deletes the keys under `prefix` whose name or value (string or hash) contains one of `needles`. */
async function scrubRedis(redis: RedisClient, prefix: string, needles: string[]) {
  const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis]
  const mentions = (text: string | null | undefined) => !!text && needles.some((n) => text.includes(n))
  let removed = 0
  for (const node of nodes) {
    let cursor = '0'
    do {
      // SCAN's pattern is not prefixed by the client: it matches full key names.
      const [next, found] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const full of found) {
        const key = full.slice(prefix.length)
        let hit = mentions(key)
        if (!hit) {
          const type = await redis.type(key)
          if (type === 'string') hit = mentions(await redis.get(key))
          else if (type === 'hash') hit = Object.values(await redis.hgetall(key)).some(mentions)
          else if (type === 'set') hit = (await redis.smembers(key)).some(mentions)
        }
        if (hit) { await redis.del(key); removed++ }
      }
    } while (cursor !== '0')
  }
  return removed
}

export function createErasureWorkflow(deps: ErasureDeps) {
  const { db, outbox } = deps

  /** 409 while the person owes or is owed something in flight: an unpaid order, an open return. */
  async function assertErasable(executor: Db | Tx, user: UserRow) {
    if (user.role === 'admin') throw new Conflict('An admin account cannot be erased; change its role to customer first', 'erasure-admin-account')
    const [unpaid] = await executor.select({ id: orders.id }).from(orders)
      .where(and(or(eq(orders.userId, user.id), eq(orders.guestEmail, user.email)), eq(orders.status, 'pending_payment'))).limit(1)
    if (unpaid) throw new Conflict(`Order ${unpaid.id} is not paid yet; pay or cancel it first`, 'erasure-unpaid-order')
    const [open] = await executor.select({ id: returns.id }).from(returns)
      .where(and(eq(returns.userId, user.id), inArray(returns.status, [...OPEN_RETURN]))).limit(1)
    if (open) throw new Conflict(`Return ${open.id} is still open; it must be refunded or rejected first`, 'erasure-open-return')
  }

  async function requireUser(userId: string) {
    const [user] = await db.select().from(users).where(eq(users.id, userId))
    if (!user) throw new NotFound('user', userId)
    return user
  }

  /**
   * Starts the erasure (the row the worker runs), once: a second call while one runs answers
   * that one. The account is deactivated in the same transaction, so nothing new is added to it.
   */
  async function start(userId: string, requestedBy: string | null) {
    const row = await db.transaction(async (tx) => {
      const [user] = await tx.select().from(users).where(eq(users.id, userId)).for('update')
      if (!user) throw new NotFound('user', userId)
      const [running] = await tx.select().from(erasureRequests).where(and(eq(erasureRequests.userId, userId), eq(erasureRequests.status, 'running')))
      if (running) return running
      await assertErasable(tx, user)
      await tx.update(users).set({ isActive: false, updatedAt: new Date() }).where(eq(users.id, userId))
      const [created] = await tx.insert(erasureRequests).values({ userId, requestedBy }).returning()
      return created!
    })
    // At once rather than at the first step: the person's tokens stop now.
    await deps.sessions.revokeAll(userId).catch(() => { /* the first step does it again */ })
    return { ...toErasureRequest(row), tombstoneId: row.tombstoneId }
  }

  // ---- the steps, in order; each idempotent ----

  const steps: Record<ErasureStep, (req: RequestRow, user: UserRow) => Promise<unknown>> = {
    // Redis: sessions and refresh tokens, and every other key that names the person (rate-limit
    // counters, one-time tokens, two-factor setup, cached answers that show them).
    async sessions(_req, user) {
      await deps.sessions.revokeAll(user.id)
      return scrubRedis(deps.redis, deps.redisKeyPrefix, [user.id, user.email])
    },
    // Data exports: archives and rows.
    exports: (_req, user) => deps.exports.removeAllOf(user.id),
    // MongoDB: the cart (and guest carts with their address), wishlist and activity. Admins'
    // audit entries about the person stay, naming the tombstone instead.
    async mongo(req, user) {
      await deps.carts.deleteMany({ owner: `user:${user.id}` })
      await deps.carts.deleteMany({ kind: 'guest', email: user.email })
      await deps.wishlists.deleteMany({ userId: user.id })
      await deps.activity.deleteMany({ userId: user.id })
      await deps.activity.updateMany({ 'data.params.userId': user.id }, { $set: { 'data.params.userId': req.tombstoneId } })
    },
    uploads: (_req, user) => deps.uploads.removeAllOf(user.id),
    reviews: (_req, user) => deps.reviews.removeAllOf(user.id),
    // Sign-in links, recovery codes and addresses: one transaction.
    'account-data': (_req, user) => db.transaction(async (tx) => {
      await tx.delete(userIdentities).where(eq(userIdentities.userId, user.id))
      await tx.delete(recoveryCodes).where(eq(recoveryCodes.userId, user.id))
      await tx.delete(addresses).where(eq(addresses.userId, user.id))
    }),
    // The kept records move to the tombstone with their personal data replaced, the account row
    // goes, the request is completed and subscribers are told: one transaction, so a crash
    // before its commit leaves the step to do again, and after it nothing.
    async account(req, user) {
      // Entries written since the mongo step (the admin's audit of this very request is buffered).
      await deps.activity.updateMany({ 'data.params.userId': user.id }, { $set: { 'data.params.userId': req.tombstoneId } })
      await deps.activity.deleteMany({ userId: user.id })
      const tombstone = req.tombstoneId
      const placeholder = erasedEmail(tombstone)
      await outbox.transaction(async (tx, emit) => {
        await tx.insert(users).values({
          id: tombstone, email: placeholder, name: ERASED_NAME, role: 'customer', isActive: false, passwordHash: null, createdAt: user.createdAt,
        }).onConflictDoNothing()
        const theirs = or(eq(orders.userId, user.id), eq(orders.guestEmail, user.email))
        const orderIds = (await tx.select({ id: orders.id }).from(orders).where(theirs)).map((o) => o.id)
        if (orderIds.length) {
          await tx.update(orders).set({
            userId: tombstone,
            guestEmail: sql`case when ${orders.guestEmail} is null then null else ${placeholder} end`,
            guestClient: null,
            // The country stays: the tax owed and the figures per country depend on it.
            shippingAddress: sql`jsonb_build_object('recipientName', ${ERASED_NAME}::text, 'line1', 'erased', 'city', 'erased', 'postalCode', 'erased', 'country', ${orders.shippingAddress}->>'country')`,
            updatedAt: new Date(),
          }).where(inArray(orders.id, orderIds))
          await tx.delete(orderAccessTokens).where(inArray(orderAccessTokens.orderId, orderIds))
        }
        const returnIds = (await tx.update(returns).set({ userId: tombstone, rejectionReason: null }).where(eq(returns.userId, user.id)).returning({ id: returns.id })).map((r) => r.id)
        if (returnIds.length) await tx.update(returnItems).set({ note: null }).where(inArray(returnItems.returnId, returnIds))
        await tx.update(couponRedemptions).set({ userId: tombstone }).where(eq(couponRedemptions.userId, user.id))
        await tx.update(couponRedemptions).set({ email: placeholder }).where(eq(couponRedemptions.email, user.email))
        await tx.update(refunds).set({ actorId: null }).where(eq(refunds.actorId, user.id))
        await tx.delete(idempotencyKeys).where(eq(idempotencyKeys.userId, user.id))
        // Who was mailed what (src/sent-mail.ts): the address goes; a retried mail to it is moot now.
        await tx.delete(sentMail).where(eq(sentMail.recipient, user.email.toLowerCase()))
        // Events and webhook bodies written about the person (an order event names its user id).
        const swap = (column: typeof outboxTable.payload | typeof webhookDeliveries.body) =>
          sql`replace(replace(${column}::text, ${user.id}, ${tombstone}), ${user.email}, ${placeholder})`
        const mentions = (column: typeof outboxTable.payload | typeof webhookDeliveries.body) =>
          sql`(strpos(${column}::text, ${user.id}) > 0 or strpos(${column}::text, ${user.email}) > 0)`
        await tx.update(outboxTable).set({ payload: sql`${swap(outboxTable.payload)}::jsonb` }).where(mentions(outboxTable.payload))
        // An event's key can name the person too (their cart's: cart:user:<id>).
        await tx.update(outboxTable).set({ key: sql`replace(${outboxTable.key}, ${user.id}, ${tombstone})` }).where(sql`strpos(${outboxTable.key}, ${user.id}) > 0`)
        await tx.update(webhookDeliveries).set({ body: swap(webhookDeliveries.body) }).where(mentions(webhookDeliveries.body))
        const now = new Date()
        await tx.update(erasureRequests).set({ status: 'completed', step: 'account', userId: null, completedAt: now, updatedAt: now, lockedUntil: null, lastError: null })
          .where(eq(erasureRequests.id, req.id))
        await tx.update(erasureRequests).set({ requestedBy: null }).where(eq(erasureRequests.requestedBy, user.id))
        await tx.delete(users).where(eq(users.id, user.id))
        // No personal data: the tombstone's id is what the kept orders now carry.
        await emit([WEBHOOK('customer.erased', { erasureId: req.id, customerId: tombstone, erasedAt: now.toISOString() })])
      })
    },
  }

  /** Runs one claimed request from the step after its last recorded one. */
  async function run(req: RequestRow) {
    if (!req.userId) return
    const user = await requireUser(req.userId).catch(() => null)
    if (!user) {
      // The account went without the last step completing the request (not by this workflow).
      await db.update(erasureRequests).set({ status: 'completed', completedAt: new Date(), lockedUntil: null }).where(eq(erasureRequests.id, req.id))
      return
    }
    const from = req.step === 'requested' ? 0 : ERASURE_STEPS.indexOf(req.step as ErasureStep) + 1
    for (const step of ERASURE_STEPS.slice(from)) {
      await steps[step](req, user)
      if (step !== 'account') {
        // The step is done: recorded, and the lease renewed for the next.
        await db.update(erasureRequests).set({ step, updatedAt: new Date(), lockedUntil: sql`now() + make_interval(secs => ${deps.leaseSeconds})` })
          .where(eq(erasureRequests.id, req.id))
      }
      deps.onStep?.(req.id, step)
    }
  }

  return {
    assertErasable,

    /** The owner asks: checks now what would refuse it, and mails the confirmation link. */
    async ask(userId: string) {
      const user = await requireUser(userId)
      await assertErasable(db, user)
      await deps.accountMail.sendErasureConfirmation(user)
    },

    /** The owner confirms with the mailed token (of this account, as it still is). */
    async confirm(userId: string, token: string) {
      const payload = await deps.tokens.consume('account-erasure', token)
      const user = payload?.userId === userId ? await requireUser(userId) : null
      if (!user || payload?.stamp !== accountStamp(user)) throw new Conflict('The confirmation link is not valid (used, expired, or for another account); ask again', 'erasure-token-invalid')
      return start(userId, null)
    },

    /** An admin asks on the person's behalf (after checking who asks outside the shop). */
    async startByAdmin(adminId: string, userId: string) {
      if (adminId === userId) throw new Conflict('Admins cannot erase their own account', 'self-change')
      return start(userId, adminId)
    },

    /** The worker's run: takes running requests whose lease has passed, one at a time, and runs them on. */
    async runDue(limit = 10) {
      let completed = 0
      let failed = 0
      for (let i = 0; i < limit; i++) {
        const req = await claimLeased(db, erasureRequests, eq(erasureRequests.status, 'running'), deps.leaseSeconds)
        if (!req) break
        try {
          await run(req)
          completed++
        } catch (err) {
          failed++
          // Retried by a later run once the lease has passed.
          deps.log.warn({ err, erasureId: req.id }, 'erasure failed; a later run resumes it')
          await db.update(erasureRequests).set({ lastError: failureText(err), updatedAt: new Date() }).where(eq(erasureRequests.id, req.id))
        }
      }
      return { completed, failed }
    },
  }
}
export type ErasureWorkflow = ReturnType<typeof createErasureWorkflow>
