import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseSecretKeys, type SecretKey } from './secret-box.js'
import type { RedisConfig } from './redis-client.js'

// Every setting the process reads, with safe development defaults. Secrets have development
// values so `npm start` works with no environment; production refuses to run on them.
const DEV_JWT_SECRET = 'dev-only-jwt-secret-change-me-0123456789abcdef'
// 32 bytes, for development only: production refuses it.
const DEV_TOTP_KEYS = `dev:${Buffer.from('dev-only-totp-key-change-me-0123').toString('base64')}`
const DEV_WEBHOOK_SECRET = 'whsec_dev_only_change_me_0123456789abcdef'

/** An enumerated string whose error message lists the allowed values (TypeBox's Value checker
 * needs a union of literals here, not the StringEnum the HTTP schemas use). */
function oneOf<const T extends string>(values: readonly T[], defaultValue: T) {
  return Type.Union(values.map((v) => Type.Literal(v)), { default: defaultValue, description: `one of ${values.join(', ')}` })
}
const bool = (defaultValue: 'true' | 'false') => oneOf(['true', 'false', '1', '0'], defaultValue)
const OIDC_NAME = '[a-z][a-z0-9_]{0,31}'

export const ConfigSchema = Type.Object({
  NODE_ENV: oneOf(['development', 'test', 'production'], 'development'),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'interface to listen on' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
  TRUST_PROXY: Type.String({ minLength: 1, default: 'false', description: 'true, false, or a comma-separated list of proxy addresses/CIDRs to trust' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'a postgres:// URL' })),
  PGLITE_DATA_DIR: Type.String({ minLength: 1, default: './data/pglite', description: 'a directory, or memory:// for an in-memory database' }),
  PGLITE_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 54329, description: 'where the API serves the embedded database to psql and the CLI (another free port when taken)' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 10 }),
  PG_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'the server cancels an API statement that runs longer; one that gets no answer at all (a hung server or network) fails a second later in the client' }),
  PG_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000, description: 'time to open a PostgreSQL connection, or to wait for a free one in the pool' }),
  DB_MIGRATE: bool('true'),
  DATABASE_REPLICA_URLS: Type.Optional(Type.String({ pattern: '^postgres(ql)?://[^,]+(,postgres(ql)?://[^,]+)*$', description: 'comma-separated postgres:// URLs of read replicas (needs DATABASE_URL)' })),
  DB_REPLICA_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 5, description: 'connections per replica' }),
  DB_REPLICA_MAX_LAG_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 2000, description: 'a catalog write waits at most this long for each replica to replay it; a replica further behind is taken out of use for DB_REPLICA_DOWN_SECONDS' }),
  DB_REPLICA_DOWN_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'after a connection failure a replica is skipped (its reads go to the primary) this long' }),
  MONGODB_URL: Type.Optional(Type.String({ pattern: '^mongodb(\\+srv)?://', description: 'a mongodb:// URL' })),
  MONGO_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 3000, description: 'finding a server, opening a connection, or waiting for an answer on one longer than this fails (a retried read can take about three times as long)' }),
  // What to do when MONGODB_URL is unset: start FerretDB on SQLite under FERRETDB_DATA_DIR, or run without MongoDB.
  EMBEDDED_MONGO: oneOf(['ferretdb', 'off'], 'ferretdb'),
  FERRETDB_BIN: Type.Optional(Type.String({ minLength: 1 })),
  FERRETDB_DATA_DIR: Type.String({ minLength: 1, default: './data/ferretdb' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'a redis:// URL' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^[^,:\\s]+:[0-9]+(,[^,:\\s]+:[0-9]+)*$', description: 'comma-separated host:port seed nodes of a Redis Cluster' })),
  // No braces: a hash tag in the prefix would put every key of the app on one cluster slot.
  REDIS_KEY_PREFIX: Type.String({ default: 'shop:', pattern: '^[^{}]*$', description: 'text without { or }' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 2000, description: 'a Redis command that takes longer fails; the cache and rate limits then go without Redis until it answers again' }),
  JWT_SECRET: Type.String({ minLength: 32, default: DEV_JWT_SECRET, description: 'at least 32 characters' }),
  TOTP_ENCRYPTION_KEYS: Type.String({ default: DEV_TOTP_KEYS, description: 'keys sealing two-factor secrets at rest, <id>:<32 bytes base64>[,<id>:<key>...]; the first seals, all open (rotation: put a new key first)' }),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'shop-api' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'shop-clients' }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 30, maximum: 900, default: 900, description: 'at most 900 (15 minutes)' }),
  REFRESH_TOKEN_TTL_DAYS: Type.Integer({ minimum: 1, maximum: 365, default: 30 }),
  REFRESH_REUSE_GRACE_SECONDS: Type.Integer({ minimum: 0, maximum: 60, default: 10, description: 'how long the token just rotated may be presented again (a retry, two tabs racing)' }),
  AUTH_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 20, description: 'sign-in, register, reset and 2FA requests per minute per IP' }),
  PASSWORD_HASH_CONCURRENCY: Type.Integer({ minimum: 1, default: 2, description: 'password hashes (argon2) computed at once' }),
  PASSWORD_HASH_QUEUE: Type.Integer({ minimum: 0, default: 64, description: 'password hashes waiting at most; beyond, 503 with Retry-After' }),
  AUTH_ACCOUNT_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 10, description: 'per 15 minutes: sign-in attempts per account and source address, reset requests per account' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'bearer token of GET /metrics; unset: no /metrics' })),
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://', description: 'an smtp:// or smtps:// URL' })),
  MAIL_FROM: Type.String({ minLength: 3, default: 'Shop <no-reply@shop.localhost>' }),
  PUBLIC_URL: Type.String({ pattern: '^https?://', default: 'http://127.0.0.1:3000', description: 'the base URL used in links sent by mail' }),
  STORE_CURRENCY: Type.String({ pattern: '^[A-Z]{3}$', default: 'EUR', description: 'ISO 4217 code, e.g. EUR' }),
  CACHE_TTL_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300 }),
  CACHE: oneOf(['on', 'off'], 'on'),
  CART_MAX_LINES: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  CART_MAX_QUANTITY: Type.Integer({ minimum: 1, maximum: 10_000, default: 99, description: 'largest quantity of one line' }),
  GUEST_CART_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 365, default: 30, description: 'days after its last change a guest cart is removed' }),
  JOBS: oneOf(['on', 'off'], 'on'),
  WORKER_PORT: Type.Integer({ minimum: 0, maximum: 65_535, default: 3001, description: 'where `npm run worker` answers GET /health (0: no HTTP port)' }),
  SHIPPING_FLAT_MINOR: Type.Integer({ minimum: 0, default: 499, description: 'shipping charged per order, minor units' }),
  SHIPPING_FREE_OVER_MINOR: Type.Integer({ minimum: 0, default: 5000, description: 'subtotal after discount from which shipping is free; 0 never' }),
  TAX_RATE_BPS: Type.Integer({ minimum: 0, maximum: 10_000, default: 0, description: 'tax rate in basis points (2000 = 20%), added on goods after discount plus shipping' }),
  PRICES_INCLUDE_TAX: bool('false'),
  RETURN_WINDOW_DAYS: Type.Integer({ minimum: 0, maximum: 3650, default: 30, description: 'days after delivery within which a customer may request a return' }),
  ORDER_PAYMENT_TIMEOUT_MINUTES: Type.Integer({ minimum: 1, maximum: 10_080, default: 30 }),
  LOW_STOCK_THRESHOLD: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 5, description: 'admins are mailed when a sale takes a variant to this stock or below' }),
  PAYMENT_PROVIDERS: Type.String({ pattern: '^(test|stripe)(,(test|stripe))*$', default: 'test', description: 'comma-separated: test, stripe' }),
  PAYMENT_WEBHOOK_SECRET: Type.String({ minLength: 16, default: DEV_WEBHOOK_SECRET, description: 'signing secret of the test provider webhooks' }),
  STRIPE_SECRET_KEY: Type.Optional(Type.String({ pattern: '^sk_', description: 'an sk_ key' })),
  STRIPE_WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_', description: 'a whsec_ secret' })),
  STRIPE_API_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Stripe API base, e.g. a stripe-mock URL' })),
  WEBHOOK_SECRETS_KEY: Type.Optional(Type.String({ minLength: 32, description: 'at least 32 characters; encrypts the signing secrets of outbound webhook endpoints at rest (unset: derived from JWT_SECRET)' })),
  // No default: unset means off in production and on elsewhere (tests and development call loopback).
  WEBHOOK_ALLOW_PRIVATE_URLS: Type.Optional(Type.Union(['true', 'false', '1', '0'].map((v) => Type.Literal(v)), { description: 'one of true, false, 1, 0' })),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 10_000, description: 'time an endpoint has to answer one delivery' }),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 25, default: 10, description: 'attempts of one delivery before it fails' }),
  WEBHOOK_BACKOFF_MS: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 60_000, description: 'wait before the first retry; doubles after each failed attempt' }),
  WEBHOOK_DISABLE_AFTER: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'failed deliveries in a row after which an endpoint is disabled' }),
  REVIEWS_AUTO_APPROVE: bool('true'),
  ALLOW_TEST_PAYMENTS: bool('false'),
  UPLOAD_DIR: Type.String({ minLength: 1, default: './uploads' }),
  UPLOAD_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * 1024 * 1024, default: 5 * 1024 * 1024 }),
  ACTIVITY_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 90 }),
  CORS_ORIGINS: Type.String({ default: 'http://localhost:3000,http://127.0.0.1:3000', description: 'comma-separated list of allowed origins' }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 300, description: 'requests per window per client' }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 10 * 1024 * 1024, default: 262_144, description: 'largest JSON request body; uploads have UPLOAD_MAX_BYTES' }),
  HTTP_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000, description: 'time to receive a whole request, headers and body (408 beyond)' }),
  HTTP_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'time to receive the request headers (408 beyond); at most HTTP_REQUEST_TIMEOUT_MS' }),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 72_000, description: 'how long an idle keep-alive connection stays open; above the idle timeout of the proxy in front' }),
  HTTP_CONNECTION_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 120_000, description: 'a socket with no traffic this long is closed (a slow handler included); above HTTP_KEEP_ALIVE_TIMEOUT_MS' }),
  UPLOAD_QUOTA_BYTES: Type.Integer({ minimum: 1024, default: 50 * 1024 * 1024, description: 'total bytes of uploads one customer may keep' }),
  UPLOAD_QUOTA_FILES: Type.Integer({ minimum: 1, default: 100, description: 'uploads one customer may keep' }),
  UPLOAD_ADMIN_QUOTA_BYTES: Type.Integer({ minimum: 1024, default: 2 * 1024 * 1024 * 1024, description: 'total bytes of uploads one admin may keep' }),
  UPLOAD_ADMIN_QUOTA_FILES: Type.Integer({ minimum: 1, default: 10_000, description: 'uploads one admin may keep' }),
  UPLOAD_ORPHAN_GRACE_HOURS: Type.Integer({ minimum: 1, maximum: 8760, default: 24, description: 'an upload no product or avatar uses is deleted after this many hours' }),
  // Each named provider reads OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _REDIRECT_URI and _SCOPE (see oidcProvidersFrom).
  OIDC_PROVIDERS: Type.Optional(Type.String({ pattern: `^${OIDC_NAME}(,${OIDC_NAME})*$`, description: 'comma-separated provider names of lower-case letters, digits and _, e.g. google,keycloak' })),
}, { additionalProperties: true })

type RawConfig = Static<typeof ConfigSchema>

export interface Config {
  env: RawConfig['NODE_ENV']
  host: string
  port: number
  logLevel: RawConfig['LOG_LEVEL']
  trustProxy: boolean | string
  postgres: { url?: string; pgliteDataDir: string; pglitePort: number; poolMax: number; migrate: boolean; statementTimeoutMs: number; connectTimeoutMs: number; replicas: { urls: string[]; poolMax: number; maxLagMs: number; downSeconds: number } }
  mongo: { timeoutMs: number; url?: string; embedded: 'ferretdb' | 'off'; ferretdbBin?: string; ferretdbDataDir: string }
  redis: RedisConfig
  jwtSecret: string
  auth: {
    issuer: string
    audience: string
    accessTtlSeconds: number
    refreshTtlSeconds: number
    refreshReuseGraceSeconds: number
    rateLimitPerIp: number
    rateLimitPerAccount: number
    passwordHashing: { concurrency: number; queue: number }
    totpKeys: SecretKey[]
  }
  mail: { smtpUrl?: string; from: string }
  publicUrl: string
  metricsToken?: string
  currency: string
  cart: { maxLines: number; maxQuantity: number; guestRetentionDays: number }
  jobs: boolean
  /** The worker's health port (src/worker.ts); 0: none. */
  workerPort: number
  reviewsAutoApprove: boolean
  uploads: {
    dir: string
    maxBytes: number
    quota: { customer: { bytes: number; files: number }; admin: { bytes: number; files: number } }
    orphanGraceHours: number
  }
  activityRetentionDays: number
  checkout: { shippingFlatMinor: number; shippingFreeOverMinor: number; taxRateBps: number; pricesIncludeTax: boolean; paymentTimeoutMinutes: number; lowStockThreshold: number; returnWindowDays: number }
  payments: { providers: ('test' | 'stripe')[]; webhookSecret: string; stripe: { secretKey?: string; webhookSecret?: string; apiUrl?: string } }
  /** Outbound webhooks. allowPrivateUrls: plain http and private/loopback hosts accepted (off in production unless set). */
  webhooks: { secretsKey: string; allowPrivateUrls: boolean; timeoutMs: number; maxAttempts: number; backoffMs: number; disableAfter: number }
  cacheTtlSeconds: number
  /** `CACHE=off`: every public catalog read goes to PostgreSQL. */
  cacheEnabled: boolean
  corsOrigins: string[]
  rateLimit: { max: number; windowMs: number }
  bodyLimit: number
  oidc: { providers: OidcProviderConfig[] }
  http: { requestTimeoutMs: number; headersTimeoutMs: number; keepAliveTimeoutMs: number; connectionTimeoutMs: number }
}

/** One OpenID Connect provider users may sign in with. */
export interface OidcProviderConfig {
  name: string
  issuer: string
  clientId: string
  clientSecret: string
  /** Where the provider sends the browser back: the shop's page that posts code and state to /auth/oidc/<name>/callback. */
  redirectUri: string
  scope: string
  /** Plain-http issuer: allowed outside production only (a local Keycloak, the tests' provider). */
  allowInsecure: boolean
}

/** The OIDC_<NAME>_* variables of each provider in OIDC_PROVIDERS; throws ConfigError naming a missing or bad one. */
function oidcProvidersFrom(env: NodeJS.ProcessEnv, names: string | undefined, publicUrl: string, production: boolean): OidcProviderConfig[] {
  if (!names) return []
  return [...new Set(names.split(','))].map((name) => {
    const prefix = `OIDC_${name.toUpperCase()}_`
    const read = (suffix: string) => (env[prefix + suffix] === '' ? undefined : env[prefix + suffix])
    const url = (suffix: string, value: string | undefined, httpsOnly = false) => {
      if (value === undefined) throw new ConfigError(`Missing environment variable ${prefix}${suffix}: required when OIDC_PROVIDERS includes ${name}`)
      let parsed: URL
      try { parsed = new URL(value) } catch { throw new ConfigError(`Invalid environment variable ${prefix}${suffix}=${JSON.stringify(value)}: an absolute http(s) URL`) }
      if (parsed.protocol !== 'https:' && (httpsOnly || parsed.protocol !== 'http:')) {
        throw new ConfigError(`Invalid environment variable ${prefix}${suffix}=${JSON.stringify(value)}: ${httpsOnly ? 'production requires an https URL' : 'an absolute http(s) URL'}`)
      }
      return value
    }
    // Discovery, keys and the code exchange go to the issuer: plain http only outside production.
    const issuer = url('ISSUER', read('ISSUER'), production)
    const clientId = read('CLIENT_ID')
    const clientSecret = read('CLIENT_SECRET')
    for (const [suffix, value] of [['CLIENT_ID', clientId], ['CLIENT_SECRET', clientSecret]] as const) {
      if (!value) throw new ConfigError(`Missing environment variable ${prefix}${suffix}: required when OIDC_PROVIDERS includes ${name}`)
    }
    const redirectUri = url('REDIRECT_URI', read('REDIRECT_URI') ?? `${publicUrl}/sign-in/${name}/callback`)
    // The callback rebuilds the redirect from this URI plus code, state and iss.
    if (/[?#]/.test(redirectUri)) throw new ConfigError(`Invalid environment variable ${prefix}REDIRECT_URI=${JSON.stringify(redirectUri)}: a URL without query or fragment`)
    const scope = read('SCOPE') ?? 'openid email profile'
    if (!scope.split(' ').includes('openid')) throw new ConfigError(`Invalid environment variable ${prefix}SCOPE=${JSON.stringify(scope)}: space-separated scopes including openid`)
    return {
      name, issuer, clientId: clientId!, clientSecret: clientSecret!, redirectUri, scope,
      allowInsecure: new URL(issuer).protocol === 'http:',
    }
  })
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const truthy = (v: string) => v === 'true' || v === '1'

/** Reads and validates the environment. Throws ConfigError with one line naming the variable. */
/**
 * For a process's entry point: the config (with `check`, the entry point's own requirements), or
 * one line naming what is wrong (through `report`) and exit 1, so nothing starts on a bad one.
 */
export function loadConfigOrExit({ check, report = (message) => process.stderr.write(`${message}\n`) }: { check?: (config: Config) => void; report?: (message: string) => void } = {}): Config {
  try {
    const config = loadConfig()
    check?.(config)
    return config
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    report(err.message)
    process.exit(1)
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset, as in most .env tooling.
  const input: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') input[key] = value
  }
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, input)) as Record<string, unknown>
  const error = Value.Errors(ConfigSchema, withDefaults).First()
  if (error) {
    const name = error.path.replace(/^\//, '')
    const schema = (ConfigSchema.properties as Record<string, { description?: string }>)[name]
    const expected = schema?.description ? `${error.message}: ${schema.description}` : error.message
    throw new ConfigError(`Invalid environment variable ${name}=${JSON.stringify(env[name] ?? '')}: ${expected}`)
  }
  const raw = withDefaults as RawConfig
  let totpKeys: SecretKey[]
  try { totpKeys = parseSecretKeys(raw.TOTP_ENCRYPTION_KEYS) } catch (err) {
    throw new ConfigError(`Invalid environment variable TOTP_ENCRYPTION_KEYS: ${(err as Error).message}`)
  }
  if (raw.PAYMENT_PROVIDERS.split(',').includes('stripe') && (!raw.STRIPE_SECRET_KEY || !raw.STRIPE_WEBHOOK_SECRET)) {
    throw new ConfigError('Missing environment variable STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET: required when PAYMENT_PROVIDERS includes stripe')
  }

  // Replicas follow a server; the embedded database has none.
  if (raw.DATABASE_REPLICA_URLS && !raw.DATABASE_URL) throw new ConfigError('Missing environment variable DATABASE_URL: required when DATABASE_REPLICA_URLS is set')

  // Node refuses a headers timeout above the request timeout; an idle keep-alive socket must not
  // be cut by the inactivity timeout first.
  if (raw.HTTP_HEADERS_TIMEOUT_MS > raw.HTTP_REQUEST_TIMEOUT_MS) {
    throw new ConfigError(`Invalid environment variable HTTP_HEADERS_TIMEOUT_MS=${raw.HTTP_HEADERS_TIMEOUT_MS}: at most HTTP_REQUEST_TIMEOUT_MS (${raw.HTTP_REQUEST_TIMEOUT_MS})`)
  }
  if (raw.HTTP_CONNECTION_TIMEOUT_MS <= raw.HTTP_KEEP_ALIVE_TIMEOUT_MS) {
    throw new ConfigError(`Invalid environment variable HTTP_CONNECTION_TIMEOUT_MS=${raw.HTTP_CONNECTION_TIMEOUT_MS}: must be above HTTP_KEEP_ALIVE_TIMEOUT_MS (${raw.HTTP_KEEP_ALIVE_TIMEOUT_MS})`)
  }

  if (raw.NODE_ENV === 'production') {
    if (raw.JWT_SECRET === DEV_JWT_SECRET) throw new ConfigError('Invalid environment variable JWT_SECRET: production refuses the development secret; set a random value of at least 32 characters')
    if (raw.PAYMENT_WEBHOOK_SECRET === DEV_WEBHOOK_SECRET) throw new ConfigError('Invalid environment variable PAYMENT_WEBHOOK_SECRET: production refuses the development secret')
    if (raw.TOTP_ENCRYPTION_KEYS.split(',').some((part) => DEV_TOTP_KEYS === part.trim())) throw new ConfigError('Invalid environment variable TOTP_ENCRYPTION_KEYS: production refuses the development key; set <id>:<32 random bytes in base64>')
    // `true` trusts every hop, so the left-most X-Forwarded-For, which the client writes, would be
    // the client's address for every per-IP limit: production names the proxy's addresses instead.
    if (raw.TRUST_PROXY === 'true') {
      throw new ConfigError('Invalid environment variable TRUST_PROXY=true: production refuses it (clients would choose their own address through X-Forwarded-For); set the address range of your proxy or load balancer, e.g. 10.0.0.0/8, or false when clients connect directly')
    }
    // The embedded stores are single-process conveniences and logged mail leaks reset links;
    // a production shop runs on real services.
    for (const name of ['DATABASE_URL', 'MONGODB_URL', 'REDIS_URL', 'SMTP_URL'] as const) {
      if (name === 'REDIS_URL' && raw.REDIS_CLUSTER_NODES) continue
      if (!raw[name]) throw new ConfigError(`Missing environment variable ${name}: required when NODE_ENV=production`)
    }
    // A key of its own: derived from JWT_SECRET, rotating that secret (or its leak) would take the webhook secrets with it.
    if (!raw.WEBHOOK_SECRETS_KEY) throw new ConfigError('Missing environment variable WEBHOOK_SECRETS_KEY: required when NODE_ENV=production (at least 32 random characters)')
    // With the test provider any customer can mark an order paid (tok_success): a demo only.
    if (raw.PAYMENT_PROVIDERS.split(',').includes('test') && !truthy(raw.ALLOW_TEST_PAYMENTS)) {
      throw new ConfigError('Invalid environment variable PAYMENT_PROVIDERS: production refuses the test provider (anyone could mark an order paid); use stripe, or set ALLOW_TEST_PAYMENTS=true for a demo shop')
    }
  }

  return {
    env: raw.NODE_ENV,
    host: raw.HOST,
    port: raw.PORT,
    logLevel: raw.LOG_LEVEL,
    trustProxy: raw.TRUST_PROXY === 'true' ? true : raw.TRUST_PROXY === 'false' ? false : raw.TRUST_PROXY,
    postgres: { url: raw.DATABASE_URL, pgliteDataDir: raw.PGLITE_DATA_DIR, pglitePort: raw.PGLITE_PORT, poolMax: raw.DB_POOL_MAX, migrate: truthy(raw.DB_MIGRATE), statementTimeoutMs: raw.PG_STATEMENT_TIMEOUT_MS, connectTimeoutMs: raw.PG_CONNECT_TIMEOUT_MS,
      replicas: { urls: raw.DATABASE_REPLICA_URLS?.split(',') ?? [], poolMax: raw.DB_REPLICA_POOL_MAX, maxLagMs: raw.DB_REPLICA_MAX_LAG_MS, downSeconds: raw.DB_REPLICA_DOWN_SECONDS } },
    mongo: { timeoutMs: raw.MONGO_TIMEOUT_MS, url: raw.MONGODB_URL, embedded: raw.EMBEDDED_MONGO, ferretdbBin: raw.FERRETDB_BIN, ferretdbDataDir: raw.FERRETDB_DATA_DIR },
    redis: {
      url: raw.REDIS_URL,
      clusterNodes: raw.REDIS_CLUSTER_NODES?.split(',').map((node) => {
        const at = node.lastIndexOf(':')
        return { host: node.slice(0, at), port: Number(node.slice(at + 1)) }
      }),
      keyPrefix: raw.REDIS_KEY_PREFIX,
      commandTimeoutMs: raw.REDIS_COMMAND_TIMEOUT_MS,
    },
    jwtSecret: raw.JWT_SECRET,
    auth: {
      issuer: raw.JWT_ISSUER,
      audience: raw.JWT_AUDIENCE,
      accessTtlSeconds: raw.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlSeconds: raw.REFRESH_TOKEN_TTL_DAYS * 86_400,
      refreshReuseGraceSeconds: raw.REFRESH_REUSE_GRACE_SECONDS,
      rateLimitPerIp: raw.AUTH_RATE_LIMIT_MAX,
      rateLimitPerAccount: raw.AUTH_ACCOUNT_RATE_LIMIT_MAX,
      passwordHashing: { concurrency: raw.PASSWORD_HASH_CONCURRENCY, queue: raw.PASSWORD_HASH_QUEUE },
      totpKeys,
    },
    mail: { smtpUrl: raw.SMTP_URL, from: raw.MAIL_FROM },
    publicUrl: raw.PUBLIC_URL.replace(/\/$/, ''),
    metricsToken: raw.METRICS_TOKEN,
    currency: raw.STORE_CURRENCY,
    cart: { maxLines: raw.CART_MAX_LINES, maxQuantity: raw.CART_MAX_QUANTITY, guestRetentionDays: raw.GUEST_CART_RETENTION_DAYS },
    jobs: raw.JOBS === 'on',
    workerPort: raw.WORKER_PORT,
    reviewsAutoApprove: truthy(raw.REVIEWS_AUTO_APPROVE),
    uploads: {
      dir: raw.UPLOAD_DIR,
      maxBytes: raw.UPLOAD_MAX_BYTES,
      quota: { customer: { bytes: raw.UPLOAD_QUOTA_BYTES, files: raw.UPLOAD_QUOTA_FILES }, admin: { bytes: raw.UPLOAD_ADMIN_QUOTA_BYTES, files: raw.UPLOAD_ADMIN_QUOTA_FILES } },
      orphanGraceHours: raw.UPLOAD_ORPHAN_GRACE_HOURS,
    },
    activityRetentionDays: raw.ACTIVITY_RETENTION_DAYS,
    checkout: {
      shippingFlatMinor: raw.SHIPPING_FLAT_MINOR, shippingFreeOverMinor: raw.SHIPPING_FREE_OVER_MINOR,
      taxRateBps: raw.TAX_RATE_BPS, pricesIncludeTax: truthy(raw.PRICES_INCLUDE_TAX), paymentTimeoutMinutes: raw.ORDER_PAYMENT_TIMEOUT_MINUTES,
      lowStockThreshold: raw.LOW_STOCK_THRESHOLD, returnWindowDays: raw.RETURN_WINDOW_DAYS,
    },
    payments: {
      providers: raw.PAYMENT_PROVIDERS.split(',') as ('test' | 'stripe')[],
      webhookSecret: raw.PAYMENT_WEBHOOK_SECRET,
      stripe: { secretKey: raw.STRIPE_SECRET_KEY, webhookSecret: raw.STRIPE_WEBHOOK_SECRET, apiUrl: raw.STRIPE_API_URL },
    },
    webhooks: {
      // Its own key lets JWT_SECRET rotate without losing the endpoints' secrets.
      secretsKey: raw.WEBHOOK_SECRETS_KEY ?? `jwt:${raw.JWT_SECRET}`,
      // SSRF: a production shop only calls public https endpoints unless told otherwise.
      allowPrivateUrls: raw.WEBHOOK_ALLOW_PRIVATE_URLS === undefined ? raw.NODE_ENV !== 'production' : truthy(raw.WEBHOOK_ALLOW_PRIVATE_URLS),
      timeoutMs: raw.WEBHOOK_TIMEOUT_MS, maxAttempts: raw.WEBHOOK_MAX_ATTEMPTS, backoffMs: raw.WEBHOOK_BACKOFF_MS, disableAfter: raw.WEBHOOK_DISABLE_AFTER,
    },
    cacheTtlSeconds: raw.CACHE_TTL_SECONDS,
    cacheEnabled: raw.CACHE === 'on',
    corsOrigins: raw.CORS_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
    rateLimit: { max: raw.RATE_LIMIT_MAX, windowMs: raw.RATE_LIMIT_WINDOW_MS },
    bodyLimit: raw.BODY_LIMIT_BYTES,
    oidc: { providers: oidcProvidersFrom(env, raw.OIDC_PROVIDERS, raw.PUBLIC_URL.replace(/\/$/, ''), raw.NODE_ENV === 'production') },
    http: {
      requestTimeoutMs: raw.HTTP_REQUEST_TIMEOUT_MS, headersTimeoutMs: raw.HTTP_HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: raw.HTTP_KEEP_ALIVE_TIMEOUT_MS, connectionTimeoutMs: raw.HTTP_CONNECTION_TIMEOUT_MS,
    },
  }
}
