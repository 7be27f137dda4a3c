import type { App } from '../src/app.js'

export const DEFAULT_PASSWORD = 'correct horse battery'
export const authHeader = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })

/**
 * Registers a customer through the API (202, nothing revealed), marks its address verified in the
 * database (as its verification link would; `verified: false` leaves it unverified, and then it
 * cannot sign in with POST /auth/login), then signs it in as POST /auth/login would, without
 * spending the login rate limit: returns the AuthResult body `{ user, tokens }`.
 */
export async function register(app: App, input: { email: string; name?: string; password?: string; verified?: boolean }) {
  const res = await app.inject({
    method: 'POST', url: '/auth/register',
    payload: { email: input.email, name: input.name ?? 'Test User', password: input.password ?? DEFAULT_PASSWORD },
  })
  if (res.statusCode !== 202) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  const { users } = await import('../db/schema/index.js')
  const { normalizeEmail, toUser } = await import('../routes/users/service.js')
  const { eq } = await import('drizzle-orm')
  const [row] = input.verified === false
    ? await app.db.select().from(users).where(eq(users.email, normalizeEmail(input.email)))
    : await app.db.update(users).set({ emailVerifiedAt: new Date() }).where(eq(users.email, normalizeEmail(input.email))).returning()
  if (!row) throw new Error(`register: no account for ${input.email} (was it taken already?)`)
  const session = await app.sessions.create(row.id)
  const accessToken = app.issueAccessToken({ sub: row.id, role: row.role, sid: session.familyId })
  const body = { user: toUser(row), tokens: { tokenType: 'Bearer' as const, accessToken, expiresIn: app.config.auth.accessTtlSeconds, refreshToken: session.refreshToken } }
  return { body, headers: authHeader(accessToken) }
}

/** Registers a user, promotes it to admin in the database, and signs in again for an admin token. */
export async function registerAdmin(app: App, email = 'admin@example.com') {
  const { body } = await register(app, { email })
  const { users } = await import('../db/schema/index.js')
  const { eq } = await import('drizzle-orm')
  await app.db.update(users).set({ role: 'admin' }).where(eq(users.id, body.user.id))
  const res = await app.inject({ method: 'POST', url: '/auth/login', payload: { email, password: DEFAULT_PASSWORD } })
  return { user: res.json().user, headers: authHeader(res.json().tokens.accessToken) }
}

/** Many signed-in customers at once, made directly (argon2 per user would dominate a race test). */
export async function quickCustomers(app: App, count: number) {
  const { users } = await import('../db/schema/index.js')
  const rows = await app.db.insert(users).values(Array.from({ length: count }, (_, i) => ({
    email: `racer${i}-${Math.random().toString(36).slice(2, 8)}@example.com`, name: `Racer ${i}`, passwordHash: 'not-a-login',
  }))).returning({ id: users.id })
  return Promise.all(rows.map(async ({ id }) => {
    const session = await app.sessions.create(id)
    return { id, headers: authHeader(app.issueAccessToken({ sub: id, role: 'customer', sid: session.familyId })) }
  }))
}
