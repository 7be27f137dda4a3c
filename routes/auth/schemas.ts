import { Type } from '@sinclair/typebox'
import { PASSWORD_MAX_LENGTH } from '../../src/passwords.js'
import { Email, Password, PersonName, User } from '../users/schemas.js'
import { Accepted } from '../../src/schema-types.js'

const OpaqueToken = Type.String({ minLength: 20, maxLength: 200 })
const TotpCode = Type.String({ pattern: '^[0-9]{6}$', description: '6-digit code from the authenticator app' })
const RecoveryCode = Type.String({ pattern: '^[A-Za-z2-7]{5}-?[A-Za-z2-7]{5}$', description: 'one of the recovery codes, e.g. ABCDE-FGHIJ' })

export const RegisterBody = Type.Object({ email: Email, password: Password, name: PersonName }, { $id: 'RegisterBody', additionalProperties: false })

export const LoginBody = Type.Object({
  email: Email,
  password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
  totpCode: Type.Optional(TotpCode),
  recoveryCode: Type.Optional(RecoveryCode),
}, { $id: 'LoginBody', additionalProperties: false })

export const TokenPair = Type.Object({
  tokenType: Type.Literal('Bearer'),
  accessToken: Type.String({ description: 'JWT for the Authorization header' }),
  expiresIn: Type.Integer({ description: 'access token lifetime in seconds' }),
  refreshToken: Type.String({ description: 'opaque; single use, rotated by /auth/refresh' }),
}, { $id: 'TokenPair', additionalProperties: false })

export const AuthResult = Type.Object({
  user: Type.Ref(User),
  tokens: Type.Ref(TokenPair),
}, { $id: 'AuthResult', additionalProperties: false })

export const RefreshBody = Type.Object({ refreshToken: OpaqueToken }, { $id: 'RefreshBody', additionalProperties: false })
export const TokenBody = Type.Object({ token: OpaqueToken }, { $id: 'TokenBody', additionalProperties: false })
export const ForgotPasswordBody = Type.Object({ email: Email }, { $id: 'ForgotPasswordBody', additionalProperties: false })
export const ResetPasswordBody = Type.Object({ token: OpaqueToken, password: Password }, { $id: 'ResetPasswordBody', additionalProperties: false })
export { Accepted }

export const TotpSetup = Type.Object({
  secret: Type.String({ description: 'base32 secret, for manual entry' }),
  otpauthUrl: Type.String({ description: 'otpauth:// URI, for a QR code' }),
}, { $id: 'TotpSetup', additionalProperties: false })
export const TotpEnableBody = Type.Object({ code: TotpCode }, { $id: 'TotpEnableBody', additionalProperties: false })
export const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), { description: 'shown once; each works once in place of a code' }),
}, { $id: 'RecoveryCodes', additionalProperties: false })
export const ReauthenticateBody = Type.Object({
  password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
  totpCode: Type.Optional(TotpCode),
  recoveryCode: Type.Optional(RecoveryCode),
}, { $id: 'ReauthenticateBody', additionalProperties: false })

export const PasswordConfirm = Type.Object({ password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }) }, { $id: 'PasswordConfirm', additionalProperties: false })

// OpenID Connect sign-in (routes/auth/oidc-routes.ts).
export const OidcProviderParams = Type.Object({
  provider: Type.String({ pattern: '^[a-z][a-z0-9_]{0,31}$', description: 'a provider name from GET /auth/oidc/providers' }),
}, { additionalProperties: false })

export const OidcProviderList = Type.Object({
  items: Type.Array(Type.Object({ name: Type.String() }, { additionalProperties: false })),
}, { $id: 'OidcProviderList', additionalProperties: false })

export const OidcAuthorization = Type.Object({
  authorizationUrl: Type.String({ format: 'uri', description: "send the browser here; the provider returns it to the shop's redirect URI with code, state and iss" }),
  state: Type.String({ description: 'keep it (e.g. in sessionStorage) and accept a redirect only when its state matches' }),
  expiresIn: Type.Integer({ description: 'seconds within which the callback must arrive' }),
}, { $id: 'OidcAuthorization', additionalProperties: false })

export const OidcCallbackBody = Type.Object({
  code: Type.String({ minLength: 1, maxLength: 2048, description: 'the code query parameter of the redirect' }),
  state: Type.String({ minLength: 1, maxLength: 512, description: 'the state query parameter of the redirect' }),
  iss: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'the iss query parameter of the redirect, when the provider sends one (RFC 9207)' })),
}, { $id: 'OidcCallbackBody', additionalProperties: false })

export const OidcLinkRequired = Type.Object({
  linkToken: Type.String({ description: 'present it to POST /auth/oidc/confirm-link with the account password; single use' }),
  provider: Type.String(),
  email: Type.String({ description: 'the existing account the provider account would be linked to' }),
  expiresIn: Type.Integer({ description: 'seconds the link token stays valid' }),
}, { $id: 'OidcLinkRequired', additionalProperties: false, description: 'An account with the verified email exists; its owner must confirm the link' })

export const OidcLinkConfirmBody = Type.Object({
  linkToken: OpaqueToken,
  email: Email,
  password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
  totpCode: Type.Optional(TotpCode),
  recoveryCode: Type.Optional(RecoveryCode),
}, { $id: 'OidcLinkConfirmBody', additionalProperties: false })

export const LinkedIdentity = Type.Object({
  provider: Type.String(),
  email: Type.Union([Type.Null(), Type.String()], { description: 'the address the provider gave when the account was linked' }),
  emailVerified: Type.Boolean({ description: 'whether the provider vouched for that address' }),
  linkedAt: Type.String({ format: 'date-time' }),
}, { $id: 'LinkedIdentity', additionalProperties: false })

export const IdentityList = Type.Object({
  hasPassword: Type.Boolean({ description: 'false for an account made by provider sign-in until a password is set by reset' }),
  items: Type.Array(Type.Ref(LinkedIdentity)),
}, { $id: 'IdentityList', additionalProperties: false })

export const schemas = [
  RegisterBody, LoginBody, TokenPair, AuthResult, RefreshBody, TokenBody, ForgotPasswordBody, ResetPasswordBody, ReauthenticateBody, Accepted, TotpSetup, TotpEnableBody, RecoveryCodes, PasswordConfirm,
  OidcProviderList, OidcAuthorization, OidcCallbackBody, OidcLinkRequired, OidcLinkConfirmBody, LinkedIdentity, IdentityList,
]
