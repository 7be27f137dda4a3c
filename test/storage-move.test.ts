import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3'
import { buildApp, type App } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { createTestDatabase, deleteRedisKeys, runProcess, s3TestEnv, startProcess, testEnv, tsx } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import { png, upload } from './uploads-fixtures.js'

// The move to object storage (#30): files written by an app on local disk are copied to the
// bucket by `npm run storage:move`, which is killed halfway and run again; every file is then in
// the bucket once, byte for byte, and an app switched to STORAGE=s3 serves them all.

const sha256 = (bytes: Buffer | Uint8Array) => createHash('sha256').update(bytes).digest('hex')
const AREAS = { uploads: 'UPLOAD_DIR', exports: 'DATA_EXPORT_DIR', 'catalog-files': 'CATALOG_FILES_DIR' } as const

t.test('storage:move copies every local file to the bucket, survives a crash, and an S3 app serves them all', async (t) => {
  const s3 = await s3TestEnv(t)
  const database = await createTestDatabase(t)
  const dirs = Object.fromEntries(Object.values(AREAS).map((name) => [name, mkdtempSync(join(tmpdir(), 'storage-move-'))])) as Record<string, string>
  const localEnv = testEnv(database, { ...dirs, STORAGE: 'local' })
  const s3Env = testEnv(database, { ...dirs, ...s3.env, S3_SIGNED_URL_TTL_SECONDS: '30' })
  const apps: App[] = []
  t.teardown(async () => {
    await apps[0]?.mongo.dropDatabase().catch(() => {})
    for (const app of apps) await app.close()
    await deleteRedisKeys(localEnv.REDIS_KEY_PREFIX!)
  })

  // The shop on local disk: product images and avatars, a customer's data export, a catalog
  // import (its CSV is kept) and a catalog export.
  const local = await buildApp(loadConfig(localEnv), { logger: false })
  apps.push(local)
  const admin = await registerAdmin(local)
  const ada = await register(local, { email: 'ada@example.com' })
  const files: { id: string; url: string; bytes: Buffer; mime: string }[] = []
  for (let i = 0; i < 6; i++) {
    const bytes = Buffer.concat([png(), randomBytes(1000 + i * 5000)])
    const res = await upload(local, i % 2 ? ada.headers : admin.headers, i % 2 ? 'avatar' : 'product_image', `f${i}.png`, 'image/png', bytes)
    t.equal(res.statusCode, 201, res.body)
    files.push({ ...res.json(), bytes, mime: 'image/png' })
  }
  await createProduct(local, admin.headers, { name: 'Kettle', variants: [{ sku: 'KETTLE', priceMinor: 1999, stock: 5 }] })
  const dataExportId = (await local.inject({ method: 'POST', url: '/users/me/export', headers: ada.headers })).json().id as string
  t.same(await local.services.dataExports.runDue(), { built: 1, failed: 0 })
  const imported = await local.inject({ method: 'POST', url: '/imports/products?dryRun=true', headers: { ...admin.headers, 'content-type': 'text/csv' }, payload: 'handle,name,sku,price\nmug,Mug,MUG,500\n' })
  t.equal(imported.statusCode, 202, imported.body)
  const exportJobId = (await local.inject({ method: 'POST', url: '/exports/products', headers: admin.headers })).json().id as string
  await local.services.catalogIo.runDue()
  const localCsv = await local.inject({ method: 'GET', url: `/exports/${exportJobId}/file`, headers: admin.headers })
  t.equal(localCsv.statusCode, 200, 'on local disk the API streams the export')

  // What is on disk, by area: key -> SHA-256.
  const expected: Record<string, Record<string, string>> = {}
  for (const [area, setting] of Object.entries(AREAS)) {
    expected[area] = Object.fromEntries(readdirSync(dirs[setting]!).map((key) => [key, sha256(readFileSync(join(dirs[setting]!, key)))]))
  }
  const total = Object.values(expected).reduce((n, keys) => n + Object.keys(keys).length, 0)
  t.equal(Object.keys(expected.uploads!).length, 6)
  t.equal(Object.keys(expected.exports!).length, 1)
  t.equal(Object.keys(expected['catalog-files']!).length, 2, 'the import as uploaded and the export as built')

  const moveEnv = { ...process.env, ...s3Env }
  const inBucket = async () => {
    const listed: Record<string, string[]> = {}
    let ContinuationToken: string | undefined
    do {
      const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: s3.prefix, ContinuationToken }))
      for (const o of page.Contents ?? []) {
        const [area, key] = o.Key!.slice(s3.prefix.length).split('/') as [string, string]
        ;(listed[area] ??= []).push(key)
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (ContinuationToken)
    return listed
  }

  // A wrong bucket: every copy fails, the command says so and exits non-zero.
  const wrong = await runProcess(t, tsx('src/storage-move-cli.ts'), { env: { ...moveEnv, S3_BUCKET: `no-such-bucket-${randomBytes(4).toString('hex')}` } })
  t.equal(wrong.code, 1, 'a failed copy exits 1')
  t.match(wrong.stdout, `uploads: 6 files, 0 copied (0 bytes), 0 already in the bucket, 6 failed`)
  t.match(wrong.stderr, /failed uploads\/.*\.png/)

  // The first run is killed (SIGKILL, no cleanup) after its third copy.
  const first = startProcess(t, tsx('src/storage-move-cli.ts', '--verbose'), { env: moveEnv })
  await first.waitFor('three copies', () => first.stdout().split('\n').filter((l) => l.startsWith('copied ')).length >= 3)
  await first.stop('SIGKILL')
  const afterCrash = Object.values(await inBucket()).flat().length
  t.comment(`the killed run had copied ${afterCrash} of ${total} files`)
  t.ok(afterCrash >= 3 && afterCrash < total, `a crash halfway (${afterCrash} of ${total} in the bucket)`)

  const second = await runProcess(t, tsx('src/storage-move-cli.ts'), { env: moveEnv })
  t.equal(second.code, 0, second.output)
  const counts = [...second.stdout.matchAll(/(\d+) copied .* (\d+) already in the bucket, (\d+) failed/g)].map((m) => m.slice(1).map(Number))
  t.equal(counts.length, 3, 'a line of counts per area')
  t.equal(counts.reduce((n, [copied]) => n + copied!, 0), total - afterCrash, 'the re-run copies only what is missing')
  t.equal(counts.reduce((n, [, skipped]) => n + skipped!, 0), afterCrash, 'and skips what the killed run copied')

  const third = await runProcess(t, tsx('src/storage-move-cli.ts'), { env: moveEnv })
  t.equal(third.code, 0)
  t.match(third.stdout, /uploads: 6 files, 0 copied \(0 bytes\), 6 already in the bucket, 0 failed/, 'idempotent: nothing to do')

  // Each file once in the bucket, with the same bytes.
  const listed = await inBucket()
  for (const [area, keys] of Object.entries(expected)) {
    t.same((listed[area] ?? []).sort(), Object.keys(keys).sort(), `${area}: every file, once`)
    for (const [key, hash] of Object.entries(keys)) {
      const object = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}${area}/${key}` }))
      t.equal(sha256(await object.Body!.transformToByteArray()), hash, `${area}/${key}: the same bytes`)
    }
  }
  const image = await s3.client.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${s3.prefix}uploads/${Object.keys(expected.uploads!)[0]}` }))
  t.equal(image.ContentType, 'image/png', 'stored with the Content-Type the app would have given it')

  // The app switched to object storage (the local directories emptied, to be sure) serves them.
  await local.close()
  apps.splice(0)
  const remote = await buildApp(loadConfig({ ...s3Env, UPLOAD_DIR: mkdtempSync(join(tmpdir(), 'empty-')), DATA_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'empty-')), CATALOG_FILES_DIR: mkdtempSync(join(tmpdir(), 'empty-')) }), { logger: false })
  apps.push(remote)
  for (const file of files) {
    const served = await remote.inject({ method: 'GET', url: file.url, headers: admin.headers })
    t.equal(served.statusCode, 200, `${file.url} is served`)
    t.equal(sha256(served.rawPayload), sha256(file.bytes), `${file.url}: the bytes uploaded`)
  }
  const link = (await remote.inject({ method: 'GET', url: `/users/me/export/${dataExportId}`, headers: ada.headers })).json().downloadUrl as string
  const archive = await remote.inject({ method: 'GET', url: link })
  t.equal(archive.statusCode, 302)
  t.equal(sha256(Buffer.from(await (await fetch(archive.headers.location as string)).arrayBuffer())), expected.exports![`${dataExportId}.tgz`], 'the data export, from the bucket')
  const csv = await remote.inject({ method: 'GET', url: `/exports/${exportJobId}/file`, headers: admin.headers })
  t.equal(csv.statusCode, 302)
  t.equal(sha256(Buffer.from(await (await fetch(csv.headers.location as string)).arrayBuffer())), sha256(localCsv.rawPayload), 'the catalog export, from the bucket')
})
