import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { normalizeIP } from '@fastify/rate-limit'
import { BEARER } from '../../plugins/openapi.js'
import { ProblemRef } from '../../src/errors.js'
import { User } from '../users/schemas.js'
import { normalizeEmail } from '../users/service.js'
import {
  Accepted, AuthResult, ForgotPasswordBody, LoginBody, PasswordConfirm, RecoveryCodes, RefreshBody,
  ReauthenticateBody, RegisterBody, ResetPasswordBody, TokenBody, TokenPair, TotpEnableBody, TotpSetup,
} from './schemas.js'
import oidcRoutes from './oidc-routes.js'


const auth: FastifyPluginAsyncTypebox = async (app) => {
  const { auth: authConfig } = app.config
  const { auth: service, oidc } = app.services

  // Guessing is throttled twice: per client IP (route config) and per account (preHandler,
  // after the body is parsed), both counted in Redis so every instance shares the count.
  const perIp = { rateLimit: { max: authConfig.rateLimitPerIp, timeWindow: 60_000 } }
  const window = 15 * 60
  const perAccount = (name: string, bySource: boolean) => app.limitBy({
    name, max: authConfig.rateLimitPerAccount, windowSeconds: window,
    // A source is an IPv4 address or an IPv6 /64 (one client holds a whole /64), as the per-IP limits count.
    key: (req) => `${normalizeEmail((req.body as { email: string }).email)}${bySource ? `|${normalizeIP(req.ip)}` : ''}`,
  })
  // Sign-in is limited per account *and source*: a stranger elsewhere cannot use up the owner's
  // attempts (guesses from many sources are slowed down instead, in the service). Separate
  // counters: failed sign-ins never stop the owner asking for a reset.
  const loginPerAccount = perAccount('login-account', true)
  const resetPerAccount = perAccount('reset-account', false)
  const perUser = app.limitBy({ name: 'user', max: authConfig.rateLimitPerAccount, windowSeconds: window, key: (req) => req.user.sub })

  // Adding a way in or changing the second factor needs a sign-in (or re-authentication) of the
  // last few minutes, so a stolen access token cannot make itself permanent.
  const recentSignIn = (req: FastifyRequest) => service.requireRecentSignIn(req.user.sid)

  await app.register(oidcRoutes, { service: oidc, perIp, loginPerAccount, recentSignIn })

  app.post('/register', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'register', summary: 'Create a customer account',
      description: 'Answers 202 the same way whether or not the address already has an account, so it cannot be used to find out who is a customer: '
        + 'a new address gets a verification mail, an address with an account gets a mail telling its owner to sign in or reset the password. '
        + 'Open the link of the verification mail (POST /auth/verify-email), then sign in with POST /auth/login. Roles cannot be chosen here.',
      body: Type.Ref(RegisterBody),
      response: { 202: Type.Ref(Accepted), 400: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.register(req.body)
    return reply.code(202).send({ message: 'Check your email to confirm the address, then sign in' })
  })

  app.post('/login', {
    config: perIp,
    preHandler: loginPerAccount,
    schema: {
      tags: ['auth'], operationId: 'login', summary: 'Sign in with email and password (and a 2FA code when enabled)',
      description: 'Only an account whose address is verified signs in. An unverified one is answered exactly as a wrong password is (401 invalid-credentials), so sign-in does not tell whether an address was free; a right password mails the verification link again.',
      body: Type.Ref(LoginBody),
      response: { 200: Type.Ref(AuthResult), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 429: ProblemRef },
    },
  }, async (req) => {
    const result = await service.login(req.body)
    app.activity.record(req, 'sign_in', {}, result.user.id)
    return result
  })

  app.post('/refresh', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'refreshTokens', summary: 'Exchange a refresh token for new tokens (rotation)',
      description: 'Each refresh token works once. Presenting a used one ends the whole session.',
      body: Type.Ref(RefreshBody),
      response: { 200: Type.Ref(TokenPair), 400: ProblemRef, 401: ProblemRef, 429: ProblemRef },
    },
  }, (req) => service.refresh(req.body.refreshToken))

  app.post('/logout', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'logout', summary: 'End this session', security: BEARER,
      response: { 204: Type.Null(), 401: ProblemRef },
    },
  }, async (req, reply) => {
    await service.logout(req.user)
    app.activity.record(req, 'sign_out', { everywhere: false })
    return reply.code(204).send(null)
  })

  app.post('/logout-all', {
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'logoutEverywhere', summary: 'End every session of this account', security: BEARER,
      response: { 204: Type.Null(), 401: ProblemRef },
    },
  }, async (req, reply) => {
    await service.logoutEverywhere(req.user)
    app.activity.record(req, 'sign_out', { everywhere: true })
    return reply.code(204).send(null)
  })

  app.post('/reauthenticate', {
    config: perIp,
    onRequest: app.authenticate, preHandler: perUser,
    schema: {
      tags: ['auth'], operationId: 'reauthenticate', summary: 'Confirm it is me again (password, and 2FA code when enabled)', security: BEARER,
      description: 'Linking a provider and changing two-factor authentication need a sign-in or a re-authentication of the last 5 minutes. '
        + 'An account without a password signs in again with its provider instead (409 no-password).',
      body: Type.Ref(ReauthenticateBody),
      response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.reauthenticate(req.user, req.body)
    return reply.code(204).send(null)
  })

  app.post('/verify-email', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'verifyEmail', summary: 'Confirm an email address with the token from the mail',
      description: 'Verifies the address of a new account, or finishes moving an account to the address the link was mailed to (409 email-taken when another account took it meanwhile).',
      body: Type.Ref(TokenBody),
      response: { 200: Type.Ref(User), 400: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, (req) => service.verifyEmail(req.body.token))

  app.post('/verify-email/resend', {
    config: perIp,
    onRequest: app.authenticate,
    schema: {
      tags: ['auth'], operationId: 'resendVerificationEmail', summary: 'Send the verification mail again', security: BEARER,
      response: { 202: Type.Ref(Accepted), 401: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.resendVerification(req.user.sub)
    return reply.code(202).send({ message: 'A verification mail is on its way' })
  })

  app.post('/password/forgot', {
    config: perIp,
    preHandler: resetPerAccount,
    schema: {
      tags: ['auth'], operationId: 'forgotPassword', summary: 'Mail a password reset link',
      description: 'Answers the same whether or not an account exists for the address.',
      body: Type.Ref(ForgotPasswordBody),
      response: { 202: Type.Ref(Accepted), 400: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.forgotPassword(req.body.email)
    return reply.code(202).send({ message: 'If an account exists for that address, a reset link is on its way' })
  })

  app.post('/password/reset', {
    config: perIp,
    schema: {
      tags: ['auth'], operationId: 'resetPassword', summary: 'Set a new password with the token from the mail',
      description: 'The token works once and for 30 minutes. Every session of the account ends.',
      body: Type.Ref(ResetPasswordBody),
      response: { 204: Type.Null(), 400: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.resetPassword(req.body.token, req.body.password)
    return reply.code(204).send(null)
  })

  app.post('/2fa/setup', {
    config: perIp,
    onRequest: app.authenticate, preHandler: recentSignIn,
    schema: {
      tags: ['auth'], operationId: 'setupTwoFactor', summary: 'Start enabling TOTP two-factor authentication', security: BEARER,
      description: 'Needs a recent sign-in, as enabling and disabling do (403 reauthentication-required: POST /auth/reauthenticate first). Every 2FA change is mailed to my address.',
      response: { 200: Type.Ref(TotpSetup), 401: ProblemRef, 403: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, (req) => service.setupTotp(req.user.sub))

  app.post('/2fa/enable', {
    config: perIp,
    onRequest: app.authenticate, preHandler: [perUser, recentSignIn],
    schema: {
      tags: ['auth'], operationId: 'enableTwoFactor', summary: 'Confirm TOTP with a code; returns recovery codes once', security: BEARER,
      body: Type.Ref(TotpEnableBody),
      response: { 200: Type.Ref(RecoveryCodes), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, (req) => service.enableTotp(req.user.sub, req.body.code))

  app.post('/2fa/disable', {
    config: perIp,
    onRequest: app.authenticate, preHandler: [perUser, recentSignIn],
    schema: {
      tags: ['auth'], operationId: 'disableTwoFactor', summary: 'Turn two-factor authentication off (password and a recent sign-in with the second factor required)', security: BEARER,
      body: Type.Ref(PasswordConfirm),
      response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 409: ProblemRef, 429: ProblemRef },
    },
  }, async (req, reply) => {
    await service.disableTotp(req.user.sub, req.body.password)
    return reply.code(204).send(null)
  })
}
export default auth
