import { createGzip } from 'node:zlib'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { buffer } from 'node:stream/consumers'
import type { FastifyBaseLogger } from 'fastify'
import { and, asc, desc, eq, inArray, isNotNull, lt, or, sql } from 'drizzle-orm'
import type { Model } from 'mongoose'
import {
  addresses, couponRedemptions, dataExports, orderItems, orders, payments, refunds, returnItems, returns, reviewVotes, reviews, userIdentities, users,
} from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import type { ActivityDoc } from '../../db/models/activity.js'
import type { CartDoc } from '../../db/models/cart.js'
import type { WishlistItemDoc } from '../../db/models/wishlist.js'
import { NotFound } from '../../src/errors.js'
import { claimLeased } from '../../src/leases.js'
import type { RedisClient } from '../../src/redis-client.js'
import { randomToken, sha256 } from '../../src/sessions.js'
import type { FileStorage } from '../../src/storage.js'
import { failureText } from '../../src/log-errors.js'
import type { UploadService } from '../uploads/service.js'

// "Export my data": a customer asks (POST /users/me/export), the worker gathers everything the
// shop holds about them from PostgreSQL, MongoDB and the upload storage into one tar.gz (data.json
// plus their files), kept in a private storage of its own, and the customer downloads it through
// a short-lived link. Every query below is scoped by the one user id (or, for guest orders, by
// the address the account verified), so nothing of another customer can be in it
// (test/data-requests.test.ts checks an export against a second customer with similar data).

type ExportRow = typeof dataExports.$inferSelect
const MAX_ATTEMPTS = 5
/** Redis: a download link's token (as its SHA-256) -> the export it opens, until the link expires. */
const linkKey = (token: string) => `export-link:${sha256(token)}`

export interface DataExportDeps {
  db: Db
  redis: RedisClient
  /** Where archives are kept: never the public uploads. */
  storage: FileStorage
  uploads: UploadService
  carts: Model<CartDoc>
  wishlists: Model<WishlistItemDoc>
  activity: Model<ActivityDoc>
  log: FastifyBaseLogger
  /** signedUrlTtlSeconds: life of the store's presigned link a download redirects to (object storage only). */
  settings: { exportTtlHours: number; linkTtlSeconds: number; leaseSeconds: number; signedUrlTtlSeconds: number }
}

export function toDataExport(row: ExportRow, link?: { url: string; expiresAt: Date }) {
  return {
    id: row.id, status: row.status, sizeBytes: row.sizeBytes, createdAt: row.createdAt.toISOString(),
    completedAt: row.completedAt?.toISOString() ?? null, expiresAt: row.expiresAt?.toISOString() ?? null,
    downloadUrl: link?.url ?? null, downloadExpiresAt: link?.expiresAt.toISOString() ?? null,
  }
}

export function createDataExportService(deps: DataExportDeps) {
  const { db, redis, storage, settings } = deps

  async function requireOwn(userId: string, exportId: string) {
    // Someone else's export is indistinguishable from a missing one.
    const [row] = await db.select().from(dataExports).where(and(eq(dataExports.id, exportId), eq(dataExports.userId, userId)))
    if (!row) throw new NotFound('export', exportId)
    return row
  }

  /** Everything the shop holds about one user, as one JSON-ready object, and their files. */
  async function gather(userId: string) {
    const [user] = await db.select().from(users).where(eq(users.id, userId))
    if (!user) return null
    // Guest orders placed with the account's address count as the person's once the address is verified.
    const theirOrders = user.emailVerifiedAt ? or(eq(orders.userId, userId), and(eq(orders.guestEmail, user.email), sql`${orders.userId} is null`)) : eq(orders.userId, userId)
    const orderRows = await db.select().from(orders).where(theirOrders).orderBy(asc(orders.createdAt), asc(orders.id))
    const orderIds = orderRows.map((o) => o.id)
    const items = orderIds.length ? await db.select().from(orderItems).where(inArray(orderItems.orderId, orderIds)) : []
    const paymentRows = orderIds.length ? await db.select().from(payments).where(inArray(payments.orderId, orderIds)).orderBy(asc(payments.createdAt)) : []
    const refundRows = paymentRows.length ? await db.select().from(refunds).where(inArray(refunds.paymentId, paymentRows.map((p) => p.id))).orderBy(asc(refunds.createdAt)) : []
    const returnRows = await db.select().from(returns).where(eq(returns.userId, userId)).orderBy(asc(returns.createdAt))
    const returnLines = returnRows.length ? await db.select().from(returnItems).where(inArray(returnItems.returnId, returnRows.map((r) => r.id))) : []
    const files = await deps.uploads.filesOf(userId)
    const cart = await deps.carts.findOne({ owner: `user:${userId}` }).lean()

    const data = {
      format: 'shop-data-export/1',
      exportedAt: new Date().toISOString(),
      // The account as the customer knows it; no password hash, no two-factor secret, no recovery codes.
      account: {
        id: user.id, email: user.email, name: user.name, role: user.role, isActive: user.isActive,
        emailVerifiedAt: user.emailVerifiedAt, twoFactorEnabled: user.totpEnabledAt !== null, avatarId: user.avatarId,
        createdAt: user.createdAt, updatedAt: user.updatedAt,
      },
      addresses: await db.select().from(addresses).where(eq(addresses.userId, userId)).orderBy(asc(addresses.createdAt)),
      // Links to sign-in providers: who the provider says they are, never a token.
      identities: await db.select({ provider: userIdentities.provider, subject: userIdentities.subject, email: userIdentities.email, emailVerified: userIdentities.emailVerified, confirmedAt: userIdentities.confirmedAt, createdAt: userIdentities.createdAt })
        .from(userIdentities).where(eq(userIdentities.userId, userId)),
      orders: orderRows.map((o) => ({
        ...o,
        items: items.filter((i) => i.orderId === o.id),
        payments: paymentRows.filter((p) => p.orderId === o.id).map((p) => ({ ...p, refunds: refundRows.filter((r) => r.paymentId === p.id).map(({ actorId: _actor, ...r }) => r) })),
      })),
      returns: returnRows.map((r) => ({ ...r, items: returnLines.filter((i) => i.returnId === r.id) })),
      reviews: await db.select().from(reviews).where(eq(reviews.userId, userId)).orderBy(asc(reviews.createdAt)),
      helpfulVotes: await db.select({ reviewId: reviewVotes.reviewId, createdAt: reviewVotes.createdAt }).from(reviewVotes).where(eq(reviewVotes.userId, userId)),
      couponRedemptions: await db.select({ couponId: couponRedemptions.couponId, orderId: couponRedemptions.orderId, createdAt: couponRedemptions.createdAt }).from(couponRedemptions).where(eq(couponRedemptions.userId, userId)),
      cart: cart ? { lines: cart.lines, couponCode: cart.couponCode ?? null, createdAt: cart.createdAt, updatedAt: cart.updatedAt } : null,
      wishlist: (await deps.wishlists.find({ userId }).sort({ addedAt: 1 }).lean()).map((w) => ({ productId: w.productId, addedAt: w.addedAt })),
      activity: (await deps.activity.find({ userId }).sort({ at: 1 }).lean()).map((a) => ({ id: a._id, type: a.type, at: a.at, ip: a.ip, data: a.data })),
      uploads: files.map(({ row }) => ({
        id: row.id, purpose: row.purpose, mime: row.mime, sizeBytes: row.sizeBytes, sha256: row.sha256, originalName: row.originalName,
        createdAt: row.createdAt, file: `files/${row.storageKey}`,
      })),
    }
    return { data, files }
  }

  /** The tar.gz of data.json and the files, in memory (files are at most the upload quota). */
  async function archive(gathered: NonNullable<Awaited<ReturnType<typeof gather>>>) {
    // Loaded when an archive is built, not at start-up.
    const { default: tar } = await import('tar-stream')
    const pack = tar.pack()
    const chunks: Buffer[] = []
    const written = pipeline(pack, createGzip(), new Writable({ write(chunk: Buffer, _enc, done) { chunks.push(chunk); done() } }))
    const add = (name: string, bytes: Buffer) => new Promise<void>((resolve, reject) => {
      pack.entry({ name, size: bytes.length, mtime: new Date() }, bytes, (err) => (err ? reject(err) : resolve()))
    })
    await add('data.json', Buffer.from(JSON.stringify(gathered.data, null, 2)))
    for (const file of gathered.files) {
      // A file whose bytes are gone (a crash mid-delete) is listed in data.json and left out here.
      const bytes = await buffer(file.read()).catch(() => null)
      if (bytes) await add(`files/${file.row.storageKey}`, bytes)
    }
    pack.finalize()
    await written
    return Buffer.concat(chunks)
  }

  /** Builds one claimed export; idempotent (the archive of an earlier, dead attempt is replaced). */
  async function build(row: ExportRow) {
    const gathered = await gather(row.userId)
    if (!gathered) return
    const bytes = await archive(gathered)
    const storageKey = `${row.id}.tgz`
    await storage.remove(storageKey)
    await storage.put(storageKey, bytes)
    const done = await db.update(dataExports).set({
      status: 'ready', storageKey, sizeBytes: bytes.length, completedAt: new Date(), lockedUntil: null, lastError: null,
      expiresAt: new Date(Date.now() + settings.exportTtlHours * 3_600_000),
    }).where(and(eq(dataExports.id, row.id), eq(dataExports.status, 'pending'))).returning({ id: dataExports.id })
    // The export went meanwhile (its owner was erased): so does the archive.
    if (!done.length) await storage.remove(storageKey)
  }

  return {
    /** Asks for an export; while one is pending, that one is the answer (no pile of them). */
    async request(userId: string) {
      const [created] = await db.insert(dataExports).values({ userId }).onConflictDoNothing().returning()
      if (created) return toDataExport(created)
      const [pending] = await db.select().from(dataExports).where(and(eq(dataExports.userId, userId), eq(dataExports.status, 'pending')))
      if (!pending) throw new Error('no pending export after a conflict on the pending index')
      return toDataExport(pending)
    },

    /** An export of the user's; a ready one comes with a fresh short-lived download link. */
    async get(userId: string, exportId: string) {
      const row = await requireOwn(userId, exportId)
      if (row.status !== 'ready' || !row.expiresAt || row.expiresAt <= new Date()) return toDataExport(row)
      const token = randomToken()
      const ttl = Math.min(settings.linkTtlSeconds, Math.floor((row.expiresAt.getTime() - Date.now()) / 1000))
      if (ttl < 1) return toDataExport(row)
      await redis.set(linkKey(token), row.id, 'EX', ttl)
      return toDataExport(row, { url: `/users/me/export/${row.id}/download?token=${token}`, expiresAt: new Date(Date.now() + ttl * 1000) })
    },

    /** The archive behind a download link; a wrong, expired or other export's token is a 404, as for no export. */
    async download(exportId: string, token: string) {
      const linked = await redis.get(linkKey(token))
      if (linked !== exportId) throw new NotFound('export', exportId)
      const [row] = await db.select().from(dataExports).where(eq(dataExports.id, exportId))
      if (!row || row.status !== 'ready' || !row.storageKey || !row.expiresAt || row.expiresAt <= new Date()) throw new NotFound('export', exportId)
      const storageKey = row.storageKey
      // Object storage answers the download itself, through a presigned link that outlives the
      // redirect by seconds only; on local disk the API streams it.
      const signedUrl = await storage.signedUrl(storageKey, {
        expiresInSeconds: settings.signedUrlTtlSeconds, filename: `shop-data-${row.id}.tar.gz`, contentType: 'application/gzip',
      })
      return { row, signedUrl, stream: () => storage.read(storageKey) }
    },

    /**
     * The worker's run: builds pending exports one at a time, each under a lease (a worker that
     * died is taken over after it). A failing build is retried on later runs, then marked failed.
     */
    async runDue(limit = 10) {
      let built = 0
      let failed = 0
      for (let i = 0; i < limit; i++) {
        const row = await claimLeased(db, dataExports, eq(dataExports.status, 'pending'), settings.leaseSeconds)
        if (!row) break
        try {
          await build(row)
          built++
        } catch (err) {
          failed++
          deps.log.warn({ err, exportId: row.id, attempts: row.attempts }, 'data export failed')
          const message = failureText(err)
          await db.update(dataExports).set({ lastError: message, ...(row.attempts >= MAX_ATTEMPTS ? { status: 'failed' as const, lockedUntil: null } : {}) })
            .where(eq(dataExports.id, row.id))
        }
      }
      return { built, failed }
    },

    /** The hourly job: archives past their time are deleted, their rows kept as expired. */
    async purgeExpired() {
      const due = await db.select().from(dataExports).where(and(eq(dataExports.status, 'ready'), lt(dataExports.expiresAt, sql`now()`)))
      for (const row of due) {
        if (row.storageKey) await storage.remove(row.storageKey)
        await db.update(dataExports).set({ status: 'expired', storageKey: null }).where(eq(dataExports.id, row.id))
      }
      return { expired: due.length }
    },

    /** Every export of a user, archives and rows (an erasure). Idempotent. */
    async removeAllOf(userId: string) {
      const rows = await db.select().from(dataExports).where(and(eq(dataExports.userId, userId), isNotNull(dataExports.storageKey)))
      for (const row of rows) await storage.remove(row.storageKey!)
      // An archive a worker is still writing: its key is the export's id.
      const all = await db.select({ id: dataExports.id }).from(dataExports).where(eq(dataExports.userId, userId)).orderBy(desc(dataExports.createdAt))
      for (const { id } of all) await storage.remove(`${id}.tgz`)
      await db.delete(dataExports).where(eq(dataExports.userId, userId))
      return { removed: all.length }
    },
  }
}
export type DataExportService = ReturnType<typeof createDataExportService>
