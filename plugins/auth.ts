import fp from 'fastify-plugin'
import jwt from '@fastify/jwt'
import { randomUUID } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Forbidden, Unauthorized } from '../src/errors.js'
import { createSessionStore, type SessionStore } from '../src/sessions.js'

export type Role = 'customer' | 'admin'
export interface AccessClaims { sub: string; role: Role; sid: string; jti: string }

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessClaims
    user: AccessClaims & { iat: number; exp: number }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    sessions: SessionStore
    /** Signs a short-lived access token for a user's session. */
    issueAccessToken(claims: Omit<AccessClaims, 'jti'>): string
    /** preHandler: a valid, unrevoked access token is required. */
    authenticate(req: FastifyRequest, reply: FastifyReply): Promise<void>
    /** onRequest: authenticates when a token is sent; anonymous requests pass (see viewerRole). */
    identify(req: FastifyRequest, reply: FastifyReply): Promise<void>
    /** onRequest hook factory: authenticated and holding the role (before the body is read or validated). */
    requireRole(role: Role): (req: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
}

// The role a requireRole hook demands, read by the OpenAPI transform to state it as `x-roles`.
const REQUIRED_ROLE = Symbol('requiredRole')
/** The roles that a route's onRequest hooks require (empty: any signed-in user, or public). */
export function requiredRoles(onRequest: unknown): Role[] {
  return [onRequest].flat().flatMap((hook) => (hook as { [REQUIRED_ROLE]?: Role } | undefined)?.[REQUIRED_ROLE] ?? [])
}

const EXPIRED = new Set(['FST_JWT_AUTHORIZATION_TOKEN_EXPIRED', 'FAST_JWT_EXPIRED'])

export default fp(async (app) => {
  const { jwtSecret, auth } = app.config
  await app.register(jwt, {
    secret: jwtSecret,
    // One algorithm, one issuer, one audience: anything else (alg none, RS/HS confusion) fails.
    sign: { algorithm: 'HS256', iss: auth.issuer, aud: auth.audience, expiresIn: `${auth.accessTtlSeconds}s` },
    verify: { algorithms: ['HS256'], allowedIss: auth.issuer, allowedAud: auth.audience, requiredClaims: ['sub', 'sid', 'jti', 'exp', 'iss', 'aud'] },
  })
  const sessions = createSessionStore(app.redis, { refreshTtlSeconds: auth.refreshTtlSeconds, reuseGraceSeconds: auth.refreshReuseGraceSeconds })
  app.decorate('sessions', sessions)
  app.decorate('issueAccessToken', (claims: Omit<AccessClaims, 'jti'>) => app.jwt.sign({ ...claims, jti: randomUUID() }))

  app.decorate('authenticate', async (req: FastifyRequest) => {
    try {
      await req.jwtVerify()
    } catch (err) {
      const code = (err as { code?: string }).code ?? ''
      if (EXPIRED.has(code)) throw new Unauthorized('The access token has expired; refresh it', 'token-expired')
      throw new Unauthorized(code === 'FST_JWT_NO_AUTHORIZATION_IN_HEADER' ? 'Authentication is required' : 'The access token is not valid', 'invalid-token')
    }
    if (!(await sessions.isAccessAllowed(req.user.jti, req.user.sid))) {
      throw new Unauthorized('The session has ended; sign in again', 'session-ended')
    }
  })

  app.decorate('identify', async (req: FastifyRequest, reply: FastifyReply) => {
    if (req.headers.authorization !== undefined) await app.authenticate(req, reply)
  })

  app.decorate('requireRole', (role: Role) => Object.assign(async (req: FastifyRequest, reply: FastifyReply) => {
    await app.authenticate(req, reply)
    if (req.user.role !== role) throw new Forbidden(`This requires the ${role} role`)
  }, { [REQUIRED_ROLE]: role }))
}, { name: 'auth', dependencies: ['config', 'redis'] })

/** The caller's role after `identify`, or null for an anonymous request. */
export function viewerRole(req: FastifyRequest): Role | null {
  // @fastify/jwt leaves request.user null until a token is verified.
  return (req.user as AccessClaims | null)?.role ?? null
}
