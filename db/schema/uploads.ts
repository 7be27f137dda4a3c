import { sql } from 'drizzle-orm'
import { index, integer, pgEnum, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'

export const uploadPurpose = pgEnum('upload_purpose', ['product_image', 'avatar'])

export const uploadedFiles = pgTable('uploaded_files', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  ownerId: uuid('owner_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  purpose: uploadPurpose('purpose').notNull(),
  // Decided from the file's bytes, never from its name or the client's Content-Type.
  mime: text('mime').notNull(),
  sizeBytes: integer('size_bytes').notNull(),
  sha256: text('sha256').notNull(),
  originalName: text('original_name').notNull(),
  storageKey: text('storage_key').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [index('uploaded_files_owner_idx').on(t.ownerId, t.createdAt)])
