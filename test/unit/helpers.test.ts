import t from 'tap'
import { isUniqueViolation, pgError, postgresLocation } from '../../db/client.js'
import { Conflict, NotFound, TooManyRequests, type AppError } from '../../src/errors.js'
import { InjectedFault, createFaults } from '../../src/faults.js'
import { bullPrefix, hasRedisServer, redisLocation, slotKey } from '../../src/redis-client.js'
import { tracingWanted } from '../../src/tracing.js'
import { assertHasPassword, assertPasswordPolicy } from '../../src/passwords.js'
import { accountStamp } from '../../src/account-mail.js'
import { IDEMPOTENCY_KEY_PATTERN } from '../../src/schema-types.js'
import { CART_CONSUMED, ORDER_MAIL, STOCK_CHANGED, cartKey } from '../../src/side-effects.js'
import { CATALOG_CACHE, productCache } from '../../src/catalog.js'
import { sanitizeFileName } from '../../routes/uploads/service.js'
import { normalizeCode } from '../../routes/coupons/service.js'
import { normalizeEmail } from '../../routes/users/service.js'
import { ownerOf } from '../../routes/cart/service.js'

// Small pure helpers the domains share: Redis keys, locations for logs (no credentials), error
// recognition, the fault points of the money path, input normalisation.

t.test('slotKey: every key of a group shares one cluster hash tag', async (t) => {
  t.equal(slotKey('sf', 'family-1'), 'sf:{family-1}')
  t.equal(slotKey('rt', 'family-1', 'abc'), 'rt:{family-1}:abc')
  t.equal(slotKey('rt', 'family-1', ''), 'rt:{family-1}:', 'an empty rest is still a rest')
  for (const group of ['', 'a{b', 'a}b', '{x}']) t.throws(() => slotKey('k', group), /non-empty and without braces/, JSON.stringify(group))
  t.equal(bullPrefix('shop:'), 'shop:{bull}')
})

t.test('Redis: configured or in-process, and where, without credentials', async (t) => {
  const base = { keyPrefix: 'shop:', commandTimeoutMs: 2000 }
  t.notOk(hasRedisServer(base))
  t.notOk(hasRedisServer({ ...base, clusterNodes: [] }), 'an empty node list is no cluster')
  t.ok(hasRedisServer({ ...base, url: 'redis://r:6379' }))
  t.equal(redisLocation(base), 'in-process')
  t.equal(redisLocation({ ...base, url: 'redis://user:s3cret@cache.internal:6380/2' }), 'cache.internal:6380')
  t.equal(redisLocation({ ...base, url: 'rediss://:s3cret@cache.internal' }), 'cache.internal:6379', 'the default port')
  t.equal(redisLocation({ ...base, url: 'redis://r:1', clusterNodes: [{ host: 'a', port: 7000 }, { host: 'b', port: 7001 }] }), 'a:7000,b:7001', 'a cluster wins over a URL')
  t.equal(postgresLocation('postgres://shop:s3cret@db.internal:5433/shop?sslmode=require'), 'db.internal:5433/shop')
  t.equal(postgresLocation('postgresql://db/shop'), 'db:5432/shop')
})

t.test('pgError and isUniqueViolation find the driver error under drizzle\'s wrapping', async (t) => {
  const driver = Object.assign(new Error('duplicate key'), { code: '23505', constraint: 'users_email_key' })
  const wrapped = Object.assign(new Error('Failed query'), { cause: Object.assign(new Error('again'), { cause: driver }) })
  t.same(pgError(wrapped), { code: '23505', constraint: 'users_email_key' })
  t.ok(isUniqueViolation(wrapped))
  t.ok(isUniqueViolation(wrapped, 'users_email_key'))
  t.notOk(isUniqueViolation(wrapped, 'orders_number_key'), 'another constraint')
  t.notOk(isUniqueViolation(Object.assign(new Error('fk'), { code: '23503' })))
  t.equal(pgError(Object.assign(new Error('net'), { code: 'ECONNREFUSED' })), undefined, 'a Node error code is not a SQLSTATE')
  t.equal(pgError(undefined), undefined)
  t.equal(pgError('text'), undefined)
})

t.test('errors carry their status and problem type', async (t) => {
  const cases: [AppError, number, string][] = [
    [new NotFound('order', 'o-1'), 404, 'urn:problem-type:not-found'],
    [new Conflict('x', 'invalid-transition'), 409, 'urn:problem-type:invalid-transition'],
    [new TooManyRequests('slow down'), 429, 'urn:problem-type:rate-limited'],
  ]
  for (const [err, status, type] of cases) t.same([err.statusCode, err.type, err instanceof Error], [status, type, true], err.constructor.name)
  t.equal(new NotFound('order', 'o-1').message, 'order o-1 not found')
  t.equal(new NotFound('cart').message, 'cart not found')
})

t.test('faults: an armed point throws once, then never again', async (t) => {
  const faults = createFaults()
  t.doesNotThrow(() => faults.at('payment.after-record'), 'nothing armed')
  faults.failOnce('payment.after-record')
  t.doesNotThrow(() => faults.at('refund.after-record'), 'another point is not armed')
  t.throws(() => faults.at('payment.after-record'), InjectedFault)
  t.doesNotThrow(() => faults.at('payment.after-record'), 'disarmed by firing')
  faults.failOnce('cart.before-clear')
  faults.failOnce('cart.before-clear')
  t.throws(() => faults.at('cart.before-clear'))
  t.doesNotThrow(() => faults.at('cart.before-clear'), 'arming twice is still once')
  t.doesNotThrow(() => createFaults().at('cart.before-clear'), 'each set of faults is its own')
})

t.test('tracingWanted: the OTEL_* variables', async (t) => {
  t.notOk(tracingWanted({}), 'off by default')
  t.ok(tracingWanted({ OTEL_TRACES_EXPORTER: 'otlp' }))
  t.ok(tracingWanted({ OTEL_TRACES_EXPORTER: ' console , otlp ' }))
  t.notOk(tracingWanted({ OTEL_TRACES_EXPORTER: 'none' }))
  t.notOk(tracingWanted({ OTEL_TRACES_EXPORTER: 'otlp,none' }), 'none anywhere turns it off')
  t.ok(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }))
  t.ok(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }))
  t.notOk(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), 'an explicit none wins over an endpoint')
  t.notOk(tracingWanted({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: ' TRUE ' }), 'disabled wins')
  t.ok(tracingWanted({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'false' }))
  t.notOk(tracingWanted({ OTEL_TRACES_EXPORTER: ' , ' }), 'an empty list is unset')
})

t.test('passwords: not the email, and an account without one is told how to set one', async (t) => {
  for (const password of ['ada@example.com', 'ADA@EXAMPLE.COM', 'ada', 'Ada']) {
    t.throws(() => assertPasswordPolicy(password, ' Ada@Example.com '), { name: 'AppError', statusCode: 400, slug: 'weak-password' }, password)
  }
  t.doesNotThrow(() => assertPasswordPolicy('ada@example.co', 'ada@example.com'))
  t.doesNotThrow(() => assertPasswordPolicy('ada-lovelace-1815', 'ada@example.com'))
  t.throws(() => assertHasPassword({ passwordHash: null }), { statusCode: 409, slug: 'no-password', message: /POST \/auth\/password\/forgot/ })
  t.doesNotThrow(() => assertHasPassword({ passwordHash: '' }), 'an empty hash is still a password (only null means none)')
})

t.test('accountStamp: changes with the email or the password, so older reset links die', async (t) => {
  const stamp = accountStamp({ email: 'a@example.com', passwordHash: 'h1' })
  t.match(stamp, /^[A-Za-z0-9_-]{43}$/)
  t.equal(accountStamp({ email: 'a@example.com', passwordHash: 'h1' }), stamp, 'the same account, the same stamp')
  t.not(accountStamp({ email: 'b@example.com', passwordHash: 'h1' }), stamp)
  t.not(accountStamp({ email: 'a@example.com', passwordHash: 'h2' }), stamp)
  t.not(accountStamp({ email: 'a@example.com', passwordHash: null }), stamp, 'a password set on an account that had none')
})

t.test('input normalisation', async (t) => {
  t.equal(normalizeCode('  summer10 '), 'SUMMER10')
  t.equal(normalizeEmail('  Ada@Example.COM '), 'ada@example.com')
  t.equal(sanitizeFileName('../../etc/passwd'), 'passwd', 'no path')
  t.equal(sanitizeFileName('C:\\Users\\me\\photo 1.png'), 'photo_1.png', 'Windows paths too')
  t.equal(sanitizeFileName('.htaccess'), 'htaccess', 'no hidden files')
  t.equal(sanitizeFileName('résumé.pdf'), 're_sume_.pdf', 'accents decomposed, the marks replaced')
  t.equal(sanitizeFileName('a"b<c>\r\nd.txt'), 'a_b_c_d.txt', 'nothing that breaks a header or a page')
  t.equal(sanitizeFileName('...'), 'file', 'nothing left')
  t.equal(sanitizeFileName('dir/'), 'file')
  t.equal(sanitizeFileName(`${'x'.repeat(150)}.png`).length, 100, 'at most 100 characters')
  t.ok(new RegExp(IDEMPOTENCY_KEY_PATTERN).test('order-2024:01.a_b'))
  for (const key of ['short', 'x'.repeat(256), 'has space', 'ünï-1234']) t.notOk(new RegExp(IDEMPOTENCY_KEY_PATTERN).test(key), key)
  t.ok(new RegExp(IDEMPOTENCY_KEY_PATTERN).test('x'.repeat(255)), '255 characters')
})

t.test('ownerOf: a signed-in user, else a guest cart token, else 401', async (t) => {
  t.same(ownerOf({ sub: 'u1' }, 'token'), { kind: 'user', userId: 'u1' }, 'a signed-in user\'s own cart, whatever token is sent')
  t.same(ownerOf(null, 'token'), { kind: 'guest', token: 'token' })
  t.throws(() => ownerOf(null, undefined), { name: 'AppError', statusCode: 401, slug: 'cart-required' })
  t.throws(() => ownerOf(null, ''), { name: 'AppError', statusCode: 401 }, 'an empty token is none')
})

t.test('outbox events of the money path', async (t) => {
  t.same(STOCK_CHANGED(['p1', 'p2', 'p1'], false).map((e) => e.payload), [{ namespace: productCache('p1') }, { namespace: productCache('p2') }], 'each product once; listings untouched')
  t.same(STOCK_CHANGED([], true).map((e) => e.payload), [{ namespace: CATALOG_CACHE }], 'listings when what they show changed')
  t.same(CART_CONSUMED('u1', 3, [{ variantId: 'v', quantity: 2 }]), { topic: 'cart.consumed', key: cartKey('u1'), payload: { userId: 'u1', generation: 3, lines: [{ variantId: 'v', quantity: 2 }] } })
  t.same(ORDER_MAIL('o1', 'refunded', { refundId: 'r1' }), { topic: 'mail.order', key: 'order:o1', payload: { orderId: 'o1', kind: 'refunded', refundId: 'r1' } }, 'one order\'s mails in order')
})
