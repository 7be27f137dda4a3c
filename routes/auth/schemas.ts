import { Type } from '@sinclair/typebox'
import { PASSWORD_MAX_LENGTH } from '../../src/passwords.js'
import { Email, Password, PersonName, User } from '../users/schemas.js'

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
export const Accepted = Type.Object({ message: Type.String() }, { $id: 'Accepted', additionalProperties: false })

export const TotpSetup = Type.Object({
  secret: Type.String({ description: 'base32 secret, for manual entry' }),
  otpauthUrl: Type.String({ description: 'otpauth:// URI, for a QR code' }),
}, { $id: 'TotpSetup', additionalProperties: false })
export const TotpEnableBody = Type.Object({ code: TotpCode }, { $id: 'TotpEnableBody', additionalProperties: false })
export const RecoveryCodes = Type.Object({
  recoveryCodes: Type.Array(Type.String(), { description: 'shown once; each works once in place of a code' }),
}, { $id: 'RecoveryCodes', additionalProperties: false })
export const PasswordConfirm = Type.Object({ password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }) }, { $id: 'PasswordConfirm', additionalProperties: false })

export const schemas = [RegisterBody, LoginBody, TokenPair, AuthResult, RefreshBody, TokenBody, ForgotPasswordBody, ResetPasswordBody, Accepted, TotpSetup, TotpEnableBody, RecoveryCodes, PasswordConfirm]
