import { sql } from 'drizzle-orm'
// Timestamps keep milliseconds, as JavaScript dates do, so a keyset cursor round-trips exactly.
import { boolean, index, integer, jsonb, pgEnum, pgTable, text, timestamp, uniqueIndex, uuid, type AnyPgColumn } from 'drizzle-orm/pg-core'

export const userRole = pgEnum('user_role', ['customer', 'admin'])

export const users = pgTable('users', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  // Stored lower-cased; the unique index is what stops two accounts racing to one address.
  email: text('email').notNull(),
  // Null for an account made by OpenID Connect sign-in until its owner sets a password (reset).
  passwordHash: text('password_hash'),
  name: text('name').notNull(),
  role: userRole('role').notNull().default('customer'),
  isActive: boolean('is_active').notNull().default(true),
  emailVerifiedAt: timestamp('email_verified_at', { withTimezone: true, precision: 3 }),
  // Base32 TOTP secret; set only while two-factor authentication is enabled.
  totpSecret: text('totp_secret'),
  totpEnabledAt: timestamp('totp_enabled_at', { withTimezone: true, precision: 3 }),
  // An uploaded image; the two tables refer to each other, hence the lazy reference.
  avatarId: uuid('avatar_id').references((): AnyPgColumn => uploadedFiles.id, { onDelete: 'set null' }),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('users_email_key').on(t.email),
  index('users_created_at_id_idx').on(t.createdAt, t.id),
])

/**
 * Accounts at OpenID Connect providers that sign in as a user: one per provider and user, and a
 * provider's subject belongs to one user. `emailVerified` records whether the provider vouched
 * for the address when the identity was linked (a password reset drops the unvouched ones).
 */
export const userIdentities = pgTable('user_identities', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  provider: text('provider').notNull(),
  subject: text('subject').notNull(),
  email: text('email'),
  emailVerified: boolean('email_verified').notNull(),
  /**
   * When the owner confirmed the link: made by a recently signed-in session, the owner's password
   * (confirm-link), or the provider account that created the account. Null for links made with
   * nothing but a session (before linking needed a recent sign-in): sign-out everywhere, a
   * password change and a reset remove those.
   */
  confirmedAt: timestamp('confirmed_at', { withTimezone: true, precision: 3 }),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('user_identities_provider_subject_key').on(t.provider, t.subject),
  uniqueIndex('user_identities_user_provider_key').on(t.userId, t.provider),
])

/**
 * Single-use two-factor recovery codes (random, 50 bits). Stored as argon2id (the password
 * parameters) of the code's SHA-256 under `salt`, one salt per account, so a code is hashed once
 * per attempt and a copy of the table cannot be searched quickly. Rows without a salt hold the
 * plain SHA-256 that was stored before; they still work and are salted at the owner's next
 * sign-in with a second factor.
 */
export const recoveryCodes = pgTable('recovery_codes', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  codeHash: text('code_hash').notNull(),
  /** Base64 argon2 salt; null: `codeHash` is the legacy plain SHA-256. */
  salt: text('salt'),
  usedAt: timestamp('used_at', { withTimezone: true, precision: 3 }),
}, (t) => [uniqueIndex('recovery_codes_user_hash_key').on(t.userId, t.codeHash)])

export const addresses = pgTable('addresses', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  label: text('label'),
  recipientName: text('recipient_name').notNull(),
  line1: text('line1').notNull(),
  line2: text('line2'),
  city: text('city').notNull(),
  region: text('region'),
  postalCode: text('postal_code').notNull(),
  country: text('country').notNull(),
  phone: text('phone'),
  isDefault: boolean('is_default').notNull().default(false),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
}, (t) => [
  index('addresses_user_id_idx').on(t.userId, t.createdAt),
  // At most one default address per user, enforced by the database.
  uniqueIndex('addresses_one_default_per_user').on(t.userId).where(sql`${t.isDefault}`),
])

// Uploaded files live here with users: each references the other (owner, avatar), and tables in
// two modules would import each other.

export const uploadPurpose = pgEnum('upload_purpose', ['product_image', 'avatar'])
/** Sizes of a product image (made by the worker): pending until made, failed for bytes that do not decode. */
export const imageSizesStatus = pgEnum('image_sizes_status', ['pending', 'ready', 'failed'])

/** One made size of a product image: an object of its own beside the original, never changed. */
export interface ImageSize { width: number; height: number; format: 'webp' | 'avif'; key: string; bytes: number; sha256: string }

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
  // Product images only (null for avatars, and for product images stored before sizes existed,
  // which the sweep treats as pending): the sizes are listed once every object of them is stored.
  sizesStatus: imageSizesStatus('sizes_status'),
  sizes: jsonb('sizes').$type<ImageSize[]>().notNull().default([]),
  sizesError: text('sizes_error'),
}, (t) => [
  index('uploaded_files_owner_idx').on(t.ownerId, t.createdAt),
  // The sweep's lookup of product images whose sizes are still to make.
  index('uploaded_files_sizes_pending_idx').on(t.createdAt).where(sql`${t.purpose} = 'product_image' and ${t.sizesStatus} is distinct from 'ready' and ${t.sizesStatus} is distinct from 'failed'`),
])
