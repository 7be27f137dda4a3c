import { sql } from 'drizzle-orm'
import { boolean, index, integer, jsonb, pgEnum, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'

// Catalog imports and exports (docs/import-export.md): job resources. A row records what was
// asked (the uploaded file, the mode, the export's filters), how far the worker got (counts,
// bytes read) and the result (the error report, the export file). The worker takes a row under a
// lease (src/leases.ts); a worker that died leaves it to the next run, which starts the file again
// from the top: an import is an upsert, so a second pass gives what one clean pass gives.

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

export const catalogJobKind = pgEnum('catalog_job_kind', ['import', 'export'])
// pending: waiting for the worker; running: taken (a dead worker's is taken again after its
// lease); completed, failed (a file with bad rows in the default mode, an unreadable file, or
// retries spent) and cancelled are final.
export const catalogJobStatus = pgEnum('catalog_job_status', ['pending', 'running', 'completed', 'failed', 'cancelled'])

/** Product exports: status, category; order exports: the range of created_at [from, to), status, currency. */
export interface ExportFilters { status?: string; category?: string; from?: string; to?: string; currency?: string }

/** One bad cell of an import: the file's line (1 is the header), the column and why. */
export interface RowError { line: number; column: string | null; reason: string }

export const catalogJobs = pgTable('catalog_jobs', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  kind: catalogJobKind('kind').notNull(),
  status: catalogJobStatus('status').notNull().default('pending'),
  // Imports: 'all' (a file with any bad row imports nothing) or 'good-rows'; and whether it is a dry run.
  mode: text('mode').notNull().default('all'),
  dryRun: boolean('dry_run').notNull().default(false),
  // Exports: what is exported (the catalog, or orders for accounting) and the filters it was asked with.
  subject: text('subject').$type<'products' | 'orders'>().notNull().default('products'),
  filters: jsonb('filters').$type<ExportFilters>().notNull().default({}),
  // The import's uploaded file, or the export's built file, in the catalog file storage.
  storageKey: text('storage_key'),
  sizeBytes: integer('size_bytes'),
  bytesDone: integer('bytes_done').notNull().default(0),
  rowsRead: integer('rows_read').notNull().default(0),
  created: integer('created').notNull().default(0),
  updated: integer('updated').notNull().default(0),
  unchanged: integer('unchanged').notNull().default(0),
  failed: integer('failed').notNull().default(0),
  // The first bad cells (bounded); `failed` counts every bad row.
  errors: jsonb('errors').$type<RowError[]>().notNull().default([]),
  attempts: integer('attempts').notNull().default(0),
  lastError: text('last_error'),
  lockedUntil: ts('locked_until'),
  createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
  createdAt: ts('created_at').notNull().defaultNow(),
  startedAt: ts('started_at'),
  completedAt: ts('completed_at'),
}, (t) => [
  index('catalog_jobs_status_idx').on(t.status, t.createdAt),
])

/**
 * What an import's validation pass has seen so far, kept in PostgreSQL rather than in the
 * worker's memory so that memory stays bounded whatever the file's size: each SKU and handle
 * with the line it was first on (and, for a handle, its product fields and whether a good row
 * of it was planned), and each bad line (kind 'bad', key the line), which the write pass skips.
 * Rows of a job are deleted when it starts again and when it ends.
 */
export const catalogImportKeys = pgTable('catalog_import_keys', {
  jobId: uuid('job_id').notNull().references(() => catalogJobs.id, { onDelete: 'cascade' }),
  kind: text('kind').$type<'sku' | 'handle' | 'bad'>().notNull(),
  key: text('key').notNull(),
  line: integer('line').notNull(),
  fields: text('fields'),
  planned: boolean('planned').notNull().default(false),
}, (t) => [
  primaryKey({ columns: [t.jobId, t.kind, t.key] }),
  // The write pass's bad lines by range. Partial: over every kind, the planner took it for the
  // lookups by SKU and handle while the table's statistics were those of an empty table (as in
  // each import's first minutes), scanning all of the job's keys per batch (4 s at 400,000 keys).
  index('catalog_import_keys_bad_line_idx').on(t.jobId, t.line).where(sql`kind = 'bad'`),
])
