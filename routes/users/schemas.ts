import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../../src/passwords.js'

export const Email = Type.String({ format: 'email', minLength: 3, maxLength: 254 })
export const Password = Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH, description: `${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters, not your email address` })
export const PersonName = Type.String({ minLength: 1, maxLength: 100 })
export const RoleSchema = StringEnum(['customer', 'admin'], { $id: 'Role' })

// What any client may see of an account. Hashes and secrets are not part of it, by construction.
export const User = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  name: Type.String(),
  role: Type.Ref(RoleSchema),
  emailVerified: Type.Boolean(),
  twoFactorEnabled: Type.Boolean(),
  isActive: Type.Boolean(),
  avatarUrl: Type.Union([Type.Null(), Type.String()]),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'User', additionalProperties: false })

export const UserIdParams = Type.Object({ userId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const ProfileUpdate = Type.Object({
  name: Type.Optional(PersonName),
  avatarId: Type.Optional(Type.Union([Type.Null(), Type.String({ format: 'uuid', description: 'an avatar I uploaded (POST /uploads?purpose=avatar); null removes it' })])),
}, { $id: 'ProfileUpdate', additionalProperties: false, minProperties: 1 })

export const EmailChange = Type.Object({
  email: Email,
  password: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
}, { $id: 'EmailChange', additionalProperties: false })

export const PasswordChange = Type.Object({
  currentPassword: Type.String({ minLength: 1, maxLength: PASSWORD_MAX_LENGTH }),
  newPassword: Password,
}, { $id: 'PasswordChange', additionalProperties: false })

const CountryCode = Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2' })
const addressFields = {
  label: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 50 })])),
  recipientName: Type.String({ minLength: 1, maxLength: 100 }),
  line1: Type.String({ minLength: 1, maxLength: 200 }),
  line2: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 200 })])),
  city: Type.String({ minLength: 1, maxLength: 100 }),
  region: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 100 })])),
  postalCode: Type.String({ minLength: 1, maxLength: 20 }),
  country: CountryCode,
  phone: Type.Optional(Type.Union([Type.Null(), Type.String({ pattern: '^\\+?[0-9 ()-]{5,25}$' })])),
  isDefault: Type.Optional(Type.Boolean()),
}

export const Address = Type.Object({
  id: Type.String({ format: 'uuid' }),
  label: Type.Union([Type.Null(), Type.String()]),
  recipientName: Type.String(),
  line1: Type.String(),
  line2: Type.Union([Type.Null(), Type.String()]),
  city: Type.String(),
  region: Type.Union([Type.Null(), Type.String()]),
  postalCode: Type.String(),
  country: Type.String(),
  phone: Type.Union([Type.Null(), Type.String()]),
  isDefault: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
}, { $id: 'Address', additionalProperties: false })

export const AddressCreate = Type.Object(addressFields, { $id: 'AddressCreate', additionalProperties: false })
export const AddressUpdate = Type.Partial(Type.Object(addressFields), { $id: 'AddressUpdate', additionalProperties: false, minProperties: 1 })
export const AddressParams = Type.Object({ addressId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const AddressList = Type.Object({ items: Type.Array(Type.Ref(Address)) }, { $id: 'AddressList', additionalProperties: false })

export const UserListQuery = Type.Object({
  ...PageQuery,
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'matches email or name' })),
  role: Type.Optional(Type.Ref(RoleSchema)),
  isActive: Type.Optional(Type.Boolean()),
}, { additionalProperties: false })
export const UserPage = pageOf(Type.Ref(User), 'UserPage')

export const RoleChange = Type.Object({ role: Type.Ref(RoleSchema) }, { $id: 'RoleChange', additionalProperties: false })

// A customer's data (docs/accounts.md#your-data).
export const DataExport = Type.Object({
  id: Type.String({ format: 'uuid' }),
  status: StringEnum(['pending', 'ready', 'failed', 'expired'], { description: 'pending: being gathered by the worker; ready: downloadable until expiresAt; expired: the archive is deleted' }),
  sizeBytes: Type.Union([Type.Null(), Type.Integer()]),
  createdAt: Type.String({ format: 'date-time' }),
  completedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  expiresAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  downloadUrl: Type.Union([Type.Null(), Type.String({ description: 'a short-lived link to the tar.gz (data.json and my files); each read of a ready export gives a new one' })]),
  downloadExpiresAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
}, { $id: 'DataExport', additionalProperties: false })
export const DataExportParams = Type.Object({ exportId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const DataExportDownloadQuery = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 200, description: 'the token of the link in downloadUrl' }),
}, { additionalProperties: false })

export const ErasureRequest = Type.Object({
  id: Type.String({ format: 'uuid' }),
  status: StringEnum(['running', 'completed']),
  step: Type.String({ description: 'the last step done' }),
  createdAt: Type.String({ format: 'date-time' }),
  completedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
}, { $id: 'ErasureRequest', additionalProperties: false })
export const ErasureConfirm = Type.Object({
  token: Type.String({ minLength: 1, maxLength: 200, description: 'the token of the link mailed by POST /users/me/erasure' }),
}, { $id: 'ErasureConfirm', additionalProperties: false })

export const schemas = [RoleSchema, User, ProfileUpdate, EmailChange, PasswordChange, Address, AddressCreate, AddressUpdate, AddressList, UserPage, RoleChange, DataExport, ErasureRequest, ErasureConfirm]
