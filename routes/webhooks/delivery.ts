import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import { BlockList, isIP } from 'node:net'
import { signTestWebhook } from '../payments/providers.js'
import { BadRequest } from '../../src/errors.js'

// The HTTP side of outbound webhooks: which URLs we accept, and one signed POST with a timeout.
//
// SSRF stance: unless WEBHOOK_ALLOW_PRIVATE_URLS (on outside production) an endpoint must be
// https on a public address. Literal private, loopback, link-local (cloud metadata) and
// reserved addresses are refused at registration; host names are checked again on every
// delivery against the addresses DNS gives at connection time (so rebinding a name to a private
// address later does not help), and redirects are never followed.

const RESERVED = new BlockList()
for (const [net, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) RESERVED.addSubnet(net, prefix, 'ipv4')
// No ::ffff:0:0/96: BlockList checks an IPv4-mapped address against the IPv4 subnets above, and
// matches every IPv4 address against that subnet, which would refuse all public IPv4 hosts.
for (const [net, prefix] of [['::', 128], ['::1', 128], ['64:ff9b::', 96], ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) RESERVED.addSubnet(net, prefix, 'ipv6')

/** True for an address a webhook may not reach from a production shop. */
export function isReservedAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return isReservedAddress(mapped[1]!)
  const family = isIP(address)
  if (!family) return true
  return RESERVED.check(address, family === 4 ? 'ipv4' : 'ipv6')
}

/** Checks an endpoint URL as an admin gives it; answers 400 with the reason. */
export function checkEndpointUrl(raw: string, allowPrivate: boolean): string {
  let url: URL
  try { url = new URL(raw) } catch { throw new BadRequest('url is not an absolute URL', 'invalid-webhook-url') }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new BadRequest('url must be http or https', 'invalid-webhook-url')
  if (url.username || url.password) throw new BadRequest('url must not carry credentials; authenticate the request by its signature', 'invalid-webhook-url')
  if (url.hash) throw new BadRequest('url must not have a fragment', 'invalid-webhook-url')
  if (!allowPrivate) {
    if (url.protocol !== 'https:') throw new BadRequest('url must be https', 'invalid-webhook-url')
    const host = url.hostname.replace(/^\[|\]$/g, '')
    if (isIP(host) ? isReservedAddress(host) : /(^|\.)(localhost|local|internal|localdomain)$/i.test(host) || !host.includes('.')) {
      throw new BadRequest('url must point at a public address', 'invalid-webhook-url')
    }
  }
  return url.toString()
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void
/** dns.lookup that refuses reserved addresses: the connection is never opened to them. */
function publicOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback) {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, [])
    const allowed = addresses.filter((a) => !isReservedAddress(a.address))
    if (!allowed.length) return callback(Object.assign(new Error(`${hostname} resolves to a private or reserved address`), { code: 'EADDRNOTAVAIL' }), [])
    if (options.all) return callback(null, allowed)
    callback(null, allowed[0]!.address, allowed[0]!.family)
  })
}

export interface AttemptResult { succeeded: boolean; statusCode: number | null; responseExcerpt: string | null; error: string | null; durationMs: number }

export const SIGNATURE_HEADER = 'Shop-Signature'
/** The same `t=<unix>,v1=<hex HMAC-SHA256 of "t.body">` scheme the test payment provider's webhooks use. */
export const signDelivery = signTestWebhook
const EXCERPT_BYTES = 1024

/** POSTs a signed body once. Never throws: what happened is the result. 2xx is success; anything else, a redirect included, is not. */
export function postSigned(input: { url: string; body: string; secret: string; eventId: string; eventType: string; deliveryId: string; timeoutMs: number; allowPrivate: boolean; userAgent: string }): Promise<AttemptResult> {
  const started = performance.now()
  const elapsed = () => Math.round(performance.now() - started)
  return new Promise((resolve) => {
    let settled = false
    const finish = (result: Omit<AttemptResult, 'durationMs'>) => {
      if (settled) return
      settled = true
      resolve({ ...result, durationMs: elapsed() })
    }
    const url = new URL(input.url)
    const signal = AbortSignal.timeout(input.timeoutMs)
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      signal,
      ...(input.allowPrivate ? {} : { lookup: publicOnlyLookup as never }),
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(input.body),
        'user-agent': input.userAgent,
        [SIGNATURE_HEADER]: signDelivery(input.secret, input.body),
        'Shop-Event-Id': input.eventId,
        'Shop-Event-Type': input.eventType,
        'Shop-Delivery-Id': input.deliveryId,
      },
    }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      const done = () => {
        const statusCode = res.statusCode ?? 0
        const ok = statusCode >= 200 && statusCode < 300
        // NUL cannot be stored in PostgreSQL text; a binary answer must not stop the attempt being recorded.
        finish({ succeeded: ok, statusCode, responseExcerpt: Buffer.concat(chunks).toString('utf8').replaceAll('\u0000', '').slice(0, EXCERPT_BYTES) || null, error: ok ? null : `HTTP ${statusCode}` })
        res.destroy()
      }
      res.on('data', (chunk: Buffer) => {
        if (size < EXCERPT_BYTES) chunks.push(chunk.subarray(0, EXCERPT_BYTES - size))
        size += chunk.length
        // Enough read to record; the rest of a large answer is not ours to wait for.
        if (size >= EXCERPT_BYTES) done()
      })
      res.on('end', done)
      res.on('error', (err) => finish({ succeeded: false, statusCode: res.statusCode ?? null, responseExcerpt: null, error: describe(err, input.timeoutMs) }))
    })
    request.on('error', (err) => finish({ succeeded: false, statusCode: null, responseExcerpt: null, error: describe(err, input.timeoutMs) }))
    request.end(input.body)
  })
}

function describe(err: Error, timeoutMs: number) {
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return `timed out after ${timeoutMs} ms`
  const code = (err as NodeJS.ErrnoException).code
  return (code ? `${code}: ${err.message}` : err.message).slice(0, 500)
}
