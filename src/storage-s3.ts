import { pipeline } from 'node:stream/promises'
import { PassThrough, type Readable } from 'node:stream'
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { counter, SAFE_KEY, type FileStorage, type S3Settings } from './storage.js'

// The S3 storage (any S3-compatible store: AWS, MinIO, R2), loaded by createStorages only when
// STORAGE=s3 so that processes on local files never load the AWS SDK.

export function createS3Client(s3: S3Settings) {
  return new S3Client({
    endpoint: s3.endpoint, region: s3.region, forcePathStyle: s3.forcePathStyle,
    // Unset keys: the SDK's own chain (environment, web identity, instance role).
    credentials: s3.accessKeyId && s3.secretAccessKey ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } : undefined,
  })
}

/** One area of the bucket (`area/` under the prefix), e.g. the public uploads or the private exports. */
export function createS3Storage(client: S3Client, s3: S3Settings, area: string): FileStorage {
  const Bucket = s3.bucket
  const base = `${s3.prefix}${area}/`
  const keyOf = (key: string) => {
    if (!SAFE_KEY.test(key)) throw new Error(`unsafe storage key ${key}`)
    return base + key
  }
  return {
    kind: 's3',
    async put(key, bytes, meta = {}) {
      await client.send(new PutObjectCommand({ Bucket, Key: keyOf(key), Body: bytes, ContentType: meta.contentType, CacheControl: meta.cacheControl }))
    },
    async write(key, source, meta = {}) {
      const count = counter()
      // lib-storage sends parts of partSizeBytes as they fill (a single PUT when the stream is
      // smaller), queueSize at a time, so memory stays at about partSize x queueSize.
      const upload = new Upload({
        client, partSize: s3.partSizeBytes, queueSize: s3.queueSize, leavePartsOnError: false,
        params: { Bucket, Key: keyOf(key), Body: source.pipe(count.stream), ContentType: meta.contentType, CacheControl: meta.cacheControl },
      })
      // A failing source must fail the upload (pipe() does not forward errors), which then aborts.
      const failed = new Promise<never>((_, reject) => source.once('error', (err) => { void upload.abort().catch(() => {}); reject(err) }))
      await Promise.race([upload.done(), failed])
      return count.bytes()
    },
    read(key) {
      const out = new PassThrough()
      client.send(new GetObjectCommand({ Bucket, Key: keyOf(key) }))
        .then((res) => pipeline(res.Body as Readable, out))
        .catch((err: Error) => out.destroy(err))
      return out
    },
    async remove(key) {
      await client.send(new DeleteObjectCommand({ Bucket, Key: keyOf(key) }))
    },
    async listOlderThan(before) {
      const old: string[] = []
      let ContinuationToken: string | undefined
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: base, ContinuationToken }))
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(base.length)
          if (key && SAFE_KEY.test(key) && object.LastModified && object.LastModified < before) old.push(key)
        }
        ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
      } while (ContinuationToken)
      return old
    },
    signedUrl(key, { expiresInSeconds, filename, contentType }) {
      return getSignedUrl(client, new GetObjectCommand({
        Bucket, Key: keyOf(key), ResponseContentType: contentType,
        ResponseContentDisposition: filename ? `attachment; filename="${filename}"` : undefined,
      }), { expiresIn: expiresInSeconds })
    },
    publicUrl: (key) => (s3.publicUrl ? `${s3.publicUrl.replace(/\/$/, '')}/${keyOf(key)}` : undefined),
  }
}
