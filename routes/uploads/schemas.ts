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

export const SizeParams = Type.Object({
  uploadId: Type.String({ format: 'uuid' }),
  size: Type.String({ pattern: '^w[0-9]{1,5}\\.(webp|avif)$', examples: ['w480.webp'], description: 'w<width>.<format>, as a product image\'s sizes name it' }),
}, { additionalProperties: false })

export const ImageSizeOut = Type.Object({
  width: Type.Integer({ minimum: 1 }),
  height: Type.Integer({ minimum: 1 }),
  format: StringEnum(['webp', 'avif']),
  mime: StringEnum(['image/webp', 'image/avif']),
  bytes: Type.Integer({ minimum: 0 }),
  url: Type.String({ description: 'where this size is served: cached a year (immutable), with an ETag' }),
}, { $id: 'ImageSize', additionalProperties: false })

export const ProductImage = Type.Object({
  id: Type.String({ format: 'uuid', description: 'the upload id (as in imageIds)' }),
  url: Type.String({ description: 'the original, as uploaded' }),
  sizesStatus: StringEnum(['pending', 'ready', 'failed'], { description: 'pending: the worker has not made the sizes yet (sizes is empty); ready: sizes lists them; failed: the image does not decode and has none' }),
  sizes: Type.Array(Type.Ref(ImageSizeOut), { description: 'widths 160, 480 and 960 (those not wider than the original; the original\'s own width when it is narrower), each in WebP and AVIF; empty until ready' }),
}, { $id: 'ProductImage', additionalProperties: false })

export const schemas = [Upload, UploadBody, ImageSizeOut, ProductImage]
