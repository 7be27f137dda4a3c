import { and, asc, desc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import { orderItems, orders, products, reviewVotes, reviews, users } from '../../db/schema/index.js'
import { isUniqueViolation, type Db } from '../../db/client.js'
import { Conflict, Forbidden, NotFound } from '../../src/errors.js'
import { decodeCursor, toPage, type CursorPart } from '../../src/pagination.js'
import type { Tx } from '../../db/client.js'

type ReviewRow = typeof reviews.$inferSelect
type Status = ReviewRow['status']
type Sort = 'newest' | 'rating_desc' | 'rating_asc' | 'helpful'

// Orders in these states hold the goods' money: their buyers may review.
const PURCHASED = ['paid', 'fulfilled', 'shipped', 'delivered'] as const

/** Changes the product's exact rating aggregates by what this review adds or takes away. */
async function adjustRating(tx: Tx, productId: string, countDelta: number, sumDelta: number) {
  if (countDelta === 0 && sumDelta === 0) return
  await tx.update(products).set({ ratingCount: sql`${products.ratingCount} + ${countDelta}`, ratingSum: sql`${products.ratingSum} + ${sumDelta}` }).where(eq(products.id, productId))
}
const counted = (r: { status: Status; rating: number }) => (r.status === 'approved' ? { n: 1, sum: r.rating } : { n: 0, sum: 0 })

const SORTS: Record<Sort, { order: SQL[]; kinds: readonly CursorPart[]; after: (k: (string | number)[]) => SQL; key: (r: ReviewRow) => (string | number)[] }> = {
  newest: { order: [desc(reviews.createdAt), desc(reviews.id)], kinds: ['date', 'uuid'], key: (r) => [r.createdAt.toISOString(), r.id], after: ([c, id]) => sql`(${reviews.createdAt}, ${reviews.id}) < (${c}::timestamptz, ${id}::uuid)` },
  rating_desc: { order: [desc(reviews.rating), desc(reviews.id)], kinds: ['integer', 'uuid'], key: (r) => [r.rating, r.id], after: ([v, id]) => sql`(${reviews.rating}, ${reviews.id}) < (${v}::int, ${id}::uuid)` },
  rating_asc: { order: [asc(reviews.rating), asc(reviews.id)], kinds: ['integer', 'uuid'], key: (r) => [r.rating, r.id], after: ([v, id]) => sql`(${reviews.rating}, ${reviews.id}) > (${v}::int, ${id}::uuid)` },
  helpful: { order: [desc(reviews.helpfulCount), desc(reviews.id)], kinds: ['integer', 'uuid'], key: (r) => [r.helpfulCount, r.id], after: ([v, id]) => sql`(${reviews.helpfulCount}, ${reviews.id}) < (${v}::int, ${id}::uuid)` },
}

export function createReviewService({ db, autoApprove, onRatingChange }: { db: Db; autoApprove: boolean; onRatingChange: () => Promise<void> }) {
  async function view(rows: ReviewRow[]) {
    const names = rows.length ? await db.select({ id: users.id, name: users.name }).from(users).where(inArray(users.id, [...new Set(rows.map((r) => r.userId))])) : []
    const byId = new Map(names.map((n) => [n.id, n.name]))
    return rows.map((r) => ({
      id: r.id, productId: r.productId, userId: r.userId, authorName: byId.get(r.userId) ?? 'A customer', rating: r.rating, title: r.title, body: r.body,
      status: r.status, helpfulCount: r.helpfulCount, verifiedPurchase: true as const, createdAt: r.createdAt.toISOString(), updatedAt: r.updatedAt.toISOString(),
    }))
  }
  const one = async (row: ReviewRow) => (await view([row]))[0]!

  /** Runs a review change that may move the product's rating, then makes catalog reads fresh. */
  async function write<T>(work: (tx: Tx) => Promise<T>) {
    const result = await db.transaction(work)
    await onRatingChange()
    return result
  }

  return {
    async listForProduct(productId: string, query: { limit: number; cursor?: string; sort?: Sort }) {
      const spec = SORTS[query.sort ?? 'newest']
      const filters: SQL[] = [eq(reviews.productId, productId), eq(reviews.status, 'approved')]
      if (query.cursor) filters.push(spec.after(decodeCursor(query.cursor, spec.kinds) as (string | number)[]))
      const rows = await db.select().from(reviews).where(and(...filters)).orderBy(...spec.order).limit(query.limit + 1)
      const page = toPage(rows, query.limit, spec.key)
      return { items: await view(page.items), nextCursor: page.nextCursor }
    },

    async listForModeration(query: { limit: number; cursor?: string; status?: Status }) {
      const spec = SORTS.newest
      const filters: SQL[] = query.status ? [eq(reviews.status, query.status)] : []
      if (query.cursor) filters.push(spec.after(decodeCursor(query.cursor, spec.kinds) as (string | number)[]))
      const rows = await db.select().from(reviews).where(and(...filters)).orderBy(...spec.order).limit(query.limit + 1)
      const page = toPage(rows, query.limit, spec.key)
      return { items: await view(page.items), nextCursor: page.nextCursor }
    },

    /** Only a buyer with a paid order containing the product, once per product. */
    async create(userId: string, productId: string, input: { rating: number; title: string; body?: string }) {
      const [product] = await db.select({ id: products.id, status: products.status }).from(products).where(eq(products.id, productId))
      if (!product || product.status !== 'active') throw new NotFound('product', productId)
      const [bought] = await db.select({ id: orderItems.id }).from(orderItems).innerJoin(orders, eq(orders.id, orderItems.orderId))
        .where(and(eq(orders.userId, userId), eq(orderItems.productId, productId), inArray(orders.status, [...PURCHASED]))).limit(1)
      if (!bought) throw new Forbidden('Only customers who bought this product can review it', 'not-a-verified-buyer')
      try {
        const row = await write(async (tx) => {
          const status: Status = autoApprove ? 'approved' : 'pending'
          const [created] = await tx.insert(reviews).values({ productId, userId, rating: input.rating, title: input.title.trim(), body: input.body ?? '', status }).returning()
          const c = counted(created!)
          await adjustRating(tx, productId, c.n, c.sum)
          return created!
        })
        return one(row)
      } catch (err) {
        if (isUniqueViolation(err, 'reviews_product_user_key')) throw new Conflict('You have already reviewed this product; edit that review instead', 'already-reviewed')
        throw err
      }
    },

    async update(userId: string, reviewId: string, input: { rating?: number; title?: string; body?: string }) {
      const row = await write(async (tx) => {
        const [before] = await tx.select().from(reviews).where(eq(reviews.id, reviewId)).for('update')
        if (!before || before.userId !== userId) throw new NotFound('review', reviewId)
        // An edit goes back to moderation unless reviews are approved automatically.
        const status: Status = autoApprove ? 'approved' : 'pending'
        const [after] = await tx.update(reviews).set({ ...input, status, updatedAt: new Date() }).where(eq(reviews.id, reviewId)).returning()
        const [b, a] = [counted(before), counted(after!)]
        await adjustRating(tx, before.productId, a.n - b.n, a.sum - b.sum)
        return after!
      })
      return one(row)
    },

    async remove(viewer: { userId: string; isAdmin: boolean }, reviewId: string) {
      await write(async (tx) => {
        const [row] = await tx.select().from(reviews).where(eq(reviews.id, reviewId)).for('update')
        if (!row || (!viewer.isAdmin && row.userId !== viewer.userId)) throw new NotFound('review', reviewId)
        await tx.delete(reviews).where(eq(reviews.id, reviewId))
        const c = counted(row)
        await adjustRating(tx, row.productId, -c.n, -c.sum)
      })
    },

    /**
     * Deletes every review a user wrote (with its votes, and its part of the product's rating) and
     * takes back their helpful votes on others' reviews (an erasure). Idempotent: a second run finds nothing.
     */
    async removeAllOf(userId: string) {
      return write(async (tx) => {
        const gone = await tx.delete(reviews).where(eq(reviews.userId, userId)).returning()
        for (const r of gone) {
          const c = counted(r)
          await adjustRating(tx, r.productId, -c.n, -c.sum)
        }
        const votes = await tx.delete(reviewVotes).where(eq(reviewVotes.userId, userId)).returning({ reviewId: reviewVotes.reviewId })
        if (votes.length) {
          await tx.update(reviews).set({ helpfulCount: sql`greatest(${reviews.helpfulCount} - 1, 0)` })
            .where(inArray(reviews.id, votes.map((v) => v.reviewId)))
        }
        return { reviews: gone.length, votes: votes.length }
      })
    },

    async moderate(reviewId: string, status: Status) {
      const row = await write(async (tx) => {
        const [before] = await tx.select().from(reviews).where(eq(reviews.id, reviewId)).for('update')
        if (!before) throw new NotFound('review', reviewId)
        const [after] = await tx.update(reviews).set({ status, updatedAt: new Date() }).where(eq(reviews.id, reviewId)).returning()
        const [b, a] = [counted(before), counted(after!)]
        await adjustRating(tx, before.productId, a.n - b.n, a.sum - b.sum)
        return after!
      })
      return one(row)
    },

    /** One helpful vote per user and review; voting again changes nothing. Not on one's own review. */
    async voteHelpful(userId: string, reviewId: string) {
      const row = await db.transaction(async (tx) => {
        const [review] = await tx.select().from(reviews).where(and(eq(reviews.id, reviewId), eq(reviews.status, 'approved')))
        if (!review) throw new NotFound('review', reviewId)
        if (review.userId === userId) throw new Conflict('You cannot vote for your own review', 'own-review')
        const voted = await tx.insert(reviewVotes).values({ reviewId, userId }).onConflictDoNothing().returning({ reviewId: reviewVotes.reviewId })
        if (!voted.length) return review
        const [updated] = await tx.update(reviews).set({ helpfulCount: sql`${reviews.helpfulCount} + 1` }).where(eq(reviews.id, reviewId)).returning()
        return updated!
      })
      return one(row)
    },
  }
}
export type ReviewService = ReturnType<typeof createReviewService>
