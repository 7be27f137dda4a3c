import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ChecksumMode, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { SAFE_KEY, type ObjectMeta, type S3Settings } from './storage.js'

// Copies the files of local storage to the S3 bucket under the keys the app would have written
// them with (`<prefix><area>/<key>`), so an app switched to STORAGE=s3 finds every one: the rows
// hold the bare key, never where it lives. Resumable and idempotent: an object already in the
// bucket with the same size and SHA-256 is skipped, so a run that died is finished by running
// it again. Each copy is checked after it lands (HEAD: size, and the SHA-256 the store computed).

export interface MoveArea {
  /** The bucket's area for these files, as createStorages names them: uploads, exports, catalog-files. */
  area: string
  dir: string
  /** Content-Type and Cache-Control the app would have stored the key with (uploads: from its row). */
  metaOf?: (key: string) => ObjectMeta | undefined
}

export interface MoveCounts { area: string; files: number; copied: number; skipped: number; failed: number; bytesCopied: number }

export interface MoveEvent { area: string; key: string; outcome: 'copied' | 'skipped' | 'failed'; error?: string }

async function digestOf(path: string) {
  const sha256 = createHash('sha256')
  const md5 = createHash('md5')
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) { sha256.update(chunk); md5.update(chunk) }
  return { sha256: sha256.digest('base64'), md5: md5.digest('hex') }
}

async function localKeys(dir: string) {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return [] as string[]; throw err })
  return names.filter((n) => SAFE_KEY.test(n)).sort()
}

/**
 * Whether the object holds these bytes: same size, and the SHA-256 the store computed on upload
 * (S3, MinIO) or, from a store that keeps no checksum, an ETag that is the MD5 of a single PUT.
 */
async function sameObject(client: S3Client, Bucket: string, Key: string, size: number, digest: { sha256: string; md5: string }) {
  const head = await client.send(new HeadObjectCommand({ Bucket, Key, ChecksumMode: ChecksumMode.ENABLED })).catch((err: Error & { $metadata?: { httpStatusCode?: number } }) => {
    if (err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404) return undefined
    throw err
  })
  if (!head || head.ContentLength !== size) return false
  if (head.ChecksumSHA256) return head.ChecksumSHA256 === digest.sha256
  return head.ETag?.replace(/"/g, '') === digest.md5
}

export async function moveToS3(opts: {
  client: S3Client
  s3: Pick<S3Settings, 'bucket' | 'prefix'>
  areas: MoveArea[]
  onEvent?: (event: MoveEvent) => void
}): Promise<MoveCounts[]> {
  const { client, s3: { bucket: Bucket, prefix } } = opts
  const results: MoveCounts[] = []
  for (const { area, dir, metaOf } of opts.areas) {
    const counts: MoveCounts = { area, files: 0, copied: 0, skipped: 0, failed: 0, bytesCopied: 0 }
    results.push(counts)
    const root = resolve(dir)
    for (const key of await localKeys(root)) {
      const path = join(root, key)
      const Key = `${prefix}${area}/${key}`
      try {
        const info = await stat(path)
        if (!info.isFile()) continue
        counts.files++
        const digest = await digestOf(path)
        if (await sameObject(client, Bucket, Key, info.size, digest)) {
          counts.skipped++
          opts.onEvent?.({ area, key, outcome: 'skipped' })
          continue
        }
        const meta = metaOf?.(key) ?? {}
        // One PUT (objects up to 5 GiB) with the SHA-256 computed here: the store refuses bytes
        // that do not match it, and keeps it for the check below and for the next run's skip.
        await client.send(new PutObjectCommand({
          Bucket, Key, Body: createReadStream(path), ContentLength: info.size, ChecksumSHA256: digest.sha256,
          ContentType: meta.contentType, CacheControl: meta.cacheControl,
        }))
        if (!(await sameObject(client, Bucket, Key, info.size, digest))) throw new Error('the object in the bucket differs from the file after the copy')
        counts.copied++
        counts.bytesCopied += info.size
        opts.onEvent?.({ area, key, outcome: 'copied' })
      } catch (err) {
        counts.failed++
        opts.onEvent?.({ area, key, outcome: 'failed', error: (err as Error).message })
      }
    }
  }
  return results
}
