import { createServer } from 'node:http'
import Provider, { type InteractionResults } from 'oidc-provider'
import { freePort } from './helpers.js'

// A real OpenID Connect provider (panva's oidc-provider) on a free local port, for end-to-end
// sign-in tests. Its login and consent screens are replaced by a handler that signs in whichever
// account the test chose with `signInAs` and grants what the client asked for; everything else
// (discovery, JWKS, PKCE, codes, ID tokens, userinfo) is the provider's own.

export interface TestAccount { email: string; email_verified: boolean; name?: string }

export const TEST_CLIENT = { id: 'shop-api', secret: 'shop-api-test-secret-0123456789' }
export const TEST_REDIRECT_URI = 'http://127.0.0.1:3000/sign-in/local/callback'

interface Teardown { teardown(fn: () => unknown): void }

export async function startOidcProvider(t: Teardown, accounts: Record<string, TestAccount>, port?: number) {
  port ??= await freePort()
  const issuer = `http://127.0.0.1:${port}`
  let nextAccount: string | undefined

  const provider = new Provider(issuer, {
    clients: [{
      client_id: TEST_CLIENT.id, client_secret: TEST_CLIENT.secret, redirect_uris: [TEST_REDIRECT_URI],
      grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post',
    }],
    async findAccount(_ctx, id) {
      const account = accounts[id]
      return account ? { accountId: id, claims: async () => ({ sub: id, ...account }) } : undefined
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    pkce: { required: () => true },
    cookies: { keys: ['oidc-test-cookie-key-0123456789'] },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
  })

  const handleProtocol = provider.callback()
  const server = createServer((req, res) => {
    if (!req.url?.startsWith('/interaction/')) return handleProtocol(req, res)
    void (async () => {
      const details = await provider.interactionDetails(req, res)
      let result: InteractionResults
      if (details.prompt.name === 'login') {
        if (!nextAccount) throw new Error('signInAs() was not called')
        result = { login: { accountId: nextAccount } }
      } else {
        const grant = new provider.Grant({ accountId: details.session!.accountId, clientId: details.params.client_id as string })
        const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] }
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '))
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims)
        result = { consent: { grantId: await grant.save() } }
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false })
    })().catch((err: Error) => { res.statusCode = 500; res.end(err.message) })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve) }))

  return {
    issuer,
    /** The account the next authorization signs in as. */
    signInAs(accountId: string) { nextAccount = accountId },
    /**
     * Plays the browser: follows the authorization URL through the provider's redirects (with
     * its cookies) until it points at the shop's redirect URI; returns that redirect's query.
     */
    async authorize(authorizationUrl: string) {
      const cookies = new Map<string, string>()
      let url = authorizationUrl
      for (let hop = 0; hop < 10; hop++) {
        const res = await fetch(url, { redirect: 'manual', headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') } })
        for (const line of res.headers.getSetCookie()) {
          const [pair] = line.split(';')
          const eq = pair!.indexOf('=')
          const name = pair!.slice(0, eq)
          const value = pair!.slice(eq + 1)
          if (value) cookies.set(name, value); else cookies.delete(name)
        }
        const location = res.headers.get('location')
        if (!location) throw new Error(`the provider stopped at ${url}: ${res.status} ${await res.text()}`)
        await res.arrayBuffer().catch(() => {})
        url = new URL(location, url).href
        if (url.startsWith(TEST_REDIRECT_URI)) {
          const query = new URL(url).searchParams
          if (query.get('error')) throw new Error(`the provider answered ${query.get('error')}: ${query.get('error_description')}`)
          return { code: query.get('code')!, state: query.get('state')!, iss: query.get('iss') ?? undefined }
        }
      }
      throw new Error('too many redirects')
    },
  }
}
