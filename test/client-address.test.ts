import t from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { buildTestApp } from './helpers.js'

// Issue #24: per-IP limits held only for clients that did not lie. With TRUST_PROXY=true (the
// shipped Kubernetes setting) the left-most X-Forwarded-For, which the client writes, was the
// client's address; and each IPv6 address counted alone, though a client holds a whole /64.

const shippedTrustProxy = (parse(readFileSync(new URL('../deploy/k8s/configmap.yaml', import.meta.url), 'utf8')) as { data: Record<string, string> }).data.TRUST_PROXY!

const registerFrom = (app: Awaited<ReturnType<typeof buildTestApp>>, remoteAddress: string, i: number, forwardedFor?: string) => app.inject({
  method: 'POST', url: '/auth/register', remoteAddress, headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
  payload: { email: `client${i}@example.com`, password: 'a long enough password', name: 'Client' },
})

t.test("with the shipped TRUST_PROXY, a client behind the ingress cannot pick its address by X-Forwarded-For", async (t) => {
  const app = await buildTestApp(t, { TRUST_PROXY: shippedTrustProxy, AUTH_RATE_LIMIT_MAX: '5' })
  // The ingress (a pod in the cluster's private range) appends the address it saw.
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await registerFrom(app, '10.12.0.7', i, `198.51.100.${i}, 203.0.113.9`)).statusCode)
  t.same(statuses, [202, 202, 202, 202, 202, 429, 429, 429], 'the fresh header each time does not make a fresh client')
})

t.test('the per-account sign-in limit counts an IPv6 source per /64, and IPv4 per address', async (t) => {
  // The per-IP limit of the route already groups IPv6 by /64; the limit per account and source must too.
  const app = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '1000', AUTH_ACCOUNT_RATE_LIMIT_MAX: '5' })
  const guess = (remoteAddress: string) => app.inject({ method: 'POST', url: '/auth/login', remoteAddress, payload: { email: 'target@example.com', password: 'a wrong guess here' } })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await guess(`2001:db8:1:2:${i.toString(16)}::${i + 1}`)).statusCode)
  t.same(statuses, [401, 401, 401, 401, 401, 429, 429, 429], 'one /64 is one source')
  t.equal((await guess('2001:db8:1:3::1')).statusCode, 401, 'the next /64 is another source')
  t.equal((await guess('::ffff:192.0.2.1')).statusCode, 401)
  t.equal((await guess('192.0.2.2')).statusCode, 401, 'IPv4 neighbours are separate sources')
})
