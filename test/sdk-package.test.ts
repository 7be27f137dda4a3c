import t from 'tap'
import http from 'node:http'
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { count, eq } from 'drizzle-orm'
import { orders, products, users } from '../db/schema/index.js'
import { seedCatalog } from '../db/seed.js'
import { buildTestApp, runProcess } from './helpers.js'

// The TypeScript SDK as a storefront gets it: `npm pack` in sdk/, the tarball installed into an
// empty project (openapi-fetch from the registry), sdk/examples/journey.ts type-checked against
// the installed declarations and run against a listening server, through a proxy that refuses
// the first /categories with a 503 + Retry-After and drops the first checkout's answer.

const root = fileURLToPath(new URL('..', import.meta.url))
const sdkDir = join(root, 'sdk')
const tsc = join(root, 'node_modules/.bin/tsc')

interface Seen { method: string; path: string; idempotencyKey: string | undefined }

/** A proxy to `target` that fails the way networks do, once each, and records what passed. */
async function startFaultyProxy(t: { teardown(fn: () => unknown): void }, target: string) {
  const seen: Seen[] = []
  let refusedCategories = false
  let droppedCheckout = false
  const server = http.createServer((req, res) => {
    const path = req.url!.split('?')[0]!
    seen.push({ method: req.method!, path, idempotencyKey: req.headers['idempotency-key'] as string | undefined })
    if (!refusedCategories && req.method === 'GET' && path === '/categories') {
      refusedCategories = true
      res.writeHead(503, { 'retry-after': '1', 'content-type': 'application/problem+json' })
      res.end(JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503 }))
      return
    }
    const upstream = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      if (!droppedCheckout && req.method === 'POST' && path === '/orders') {
        // The API made the order; its answer is read and the client's connection cut.
        droppedCheckout = true
        answer.resume()
        answer.on('end', () => req.socket.destroy())
        return
      }
      res.writeHead(answer.statusCode!, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', () => res.destroy())
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen }
}

t.test('the packed SDK, installed into an empty project, walks the whole journey', { timeout: 240_000 }, async (t) => {
  // Pack and install first: no server is needed yet.
  const scratch = t.testdir({ 'package.json': JSON.stringify({ name: 'storefront', private: true, type: 'module' }) })
  const packed = await runProcess(t, ['npm', 'pack', '--json', '--pack-destination', scratch], { cwd: sdkDir, timeoutMs: 120_000 })
  t.equal(packed.code, 0, 'npm pack', { output: packed.output })
  const pack = (JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; size: number; unpackedSize: number; files: { path: string }[] }[])[0]!
  t.ok(pack.files.every((f) => f.path === 'package.json' || f.path === 'README.md' || f.path.startsWith('dist/')), 'only the build ships')
  t.comment(`${pack.filename}: ${pack.size} bytes packed, ${pack.unpackedSize} unpacked, ${pack.files.length} files`)
  const installed = await runProcess(t, ['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', `./${pack.filename}`], { cwd: scratch, timeoutMs: 120_000 })
  t.equal(installed.code, 0, 'npm install of the tarball', { output: installed.output })
  const dist = join(scratch, 'node_modules/@shop-api/sdk/dist')
  const builtJs = readdirSync(dist, { recursive: true }).filter((f) => String(f).endsWith('.js')).map((f) => readFileSync(join(dist, String(f)), 'utf8')).join('\n')
  t.notMatch(builtJs, /from ['"]node:|require\(/, 'nothing Node-only in the build: it runs in browsers')

  // The journey, type-checked against the installed .d.ts as a NodeNext project would, then built.
  copyFileSync(join(sdkDir, 'examples/journey.ts'), join(scratch, 'journey.ts'))
  writeFileSync(join(scratch, 'tsconfig.json'), JSON.stringify({ compilerOptions: {
    target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noUncheckedIndexedAccess: true,
    lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [], skipLibCheck: true, outDir: 'out',
  }, files: ['journey.ts', 'env.d.ts'] }))
  // process.env without @types/node (not installed in the scratch project).
  writeFileSync(join(scratch, 'env.d.ts'), 'declare const process: { env: Record<string, string | undefined> }\n')
  const built = await runProcess(t, [tsc, '-p', 'tsconfig.json'], { cwd: scratch, timeoutMs: 120_000 })
  t.equal(built.code, 0, 'the journey type-checks against the installed declarations', { output: built.output })

  // The shop: a catalog long enough to page, a verified customer.
  const app = await buildTestApp(t)
  await seedCatalog(app.db, { categories: 3, products: 130, variantsPerProduct: 2, seed: 7 })
  const email = 'sdk-shopper@example.com'
  const password = 'sdk shopper password 1'
  const registered = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, password, name: 'Sam Shopper' } })
  t.equal(registered.statusCode, 202, 'the customer registered')
  await app.db.update(users).set({ emailVerifiedAt: new Date() }).where(eq(users.email, email))
  await app.listen({ host: '127.0.0.1', port: 0 })
  const proxy = await startFaultyProxy(t, `http://127.0.0.1:${(app.server.address() as { port: number }).port}`)

  const run = await runProcess(t, [process.execPath, 'out/journey.js'], { cwd: scratch, timeoutMs: 60_000, env: { ...process.env, SHOP_URL: proxy.url, SHOP_EMAIL: email, SHOP_PASSWORD: password } })
  t.equal(run.code, 0, 'the journey ran', { output: run.output })
  const seen = JSON.parse(run.stdout.trim().split('\n').at(-1)!)
  t.comment(`journey: ${JSON.stringify(seen)}`)

  t.ok(seen.waitedForRetryAfterMs >= 900, 'the 503 was retried after its Retry-After')
  const checkouts = proxy.seen.filter((r) => r.method === 'POST' && r.path === '/orders')
  t.equal(checkouts.length, 2, 'the checkout whose answer was lost was sent again')
  t.ok(checkouts[0]!.idempotencyKey, 'with an Idempotency-Key')
  t.equal(checkouts[1]!.idempotencyKey, checkouts[0]!.idempotencyKey, 'the same key on the retry')
  const [customer] = await app.db.select({ id: users.id }).from(users).where(eq(users.email, email))
  const [made] = await app.db.select({ n: count() }).from(orders).where(eq(orders.userId, customer!.id))
  t.equal(made!.n, 1, 'one order')
  t.same(seen.myOrderIds, [seen.order.id], 'the customer sees that one order')
  t.match(seen.order, { status: 'paid', payment: 'succeeded' }, 'paid')

  t.equal(seen.fiveCallsOk, true, 'the five refused calls succeeded after the refresh')
  t.equal(seen.refreshesForFive, 1, 'five refused calls shared one refresh')
  t.equal(seen.writeAfterRefresh, 1, 'a refused write was sent again, with its body, after a refresh')
  t.same(seen.raced, [true, true], 'two tabs refreshing the same token both kept the session')
  t.same(seen.afterRace, [email, email], 'both tabs call on with their new tokens')
  t.match(seen.guestOrder, { status: 'paid', tokenKept: true }, 'the guest paid the order its kept token reaches')

  const [active] = await app.db.select({ n: count() }).from(products).where(eq(products.status, 'active'))
  t.equal(seen.listed, active!.n, 'the listing was paged to its end')
  t.equal(seen.distinct, seen.listed, 'no product twice')
  t.ok(seen.listed > 100, 'over several pages')
  t.same(seen.problem, { status: 404, title: 'Not Found' }, 'a failed call throws its problem document')
})
