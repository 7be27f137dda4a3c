import t from 'tap'
import { readFileSync } from 'node:fs'
import { OPENAPI_FILE } from '../openapi/generate.js'
import { buildTestApp } from './helpers.js'
import { DEFAULT_PASSWORD, register, registerAdmin } from './users.js'

type Schema = { $ref?: string; properties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; allOf?: Schema[]; oneOf?: Schema[] }
const SECRET_NAME = /hash|password|secret|salt/i
// The TOTP setup answer must show the new secret once, to the account's owner; nothing else may.
// hasPassword is a boolean (whether password sign-in is possible), not a password.
const ALLOWED = new Set(['setupTwoFactor:secret', 'listMyIdentities:hasPassword', 'finishProviderLink:hasPassword'])

t.test('no auth or users response schema has a field for a hash, password or secret', async (t) => {
  const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'))
  const components: Record<string, Schema> = doc.components.schemas
  const fieldsOf = (schema: Schema, seen = new Set<string>()): string[] => {
    if (schema.$ref) {
      const name = schema.$ref.split('/').pop()!
      if (seen.has(name)) return []
      seen.add(name)
      return fieldsOf(components[name]!, seen)
    }
    const nested = [schema.items, ...(schema.anyOf ?? []), ...(schema.allOf ?? []), ...(schema.oneOf ?? [])].filter(Boolean) as Schema[]
    return [
      ...Object.entries(schema.properties ?? {}).flatMap(([name, sub]) => [name, ...fieldsOf(sub, seen)]),
      ...nested.flatMap((s) => fieldsOf(s, seen)),
    ]
  }
  let checked = 0
  for (const item of Object.values<Record<string, { operationId: string; tags: string[]; responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>>(doc.paths)) {
    for (const op of Object.values(item)) {
      if (!op.tags.some((tag) => tag === 'auth' || tag === 'users')) continue
      for (const response of Object.values(op.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          for (const field of fieldsOf(media.schema)) {
            if (!ALLOWED.has(`${op.operationId}:${field}`)) t.notMatch(field, SECRET_NAME, `${op.operationId} answers with ${field}`)
          }
          checked++
        }
      }
    }
  }
  t.ok(checked > 40, `checked ${checked} responses`)
})

t.test('no response body of the auth and user flows carries an argon2 or SHA-256 hash', async (t) => {
  const app = await buildTestApp(t)
  const bodies: string[] = []
  app.addHook('onSend', async (_req, _reply, payload) => {
    if (typeof payload === 'string') bodies.push(payload)
    return payload
  })
  const admin = await registerAdmin(app)
  const { body, headers } = await register(app, { email: 'sweep@example.com' })
  await app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'sweep@example.com', password: DEFAULT_PASSWORD } })
  await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: body.tokens.refreshToken } })
  await app.inject({ method: 'GET', url: '/users/me', headers })
  await app.inject({ method: 'PATCH', url: '/users/me', headers, payload: { name: 'Sweep' } })
  await app.inject({ method: 'GET', url: '/users', headers: admin.headers })
  await app.inject({ method: 'GET', url: `/users/${body.user.id}`, headers: admin.headers })
  await app.inject({ method: 'POST', url: `/users/${body.user.id}/deactivate`, headers: admin.headers })
  await app.inject({ method: 'POST', url: '/auth/password/forgot', payload: { email: 'sweep@example.com' } })

  t.ok(bodies.length >= 10)
  for (const payload of bodies) {
    t.notMatch(payload, /\$argon2/, 'no argon2 hash')
    t.notMatch(payload, /\b[0-9a-f]{64}\b/, 'no SHA-256 hex digest')
    t.notMatch(payload, /passwordHash|password_hash|totpSecret|codeHash/)
  }
})
