import { createHash, randomUUID } from 'node:crypto'
import { eq, sql } from 'drizzle-orm'
import { fileTypeFromBuffer } from 'file-type'
import { products, uploadedFiles } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { BadRequest, Forbidden, NotFound } from '../../src/errors.js'
import type { FileStorage } from '../../src/storage.js'
import { ALLOWED_MIME } from './schemas.js'

type Purpose = 'product_image' | 'avatar'
type Row = typeof uploadedFiles.$inferSelect

/** A name safe to echo in a header and a page: letters, digits, dot, dash, underscore. */
export function sanitizeFileName(name: string) {
  const base = name.split(/[\\/]/).pop() ?? ''
  const clean = base.normalize('NFKD').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '').slice(0, 100)
  return clean || 'file'
}

export const toUpload = (r: Row) => ({
  id: r.id, purpose: r.purpose, mime: r.mime as (typeof ALLOWED_MIME)[number], sizeBytes: r.sizeBytes, sha256: r.sha256,
  originalName: r.originalName, url: `/uploads/${r.id}`, createdAt: r.createdAt.toISOString(),
})

export function createUploadService({ db, storage }: { db: Db; storage: FileStorage }) {
  return {
    async store(owner: { userId: string; isAdmin: boolean }, purpose: Purpose, file: { filename: string; bytes: Buffer }) {
      if (purpose === 'product_image' && !owner.isAdmin) throw new Forbidden('Product images are uploaded by admins')
      // The bytes decide: a renamed HTML or SVG file is refused whatever it claims to be.
      const detected = await fileTypeFromBuffer(file.bytes)
      if (!detected || !(ALLOWED_MIME as readonly string[]).includes(detected.mime)) {
        throw new BadRequest(`Only ${ALLOWED_MIME.join(', ')} are accepted; this file's content is ${detected?.mime ?? 'not a recognised image'}`, 'unsupported-file-type')
      }
      const id = randomUUID()
      const storageKey = `${id}.${detected.ext}`
      await storage.put(storageKey, file.bytes)
      try {
        const [row] = await db.insert(uploadedFiles).values({
          id, ownerId: owner.userId, purpose, mime: detected.mime, sizeBytes: file.bytes.length,
          sha256: createHash('sha256').update(file.bytes).digest('hex'), originalName: sanitizeFileName(file.filename), storageKey,
        }).returning()
        return toUpload(row!)
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
        await tx.update(products).set({ imageIds: sql`array_remove(${products.imageIds}, ${id}::uuid)` }).where(sql`${id}::uuid = any(${products.imageIds})`)
        await tx.delete(uploadedFiles).where(eq(uploadedFiles.id, id))
        return found
      })
      await storage.remove(row.storageKey)
    },

    /** Checks that ids name uploaded images of the given purpose (product images, avatars). */
    async requireImages(ids: string[], purpose: Purpose, ownerId?: string) {
      if (!ids.length) return
      const rows = await db.select({ id: uploadedFiles.id, purpose: uploadedFiles.purpose, ownerId: uploadedFiles.ownerId }).from(uploadedFiles)
        .where(sql`${uploadedFiles.id} = any(${sql.param(ids)}::uuid[])`)
      const ok = new Set(rows.filter((r) => r.purpose === purpose && (!ownerId || r.ownerId === ownerId)).map((r) => r.id))
      const missing = ids.filter((id) => !ok.has(id))
      if (missing.length) throw new BadRequest(`Not uploaded ${purpose.replace('_', ' ')}s: ${missing.join(', ')}`, 'unknown-upload')
    },
  }
}
export type UploadService = ReturnType<typeof createUploadService>
