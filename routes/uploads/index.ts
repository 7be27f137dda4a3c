import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import multipart from '@fastify/multipart'
import { BEARER } from '../../plugins/openapi.js'
import { viewerRole } from '../../plugins/auth.js'
import { BadRequest, ProblemRef } from '../../src/errors.js'
import { IMAGE_MIME } from '../../src/image-sizes.js'
import { cacheControlOf } from './service.js'
import { ALLOWED_MIME, SizeParams, Upload, UploadBody, UploadParams, UploadQuery } from './schemas.js'

/** If-None-Match names this ETag (weak or strong) or any (*). */
const matchesEtag = (ifNoneMatch: string | undefined, etag: string) =>
  Boolean(ifNoneMatch?.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag || tag.trim() === '*'))

const uploadsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { maxBytes, quota, orphanGraceHours } = app.config.uploads
  // Beyond maxBytes the upload stops with a 413; one file per request.
  await app.register(multipart, { limits: { fileSize: maxBytes, files: 1, fields: 0, parts: 1 }, throwFileSizeLimit: true })
  const service = app.services.uploads

  app.post('', {
    onRequest: app.authenticate,
    // The file is read from the multipart stream in the handler; the body schema documents it.
    preValidation: async (req) => { req.body = {} },
    schema: {
      tags: ['uploads'], operationId: 'uploadFile', summary: 'Upload an image (multipart/form-data, field "file")',
      description: `At most ${maxBytes} bytes (413 beyond). The type is read from the bytes: PNG, JPEG, WebP or GIF; never SVG or HTML. `
        + `Each account keeps at most ${quota.customer.files} files and ${quota.customer.bytes} bytes (admins ${quota.admin.files} and ${quota.admin.bytes}); `
        + `beyond, 413 with type urn:problem-type:upload-quota-files or upload-quota-bytes. An upload that no product or avatar uses ${orphanGraceHours} hours after it was made is deleted. `
        + 'A product image gets sizes (WebP and AVIF, widths 160, 480, 960) made by the worker afterwards; products name them in images[].sizes once they exist.',
      security: BEARER, consumes: ['multipart/form-data'], querystring: UploadQuery, body: Type.Ref(UploadBody),
      response: { 201: Type.Ref(Upload), 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 406: ProblemRef, 413: ProblemRef, 415: ProblemRef },
    },
  }, async (req, reply) => {
    if (!req.isMultipart()) throw new BadRequest('Send multipart/form-data with one file field', 'not-multipart')
    let file
    try {
      file = await req.file()
    } catch (err) {
      // Size and count limits carry their status (413); anything else is a malformed body.
      if ((err as { statusCode?: number }).statusCode) throw err
      throw new BadRequest(`Malformed multipart body: ${(err as Error).message}`, 'malformed-multipart')
    }
    if (!file) throw new BadRequest('No file in the request', 'no-file')
    // Streamed to storage as it arrives: memory stays bounded whatever the file's size.
    const source = file.file
    const stored = await service.store({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' }, req.query.purpose,
      { filename: file.filename, stream: source, truncated: () => source.truncated })
    return reply.code(201).send(stored)
  })

  app.get('/:uploadId', {
    schema: {
      tags: ['uploads'], operationId: 'getFile', summary: 'The file, as stored',
      params: UploadParams,
      response: {
        200: { description: 'the image bytes, with the type detected at upload. A product image never changes under its id: cached a year (Cache-Control: public, max-age=31536000, immutable). Others revalidate before each use (Cache-Control: no-cache, ETag), so a deleted one stops being served at once', content: Object.fromEntries(ALLOWED_MIME.map((mime) => [mime, { schema: Type.String({ format: 'binary' }) }])) },
        304: { description: 'not modified: the If-None-Match ETag is current' },
        400: ProblemRef, 404: ProblemRef,
      },
    },
  }, async (req, reply) => {
    const { row, stream } = await service.find(req.params.uploadId)
    // An avatar can be deleted, so caches keep it only while the API still says it exists: every
    // use revalidates (no-cache), and the ETag (its SHA-256) makes that a body-less 304. Product
    // images are public catalog pictures that never change under their id: cached a year.
    const etag = `"${row.sha256}"`
    reply.header('etag', etag).header('cache-control', cacheControlOf(row.purpose)).header('x-content-type-options', 'nosniff')
    if (matchesEtag(req.headers['if-none-match'], etag)) return reply.code(304).send()
    return reply
      .type(row.mime)
      .header('content-disposition', `inline; filename="${row.originalName}"`)
      .header('content-security-policy', "default-src 'none'; sandbox")
      .header('content-length', row.sizeBytes)
      .send(stream() as never)
  })

  app.get('/:uploadId/sizes/:size', {
    schema: {
      tags: ['uploads'], operationId: 'getImageSize', summary: 'One size of a product image (WebP or AVIF), as the product\'s images name it',
      description: 'Made by the worker after the upload; 404 until the image\'s sizesStatus is ready (product pages and listings name a size only then).',
      params: SizeParams,
      response: {
        200: { description: 'the size\'s bytes. It never changes under its URL: cached a year (Cache-Control: public, max-age=31536000, immutable), with an ETag (its SHA-256)', content: { 'image/webp': { schema: Type.String({ format: 'binary' }) }, 'image/avif': { schema: Type.String({ format: 'binary' }) } } },
        304: { description: 'not modified: the If-None-Match ETag is current' },
        400: ProblemRef, 404: ProblemRef,
      },
    },
  }, async (req, reply) => {
    const [, width, format] = /^w(\d+)\.(webp|avif)$/.exec(req.params.size)!
    const { size, stream } = await service.findSize(req.params.uploadId, Number(width), format!)
    const etag = `"${size.sha256}"`
    reply.header('etag', etag).header('cache-control', cacheControlOf('product_image')).header('x-content-type-options', 'nosniff')
    if (matchesEtag(req.headers['if-none-match'], etag)) return reply.code(304).send()
    return reply.type(IMAGE_MIME[size.format]).header('content-security-policy', "default-src 'none'; sandbox").header('content-length', size.bytes).send(stream() as never)
  })

  app.delete('/:uploadId', {
    onRequest: app.authenticate,
    schema: {
      tags: ['uploads'], operationId: 'deleteFile', summary: 'Delete my file (admins: any)', security: BEARER,
      params: UploadParams, response: { 204: Type.Null(), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef },
    },
  }, async (req, reply) => {
    await service.remove({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' }, req.params.uploadId)
    return reply.code(204).send(null)
  })
}
export default uploadsRoutes
