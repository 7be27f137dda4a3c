import { and, eq } from 'drizzle-orm'
import * as client from 'openid-client'
import type { RedisClient } from '../../src/redis-client.js'
import { userIdentities, users } from '../../db/schema/index.js'
import { isUniqueViolation, type Db } from '../../db/client.js'
import type { OidcProviderConfig } from '../../src/config.js'
import { BadRequest, Conflict, Forbidden, NotFound, ProviderFailure, ServiceUnavailable, Unprocessable } from '../../src/errors.js'
import { randomToken, sha256 } from '../../src/sessions.js'
import type { AccountMail } from '../../src/account-mail.js'
import { normalizeEmail, type UserRow } from '../users/service.js'
import type { AuthService } from './service.js'

// Sign-in with OpenID Connect providers: the authorization-code flow with PKCE, state and nonce,
// discovery, JWKS and ID token checks all done by openid-client. What the flow must remember
// between start and callback (verifier, nonce, who started a link) stays in Redis under the
// state, for 10 minutes and one use. A provider account (provider + subject) signs in as the
// user it is linked to; an existing account with the same email is linked only when the
// provider vouches for the address AND the owner confirms with their password (or links while
// signed in), never silently.

export interface OidcDeps {
  db: Db
  redis: RedisClient
  providers: OidcProviderConfig[]
  auth: Pick<AuthService, 'startSession' | 'checkPasswordSignIn'>
  accountMail: AccountMail
}

export const OIDC_FLOW_TTL_SECONDS = 600
export const OIDC_LINK_TTL_SECONDS = 600
const DISCOVERY_TIMEOUT_SECONDS = 10

interface Flow { provider: string; codeVerifier: string; nonce: string; linkUserId?: string }
interface ProviderIdentity { provider: string; subject: string; email: string | null; emailVerified: boolean; name: string | null }
type Authorization = { code: string; state: string; iss?: string }

const flowKey = (state: string) => `oidc:flow:${sha256(state)}`
const linkKey = (token: string) => `oidc:link:${sha256(token)}`

const stateInvalid = () => new BadRequest('This sign-in attempt is unknown, was already completed or has expired; start again', 'oidc-state-invalid')
const linkInvalid = () => new BadRequest('The link confirmation is unknown, was already used or has expired; sign in with the provider again', 'oidc-link-invalid')

/** openid-client's refusals as problems: the provider said no, or its answer failed a check (400); it could not be reached (503); it answered nonsense (502). */
function oidcProblem(err: unknown, provider: string): Error {
  if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
    return new BadRequest(`The provider refused the sign-in: ${err.error}${err.error_description ? ` (${err.error_description})` : ''}`, 'oidc-code-rejected')
  }
  const code = (err as { code?: string }).code
  if (err instanceof client.ClientError && (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' || code === 'OAUTH_INVALID_RESPONSE')) {
    const reason = err.cause instanceof Error ? err.cause.message : err.message
    return new BadRequest(`The provider's answer failed a check: ${reason}`, 'oidc-response-invalid')
  }
  const name = (err as Error).name
  if ((err instanceof TypeError && err.message === 'fetch failed') || name === 'AbortError' || name === 'TimeoutError') {
    return new ServiceUnavailable(`The sign-in provider ${provider} cannot be reached; try again later`, 'oidc-provider-unavailable')
  }
  if (err instanceof client.ClientError) return new ProviderFailure(`The sign-in provider ${provider} answered unexpectedly: ${err.message}`, 'oidc-provider-error')
  return err as Error
}

const isTrue = (value: unknown) => value === true || value === 'true'
const text = (value: unknown) => (typeof value === 'string' && value.trim() ? value.trim() : null)

export function createOidcService(deps: OidcDeps) {
  const { db, redis, auth } = deps
  const providers = new Map(deps.providers.map((p) => [p.name, p]))
  // Discovery (and with it the JWKS location) once per provider and process; a failure is forgotten so the next request retries.
  const discovered = new Map<string, Promise<client.Configuration>>()

  function requireProvider(name: string) {
    const provider = providers.get(name)
    if (!provider) throw new NotFound('sign-in provider', name)
    return provider
  }

  async function configFor(provider: OidcProviderConfig) {
    let pending = discovered.get(provider.name)
    if (!pending) {
      pending = client.discovery(new URL(provider.issuer), provider.clientId, provider.clientSecret, undefined, {
        timeout: DISCOVERY_TIMEOUT_SECONDS,
        ...(provider.allowInsecure ? { execute: [client.allowInsecureRequests] } : {}),
      })
      discovered.set(provider.name, pending)
      pending.catch(() => discovered.delete(provider.name))
    }
    try {
      return await pending
    } catch (err) {
      throw oidcProblem(err, provider.name)
    }
  }

  async function begin(providerName: string, linkUserId?: string) {
    const provider = requireProvider(providerName)
    const config = await configFor(provider)
    const codeVerifier = client.randomPKCECodeVerifier()
    const state = client.randomState()
    const nonce = client.randomNonce()
    const flow: Flow = { provider: provider.name, codeVerifier, nonce, ...(linkUserId ? { linkUserId } : {}) }
    await redis.set(flowKey(state), JSON.stringify(flow), 'EX', OIDC_FLOW_TTL_SECONDS)
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: provider.redirectUri,
      scope: provider.scope,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    })
    return { authorizationUrl: url.href, state, expiresIn: OIDC_FLOW_TTL_SECONDS }
  }

  /** Takes the flow its state names (once), exchanges the code and returns who the provider says signed in. */
  async function complete(providerName: string, input: Authorization, expect: { linkUserId?: string }): Promise<ProviderIdentity> {
    const provider = requireProvider(providerName)
    const stored = await redis.getdel(flowKey(input.state))
    const flow = stored ? JSON.parse(stored) as Flow : null
    // A sign-in state cannot finish a link and a link state cannot finish a sign-in.
    if (!flow || flow.provider !== provider.name || flow.linkUserId !== expect.linkUserId) throw stateInvalid()
    const config = await configFor(provider)
    // The URL the provider sent the browser to, as the shop's page received it.
    const callbackUrl = new URL(provider.redirectUri)
    callbackUrl.searchParams.set('code', input.code)
    callbackUrl.searchParams.set('state', input.state)
    if (input.iss !== undefined) callbackUrl.searchParams.set('iss', input.iss)
    try {
      const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: flow.codeVerifier, expectedState: input.state, expectedNonce: flow.nonce, idTokenExpected: true,
      })
      let claims: Record<string, unknown> = tokens.claims()!
      // Providers that keep the ID token small give the email from the userinfo endpoint.
      if (text(claims.email) === null) claims = { ...claims, ...await client.fetchUserInfo(config, tokens.access_token, claims.sub as string) }
      const name = text(claims.name) ?? text([claims.given_name, claims.family_name].filter((n) => typeof n === 'string').join(' '))
      const email = text(claims.email)
      return { provider: provider.name, subject: claims.sub as string, email: email && normalizeEmail(email), emailVerified: isTrue(claims.email_verified), name }
    } catch (err) {
      throw oidcProblem(err, provider.name)
    }
  }

  async function insertIdentity(executor: Pick<Db, 'insert'>, userId: string, identity: ProviderIdentity) {
    try {
      // Every way in to a link is a confirmation by the owner: a recent sign-in, the password, or the account's creation.
      await executor.insert(userIdentities).values({ userId, provider: identity.provider, subject: identity.subject, email: identity.email, emailVerified: identity.emailVerified, confirmedAt: new Date() })
    } catch (err) {
      if (isUniqueViolation(err, 'user_identities_provider_subject_key')) throw new Conflict('This provider account is already linked to an account', 'oidc-identity-taken')
      if (isUniqueViolation(err, 'user_identities_user_provider_key')) throw new Conflict(`This account is already linked to another ${identity.provider} account; unlink it first`, 'oidc-provider-linked')
      throw err
    }
  }

  async function linkedUser(identity: ProviderIdentity) {
    const [row] = await db.select({ user: users }).from(userIdentities).innerJoin(users, eq(users.id, userIdentities.userId))
      .where(and(eq(userIdentities.provider, identity.provider), eq(userIdentities.subject, identity.subject)))
    return row?.user
  }

  async function createAccount(identity: ProviderIdentity & { email: string }) {
    try {
      return await db.transaction(async (tx) => {
        const [user] = await tx.insert(users).values({
          email: identity.email,
          name: (identity.name ?? identity.email.split('@')[0]!).slice(0, 100),
          passwordHash: null,
          // Only an address the provider verified makes an account (see callback).
          emailVerifiedAt: new Date(),
        }).returning() as [UserRow]
        await insertIdentity(tx, user.id, identity)
        return user
      })
    } catch (err) {
      // Another sign-in made the account (or registered the address) a moment ago.
      if (isUniqueViolation(err, 'users_email_key')) throw new Conflict('An account with this email address was created meanwhile; sign in again', 'email-taken')
      throw err
    }
  }

  async function identitiesOf(userId: string) {
    const [user] = await db.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId))
    if (!user) throw new NotFound('user', userId)
    const rows = await db.select().from(userIdentities).where(eq(userIdentities.userId, userId)).orderBy(userIdentities.createdAt)
    return {
      hasPassword: user.passwordHash !== null,
      items: rows.map((r) => ({ provider: r.provider, email: r.email, emailVerified: r.emailVerified, linkedAt: r.createdAt.toISOString() })),
    }
  }

  /** The owner hears of every new way in. */
  const notifyLinked = (user: UserRow, identity: ProviderIdentity) => deps.accountMail.sendSecurityNotice(user,
    `A ${identity.provider} account${identity.email ? ` (${identity.email})` : ''} was linked to your account; it can now sign you in.`)

  return {
    providers: () => ({ items: deps.providers.map((p) => ({ name: p.name })) }),

    /** Starts a sign-in: the URL to send the browser to. */
    startSignIn: (providerName: string) => begin(providerName),

    /** Starts linking a provider account to the signed-in user (whose sign-in the route requires to be recent). */
    startLink: (providerName: string, userId: string) => begin(providerName, userId),

    /**
     * Finishes a sign-in. A linked provider account signs in; a new one with an email its provider
     * verified makes a customer account; one whose verified email belongs to an account with a
     * password answers a link token that the owner confirms with that password. Anything else,
     * an unverified email above all, is refused.
     */
    async callback(providerName: string, input: Authorization) {
      const identity = await complete(providerName, input, {})
      const linked = await linkedUser(identity)
      if (linked) {
        if (!linked.isActive) throw new Forbidden('This account is deactivated', 'account-deactivated')
        return { signedIn: await auth.startSession(linked) }
      }
      const email = identity.email
      if (!email) throw new Unprocessable('The provider did not share an email address; allow the email scope and sign in again', 'oidc-email-missing')
      // An address the provider has not verified makes no account and joins none: an account
      // made with it would be the provider account's, and whoever owns the mailbox would later
      // verify it for them. The same answer whether or not the address has an account.
      if (!identity.emailVerified) {
        throw new Conflict('The provider has not verified this email address, so it cannot sign in here: verify it with the provider, or register with a password (and link the provider from your account afterwards)', 'oidc-email-unverified')
      }
      const [existing] = await db.select().from(users).where(eq(users.email, email))
      if (!existing) return { signedIn: await auth.startSession(await createAccount({ ...identity, email })) }
      if (existing.passwordHash === null) {
        throw new Conflict('An account with this email address exists; sign in with the provider it uses and link this one from your account', 'oidc-link-requires-sign-in')
      }
      const linkToken = randomToken()
      await redis.set(linkKey(linkToken), JSON.stringify({ userId: existing.id, identity }), 'EX', OIDC_LINK_TTL_SECONDS)
      return { linkRequired: { linkToken, provider: identity.provider, email: existing.email, expiresIn: OIDC_LINK_TTL_SECONDS } }
    },

    /** The owner of an existing account confirms a pending link with a password sign-in; then signs in. */
    async confirmLink(input: { linkToken: string; email: string; password: string; totpCode?: string; recoveryCode?: string }) {
      const stored = await redis.get(linkKey(input.linkToken))
      if (!stored) throw linkInvalid()
      const pending = JSON.parse(stored) as { userId: string; identity: ProviderIdentity }
      const user = await auth.checkPasswordSignIn(input)
      if (user.id !== pending.userId) throw linkInvalid()
      // One use: of two racing confirmations only one links.
      if (!(await redis.del(linkKey(input.linkToken)))) throw linkInvalid()
      await insertIdentity(db, user.id, pending.identity)
      notifyLinked(user, pending.identity)
      return auth.startSession(user)
    },

    /** Finishes a link the signed-in user started; the provider's email need not match. */
    async linkCallback(providerName: string, input: Authorization, userId: string) {
      const identity = await complete(providerName, input, { linkUserId: userId })
      const linked = await linkedUser(identity)
      if (linked?.id !== userId) {
        await insertIdentity(db, userId, identity)
        const [user] = await db.select().from(users).where(eq(users.id, userId))
        if (user) notifyLinked(user, identity)
      }
      return identitiesOf(userId)
    },

    identities: identitiesOf,

    /** Unlinks a provider account while a way to sign in remains: a password or another configured provider. */
    async unlink(userId: string, providerName: string) {
      await db.transaction(async (tx) => {
        // The row lock serialises unlinks of one user, so two at once cannot remove the last two ways in.
        const [user] = await tx.select({ passwordHash: users.passwordHash }).from(users).where(eq(users.id, userId)).for('update')
        if (!user) throw new NotFound('user', userId)
        const rows = await tx.select({ provider: userIdentities.provider }).from(userIdentities).where(eq(userIdentities.userId, userId))
        if (!rows.some((r) => r.provider === providerName)) throw new NotFound('linked provider', providerName)
        const othersUsable = rows.filter((r) => r.provider !== providerName && providers.has(r.provider)).length
        if (user.passwordHash === null && othersUsable === 0) {
          throw new Conflict('This is the last way to sign in to this account; set a password (POST /auth/password/forgot) or link another provider first', 'last-sign-in-method')
        }
        await tx.delete(userIdentities).where(and(eq(userIdentities.userId, userId), eq(userIdentities.provider, providerName)))
      })
    },
  }
}
export type OidcService = ReturnType<typeof createOidcService>
