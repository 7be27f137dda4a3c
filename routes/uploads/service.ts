import { createHash, randomUUID } from 'node:crypto'
import { and, eq, lt, sql } from 'drizzle-orm'
import { fileTypeFromBuffer } from 'file-type'
import { Readable, Transform } from 'node:stream'
import { products, uploadedFiles, users, type ImageSize } from '../../db/schema/index.js'
import { arrayParam, type Db, type Tx } from '../../db/client.js'
import { BadRequest, ContentTooLarge, Forbidden, NotFound } from '../../src/errors.js'
import type { FileStorage } from '../../src/storage.js'
import { IMAGE_MIME, makeSizes, UndecodableImage, uploadIdOfSizeKey } from '../../src/image-sizes.js'
import { ALLOWED_MIME } from './schemas.js'

type Purpose = 'product_image' | 'avatar'
type Row = typeof uploadedFiles.$inferSelect

/** A name safe to echo in a header and a page: letters, digits, dot, dash, underscore. */
export function sanitizeFileName(name: string) {
  const base = name.split(/[\\/]/).pop() ?? ''
  const clean = base.normalize('NFKD').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100)
  return clean || 'file'
}

/**
 * Product images never change under their name (an id is never reused), so caches keep them a
 * year; other uploads (avatars) revalidate every use, so a deleted one stops being served at once.
 */
export const cacheControlOf = (purpose: Purpose) => (purpose === 'product_image' ? 'public, max-age=31536000, immutable' : 'public, no-cache')

/** Where an upload is served: the store's public URL (a CDN) for product images when one is set, else the API. */
export const uploadUrl = (r: Pick<Row, 'id' | 'purpose' | 'storageKey'>, storage?: FileStorage) =>
  (r.purpose === 'product_image' && storage?.publicUrl(r.storageKey)) || `/uploads/${r.id}`

/** Where one size of a product image is served: the store's public URL when one is set, else the API. */
export const sizeUrl = (r: Pick<Row, 'id'>, size: Pick<ImageSize, 'key' | 'width' | 'format'>, storage?: FileStorage) =>
  storage?.publicUrl(size.key) || `/uploads/${r.id}/sizes/w${size.width}.${size.format}`

/**
 * A product image as product pages and listings show it: the original and, once the worker has
 * stored every one of them, its sizes (an empty list until then, so no URL given out can 404).
 */
export const toProductImage = (r: Pick<Row, 'id' | 'purpose' | 'storageKey' | 'sizesStatus' | 'sizes'>, storage?: FileStorage) => {
  const ready = r.sizesStatus === 'ready'
  return {
    id: r.id, url: uploadUrl(r, storage),
    sizesStatus: r.sizesStatus ?? 'pending',
    sizes: ready ? r.sizes.map((s) => ({ width: s.width, height: s.height, format: s.format, mime: IMAGE_MIME[s.format], bytes: s.bytes, url: sizeUrl(r, s, storage) })) : [],
  }
}
export type ProductImage = ReturnType<typeof toProductImage>

export const toUpload = (r: Row, storage?: FileStorage) => ({
  id: r.id, purpose: r.purpose, mime: r.mime as (typeof ALLOWED_MIME)[number], sizeBytes: r.sizeBytes, sha256: r.sha256,
  originalName: r.originalName, url: uploadUrl(r, storage), createdAt: r.createdAt.toISOString(),
})

/** The first `bytes` of a stream (fewer if it is shorter) and a stream of the whole, read once. */
async function peek(source: Readable, bytes: number) {
  const it = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>
  const chunks: Buffer[] = []
  let size = 0
  let ended = false
  while (size < bytes) {
    const next = await it.next()
    if (next.done) { ended = true; break }
    chunks.push(next.value)
    size += next.value.length
  }
  const head = Buffer.concat(chunks)
  async function* whole() {
    yield head
    if (ended) return
    for (let next = await it.next(); !next.done; next = await it.next()) yield next.value
  }
  return { head, stream: Readable.from(whole(), { objectMode: false }) }
}

/** A stored file's bytes (an original, at most the upload limit). */
async function readAll(source: Readable) {
  const chunks: Buffer[] = []
  for await (const chunk of source) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const tooLarge = () => new ContentTooLarge('The file is larger than the largest upload allowed', 'file-too-large')
const malformed = (err: Error) => new BadRequest(`Malformed multipart body: ${err.message}`, 'malformed-multipart')

/** What one account may keep: total bytes and number of files. */
export interface UploadQuota { bytes: number; files: number }
export interface UploadQuotas { customer: UploadQuota; admin: UploadQuota }

/** Refuses an upload of `size` bytes that would take the owner past their quota (413). */
async function checkQuota(db: Db | Tx, ownerId: string, quota: UploadQuota, size: number) {
  const [used] = await db.select({ files: sql<number>`count(*)::int`, bytes: sql<number>`coalesce(sum(${uploadedFiles.sizeBytes}), 0)::float8` })
    .from(uploadedFiles).where(eq(uploadedFiles.ownerId, ownerId))
  if (used!.files + 1 > quota.files) {
    throw new ContentTooLarge(`You keep ${used!.files} uploads, the most allowed (${quota.files}); delete some first`, 'upload-quota-files')
  }
  if (used!.bytes + size > quota.bytes) {
    throw new ContentTooLarge(`This file (${size} bytes) would take your uploads to ${used!.bytes + size} bytes, over your quota of ${quota.bytes}; delete some first`, 'upload-quota-bytes')
  }
}

/** Product image sizes: queued for the worker, and what their cached readers need told. */
export interface ImageSizeDeps {
  /** Hands ids to the worker's queue; may fail (Redis away): the sweep queues them again. */
  enqueue(ids: string[]): Promise<void>
  /** Sizes of an image a product shows became ready or failed: cached product reads are stale. */
  changed(): Promise<void>
  /** The most pixels an original may have (a decompression bomb is refused before decoding). */
  maxPixels: number
}

/** A run that could not read or write the store asks for another this much later (BullMQ bounds the runs; the sweep queues again). */
const SIZE_RETRY_MS = 10_000

export function createUploadService({ db, storage, quota, sizes: sizeDeps }: { db: Db; storage: FileStorage; quota: UploadQuotas; sizes?: ImageSizeDeps }) {
  /** Removes the made sizes of a row's image (idempotent: missing objects are not an error). */
  const removeSizes = async (r: Pick<Row, 'sizes'>) => { for (const s of r.sizes) await storage.remove(s.key) }
  const imageStatements = new Map<Db, { execute(params: { ids: string[] }): Promise<Pick<Row, 'id' | 'purpose' | 'storageKey' | 'sizesStatus' | 'sizes'>[]> }>()
  return {
    /**
     * Checks the type from the first bytes, then streams the file to storage (hashing and counting
     * on the way, never holding it whole) and records it within the owner's quota (admins have a
     * larger one). `truncated` tells whether the request's size limit cut the stream short.
     */
    async store(owner: { userId: string; isAdmin: boolean }, purpose: Purpose, file: { filename: string; stream: Readable; truncated: () => boolean }) {
      if (purpose === 'product_image' && !owner.isAdmin) throw new Forbidden('Product images are uploaded by admins')
      // The bytes decide: a renamed HTML or SVG file is refused whatever it claims to be.
      const { head, stream } = await peek(file.stream, 4100).catch((err: Error) => { throw malformed(err) })
      const detected = await fileTypeFromBuffer(head)
      if (!detected || !(ALLOWED_MIME as readonly string[]).includes(detected.mime)) {
        stream.resume()
        throw new BadRequest(`Only ${ALLOWED_MIME.join(', ')} are accepted; this file's content is ${detected?.mime ?? 'not a recognised image'}`, 'unsupported-file-type')
      }
      const limit = owner.isAdmin ? quota.admin : quota.customer
      // Refused before the bytes are written when plainly over; checked again under the lock below.
      try { await checkQuota(db, owner.userId, limit, 0) } catch (err) { stream.resume(); throw err }
      const id = randomUUID()
      const storageKey = `${id}.${detected.ext}`
      // The source failing (a client gone, a malformed body) is the client's fault, told apart
      // from the store failing.
      let sourceError: Error | undefined
      const hash = createHash('sha256')
      const hashing = new Transform({ transform(chunk: Buffer, _enc, done) { hash.update(chunk); done(null, chunk) } })
      stream.once('error', (err) => { sourceError = err; hashing.destroy(err) })
      stream.pipe(hashing)
      let size: number
      try {
        size = await storage.write(storageKey, hashing, { contentType: detected.mime, cacheControl: cacheControlOf(purpose) })
      } catch (err) {
        await storage.remove(storageKey).catch(() => {})
        if (file.truncated()) throw tooLarge()
        if (sourceError) throw malformed(sourceError)
        throw err
      }
      if (file.truncated()) { await storage.remove(storageKey); throw tooLarge() }
      try {
        const row = await db.transaction(async (tx) => {
          // One upload per owner at a time, so two racing uploads cannot both fit the last space.
          await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`uploads:${owner.userId}`}, 0))`)
          await checkQuota(tx, owner.userId, limit, size)
          const [inserted] = await tx.insert(uploadedFiles).values({
            id, ownerId: owner.userId, purpose, mime: detected.mime, sizeBytes: size,
            sha256: hash.digest('hex'), originalName: sanitizeFileName(file.filename), storageKey,
            sizesStatus: purpose === 'product_image' ? 'pending' : null,
          }).returning()
          return inserted!
        })
        // The sizes are the worker's: the upload never waits for them, nor fails when the queue
        // is away (the row is pending; the sweep queues it).
        if (purpose === 'product_image') await sizeDeps?.enqueue([row.id]).catch(() => {})
        return toUpload(row, storage)
      } catch (err) {
        await storage.remove(storageKey)
        throw err
      }
    },

    async find(id: string) {
      const [row] = await db.select().from(uploadedFiles).where(eq(uploadedFiles.id, id))
      if (!row) throw new NotFound('upload', id)
      return { row, stream: () => storage.read(row.storageKey) }
    },

    /** Owner or admin. Someone else's file is a 404. Products and avatars stop pointing at it. */
    async remove(viewer: { userId: string; isAdmin: boolean }, id: string) {
      const row = await db.transaction(async (tx) => {
        const [found] = await tx.select().from(uploadedFiles).where(eq(uploadedFiles.id, id)).for('update')
        if (!found || (!viewer.isAdmin && found.ownerId !== viewer.userId)) throw new NotFound('upload', id)
        const shownBy = await tx.update(products).set({ imageIds: sql`array_remove(${products.imageIds}, ${id}::uuid)` }).where(sql`${id}::uuid = any(${products.imageIds})`).returning({ id: products.id })
        await tx.delete(uploadedFiles).where(eq(uploadedFiles.id, id))
        return { ...found, shown: shownBy.length > 0 }
      })
      // Product pages and listings name the image's URLs: cached ones must stop before its bytes go.
      if (row.shown) await sizeDeps?.changed()
      await storage.remove(row.storageKey)
      await removeSizes(row)
    },

    /**
     * The orphan job: uploads older than the grace period that no product image and no avatar
     * uses are deleted, rows first, then files. Rows another transaction holds (an avatar being
     * set to one takes a key-share lock through its foreign key) are skipped until the next run.
     */
    async removeOrphans(graceHours: number, now = new Date()) {
      const cutoff = new Date(now.getTime() - graceHours * 3_600_000)
      const removed = await db.transaction(async (tx) => {
        const orphans = await tx.select({ id: uploadedFiles.id }).from(uploadedFiles)
          .where(and(
            lt(uploadedFiles.createdAt, cutoff),
            sql`not exists (select 1 from ${products} where ${uploadedFiles.id} = any(${products.imageIds}))`,
            sql`not exists (select 1 from ${users} where ${users.avatarId} = ${uploadedFiles.id})`,
          ))
          .limit(1000).for('update', { skipLocked: true })
        if (!orphans.length) return []
        return tx.delete(uploadedFiles).where(sql`${uploadedFiles.id} = any(${arrayParam(orphans.map((o) => o.id), 'uuid')})`)
          .returning({ storageKey: uploadedFiles.storageKey, sizes: uploadedFiles.sizes })
      })
      // After the commit: a crash here leaves files without rows, which are never served and
      // which the sweep below removes on a later run.
      for (const row of removed) { await storage.remove(row.storageKey); await removeSizes(row) }
      // Files without a row (a crash between writing the bytes and inserting the row, or after a
      // delete's commit), once as old as the grace period, so an upload in flight is never taken.
      let strayFiles = 0
      const oldKeys = await storage.listOlderThan(cutoff)
      for (let i = 0; i < oldKeys.length; i += 1000) {
        const keys = oldKeys.slice(i, i + 1000)
        // A made size belongs to its upload's row: kept while that row is.
        const sizeOwners = [...new Set(keys.map(uploadIdOfSizeKey).filter((id): id is string => id !== undefined))]
        const knownRows = await db.select({ id: uploadedFiles.id, key: uploadedFiles.storageKey }).from(uploadedFiles)
          .where(sql`${uploadedFiles.storageKey} = any(${arrayParam(keys, 'text')}) or ${uploadedFiles.id} = any(${arrayParam(sizeOwners, 'uuid')})`)
        const known = new Set(knownRows.flatMap((r) => [r.key, r.id]))
        for (const key of keys.filter((k) => !known.has(k) && !known.has(uploadIdOfSizeKey(k) ?? ''))) { await storage.remove(key); strayFiles++ }
      }
      return { removed: removed.length, strayFiles }
    },

    /** An owner's files, oldest first, each with a way to read its bytes (a data export). */
    async filesOf(ownerId: string) {
      const rows = await db.select().from(uploadedFiles).where(eq(uploadedFiles.ownerId, ownerId)).orderBy(uploadedFiles.createdAt, uploadedFiles.id)
      return rows.map((row) => ({ row, read: () => storage.read(row.storageKey) }))
    },

    /**
     * Deletes every file of an owner (an erasure): the avatar first stops pointing at one, then
     * per file the bytes, then the row. Idempotent: a crash between the two leaves the row, and
     * the next run removes the (already gone) bytes again and then the row.
     */
    async removeAllOf(ownerId: string) {
      await db.update(users).set({ avatarId: null }).where(eq(users.id, ownerId))
      const rows = await db.select({ id: uploadedFiles.id, storageKey: uploadedFiles.storageKey, sizes: uploadedFiles.sizes }).from(uploadedFiles).where(eq(uploadedFiles.ownerId, ownerId))
      for (const row of rows) {
        await storage.remove(row.storageKey)
        await removeSizes(row)
        await db.transaction(async (tx) => {
          await tx.update(products).set({ imageIds: sql`array_remove(${products.imageIds}, ${row.id}::uuid)` }).where(sql`${row.id}::uuid = any(${products.imageIds})`)
          await tx.delete(uploadedFiles).where(eq(uploadedFiles.id, row.id))
        })
      }
      return { removed: rows.length }
    },

    /**
     * The worker's job for one product image: makes its sizes from the stored original, stores
     * each, then marks the row ready (and only then are they listed). Idempotent: a ready or
     * failed image, or a deleted one, is left as it is, and a run cut short makes the same keys
     * again over what it left. Bytes that do not decode mark the image failed (no retry); a store
     * that fails asks for another run later.
     */
    async makeSizes(id: string): Promise<{ retryInMs?: number }> {
      const [row] = await db.select().from(uploadedFiles).where(eq(uploadedFiles.id, id))
      if (!row || row.purpose !== 'product_image' || row.sizesStatus === 'ready' || row.sizesStatus === 'failed') return {}
      let status: 'ready' | 'failed'
      let made: ImageSize[] = []
      let error: string | null = null
      try {
        const original = await readAll(storage.read(row.storageKey))
        made = await makeSizes(row.id, original, { maxPixels: sizeDeps?.maxPixels ?? 40_000_000 }, async (size, bytes) => {
          // Local disk refuses to overwrite (a run cut short left this key): written again.
          if (storage.kind === 'local') await storage.remove(size.key)
          await storage.put(size.key, bytes, { contentType: IMAGE_MIME[size.format], cacheControl: cacheControlOf('product_image') })
        })
        status = 'ready'
      } catch (err) {
        if (!(err instanceof UndecodableImage)) return { retryInMs: SIZE_RETRY_MS }
        status = 'failed'
        error = err.message.slice(0, 1000)
      }
      // Only a row still pending is marked: one deleted meanwhile keeps nothing (its sizes go).
      const [marked] = await db.update(uploadedFiles).set({ sizesStatus: status, sizes: made, sizesError: error })
        .where(and(eq(uploadedFiles.id, id), sql`${uploadedFiles.sizesStatus} is distinct from 'ready'`)).returning({ id: uploadedFiles.id })
      if (!marked) { await removeSizes({ sizes: made }); return {} }
      const shown = await db.select({ id: products.id }).from(products).where(sql`${id}::uuid = any(${products.imageIds})`).limit(1)
      if (shown.length) await sizeDeps?.changed()
      return {}
    },

    /** Product images whose sizes are still to make, oldest first (the sweep queues them again). */
    async pendingSizes(limit = 100) {
      const rows = await db.select({ id: uploadedFiles.id }).from(uploadedFiles)
        .where(sql`${uploadedFiles.purpose} = 'product_image' and ${uploadedFiles.sizesStatus} is distinct from 'ready' and ${uploadedFiles.sizesStatus} is distinct from 'failed'`)
        .orderBy(uploadedFiles.createdAt).limit(limit)
      return rows.map((r) => r.id)
    },

    /** Queues the pending product images again (their queue entries lost: Redis flushed, a dead worker). */
    async sweepSizes() {
      const ids = await this.pendingSizes()
      await sizeDeps?.enqueue(ids)
      return { queued: ids.length }
    },

    /** The product images of these ids as products show them; unknown ids are absent. */
    async productImages(ids: string[], on: Db = db) {
      if (!ids.length) return new Map<string, ProductImage>()
      // On every catalog read that misses the cache: prepared once per pool.
      let statement = imageStatements.get(on)
      if (!statement) {
        statement = on.select({ id: uploadedFiles.id, purpose: uploadedFiles.purpose, storageKey: uploadedFiles.storageKey, sizesStatus: uploadedFiles.sizesStatus, sizes: uploadedFiles.sizes })
          .from(uploadedFiles).where(sql`${uploadedFiles.id} = any(${sql.placeholder('ids')}::uuid[])`).prepare('product_images')
        imageStatements.set(on, statement)
      }
      const rows = await statement.execute({ ids })
      return new Map(rows.map((r) => [r.id, toProductImage(r, storage)]))
    },

    /** One made size of a product image, to serve; 404 until it is listed (ready). */
    async findSize(id: string, width: number, format: string) {
      const [row] = await db.select().from(uploadedFiles).where(eq(uploadedFiles.id, id))
      const size = row?.sizesStatus === 'ready' ? row.sizes.find((s) => s.width === width && s.format === format) : undefined
      if (!row || !size) throw new NotFound('image size', `${id}/w${width}.${format}`)
      return { size, stream: () => storage.read(size.key) }
    },

    /** Checks that ids name uploaded images of the given purpose (product images, avatars). */
    async requireImages(ids: string[], purpose: Purpose, ownerId?: string) {
      if (!ids.length) return
      const rows = await db.select({ id: uploadedFiles.id, purpose: uploadedFiles.purpose, ownerId: uploadedFiles.ownerId }).from(uploadedFiles)
        .where(sql`${uploadedFiles.id} = any(${arrayParam(ids, 'uuid')})`)
      const ok = new Set(rows.filter((r) => r.purpose === purpose && (!ownerId || r.ownerId === ownerId)).map((r) => r.id))
      const missing = ids.filter((id) => !ok.has(id))
      if (missing.length) throw new BadRequest(`Not uploaded ${purpose.replace('_', ' ')}s: ${missing.join(', ')}`, 'unknown-upload')
    },
  }
}
export type UploadService = ReturnType<typeof createUploadService>
