import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import ipaddr from 'ipaddr.js'
import { signTestWebhook } from '../payments/providers.js'
import { BadRequest } from '../../src/errors.js'

// The HTTP side of outbound webhooks: which URLs we accept, and one signed POST with a timeout.
//
// SSRF stance: unless WEBHOOK_ALLOW_PRIVATE_URLS (on outside production) an endpoint must be
// https on a public address. Literal private, loopback, link-local (cloud metadata) and
// reserved addresses are refused at registration; host names are checked again on every
// delivery against the addresses DNS gives at connection time (so rebinding a name to a private
// address later does not help), and redirects are never followed.

/**
 * True for an address a webhook may not reach from a production shop: anything ipaddr.js does not
 * classify as plain unicast (private, loopback, link-local and cloud metadata, carrier-grade NAT,
 * documentation, multicast, and IPv6's special ranges: unique and site-local, 6to4, Teredo, NAT64
 * well-known and local-use, IPv4-translated). An IPv4-mapped address is judged by its IPv4
 * address; the deprecated IPv4-compatible ::/96, which ipaddr.js calls unicast, is refused too.
 * Transition forms are refused whole, even around a public IPv4 address: a relay or translator
 * could carry the request into a network of ours.
 */
export function isReservedAddress(address: string): boolean {
  // node's parser, not ipaddr.js's: it refuses the shorthands (0x7f000001, 2130706433, 127.1) that ipaddr.js accepts.
  if (!isIP(address)) return true
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as ipaddr.IPv6
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address()
    else if (v6.parts.slice(0, 6).every((part) => part === 0)) return true
  }
  return parsed.range() !== 'unicast'
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
