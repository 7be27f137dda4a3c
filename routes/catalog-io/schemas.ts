import { Type } from '@sinclair/typebox'
import { CurrencyCode, DateTimeInput, StringEnum } from '../../src/schema-types.js'
import { OrderStatusSchema } from '../orders/schemas.js'

export const ImportMode = StringEnum(['all', 'good-rows'], {
  $id: 'ImportMode', description: 'all: a file with any bad row imports nothing; good-rows: the good rows are imported and the bad ones reported',
})

export const RowError = Type.Object({
  line: Type.Integer({ minimum: 1, description: 'line of the file where the row starts; 1 is the header' }),
  column: Type.Union([Type.Null(), Type.String()], { description: 'the column, as named in the header; null for the row as a whole' }),
  reason: Type.String(),
}, { $id: 'CatalogRowError', additionalProperties: false })

export const CatalogJob = Type.Object({
  id: Type.String({ format: 'uuid' }),
  kind: StringEnum(['import', 'export']),
  subject: StringEnum(['products', 'orders'], { description: 'what the job imports or exports: the catalog, or orders for accounting' }),
  status: StringEnum(['pending', 'running', 'completed', 'failed', 'cancelled'], { description: 'failed: the file had bad rows (mode all), could not be read, or the work failed after retries' }),
  mode: Type.Ref(ImportMode),
  dryRun: Type.Boolean({ description: 'counts say what an import would create, update and leave alone; nothing is written' }),
  percentage: Type.Integer({ minimum: 0, maximum: 100 }),
  rowsRead: Type.Integer({ minimum: 0, description: 'data rows read (exports: rows written)' }),
  created: Type.Integer({ minimum: 0, description: 'rows whose variant was (or would be) created' }),
  updated: Type.Integer({ minimum: 0, description: 'rows whose variant, its product, prices or stock changed (or would)' }),
  unchanged: Type.Integer({ minimum: 0, description: 'rows that matched the catalog already' }),
  failed: Type.Integer({ minimum: 0, description: 'bad rows' }),
  errors: Type.Array(Type.Ref(RowError), { description: 'the error report: every bad cell, up to 1000' }),
  errorsTruncated: Type.Boolean({ description: 'more bad cells than the report holds' }),
  lastError: Type.Union([Type.Null(), Type.String()], { description: 'why the job failed, when not for bad rows' }),
  downloadUrl: Type.Union([Type.Null(), Type.String()], { description: 'a completed export: where its CSV is (admin bearer token); null once the file is past its retention' }),
  createdAt: Type.String({ format: 'date-time' }),
  startedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
  completedAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })]),
}, { $id: 'CatalogJob', additionalProperties: false })

export const ImportQuery = Type.Object({
  mode: Type.Optional(Type.Ref(ImportMode)),
  dryRun: Type.Optional(Type.Boolean({ description: 'report what would be created, updated and left alone; write nothing' })),
}, { additionalProperties: false })

export const ImportBody = Type.Object({
  file: Type.Optional(Type.String({ format: 'binary', description: 'the CSV (multipart/form-data); or send the CSV itself as the body with Content-Type text/csv' })),
}, { $id: 'CatalogImportBody' })

export const ExportQuery = Type.Object({
  status: Type.Optional(StringEnum(['draft', 'active', 'archived'], { description: 'only products with this status (default: all)' })),
  category: Type.Optional(Type.String({ format: 'uuid', description: 'a category id; includes its descendants' })),
}, { additionalProperties: false })

export const OrderExportQuery = Type.Object({
  from: DateTimeInput({ description: 'orders created at or after this instant' }),
  to: DateTimeInput({ description: 'orders created before this instant (at most 366 days after from)' }),
  status: Type.Optional(Type.Ref(OrderStatusSchema)),
  currency: Type.Optional({ ...CurrencyCode, description: 'only orders in this currency (default: every currency, each order in its own)' }),
}, { additionalProperties: false })

export const JobParams = Type.Object({ jobId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [ImportMode, RowError, CatalogJob, ImportBody]
