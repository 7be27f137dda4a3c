import type { App } from '../src/app.js'

export const DEFAULT_PASSWORD = 'correct horse battery'
export const authHeader = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` })

/** Registers a customer through the API; returns the AuthResult body. */
export async function register(app: App, input: { email: string; name?: string; password?: string }) {
  const res = await app.inject({
    method: 'POST', url: '/auth/register',
    payload: { email: input.email, name: input.name ?? 'Test User', password: input.password ?? DEFAULT_PASSWORD },
  })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  return { body: res.json(), headers: authHeader(res.json().tokens.accessToken) }
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
