// Creates the first admin, or promotes an existing account whose address is verified (ending its sessions):
//   npm run user:create-admin -- --email admin@example.com [--name "Shop Admin"]
// The password comes from ADMIN_PASSWORD; without it a random one is generated and printed once.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { eq } from 'drizzle-orm'
import { openDb } from './client.js'
import { users } from './schema/index.js'
import { loadConfig } from '../src/config.js'
import { connectRedis, hasRedisServer } from '../src/redis-client.js'
import { createSessionStore } from '../src/sessions.js'
import { assertPasswordPolicy, hashPassword, PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../src/passwords.js'

const { values } = parseArgs({ options: { email: { type: 'string' }, name: { type: 'string', default: 'Shop Admin' } } })
const email = values.email?.trim().toLowerCase()
if (!email || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
  console.error('usage: npm run user:create-admin -- --email admin@example.com [--name "Shop Admin"]')
  process.exit(2)
}
const given = process.env.ADMIN_PASSWORD
if (given !== undefined && (given.length < PASSWORD_MIN_LENGTH || given.length > PASSWORD_MAX_LENGTH)) {
  console.error(`ADMIN_PASSWORD must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters`)
  process.exit(2)
}

const config = loadConfig()
const handle = await openDb(config.postgres)
try {
  await handle.migrate()
  const [existing] = await handle.db.select().from(users).where(eq(users.email, email))
  if (existing && !existing.emailVerifiedAt) {
    // Anyone can register an address: only its mailbox's owner may be made an admin.
    console.error(`${email} has an account whose address is not verified, so it is not promoted: its owner verifies it (the link of the verification mail, or a password reset), then run this again`)
    process.exitCode = 1
  } else if (existing) {
    await handle.db.update(users).set({ role: 'admin', isActive: true, updatedAt: new Date() }).where(eq(users.id, existing.id))
    // No token issued before keeps working with the new role: the admin signs in again.
    if (hasRedisServer(config.redis)) {
      const redis = connectRedis(config.redis, { keyPrefix: config.redis.keyPrefix, maxRetriesPerRequest: 1, connectTimeout: 5000 })
      try {
        await createSessionStore(redis, { refreshTtlSeconds: config.auth.refreshTtlSeconds }).revokeAll(existing.id)
      } finally {
        redis.disconnect()
      }
      console.log(`${email} is now an admin (password unchanged; its sessions ended, sign in again)`)
    } else {
      console.log(`${email} is now an admin (password unchanged; no REDIS_URL, so sessions live in the API process: restart it to end them)`)
    }
  } else {
    const password = given ?? randomBytes(18).toString('base64url')
    assertPasswordPolicy(password, email)
    await handle.db.insert(users).values({ email, name: values.name!, role: 'admin', passwordHash: await hashPassword(password), emailVerifiedAt: new Date() })
    console.log(`created admin ${email}`)
    if (!given) console.log(`password (shown once): ${password}`)
  }
} finally {
  await handle.close()
}
