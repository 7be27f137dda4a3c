import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'

export const ALLOWED_MIME = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'] as const

export const Upload = Type.Object({
  id: Type.String({ format: 'uuid' }),
  purpose: StringEnum(['product_image', 'avatar']),
  mime: StringEnum(ALLOWED_MIME, { description: 'detected from the bytes' }),
  sizeBytes: Type.Integer(),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  originalName: Type.String(),
  url: Type.String({ description: 'where the file is served' }),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'Upload', additionalProperties: false })

export const UploadQuery = Type.Object({
  purpose: StringEnum(['product_image', 'avatar'], { description: 'product images need the admin role' }),
}, { additionalProperties: false })
export const UploadBody = Type.Object({
  file: Type.Optional(Type.String({ format: 'binary', description: 'PNG, JPEG, WebP or GIF; the type is read from the bytes' })),
}, { $id: 'UploadBody' })
export const UploadParams = Type.Object({ uploadId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [Upload, UploadBody]
