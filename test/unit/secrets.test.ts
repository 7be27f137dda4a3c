import t from 'tap'
import { createSecretBox, parseSecretKeys } from '../../src/secret-box.js'
import { createSecretBox as createWebhookSecretBox, newSigningSecret } from '../../routes/webhooks/secrets.js'

// Secrets kept recoverable: two-factor seeds (src/secret-box.ts, rotating keys, bound to their
// row) and webhook signing secrets (routes/webhooks/secrets.ts, a key derived from config).

const key = (fill: number) => Buffer.alloc(32, fill).toString('base64')

t.test('parseSecretKeys: <id>:<32 bytes base64>, comma-separated', async (t) => {
  const keys = parseSecretKeys(` new:${key(1)} , old_1-x:${key(2)},`)
  t.same(keys.map((k) => k.id), ['new', 'old_1-x'], 'in order, spaces and a trailing comma ignored')
  t.same(keys[0]!.key, Buffer.alloc(32, 1))
  for (const [what, spec, message] of [
    ['no key', '', /at least one key/],
    ['only commas', ' , ', /at least one key/],
    ['31 bytes', `k:${Buffer.alloc(31).toString('base64')}`, /32 bytes/],
    ['33 bytes', `k:${Buffer.alloc(33).toString('base64')}`, /32 bytes/],
    ['no id', `:${key(1)}`, /32 bytes/],
    ['an id with a dot (the sealed format\'s separator)', `a.b:${key(1)}`, /the id letters, digits/],
    ['an id of 33 characters', `${'i'.repeat(33)}:${key(1)}`, /the id letters, digits/],
    ['a third part', `k:${key(1)}:extra`, /32 bytes/],
    ['the same id twice', `k:${key(1)},k:${key(2)}`, /key ids must differ/],
  ] as const) t.throws(() => parseSecretKeys(spec), { message }, what)
  t.equal(parseSecretKeys(`${'i'.repeat(32)}:${key(1)}`)[0]!.id.length, 32, 'an id of 32 characters')
})

t.test('two-factor secrets: sealed for one row, opened only there', async (t) => {
  const box = createSecretBox(parseSecretKeys(`k1:${key(1)}`))
  const sealed = box.seal('JBSWY3DPEHPK3PXP', 'user-1')
  t.match(sealed, /^v1\.k1\.[\w-]+\.[\w-]+\.[\w-]+$/, 'v1.<key id>.<iv>.<tag>.<ciphertext>')
  t.notMatch(sealed, /JBSWY3DPEHPK3PXP/)
  t.same(box.open(sealed, 'user-1'), { plain: 'JBSWY3DPEHPK3PXP', stale: false })
  t.not(box.seal('JBSWY3DPEHPK3PXP', 'user-1'), sealed, 'a fresh IV each time')
  t.throws(() => box.open(sealed, 'user-2'), 'copied to another row, it does not open')
  const parts = sealed.split('.')
  const ciphertext = Buffer.from(parts[4]!, 'base64url')
  ciphertext[0]! ^= 1
  parts[4] = ciphertext.toString('base64url')
  t.throws(() => box.open(parts.join('.'), 'user-1'), 'one flipped bit and it does not open')
  t.same(box.open(box.seal('', 'u'), 'u').plain, '', 'an empty secret')
  t.same(box.open(box.seal('ünï ✓', 'u'), 'u').plain, 'ünï ✓', 'UTF-8')
  t.same(box.open('JBSWY3DPEHPK3PXP', 'user-1'), { plain: 'JBSWY3DPEHPK3PXP', stale: true }, 'a value stored before encryption reads as it is, to be sealed again')
})

t.test('two-factor secrets: keys rotate', async (t) => {
  const before = createSecretBox(parseSecretKeys(`old:${key(1)}`))
  const sealedOld = before.seal('seed', 'u')
  const after = createSecretBox(parseSecretKeys(`new:${key(2)},old:${key(1)}`))
  t.same(after.open(sealedOld, 'u'), { plain: 'seed', stale: true }, 'the old key still opens, and says to seal again')
  t.match(after.seal('seed', 'u'), /^v1\.new\./, 'the first key seals')
  const dropped = createSecretBox(parseSecretKeys(`new:${key(2)}`))
  t.throws(() => dropped.open(sealedOld, 'u'), /sealed with key "old", which is not configured/)
  const sameIdOtherKey = createSecretBox(parseSecretKeys(`old:${key(3)}`))
  t.throws(() => sameIdOtherKey.open(sealedOld, 'u'), 'a key replaced under the same id does not open')
})

t.test('webhook signing secrets', async (t) => {
  const secret = newSigningSecret()
  t.match(secret, /^whsec_[A-Za-z0-9_-]{43}$/, '32 random bytes')
  t.not(newSigningSecret(), secret)
  const box = createWebhookSecretBox('k'.repeat(32))
  const sealed = box.seal(secret)
  t.match(sealed, /^v1\.[\w-]+\.[\w-]+\.[\w-]+$/)
  t.equal(box.open(sealed), secret)
  t.equal(createWebhookSecretBox('k'.repeat(32)).open(sealed), secret, 'the same key material derives the same key (a restart)')
  t.throws(() => createWebhookSecretBox('j'.repeat(32)).open(sealed), 'another WEBHOOK_SECRETS_KEY does not open it')
  for (const stored of ['', 'whsec_plain', 'v2.a.b.c', 'v1.a.b']) t.throws(() => box.open(stored), /unknown webhook secret format/, JSON.stringify(stored))
})
