import createClient, { type Client, type Middleware } from 'openapi-fetch'
import type { components, operations, paths as contract } from './generated/schema.js'
import { CONTRACT_VERSION, IDEMPOTENT_OPERATIONS } from './generated/contract.js'

// A small client for the Shop API: the generated types on openapi-fetch, plus what every
// storefront would otherwise write by hand. Runs in browsers and on Node 20+ (fetch,
// crypto.randomUUID, AbortSignal; nothing from node:*).

export type { components, operations }

/** Headers the client fills in by itself, so a call may leave them out. */
type FilledHeader = 'x-cart-token' | 'x-order-token' | 'idempotency-key'
type Loosen<Op> = Op extends { parameters: { header: infer H } }
  ? Omit<Op, 'parameters'> & { parameters: Omit<Op['parameters'], 'header'> & { header?: Omit<H, FilledHeader> & Partial<Pick<H, Extract<keyof H, FilledHeader>>> } }
  : Op
/** The contract's paths as this client takes them: the headers it fills in are optional. */
export type paths = { [P in keyof contract]: { [M in keyof contract[P]]: Loosen<contract[P][M]> } }
export { CONTRACT_VERSION }
export type Problem = components['schemas']['Problem']
export type TokenPair = components['schemas']['TokenPair']

/** What a client keeps between page loads; hand it back as `state` to resume. */
export interface ClientState {
  /** The signed-in session, or null. */
  tokens: TokenPair | null
  /** A guest cart's token (X-Cart-Token), sent on cart calls while nobody is signed in. */
  cartToken: string | null
  /** Guest orders' tokens (X-Order-Token), by order id. */
  orderTokens: Record<string, string>
}

export interface ShopClientOptions {
  baseUrl: string
  /** Restores a saved state (e.g. from localStorage). */
  state?: Partial<ClientState>
  /** Called whenever the state changes (sign-in, refresh, sign-out, new guest tokens), to save it. */
  onStateChange?: (state: ClientState) => void
  /** Retries after 503, 429 and lost connections; 0 turns retrying off. Default 3. */
  retries?: number
  /** First backoff delay in ms, doubled on each retry, with jitter. Default 250. */
  retryDelayMs?: number
  /** A Retry-After longer than this (ms) is not waited for: the answer is returned. Default 30 s. */
  maxRetryAfterMs?: number
  /** The fetch to use (tests, instrumentation); default globalThis.fetch. */
  fetch?: (request: Request) => Promise<Response>
}

/** A failed call, carrying the API's RFC 9457 problem document. */
export class ProblemError extends Error {
  readonly status: number
  constructor(readonly problem: Problem, readonly response: Response) {
    super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ''}`)
    this.name = 'ProblemError'
    this.status = problem.status
  }
}

/** The data of a successful call, or a ProblemError thrown with its problem document. */
export async function ok<R extends { data?: unknown; error?: unknown; response: Response }>(call: Promise<R> | R): Promise<NonNullable<R['data']>> {
  const { data, error, response } = await call
  if (response.ok) return data as NonNullable<R['data']>
  throw new ProblemError(asProblem(error, response), response)
}

function asProblem(error: unknown, response: Response): Problem {
  if (error && typeof error === 'object' && 'status' in error && 'title' in error) return error as Problem
  // Not a problem document (a proxy's HTML page, an empty body): one made from the status.
  return { type: 'about:blank', title: response.statusText || 'Error', status: response.status, ...(typeof error === 'string' && error ? { detail: error.slice(0, 200) } : {}) }
}

type GetPath = { [P in keyof paths]: paths[P] extends { get: object } ? P : never }[keyof paths]
type GetOp<P extends GetPath> = paths[P] extends { get: infer O } ? O : never
type Query<P extends GetPath> = GetOp<P> extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never
/** The listings that page with a cursor. */
export type CursorListing = { [P in GetPath]: 'cursor' extends keyof Query<P> ? P : never }[GetPath]
type PageOf<P extends GetPath> = GetOp<P> extends { responses: { 200: { content: { 'application/json': infer B } } } } ? B : never
export type ItemOf<P extends CursorListing> = PageOf<P> extends { items: (infer I)[] } ? I : never
export type ListInit<P extends CursorListing> = {
  params?: Omit<GetOp<P> extends { parameters: infer X } ? X : never, 'query'> & { query?: Omit<Query<P>, 'cursor'> }
  headers?: Record<string, string>
  signal?: AbortSignal
}

const REPEATABLE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])
const sleep = (ms: number, signal?: AbortSignal | null) => new Promise<void>((resolve, reject) => {
  if (signal?.aborted) return reject(signal.reason)
  const timer = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve() }, ms)
  const onAbort = () => { clearTimeout(timer); reject(signal?.reason) }
  signal?.addEventListener('abort', onAbort, { once: true })
})

/** Retry-After in ms: delta-seconds or an HTTP date; null when absent or unreadable. */
function retryAfterMs(response: Response): number | null {
  const value = response.headers.get('retry-after')
  if (!value) return null
  if (/^\d+$/.test(value)) return Number(value) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now())
}

export type ShopClient = ReturnType<typeof createShopClient>

export function createShopClient(options: ShopClientOptions) {
  const baseFetch = options.fetch ?? ((request: Request) => globalThis.fetch(request))
  const retries = options.retries ?? 3
  const retryDelayMs = options.retryDelayMs ?? 250
  const maxRetryAfterMs = options.maxRetryAfterMs ?? 30_000
  const state: ClientState = { tokens: null, cartToken: null, orderTokens: {}, ...options.state }
  const changed = () => options.onStateChange?.({ ...state, orderTokens: { ...state.orderTokens } })

  /**
   * One request with its retries. A clone is sent each time, so the body and the headers
   * (among them the Idempotency-Key) are the same on every attempt. Lost connections are retried
   * only where repeating is harmless: safe methods, operations carrying an Idempotency-Key, and a
   * refresh (the API accepts the token just rotated again for a few seconds). A 429, or a 503
   * with Retry-After (the API shedding load), was not processed, so any request is retried; a
   * plain 503 (a store failing mid-request) only where a lost connection would be.
   */
  async function send(request: Request): Promise<Response> {
    const repeatable = REPEATABLE_METHODS.has(request.method) || request.headers.has('idempotency-key') || new URL(request.url).pathname.endsWith('/auth/refresh')
    for (let attempt = 0; ; attempt++) {
      const backoff = retryDelayMs * 2 ** attempt * (0.5 + Math.random() / 2)
      let response: Response
      try {
        response = await baseFetch(request.clone())
      } catch (error) {
        if (!repeatable || attempt >= retries || request.signal.aborted) throw error
        await sleep(backoff, request.signal)
        continue
      }
      const shed = response.status === 429 || (response.status === 503 && response.headers.has('retry-after'))
      const retryable = shed || (response.status === 503 && repeatable)
      if (!retryable || attempt >= retries) return response
      const wait = retryAfterMs(response) ?? backoff
      if (wait > maxRetryAfterMs) return response
      await response.body?.cancel()
      await sleep(wait, request.signal)
    }
  }

  // Single flight: concurrent 401s share one refresh, and a request that failed with a token
  // already replaced retries with the new one instead of refreshing again.
  let refreshing: Promise<boolean> | null = null
  function refreshOnce(staleAccessToken: string): Promise<boolean> {
    if (state.tokens && state.tokens.accessToken !== staleAccessToken) return Promise.resolve(true)
    refreshing ??= refresh().finally(() => { refreshing = null })
    return refreshing
  }

  async function refresh(): Promise<boolean> {
    const refreshToken = state.tokens?.refreshToken
    if (!refreshToken) return false
    const { data, response } = await api.POST('/auth/refresh', { body: { refreshToken } })
    // The session ended (revoked, expired, signed out elsewhere): forget it. Other failures (the
    // API unreachable) keep it for the next try.
    if (response.status === 401) setTokens(null)
    return Boolean(data)
  }

  function setTokens(tokens: TokenPair | null) {
    state.tokens = tokens
    changed()
  }

  /** send(), plus one retry after a refresh when the access token was refused. */
  async function authorizedFetch(request: Request): Promise<Response> {
    const response = await send(request)
    const sent = request.headers.get('authorization')?.replace(/^Bearer /, '')
    if (response.status !== 401 || !sent || !state.tokens) return response
    if (!(await refreshOnce(sent)) || !state.tokens) return response
    const again = new Request(request)
    again.headers.set('authorization', `Bearer ${state.tokens.accessToken}`)
    return send(again)
  }

  const api: Client<paths> = createClient<paths>({ baseUrl: options.baseUrl, fetch: authorizedFetch })

  const middleware: Middleware = {
    onRequest({ request, schemaPath, params }) {
      const h = request.headers
      if (state.tokens && !h.has('authorization') && schemaPath !== '/auth/refresh') h.set('authorization', `Bearer ${state.tokens.accessToken}`)
      if (!state.tokens && state.cartToken && !h.has('x-cart-token') && (schemaPath.startsWith('/cart') || schemaPath === '/orders/guest')) h.set('x-cart-token', state.cartToken)
      const orderId = params.path?.['orderId']
      if (schemaPath.startsWith('/orders/guest/{orderId}') && typeof orderId === 'string' && state.orderTokens[orderId] && !h.has('x-order-token')) h.set('x-order-token', state.orderTokens[orderId])
      // One key per logical operation: made here, once, and reused by every retry in send().
      if (IDEMPOTENT_OPERATIONS.has(`${request.method} ${schemaPath}`) && !h.has('idempotency-key')) h.set('idempotency-key', crypto.randomUUID())
      return request
    },
    async onResponse({ response, schemaPath }) {
      if (!response.ok) return
      if (schemaPath === '/auth/logout' || schemaPath === '/auth/logout-all') return setTokens(null)
      if (!['/auth/login', '/auth/refresh', '/cart/guest', '/orders/guest'].includes(schemaPath) && !schemaPath.startsWith('/auth/oidc/')) return
      const body = await response.clone().json().catch(() => null) as Record<string, unknown> | null
      const tokens = (schemaPath === '/auth/refresh' ? body : body?.['tokens']) as TokenPair | undefined
      if (tokens?.accessToken && tokens.refreshToken) setTokens(tokens)
      if (typeof body?.['cartToken'] === 'string') { state.cartToken = body['cartToken']; changed() }
      const order = body?.['order'] as { id?: string } | undefined
      if (typeof body?.['orderToken'] === 'string' && order?.id) { state.orderTokens[order.id] = body['orderToken']; changed() }
    },
  }
  api.use(middleware)

  /** Every item of a cursor listing, page after page, fetched as the loop asks for them. */
  async function* list<P extends CursorListing>(path: P, init: ListInit<P> = {}): AsyncGenerator<ItemOf<P>, void, undefined> {
    let cursor: string | null | undefined
    do {
      const query = { ...init.params?.query, ...(cursor ? { cursor } : {}) }
      // One cast: openapi-fetch's overloads cannot be picked for a path that is a type parameter.
      const get = api.GET as unknown as (path: string, init: object) => Promise<{ data?: { items: ItemOf<P>[]; nextCursor: string | null }; error?: unknown; response: Response }>
      const page = await ok(get(path, { ...init, params: { ...init.params, query } }))
      yield* page.items
      cursor = page.nextCursor
    } while (cursor)
  }

  return {
    /** The typed openapi-fetch client: api.GET('/products', ...), api.POST('/orders', ...). */
    api,
    /** Every item of a cursor listing: `for await (const p of client.list('/products', ...))`. */
    list,
    /** Signs in; the session is then kept and refreshed by the client. */
    async signIn(body: components['schemas']['LoginBody']) {
      return ok(api.POST('/auth/login', { body }))
    },
    /** Ends this session on the server and forgets it. */
    async signOut() {
      if (state.tokens) await api.POST('/auth/logout')
      setTokens(null)
    },
    /** Exchanges the refresh token now (the client also does it by itself on a refused access token). */
    refresh: () => refreshOnce(state.tokens?.accessToken ?? ''),
    /** Starts a guest cart; its token is then sent on cart calls and at guest checkout. */
    async startGuestCart() {
      return ok(api.POST('/cart/guest'))
    },
    /** A copy of what to save to resume later (tokens, guest tokens). */
    get state(): ClientState {
      return { ...state, orderTokens: { ...state.orderTokens } }
    },
    setTokens,
  }
}
