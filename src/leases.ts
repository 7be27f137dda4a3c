import { and, asc, inArray, isNull, lt, or, sql, type SQL } from 'drizzle-orm'
import type { PgColumn, PgTable, PgTableWithColumns, TableConfig } from 'drizzle-orm/pg-core'
import type { Db } from '../db/client.js'

/** A table of background requests that workers take one at a time under a lease. */
type LeasedTable = PgTable & {
  id: PgColumn
  attempts: PgColumn
  lockedUntil: PgColumn
  createdAt: PgColumn
}

/**
 * Claims the oldest row that is `ready` and not leased (or whose lease has passed): its lease is
 * set `leaseSeconds` ahead and its attempts counted, in one statement, so two workers never take
 * the same row and a worker that dies leaves it to the next run once the lease passes.
 */
export async function claimLeased<T extends LeasedTable>(db: Db, table: T, ready: SQL, leaseSeconds: number): Promise<T['$inferSelect'] | undefined> {
  // Drizzle cannot check column names of a generic table; the constraint above names them.
  const anyTable = table as unknown as PgTableWithColumns<TableConfig>
  const free = or(isNull(table.lockedUntil), lt(table.lockedUntil, sql`now()`))
  const oldest = db.select({ id: table.id }).from(anyTable).where(and(ready, free))
    .orderBy(asc(table.createdAt)).limit(1).for('update', { skipLocked: true })
  const [row] = await db.update(anyTable)
    .set({ attempts: sql`${table.attempts} + 1`, lockedUntil: sql`now() + make_interval(secs => ${leaseSeconds})` })
    .where(inArray(table.id, oldest))
    .returning()
  return row as T['$inferSelect'] | undefined
}
