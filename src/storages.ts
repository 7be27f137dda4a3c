import { createLocalStorage, type S3Settings } from './storage.js'

/**
 * The three storages the app keeps files in: public uploads, private data exports and private
 * catalog CSV files; on S3 one client and one bucket, an area of keys each. The AWS SDK is loaded
 * only for S3 (about 0.3 s of CPU at every start of a process that never uses it).
 */
export async function createStorages(opts: { kind: 'local' | 's3'; s3?: S3Settings; dirs: { uploads: string; exports: string; catalogFiles: string } }) {
  if (opts.kind === 'local' || !opts.s3) {
    return {
      uploads: createLocalStorage(opts.dirs.uploads), exports: createLocalStorage(opts.dirs.exports),
      catalogFiles: createLocalStorage(opts.dirs.catalogFiles), close: () => {},
    }
  }
  const { createS3Client, createS3Storage } = await import('./storage-s3.js')
  const client = createS3Client(opts.s3)
  return {
    uploads: createS3Storage(client, opts.s3, 'uploads'), exports: createS3Storage(client, opts.s3, 'exports'),
    catalogFiles: createS3Storage(client, opts.s3, 'catalog-files'), close: () => client.destroy(),
  }
}
