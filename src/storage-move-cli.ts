// Copies every local upload, data export and catalog CSV file to the S3 bucket, under the keys
// the app reads them by (docs/operations.md: the switch to object storage with no downtime):
//   STORAGE=s3 S3_BUCKET=... [S3_ENDPOINT=...] npm run storage:move [-- --verbose]
// Local directories: UPLOAD_DIR, DATA_EXPORT_DIR, CATALOG_FILES_DIR as the app uses them.
// Safe to stop and run again: what is in the bucket already (same size and SHA-256) is skipped.
// Exits 1 when any file failed to copy (run it again), 2 on a wrong setting.
import { parseArgs } from 'node:util'
import { openDb } from '../db/client.js'
import { uploadedFiles } from '../db/schema/index.js'
import { cacheControlOf } from '../routes/uploads/service.js'
import { loadConfig } from './config.js'
import type { ObjectMeta } from './storage.js'
import { createS3Client } from './storage-s3.js'
import { moveToS3 } from './storage-move.js'
import { IMAGE_MIME, uploadIdOfSizeKey, type ImageFormat } from './image-sizes.js'

const { values } = parseArgs({ options: { verbose: { type: 'boolean', default: false } } })
const config = loadConfig()
if (!config.s3) {
  console.error('storage:move copies to object storage: run it with STORAGE=s3 and the S3_* settings of the bucket')
  process.exit(2)
}

// Uploads are stored with the Content-Type and Cache-Control a CDN in front of the bucket serves
// (S3_PUBLIC_URL); their rows say which.
const handle = await openDb(config.postgres)
const uploadMeta = new Map<string, ObjectMeta>()
const cacheControlById = new Map<string, string>()
try {
  for (const row of await handle.db.select({ id: uploadedFiles.id, key: uploadedFiles.storageKey, mime: uploadedFiles.mime, purpose: uploadedFiles.purpose }).from(uploadedFiles)) {
    uploadMeta.set(row.key, { contentType: row.mime, cacheControl: cacheControlOf(row.purpose) })
    cacheControlById.set(row.id, cacheControlOf(row.purpose))
  }
} finally {
  await handle.close()
}
/** An image size (`<id>-w<width>.<format>`) has no row of its own: its format's type, its original's caching. */
function sizeMeta(key: string): ObjectMeta | undefined {
  const id = uploadIdOfSizeKey(key)
  if (!id) return undefined
  return { contentType: IMAGE_MIME[key.slice(key.lastIndexOf('.') + 1) as ImageFormat], cacheControl: cacheControlById.get(id) }
}

const client = createS3Client(config.s3)
try {
  const results = await moveToS3({
    client, s3: config.s3,
    areas: [
      { area: 'uploads', dir: config.uploads.dir, metaOf: (key) => uploadMeta.get(key) ?? sizeMeta(key) },
      { area: 'exports', dir: config.privacy.exportDir },
      { area: 'catalog-files', dir: config.catalogIo.dir },
    ],
    onEvent: (e) => {
      if (e.outcome === 'failed') console.error(`failed ${e.area}/${e.key}: ${e.error}`)
      else if (values.verbose) console.log(`${e.outcome} ${e.area}/${e.key}`)
    },
  })
  for (const r of results) console.log(`${r.area}: ${r.files} files, ${r.copied} copied (${r.bytesCopied} bytes), ${r.skipped} already in the bucket, ${r.failed} failed`)
  const failed = results.reduce((n, r) => n + r.failed, 0)
  if (failed > 0) {
    console.error(`${failed} files were not copied: run storage:move again`)
    process.exitCode = 1
  }
} finally {
  client.destroy()
}
