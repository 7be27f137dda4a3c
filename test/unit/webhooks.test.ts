import t from 'tap'
import { createHmac } from 'node:crypto'
import { drizzle } from 'drizzle-orm/node-postgres'
import * as schema from '../../db/schema/index.js'
import { checkEndpointUrl, isReservedAddress } from '../../routes/webhooks/delivery.js'
import { retryDelayMs } from '../../routes/webhooks/service.js'
import { TEST_SIGNATURE_HEADER, WEBHOOK_TOLERANCE_SECONDS, createTestProvider, signTestWebhook } from '../../routes/payments/providers.js'

// Outbound webhooks: which endpoint URLs are accepted (SSRF), the retry schedule, and the
// signature scheme shared with the test payment provider's incoming webhooks.

t.test('isReservedAddress: private, loopback, link-local and reserved addresses', async (t) => {
  const reserved = ['10.1.2.3', '127.0.0.1', '127.255.255.254', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0',
    '224.0.0.1', '255.255.255.255', '198.18.0.1', '192.0.2.1', '::', '::1', 'fe80::1', 'fd00::1', 'fc00::1', 'ff02::1', '2001:db8::1', '::ffff:127.0.0.1', '::FFFF:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1']
  const open = ['8.8.8.8', '1.1.1.1', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']
  for (const address of reserved) t.ok(isReservedAddress(address), `${address} is reserved`)
  for (const address of open) t.notOk(isReservedAddress(address), `${address} is public`)
  for (const notAnAddress of ['', 'example.com', '10.0.0.256', '1.2.3']) t.ok(isReservedAddress(notAnAddress), `${JSON.stringify(notAnAddress)} is not an address: refused`)
})

t.test('isReservedAddress: IPv6 forms that reach IPv4 or private networks, and every other special range', async (t) => {
  const reserved = [
    '2002:a00:1::1', '2002:7f00:1::', '2002:808:808::1', // 6to4 (2002::/16) embeds an IPv4 address; relays are not ours to trust
    '::a00:1', '::7f00:1', '::808:808', // IPv4-compatible (::/96, deprecated)
    '64:ff9b::808:808', '64:ff9b:1::a00:1', '64:ff9b:1:ffff::1', // NAT64, well-known and local-use (64:ff9b:1::/48)
    'fec0::1', 'feff::1', // site-local (fec0::/10, deprecated)
    '::ffff:0:a00:1', // IPv4-translated (RFC 6145)
    '2001::1', '2001:0:4136:e378::1', // Teredo
    '100::1', '2001:2::1', '2001:10::1', '3fff::1', '5f00::1',
    'fe80::1%eth0',
  ]
  for (const address of reserved) t.ok(isReservedAddress(address), `${address} is refused`)
  for (const address of ['2606:4700:4700::1111', '2a00:1450:4001:80b::200e', '::ffff:1.1.1.1', '1.0.0.1']) t.notOk(isReservedAddress(address), `${address} is public`)
  for (const address of ['192.88.99.1', '192.175.48.1', '0.1.2.3']) t.ok(isReservedAddress(address), `${address} is refused`)
  t.throws(() => checkEndpointUrl('https://[2002:a9fe:a9fe::]/latest/meta-data', false), { statusCode: 400, message: /public address/ }, 'cloud metadata through 6to4')
  t.throws(() => checkEndpointUrl('https://[64:ff9b:1::a9fe:a9fe]/', false), { statusCode: 400, message: /public address/ }, 'cloud metadata through local-use NAT64')
})

t.test('checkEndpointUrl: a public https URL without credentials or fragment, in production', async (t) => {
  t.equal(checkEndpointUrl('https://Hooks.Example.com/in?x=1', false), 'https://hooks.example.com/in?x=1', 'answered normalised')
  t.equal(checkEndpointUrl('https://203.0.114.5:8443/hook', false), 'https://203.0.114.5:8443/hook')
  const refused: [string, RegExp][] = [
    ['not a url', /not an absolute URL/],
    ['/relative/path', /not an absolute URL/],
    ['ftp://files.example.com/', /http or https/],
    ['javascript:alert(1)', /http or https/],
    ['https://user:pass@hooks.example.com/', /credentials/],
    ['https://token@hooks.example.com/', /credentials/],
    ['https://hooks.example.com/#frag', /fragment/],
    ['http://hooks.example.com/', /must be https/],
    ['https://localhost/', /public address/],
    ['https://api.localhost/', /public address/],
    ['https://db.internal/', /public address/],
    ['https://printer.local/', /public address/],
    ['https://intranet/', /public address/],
    ['https://10.0.0.5/', /public address/],
    ['https://169.254.169.254/latest/meta-data', /public address/],
    ['https://[::1]/', /public address/],
    ['https://[::ffff:127.0.0.1]/', /public address/],
    ['https://2130706433/', /public address/],
    ['https://0x7f000001/', /public address/],
  ]
  for (const [url, message] of refused) t.throws(() => checkEndpointUrl(url, false), { statusCode: 400, slug: 'invalid-webhook-url', message }, url)
})

t.test('checkEndpointUrl: private addresses and plain http where allowed, never credentials', async (t) => {
  t.equal(checkEndpointUrl('http://127.0.0.1:8080/hook', true), 'http://127.0.0.1:8080/hook')
  t.equal(checkEndpointUrl('http://localhost/hook', true), 'http://localhost/hook')
  t.throws(() => checkEndpointUrl('http://u:p@127.0.0.1/', true), /credentials/)
  t.throws(() => checkEndpointUrl('file:///etc/passwd', true), /http or https/)
})

t.test('retryDelayMs: the backoff, doubling after each failed attempt', async (t) => {
  t.same([0, 1, 2, 3, 4, 10].map((n) => retryDelayMs(60_000, n)), [60_000, 60_000, 120_000, 240_000, 480_000, 60_000 * 512])
  t.equal(retryDelayMs(10, 25), 10 * 2 ** 24, 'the most attempts with the least backoff: no overflow')
})

t.test('signTestWebhook: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">', async (t) => {
  const body = '{"id":"evt_1"}'
  const expected = createHmac('sha256', 'whsec_test').update(`1700000000.${body}`).digest('hex')
  t.equal(signTestWebhook('whsec_test', body, 1_700_000_000), `t=1700000000,v1=${expected}`)
  t.not(signTestWebhook('whsec_test', `${body} `, 1_700_000_000), signTestWebhook('whsec_test', body, 1_700_000_000), 'the body is signed')
  t.not(signTestWebhook('whsec_test', body, 1_700_000_001), signTestWebhook('whsec_test', body, 1_700_000_000), 'the time is signed')
  t.match(signTestWebhook('whsec_test', body), /^t=\d{10},v1=[0-9a-f]{64}$/, 'now, by default')
})

t.test('the test provider checks the signature, its age and the event before trusting a webhook', async (t) => {
  // parseWebhook reads no table; a database without a connection proves it.
  const provider = createTestProvider('whsec_test', drizzle.mock({ schema }))
  const now = Math.floor(Date.now() / 1000)
  const event = JSON.stringify({ id: 'evt_1', type: 'payment.succeeded', data: { paymentId: 'tp_1' } })
  const signed = (body: string, at = now, secret = 'whsec_test') => ({ [TEST_SIGNATURE_HEADER]: signTestWebhook(secret, body, at) })

  t.same(provider.parseWebhook(Buffer.from(event), signed(event)), { eventId: 'evt_1', type: 'payment.succeeded', providerPaymentId: 'tp_1', failureReason: undefined })
  const failed = JSON.stringify({ id: 'evt_2', type: 'payment.failed', data: { paymentId: 'tp_1', failureReason: 'card_declined' } })
  t.match(provider.parseWebhook(Buffer.from(failed), signed(failed)), { type: 'payment.failed', failureReason: 'card_declined' })
  const other = JSON.stringify({ id: 'evt_3', type: 'customer.created' })
  t.match(provider.parseWebhook(Buffer.from(other), signed(other)), { eventId: 'evt_3', type: 'ignored' }, 'an event it does not handle')
  t.ok(provider.parseWebhook(Buffer.from(event), signed(event, now - WEBHOOK_TOLERANCE_SECONDS + 10)), 'just inside the tolerance')

  const refused: [string, Buffer, Record<string, string>, RegExp][] = [
    ['no signature', Buffer.from(event), {}, /Missing or malformed/],
    ['no v1', Buffer.from(event), { [TEST_SIGNATURE_HEADER]: `t=${now}` }, /Missing or malformed/],
    ['a time that is not a number', Buffer.from(event), { [TEST_SIGNATURE_HEADER]: signTestWebhook('whsec_test', event, now).replace(/^t=\d+/, 't=soon') }, /Missing or malformed/],
    ['too old (a replay)', Buffer.from(event), signed(event, now - WEBHOOK_TOLERANCE_SECONDS - 10), /outside the tolerance/],
    ['from the future', Buffer.from(event), signed(event, now + WEBHOOK_TOLERANCE_SECONDS + 10), /outside the tolerance/],
    ['another secret', Buffer.from(event), signed(event, now, 'whsec_other'), /does not match/],
    ['a changed body', Buffer.from(event.replace('tp_1', 'tp_2')), signed(event), /does not match/],
    ['a truncated signature', Buffer.from(event), { [TEST_SIGNATURE_HEADER]: signTestWebhook('whsec_test', event, now).slice(0, -2) }, /does not match/],
    ['a signed body that is not JSON', Buffer.from('nope'), signed('nope'), /not JSON/],
    ['an event without an id', Buffer.from('{"type":"payment.succeeded"}'), signed('{"type":"payment.succeeded"}'), /no id or type/],
  ]
  for (const [what, body, headers, message] of refused) t.throws(() => provider.parseWebhook(body, headers), { statusCode: 400, message }, what)
})
