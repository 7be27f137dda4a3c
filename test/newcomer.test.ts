import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { freePort, runProcess, startProcess, tsx } from './helpers.js'

// The README's first command on a fresh checkout: `npm ci && npm start` with no environment
// (only PORT, so it does not collide with a developer's server); the install reuses this
// checkout's packages when they are exactly the lock's (installedAsLocked). Go is on the machine but
// FerretDB is not (an empty GOPATH), so the start builds it, then serves the whole shop on
// embedded stores: register -> cart -> checkout -> pay through HTTP. This tests the committed
// HEAD (a clone), not uncommitted changes.

const goDir = (() => { try { return dirname(execFileSync('bash', ['-c', 'command -v go'], { encoding: 'utf8' }).trim()) } catch { return undefined } })()
const goEnv = (name: string) => execFileSync('go', ['env', name], { encoding: 'utf8' }).trim()
// A PATH without any FerretDB binary (a newcomer's machine has none), optionally without Go too.
const pathWithout = (dirs: (string | undefined)[]) => (process.env.PATH ?? '').split(delimiter)
  .filter((d) => !dirs.includes(d) && !existsSync(join(d, 'ferretdb'))).join(delimiter)

/**
 * Whether this checkout's node_modules holds exactly what `npm ci` installs from the clone's lock:
 * npm's own record of what it installed (node_modules/.package-lock.json) names the same version
 * and integrity for every package, and leaves out only optional ones (other platforms' binaries).
 * Then the clone uses them: CI's first step is `npm ci` on a clean clone of the same lock, and a
 * second install here proved nothing more for a minute of both CPUs (72 CPU-s measured). A tree
 * that drifted from the lock gets a real `npm ci`.
 */
function installedAsLocked(clone: string): boolean {
  type Packages = Record<string, { version?: string; integrity?: string; optional?: boolean }>
  const read = (file: string): Packages | undefined => {
    try { return (JSON.parse(readFileSync(file, 'utf8')) as { packages: Packages }).packages } catch { return undefined }
  }
  const locked = read(join(clone, 'package-lock.json'))
  const installed = read(join(process.cwd(), 'node_modules', '.package-lock.json'))
  if (!locked || !installed) return false
  const same = Object.entries(installed).every(([name, p]) => locked[name]?.version === p.version && locked[name]?.integrity === p.integrity)
  return same && Object.entries(locked).every(([name, p]) => name === '' || name in installed || p.optional === true)
}

t.test('fresh clone: npm ci && npm start builds FerretDB once, then a customer buys and pays', { timeout: 600_000, skip: goDir ? false : 'Go is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'newcomer-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const cloned = await runProcess(t, ['git', 'clone', '--quiet', process.cwd(), join(dir, 'shop')])
  t.equal(cloned.code, 0, cloned.output)
  const cwd = join(dir, 'shop')
  if (installedAsLocked(cwd)) {
    symlinkSync(join(process.cwd(), 'node_modules'), join(cwd, 'node_modules'), 'dir')
  } else {
    const installed = await runProcess(t, ['npm', 'ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd, timeoutMs: 300_000 })
    t.equal(installed.code, 0, installed.output)
  }

  const port = String(await freePort())
  // A machine with Go and no FerretDB: an empty GOPATH; the module and build caches are shared,
  // so the build takes seconds here rather than minutes.
  const env = { PATH: pathWithout([]), HOME: process.env.HOME ?? dir, PORT: port, GOPATH: join(dir, 'gopath'), GOMODCACHE: goEnv('GOMODCACHE'), GOCACHE: goEnv('GOCACHE'), GOFLAGS: '-mod=mod', GOPROXY: goEnv('GOPROXY') }
  const server = startProcess(t, ['npm', 'start'], { cwd, env })
  await server.waitForHttp(`http://127.0.0.1:${port}/ready`, 400_000)
  t.match(server.output(), /building it once with Go/, 'the start said it builds FerretDB')
  t.match(server.output(), /FerretDB built in \d+ s/)

  const base = `http://127.0.0.1:${port}`
  const call = async (method: string, path: string, body?: object, headers: Record<string, string> = {}) => {
    const res = await fetch(base + path, { method, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined })
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON of the API under test, read loosely
    return { status: res.status, body: await res.json() as Record<string, any> }
  }
  const ready = await call('GET', '/ready')
  t.equal(ready.status, 200, JSON.stringify(ready.body))

  t.equal((await call('POST', '/auth/register', { email: 'newcomer@example.com', name: 'New Comer', password: 'a long enough password' })).status, 202)
  // Without SMTP_URL the verification mail is written to the log: its link verifies the address.
  let link: RegExpMatchArray | null = null
  for (let i = 0; i < 50 && !link; i++) {
    link = server.output().match(/verify-email\?token=([A-Za-z0-9_-]{20,})/)
    if (!link) await new Promise((r) => setTimeout(r, 100))
  }
  t.ok(link, 'the verification link is in the log')
  t.equal((await call('POST', '/auth/verify-email', { token: link![1] })).status, 200)
  const signedUp = await call('POST', '/auth/login', { email: 'newcomer@example.com', password: 'a long enough password' })
  t.equal(signedUp.status, 200)
  const auth = { authorization: `Bearer ${signedUp.body.tokens.accessToken}` }
  const listing = await call('GET', '/products?limit=5&inStock=true')
  t.ok(listing.body.items.length > 0, 'the demo catalog is there')
  const product = await call('GET', `/products/${listing.body.items[0].id}`)
  const variant = product.body.variants.find((v: { stock: number }) => v.stock > 0)
  t.equal((await call('POST', '/cart/items', { variantId: variant.id, quantity: 1 }, auth)).status, 200)
  const order = await call('POST', '/orders', { shippingAddress: { recipientName: 'New Comer', line1: '1 First Street', city: 'Paris', postalCode: '75001', country: 'FR' } }, { ...auth, 'idempotency-key': 'newcomer-checkout-1' })
  t.equal(order.status, 201, JSON.stringify(order.body))
  const payment = await call('POST', `/orders/${order.body.id}/payments`, { provider: 'test', paymentMethod: 'tok_success' }, { ...auth, 'idempotency-key': 'newcomer-payment-1' })
  t.equal(payment.status, 201, JSON.stringify(payment.body))
  const confirmed = await call('POST', `/payments/${payment.body.id}/confirm`, { paymentMethod: 'tok_success' }, auth)
  t.equal(confirmed.body.status, 'succeeded')
  t.equal((await call('GET', `/orders/${order.body.id}`, undefined, auth)).body.status, 'paid')
  await server.stop()
})

t.test('without Go and without FerretDB, the start says exactly what to install', { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nogo-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = pathWithout([goDir])
  const port = String(await freePort())
  const server = startProcess(t, tsx('src/server.ts'), {
    env: { PATH: path, HOME: dir, GOPATH: join(dir, 'gopath'), PORT: port, PGLITE_DATA_DIR: 'memory://', FERRETDB_DATA_DIR: join(dir, 'ferretdb'), UPLOAD_DIR: join(dir, 'uploads') },
  })
  await server.waitForHttp(`http://127.0.0.1:${port}/health`)
  t.match(server.output(), /install Go 1\.22 or newer/, 'the log names what to install')
  const ready = await fetch(`http://127.0.0.1:${port}/ready`)
  t.equal(ready.status, 503, '/ready reports MongoDB down')
  await server.stop()
})
