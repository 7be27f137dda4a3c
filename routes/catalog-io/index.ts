import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { Readable } from 'node:stream'
import { Type } from '@sinclair/typebox'
import multipart from '@fastify/multipart'
import { BEARER } from '../../plugins/openapi.js'
import { BadRequest, ProblemRef } from '../../src/errors.js'
import { CatalogJob, ExportQuery, ImportBody, ImportQuery, JobParams, OrderExportQuery } from './schemas.js'

// Catalog CSV imports and exports (admin), as job resources run by the worker: POST answers 202
// with the job, GET polls it. The format and the rules: docs/import-export.md.
const CSV_TYPES = ['text/csv', 'application/csv']

const catalogIoRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.catalogIo
  const { maxBytes } = app.config.catalogIo
  const onRequest = app.requireRole('admin')
  const errors = { 400: ProblemRef, 401: ProblemRef, 403: ProblemRef, 404: ProblemRef, 409: ProblemRef }
  const imports = { tags: ['catalog-io'], security: BEARER }

  // A CSV body is the request stream itself, read by the handler (no body held in memory).
  app.addContentTypeParser(CSV_TYPES, (_req, payload, done) => done(null, payload))
  // One byte over the limit reaches the service, which answers 413 (a truncated stream would not say it).
  await app.register(multipart, { limits: { fileSize: maxBytes + 1, files: 1, fields: 0, parts: 1 }, throwFileSizeLimit: true })

  app.post('/imports/products', {
    onRequest,
    // The file is read as a stream in the handler; the body schema documents it.
    preValidation: async (req) => { (req as unknown as { csv?: unknown }).csv = req.body; req.body = {} },
    schema: {
      ...imports, operationId: 'importProducts', summary: 'Import products and variants from a CSV (admin)',
      description: `Answers 202 with the import job; poll GET /imports/{jobId}. The CSV: multipart/form-data (field "file") or the body itself as text/csv; UTF-8 with or without BOM, comma or semicolon, at most ${maxBytes} bytes (413 beyond). `
        + 'Columns: handle, name, description, status, category (slug path), sku, weight_grams, option_<name>, price_<currency> (major units, e.g. 12.99), stock_<location name> (on hand), '
        + 'active (true/false), images (product image upload ids separated by |), compare_at_<store currency>, attribute_<name>. Upsert by handle and SKU: the same file again changes nothing.',
      consumes: ['multipart/form-data', ...CSV_TYPES], querystring: ImportQuery, body: Type.Ref(ImportBody),
      response: { 202: Type.Ref(CatalogJob), ...errors, 413: ProblemRef, 415: ProblemRef },
    },
  }, async (req, reply) => {
    let source: Readable | undefined
    if (req.isMultipart()) {
      try {
        const file = await req.file()
        source = file?.file
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode) throw err
        throw new BadRequest(`Malformed multipart body: ${(err as Error).message}`, 'malformed-multipart')
      }
      if (!source) throw new BadRequest('No file in the request', 'no-file')
    } else {
      source = (req as unknown as { csv?: Readable }).csv
      if (!source || typeof source.pipe !== 'function') throw new BadRequest('Send the CSV as text/csv or multipart/form-data', 'not-csv')
    }
    const job = await service.startImport(source, { mode: req.query.mode ?? 'all', dryRun: req.query.dryRun ?? false, actorId: req.user.sub })
    return reply.code(202).header('location', `/imports/${job.id}`).send(job)
  })

  app.get('/imports/:jobId', {
    onRequest,
    schema: { ...imports, operationId: 'getImport', summary: 'An import job: status, counts, percentage, error report (admin)', params: JobParams, response: { 200: Type.Ref(CatalogJob), ...errors } },
  }, (req) => service.get(req.params.jobId, 'import'))

  app.post('/imports/:jobId/cancel', {
    onRequest,
    schema: { ...imports, operationId: 'cancelImport', summary: 'Cancel an import that has not ended (admin)', description: 'The worker stops after its current batch; batches written stay written (re-run the file to finish). 409 when it has ended.', params: JobParams, response: { 200: Type.Ref(CatalogJob), ...errors } },
  }, (req) => service.cancel(req.params.jobId, 'import'))

  app.post('/exports/products', {
    onRequest,
    schema: {
      ...imports, operationId: 'exportProducts', summary: 'Export products and variants as CSV (admin)',
      description: 'Answers 202 with the export job; poll GET /exports/{jobId}, then download downloadUrl. Same columns as the import: the file imported back changes nothing. Cells a spreadsheet would run as a formula start with an apostrophe.',
      querystring: ExportQuery, response: { 202: Type.Ref(CatalogJob), ...errors },
    },
  }, async (req, reply) => {
    const job = await service.startExport(req.query, req.user.sub)
    return reply.code(202).header('location', `/exports/${job.id}`).send(job)
  })

  app.post('/exports/orders', {
    onRequest,
    schema: {
      ...imports, operationId: 'exportOrders', summary: 'Export orders for accounting as CSV (admin)',
      description: 'Answers 202 with the export job; poll GET /exports/{jobId}, then download downloadUrl. One row per order line, orders created in [from, to): '
        + 'order number, date (ISO 8601, UTC), buyer kind (guest or customer) and email, currency and its ISO 4217 exponent, line and order net, tax, shipping, discount and total in integer minor units, payment and refund state. '
        + 'Amounts are per order, in its own currency: nothing is summed, least of all across currencies.',
      querystring: OrderExportQuery, response: { 202: Type.Ref(CatalogJob), ...errors },
    },
  }, async (req, reply) => {
    const job = await service.startOrderExport(req.query, req.user.sub)
    return reply.code(202).header('location', `/exports/${job.id}`).send(job)
  })

  app.get('/exports/:jobId', {
    onRequest,
    schema: { ...imports, operationId: 'getExport', summary: 'An export job (admin)', params: JobParams, response: { 200: Type.Ref(CatalogJob), ...errors } },
  }, (req) => service.get(req.params.jobId, 'export'))

  app.post('/exports/:jobId/cancel', {
    onRequest,
    schema: { ...imports, operationId: 'cancelExport', summary: 'Cancel an export that has not ended (admin)', params: JobParams, response: { 200: Type.Ref(CatalogJob), ...errors } },
  }, (req) => service.cancel(req.params.jobId, 'export'))

  app.get('/exports/:jobId/file', {
    onRequest,
    schema: {
      ...imports, operationId: 'downloadExport', summary: "A completed export's CSV (admin)", params: JobParams,
      response: {
        200: { description: 'the CSV (UTF-8 with BOM)', content: { 'text/csv': { schema: Type.String({ format: 'binary' }) } } },
        302: { description: 'with object storage (STORAGE=s3): to a presigned link of the store, valid S3_SIGNED_URL_TTL_SECONDS' },
        ...errors,
      },
    },
  }, async (req, reply) => {
    const { filename, signedUrl, stream } = await service.exportFile(req.params.jobId)
    if (signedUrl) return reply.header('cache-control', 'private, no-store').redirect(signedUrl, 302)
    return reply.type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="${filename}"`)
      .header('cache-control', 'private, no-store')
      .send(stream() as never)
  })
}
export default catalogIoRoutes
