import { sql } from 'drizzle-orm'
import { index, integer, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'
import { users } from './users.js'

// A customer's data requests (docs/accounts.md#your-data): an export of everything the shop
// holds about them, and an erasure. Both are job resources: a row records what was asked and
// how far the work got, the worker does it (plugins/background.ts), and a run that died is
// taken over by the next one once its lease has passed.

const ts = (name: string) => timestamp(name, { withTimezone: true, precision: 3 })

// pending: waiting for (or being built by) the worker; ready: the archive can be downloaded
// until expires_at; expired: past that, the archive is deleted; failed: gave up after retries.
export const dataExportStatus = pgEnum('data_export_status', ['pending', 'ready', 'failed', 'expired'])

export const dataExports = pgTable('data_exports', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  status: dataExportStatus('status').notNull().default('pending'),
  // The archive in the export storage (never the public uploads): set once it is built.
  storageKey: text('storage_key'),
  sizeBytes: integer('size_bytes'),
  attempts: integer('attempts').notNull().default(0),
  lastError: text('last_error'),
  // Held by the worker building it; a worker that died loses it after the lease.
  lockedUntil: ts('locked_until'),
  createdAt: ts('created_at').notNull().defaultNow(),
  completedAt: ts('completed_at'),
  expiresAt: ts('expires_at'),
}, (t) => [
  // Asking again while one is pending answers that one: at most one pending per user.
  uniqueIndex('data_exports_one_pending_per_user').on(t.userId).where(sql`status = 'pending'`),
  index('data_exports_user_created_idx').on(t.userId, t.createdAt),
  index('data_exports_status_idx').on(t.status),
])

// running: confirmed, the workflow goes (or resumes) step by step; completed: nothing personal
// is left, user_id is null and only the tombstone id says which kept records were the person's.
export const erasureStatus = pgEnum('erasure_status', ['running', 'completed'])

export const erasureRequests = pgTable('erasure_requests', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  // The person being erased; null once the erasure is complete (the account row is gone).
  userId: uuid('user_id').references(() => users.id, { onDelete: 'set null' }),
  // The id the kept orders, returns and redemptions move to: fixed when asked, so every re-run
  // of the workflow moves them to the same anonymous account.
  tombstoneId: uuid('tombstone_id').notNull().default(sql`gen_random_uuid()`),
  // The admin who asked on the person's behalf; null when the person asked.
  requestedBy: uuid('requested_by').references(() => users.id, { onDelete: 'set null' }),
  status: erasureStatus('status').notNull().default('running'),
  // The last step done (routes/users/workflows/erasure.ts names them); 'requested' before the first.
  step: text('step').notNull().default('requested'),
  attempts: integer('attempts').notNull().default(0),
  lastError: text('last_error'),
  lockedUntil: ts('locked_until'),
  createdAt: ts('created_at').notNull().defaultNow(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
  completedAt: ts('completed_at'),
}, (t) => [
  uniqueIndex('erasure_requests_one_running_per_user').on(t.userId).where(sql`status = 'running'`),
  index('erasure_requests_status_idx').on(t.status),
])
