// Creates the first admin, or promotes an existing account:
//   npm run user:create-admin -- --email admin@example.com [--name "Shop Admin"]
// The password comes from ADMIN_PASSWORD; without it a random one is generated and printed once.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { eq } from 'drizzle-orm'
import { openDb } from './client.js'
import { users } from './schema/index.js'
import { loadConfig } from '../src/config.js'
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

const handle = await openDb(loadConfig().postgres)
try {
  await handle.migrate()
  const [existing] = await handle.db.select().from(users).where(eq(users.email, email))
  if (existing) {
    await handle.db.update(users).set({ role: 'admin', isActive: true, updatedAt: new Date() }).where(eq(users.id, existing.id))
    console.log(`${email} is now an admin (password unchanged)`)
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
