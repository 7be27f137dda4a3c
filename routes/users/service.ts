import { and, desc, eq, ilike, isNotNull, not, or, sql, type SQL } from 'drizzle-orm'
import { addresses, userIdentities, users } from '../../db/schema/index.js'
import type { Db } from '../../db/client.js'
import { BadRequest, Conflict, NotFound, Unauthorized } from '../../src/errors.js'
import { assertHasPassword, assertPasswordPolicy, hashPassword, verifyPassword } from '../../src/passwords.js'
import { newestFirst } from '../../src/pagination.js'
import type { SessionStore } from '../../src/sessions.js'
import type { AccountMail } from '../../src/account-mail.js'

export type UserRow = typeof users.$inferSelect
type AddressRow = typeof addresses.$inferSelect
type Role = UserRow['role']

export const MAX_ADDRESSES_PER_USER = 20

/** The public view of an account; the only way a user leaves this service. */
export function toUser(row: UserRow) {
  return {
    id: row.id,
    email: row.email,
    name: row.name,
    role: row.role,
    emailVerified: row.emailVerifiedAt !== null,
    twoFactorEnabled: row.totpEnabledAt !== null,
    isActive: row.isActive,
    avatarUrl: row.avatarId ? `/uploads/${row.avatarId}` : null,
    createdAt: row.createdAt.toISOString(),
  }
}

function toAddress(row: AddressRow) {
  return {
    id: row.id, label: row.label, recipientName: row.recipientName, line1: row.line1, line2: row.line2,
    city: row.city, region: row.region, postalCode: row.postalCode, country: row.country, phone: row.phone,
    isDefault: row.isDefault, createdAt: row.createdAt.toISOString(), updatedAt: row.updatedAt.toISOString(),
  }
}

export const normalizeEmail = (email: string) => email.trim().toLowerCase()

/**
 * What sign-out everywhere, a password change and a reset take away besides sessions. Links the
 * owner did not confirm always go. A reset proves only the mailbox, and whoever knew the old
 * password could have confirmed a link with it, so after a reset only the links the mailbox
 * vouches for stay: those whose provider verified the account's own address.
 */
export async function removeUnconfirmedLinks(executor: Pick<Db, 'delete'>, user: Pick<UserRow, 'id' | 'email'>, afterReset = false) {
  // coalesce: a link without an email is not vouched for (and `not null` would keep it).
  const keep = afterReset ? sql`coalesce(${userIdentities.emailVerified} and ${userIdentities.email} = ${user.email}, false)` : isNotNull(userIdentities.confirmedAt)
  return executor.delete(userIdentities).where(and(eq(userIdentities.userId, user.id), not(keep)))
    .returning({ provider: userIdentities.provider, email: userIdentities.email })
}
const likePattern = (q: string) => `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

export interface UsersDeps { db: Db; sessions: SessionStore; accountMail: AccountMail }

export function createUserService({ db, sessions, accountMail }: UsersDeps) {
  const findById = db.select().from(users).where(eq(users.id, sql.placeholder('id'))).limit(1).prepare('user_by_id')

  async function requireUser(id: string) {
    const [row] = await findById.execute({ id })
    if (!row) throw new NotFound('user', id)
    return row
  }

  async function update(id: string, values: Partial<typeof users.$inferInsert>) {
    const [row] = await db.update(users).set({ ...values, updatedAt: new Date() }).where(eq(users.id, id)).returning()
    if (!row) throw new NotFound('user', id)
    return row
  }

  async function requireAddress(userId: string, addressId: string) {
    // Someone else's address is indistinguishable from a missing one.
    const [row] = await db.select().from(addresses).where(and(eq(addresses.id, addressId), eq(addresses.userId, userId)))
    if (!row) throw new NotFound('address', addressId)
    return row
  }

  return {
    requireUser,

    async get(id: string) { return toUser(await requireUser(id)) },

    async updateProfile(id: string, input: { name?: string; avatarId?: string | null }) {
      return toUser(await update(id, { ...(input.name !== undefined ? { name: input.name.trim() } : {}), ...(input.avatarId !== undefined ? { avatarId: input.avatarId } : {}) }))
    },

    /**
     * Asks to move the account to another address. Nothing changes until the new mailbox follows
     * the link sent to it (POST /auth/verify-email), and the answer is the same whether or not the
     * address has an account (whose owner is told instead), so this cannot find out who is a
     * customer. The current address is told either way.
     */
    async changeEmail(id: string, input: { email: string; password: string }) {
      const user = await requireUser(id)
      assertHasPassword(user)
      if (!(await verifyPassword(user.passwordHash, input.password))) throw new Unauthorized('The password is not correct', 'invalid-credentials')
      const email = normalizeEmail(input.email)
      if (email === user.email) throw new BadRequest('That is already your email address', 'same-email')
      const [owner] = await db.select().from(users).where(eq(users.email, email))
      if (owner) accountMail.sendEmailChangeAttempt(owner)
      else await accountMail.sendEmailChange(user, email)
      accountMail.sendEmailChangeNotice(user, email)
    },

    /** Changes the password, ends every other session of the user and removes the links the owner did not confirm. */
    async changePassword(id: string, currentFamilyId: string, input: { currentPassword: string; newPassword: string }) {
      const user = await requireUser(id)
      assertHasPassword(user)
      if (!(await verifyPassword(user.passwordHash, input.currentPassword))) throw new Unauthorized('The current password is not correct', 'invalid-credentials')
      assertPasswordPolicy(input.newPassword, user.email)
      await update(id, { passwordHash: await hashPassword(input.newPassword) })
      await removeUnconfirmedLinks(db, user)
      await sessions.revokeAll(id, currentFamilyId)
    },

    async listAddresses(userId: string) {
      const rows = await db.select().from(addresses).where(eq(addresses.userId, userId)).orderBy(desc(addresses.isDefault), addresses.createdAt, addresses.id)
      return { items: rows.map(toAddress) }
    },

    async getAddress(userId: string, addressId: string) { return toAddress(await requireAddress(userId, addressId)) },

    async createAddress(userId: string, input: Omit<typeof addresses.$inferInsert, 'id' | 'userId' | 'createdAt' | 'updatedAt'>) {
      return db.transaction(async (tx) => {
        // Serialises address writes per user so the count limit and the single default hold.
        await tx.execute(sql`select 1 from ${users} where ${users.id} = ${userId} for update`)
        const [{ count }] = await tx.select({ count: sql<number>`count(*)::int` }).from(addresses).where(eq(addresses.userId, userId)) as [{ count: number }]
        if (count >= MAX_ADDRESSES_PER_USER) throw new Conflict(`An account can keep at most ${MAX_ADDRESSES_PER_USER} addresses`, 'address-limit')
        const isDefault = input.isDefault ?? count === 0
        if (isDefault) await tx.update(addresses).set({ isDefault: false }).where(and(eq(addresses.userId, userId), eq(addresses.isDefault, true)))
        const [row] = await tx.insert(addresses).values({ ...input, userId, isDefault }).returning()
        return toAddress(row!)
      })
    },

    async updateAddress(userId: string, addressId: string, input: Partial<typeof addresses.$inferInsert>) {
      return db.transaction(async (tx) => {
        await tx.execute(sql`select 1 from ${users} where ${users.id} = ${userId} for update`)
        // Everything inside goes through tx: PGlite has one connection, held by the transaction.
        if (input.isDefault) await tx.update(addresses).set({ isDefault: false }).where(and(eq(addresses.userId, userId), eq(addresses.isDefault, true), sql`${addresses.id} <> ${addressId}`))
        const [row] = await tx.update(addresses).set({ ...input, updatedAt: new Date() }).where(and(eq(addresses.id, addressId), eq(addresses.userId, userId))).returning()
        if (!row) throw new NotFound('address', addressId)
        return toAddress(row)
      })
    },

    async deleteAddress(userId: string, addressId: string) {
      const deleted = await db.delete(addresses).where(and(eq(addresses.id, addressId), eq(addresses.userId, userId))).returning({ id: addresses.id })
      if (!deleted.length) throw new NotFound('address', addressId)
    },

    /** Admin listing, newest first, keyset-paged on (created_at, id). */
    async list(query: { limit: number; cursor?: string; q?: string; role?: Role; isActive?: boolean }) {
      const filters: SQL[] = []
      if (query.q) filters.push(or(ilike(users.email, likePattern(query.q)), ilike(users.name, likePattern(query.q)))!)
      if (query.role) filters.push(eq(users.role, query.role))
      if (query.isActive !== undefined) filters.push(eq(users.isActive, query.isActive))
      const keyset = newestFirst(users.createdAt, users.id)
      const rows = await db.select().from(users).where(and(...filters, keyset.after(query.cursor))).orderBy(...keyset.orderBy).limit(query.limit + 1)
      const page = keyset.page(rows, query.limit)
      return { items: page.items.map(toUser), nextCursor: page.nextCursor }
    },

    /** Changing a role ends the user's sessions, so no token keeps the old role. */
    async setRole(actorId: string, userId: string, role: Role) {
      if (actorId === userId) throw new Conflict('Admins cannot change their own role', 'self-change')
      const row = await update(userId, { role })
      await sessions.revokeAll(userId)
      return toUser(row)
    },

    /** A deactivated user cannot sign in and loses every session at once. */
    async setActive(actorId: string, userId: string, isActive: boolean) {
      if (actorId === userId) throw new Conflict('Admins cannot deactivate themselves', 'self-change')
      const row = await update(userId, { isActive })
      if (!isActive) await sessions.revokeAll(userId)
      return toUser(row)
    },
  }
}
export type UserService = ReturnType<typeof createUserService>
