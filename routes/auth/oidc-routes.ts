import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import {
  AuthResult, IdentityList, OidcAuthorization, OidcCallbackBody, OidcLinkConfirmBody, OidcLinkRequired, OidcProviderList, OidcProviderParams,
} from './schemas.js'
import type { OidcService } from './oidc.js'

export interface OidcRouteOptions {
  service: OidcService
  /** The per-IP limit of the other sign-in routes. */
  perIp: { rateLimit: { max: number; timeWindow: number } }
  /** Password sign-in's per-account counter: confirming a link is a password sign-in. */
  loginPerAccount: (req: FastifyRequest, reply: FastifyReply) => Promise<void>
  /** Refuses a session whose sign-in is not recent: a stolen token cannot add a way in. */
  recentSignIn: (req: FastifyRequest) => Promise<void>
}

// Sign-in with OpenID Connect providers (registered inside routes/auth, so under /auth). The
// shop's page at the provider's redirect URI posts the code and state it received to the
// callback; tokens are answered as JSON, as password sign-in answers them.
const oidcRoutes: FastifyPluginAsyncTypebox<OidcRouteOptions> = async (app, { service, perIp, loginPerAccount, recentSignIn }) => {
  app.get('/oidc/providers', {
    schema: {
      tags: ['auth'], operationId: 'listSignInProviders', summary: 'List the OpenID Connect providers one can sign in with',
      response: { 200: Type.Ref(OidcProviderList) },
    },
  }, () => service.providers())

  app.post('/oidc/:provider/start', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'startProviderSignIn', summary: 'Start signing in with a provider: the authorization URL',
      description: "Send the browser to `authorizationUrl` (authorization code with PKCE, state and nonce; the verifier and nonce stay on the server for 10 minutes). The provider returns the browser to the shop's redirect URI with `code`, `state` and `iss`; post them to `/auth/oidc/{provider}/callback`.",
      params: OidcProviderParams,
      response: { 200: Type.Ref(OidcAuthorization), 400: ProblemRef, 404: ProblemRef, 502: ProblemRef, 503: ProblemRef },
    },
  }, (req) => service.startSignIn(req.params.provider))

  app.post('/oidc/:provider/callback', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'finishProviderSignIn', summary: 'Finish signing in with a provider',
      description: 'Each state works once. 200: signed in (a provider account seen before, or a new customer account for an email the provider verified). 202: an account with the email the provider verified exists; its owner confirms the link at `/auth/oidc/confirm-link` with the password. 409: `oidc-email-unverified`, the provider did not verify the email, so it makes no account and joins none; `oidc-link-requires-sign-in`, an account with the email has no password (sign in and link from the account).',
      params: OidcProviderParams,
      body: Type.Ref(OidcCallbackBody),
      response: {
        200: Type.Ref(AuthResult), 202: Type.Ref(OidcLinkRequired),
        400: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef, 422: ProblemRef, 502: ProblemRef, 503: ProblemRef,
      },
    },
  }, async (req, reply) => {
    const outcome = await service.callback(req.params.provider, req.body)
    if (outcome.linkRequired) return reply.code(202).send(outcome.linkRequired)
    app.activity.record(req, 'sign_in', { provider: req.params.provider }, outcome.signedIn.user.id)
    return outcome.signedIn
  })

  app.post('/oidc/confirm-link', {
    config: perIp,
    preHandler: loginPerAccount,
    schema: {
      tags: ['auth'], operationId: 'confirmProviderLink', summary: 'Link a provider account to my account with my password, and sign in',
      description: 'Takes the link token of a 202 from the callback and the credentials of password sign-in (a second factor when enabled).',
      body: Type.Ref(OidcLinkConfirmBody),
      response: { 200: Type.Ref(AuthResult), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 409: ProblemRef },
    },
  }, async (req) => {
    const result = await service.confirmLink(req.body)
    app.activity.record(req, 'sign_in', { linked: true }, result.user.id)
    return result
  })

  app.post('/oidc/:provider/link/start', {
    config: perIp,
    onRequest: app.authenticate, preHandler: recentSignIn,
    schema: {
      tags: ['auth'], operationId: 'startProviderLink', summary: 'Start linking a provider account to my account', security: BEARER,
      description: 'As the sign-in start; the redirect is then posted to `/auth/oidc/{provider}/link/callback` with my token. '
        + 'Needs a recent sign-in (5 minutes; else 403 reauthentication-required: POST /auth/reauthenticate first). My address is mailed when the link is made.',
      params: OidcProviderParams,
      response: { 200: Type.Ref(OidcAuthorization), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 502: ProblemRef, 503: ProblemRef },
    },
  }, (req) => service.startLink(req.params.provider, req.user.sub))

  app.post('/oidc/:provider/link/callback', {
    config: perIp,
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'finishProviderLink', summary: 'Finish linking a provider account to my account', security: BEARER,
      description: 'Only the account that started the link can finish it. The provider email need not match my address.',
      params: OidcProviderParams,
      body: Type.Ref(OidcCallbackBody),
      response: { 200: Type.Ref(IdentityList), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef, 502: ProblemRef, 503: ProblemRef },
    },
  }, (req) => service.linkCallback(req.params.provider, req.body, req.user.sub))

  app.get('/identities', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'listMyIdentities', summary: 'List the provider accounts linked to my account', security: BEARER,
      response: { 200: Type.Ref(IdentityList), 401: ProblemRef },
    },
  }, (req) => service.identities(req.user.sub))

  app.delete('/identities/:provider', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'unlinkMyIdentity', summary: 'Unlink a provider account from my account', security: BEARER,
      description: 'Refused (409) when it is the last way to sign in: no password and no other provider linked.',
      params: OidcProviderParams,
      response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef },
    },
  }, async (req, reply) => {
    await service.unlink(req.user.sub, req.params.provider)
    return reply.code(204).send(null)
  })
}
export default oidcRoutes
