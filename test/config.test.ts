import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { ConfigError, loadConfig } from '../src/config.js'
import { runProcess, tsx } from './helpers.js'
// A production key of the right shape (32 bytes), not the development one.
const PRODUCTION_TOTP_KEYS = `k1:${Buffer.alloc(32, 9).toString('base64')}`

function startServer(t: Test, env: Record<string, string>) {
  // A clean environment: only what the case sets, plus PATH to find node.
  return runProcess(t, tsx('src/server.ts'), { env: { PATH: process.env.PATH ?? '', ...env }, timeoutMs: 30_000 })
}

t.test('a bad value stops the process with one line naming the variable', async (t) => {
  const res = await startServer(t, { PORT: 'eighty' })
  t.equal(res.code, 1)
  t.equal(res.stderr.trim().split('\n').length, 1, 'exactly one line')
  t.match(res.stderr, /^Invalid environment variable PORT="eighty": Expected integer/)
  t.equal(res.stdout, '', 'nothing started')
})

t.test('production refuses the development secret and the embedded stores', async (t) => {
  // Four separate starts; side by side, they take the time of one.
  const [devSecret, devWebhookSecret, devTotpKey, noStores] = await Promise.all([
    startServer(t, { NODE_ENV: 'production' }),
    startServer(t, { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40) }),
    startServer(t, { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'y'.repeat(40) }),
    startServer(t, { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'y'.repeat(40), TOTP_ENCRYPTION_KEYS: PRODUCTION_TOTP_KEYS }),
  ])
  t.equal(devSecret.code, 1)
  t.match(devSecret.stderr, /JWT_SECRET: production refuses the development secret/)
  t.match(devWebhookSecret.stderr, /PAYMENT_WEBHOOK_SECRET: production refuses/)
  t.match(devTotpKey.stderr, /TOTP_ENCRYPTION_KEYS: production refuses the development key/)
  t.equal(noStores.code, 1)
  t.match(noStores.stderr, /Missing environment variable DATABASE_URL/)
})

t.test('loadConfig validates each kind of value and names it', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL="loud".*one of fatal, error/],
    [{ DATABASE_URL: 'mysql://db' }, /DATABASE_URL=.*postgres:\/\//],
    [{ REDIS_URL: 'localhost:6379' }, /REDIS_URL=/],
    [{ MONGODB_URL: 'http://x' }, /MONGODB_URL=/],
    [{ JWT_SECRET: 'short' }, /JWT_SECRET=.*at least 32 characters/],
    [{ RATE_LIMIT_MAX: '0' }, /RATE_LIMIT_MAX/],
    [{ DB_MIGRATE: 'yes' }, /DB_MIGRATE="yes".*one of true, false/],
    [{ REDIS_CLUSTER_NODES: 'redis://a:1' }, /REDIS_CLUSTER_NODES=.*host:port/],
    [{ REDIS_CLUSTER_NODES: 'a:1,b' }, /REDIS_CLUSTER_NODES=/],
    [{ REDIS_KEY_PREFIX: '{shop}:' }, /REDIS_KEY_PREFIX=.*without \{ or \}/],
    [{ DATABASE_URL: 'postgres://p/db', DATABASE_REPLICA_URLS: 'postgres://r1/db,,postgres://r2/db' }, /DATABASE_REPLICA_URLS=.*comma-separated postgres:\/\//],
    [{ DATABASE_REPLICA_URLS: 'postgres://r1/db' }, /DATABASE_URL: required when DATABASE_REPLICA_URLS is set/],
    [{ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'y'.repeat(40), TOTP_ENCRYPTION_KEYS: PRODUCTION_TOTP_KEYS, TRUST_PROXY: 'true' }, /TRUST_PROXY=true: production refuses it/],
  ]
  for (const [env, message] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  t.type(new ConfigError('x'), Error)
})

t.test('REDIS_CLUSTER_NODES: parsed into seed nodes, and enough Redis for production without REDIS_URL', async (t) => {
  t.same(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000,redis-2.internal:7001' }).redis.clusterNodes, [{ host: '10.0.0.1', port: 7000 }, { host: 'redis-2.internal', port: 7001 }])
  t.equal(loadConfig({}).redis.clusterNodes, undefined)
  const production = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'y'.repeat(40), TOTP_ENCRYPTION_KEYS: PRODUCTION_TOTP_KEYS, WEBHOOK_SECRETS_KEY: 'k'.repeat(40), DATABASE_URL: 'postgres://db/shop', MONGODB_URL: 'mongodb://mongo/shop', SMTP_URL: 'smtp://mail:25', PAYMENT_PROVIDERS: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_x' }
  t.throws(() => loadConfig(production), /Missing environment variable REDIS_URL/)
  t.ok(loadConfig({ ...production, REDIS_CLUSTER_NODES: 'redis-1:6379' }).redis.clusterNodes, 'a cluster stands in for REDIS_URL')
})

t.test('defaults work with no environment; empty strings count as unset', async (t) => {
  const config = loadConfig({ PORT: '', DATABASE_URL: '' })
  t.equal(config.port, 3000)
  t.equal(config.postgres.url, undefined)
  t.equal(config.postgres.pgliteDataDir, './data/pglite')
  t.same(config.corsOrigins, ['http://localhost:3000', 'http://127.0.0.1:3000'])
  const custom = loadConfig({ CORS_ORIGINS: ' https://a.example ,https://b.example,', TRUST_PROXY: '10.0.0.0/8', DB_MIGRATE: '0' })
  t.same(custom.corsOrigins, ['https://a.example', 'https://b.example'])
  t.equal(custom.trustProxy, '10.0.0.0/8')
  t.equal(custom.postgres.migrate, false)
  t.same(config.postgres.replicas.urls, [], 'no replicas: every read on the primary')
  const replicated = loadConfig({ DATABASE_URL: 'postgres://p/db', DATABASE_REPLICA_URLS: 'postgres://r1:5433/db,postgresql://r2/db' })
  t.same(replicated.postgres.replicas, { urls: ['postgres://r1:5433/db', 'postgresql://r2/db'], poolMax: 5, maxLagMs: 2000, downSeconds: 10 })
})

t.test('the compose file sets everything production requires', async (t) => {
  const { composeAppEnv } = await import('./compose.js')
  const { env, required } = composeAppEnv({ JWT_SECRET: 'j'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'w'.repeat(40), TOTP_ENCRYPTION_KEYS: PRODUCTION_TOTP_KEYS, WEBHOOK_SECRETS_KEY: 'k'.repeat(40), SMTP_URL: 'smtp://mail.example.com:587', PAYMENT_PROVIDERS: 'stripe', STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_x', S3_SECRET_ACCESS_KEY: 's'.repeat(40) })
  t.same(required.sort(), ['JWT_SECRET', 'PAYMENT_PROVIDERS', 'PAYMENT_WEBHOOK_SECRET', 'S3_SECRET_ACCESS_KEY', 'SMTP_URL', 'TOTP_ENCRYPTION_KEYS', 'WEBHOOK_SECRETS_KEY'], 'the operator must give each secret, the mail server and the payment provider')
  const config = loadConfig(env)
  t.equal(config.env, 'production')
  t.ok(config.postgres.url && config.mongo.url && config.redis.url, 'on real services')
  // Files in the compose file's MinIO (issue #30), not on a volume of the app's.
  t.equal(config.storage, 's3')
  t.match(config.s3, { endpoint: 'http://minio:9000', bucket: 'shop', forcePathStyle: true, accessKeyId: 'shop', secretAccessKey: 's'.repeat(40) })
  const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8')) as { services: Record<string, { image?: string; volumes?: string[]; environment?: Record<string, string>; depends_on?: Record<string, unknown> }>; volumes: Record<string, unknown> }
  t.match(compose.services.minio?.image, /^minio\/minio/, 'a MinIO service')
  t.equal(compose.services.minio?.environment?.MINIO_ROOT_PASSWORD, compose.services.app!.environment!.S3_SECRET_ACCESS_KEY, 'whose root password is the app\'s key')
  t.ok(compose.services.app!.depends_on?.['minio-bucket'], 'the app starts once the bucket exists')
  t.notOk(compose.services.app!.volumes, 'no uploads volume on the app')
  t.notOk('uploads' in compose.volumes)
  t.throws(() => loadConfig({ ...env, PAYMENT_WEBHOOK_SECRET: '' }), ConfigError, 'and without a given secret it refuses to start')
  // Issue #24: webhook signing secrets were sealed under a key derived from JWT_SECRET when this was unset, in production too.
  t.throws(() => loadConfig({ ...env, WEBHOOK_SECRETS_KEY: '' }), /WEBHOOK_SECRETS_KEY: required when NODE_ENV=production/, 'a key of its own for webhook secrets')
  t.throws(() => loadConfig({ ...env, PAYMENT_PROVIDERS: 'test' }), /production refuses the test provider/, 'the test provider is refused in production')
  t.equal(loadConfig({ ...env, PAYMENT_PROVIDERS: 'test', ALLOW_TEST_PAYMENTS: 'true' }).payments.providers[0], 'test', 'unless a demo says so')
})

t.test('OpenID Connect providers: each named one needs its issuer and client; production needs https', async (t) => {
  const keycloak = { OIDC_PROVIDERS: 'keycloak', OIDC_KEYCLOAK_ISSUER: 'http://localhost:8080/realms/shop', OIDC_KEYCLOAK_CLIENT_ID: 'shop', OIDC_KEYCLOAK_CLIENT_SECRET: 's3cret' }
  t.same(loadConfig({}).oidc.providers, [], 'none by default')
  t.same(loadConfig({ ...keycloak, PUBLIC_URL: 'https://shop.example/' }).oidc.providers, [{
    name: 'keycloak', issuer: 'http://localhost:8080/realms/shop', clientId: 'shop', clientSecret: 's3cret',
    redirectUri: 'https://shop.example/sign-in/keycloak/callback', scope: 'openid email profile', allowInsecure: true,
  }])
  const cases: [Record<string, string>, RegExp][] = [
    [{ OIDC_PROVIDERS: 'Key Cloak' }, /OIDC_PROVIDERS="Key Cloak"/],
    [{ ...keycloak, OIDC_KEYCLOAK_ISSUER: '' }, /Missing environment variable OIDC_KEYCLOAK_ISSUER: required when OIDC_PROVIDERS includes keycloak/],
    [{ ...keycloak, OIDC_KEYCLOAK_CLIENT_SECRET: '' }, /Missing environment variable OIDC_KEYCLOAK_CLIENT_SECRET/],
    [{ ...keycloak, OIDC_KEYCLOAK_ISSUER: 'ftp://idp' }, /OIDC_KEYCLOAK_ISSUER="ftp:\/\/idp": an absolute http\(s\) URL/],
    [{ ...keycloak, OIDC_KEYCLOAK_REDIRECT_URI: 'https://shop.example/cb?x=1' }, /OIDC_KEYCLOAK_REDIRECT_URI=.*without query/],
    [{ ...keycloak, OIDC_KEYCLOAK_SCOPE: 'email profile' }, /OIDC_KEYCLOAK_SCOPE=.*including openid/],
  ]
  for (const [env, message] of cases) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))

  const { composeAppEnv } = await import('./compose.js')
  const { env } = composeAppEnv({ JWT_SECRET: 'j'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'w'.repeat(40), TOTP_ENCRYPTION_KEYS: PRODUCTION_TOTP_KEYS, WEBHOOK_SECRETS_KEY: 'k'.repeat(40), SMTP_URL: 'smtp://mail.example.com:587', PAYMENT_PROVIDERS: 'stripe', STRIPE_SECRET_KEY: 'sk_live_x', STRIPE_WEBHOOK_SECRET: 'whsec_x', S3_SECRET_ACCESS_KEY: 's'.repeat(40) })
  t.throws(() => loadConfig({ ...env, ...keycloak }), /OIDC_KEYCLOAK_ISSUER=.*production requires an https URL/)
  t.equal(loadConfig({ ...env, ...keycloak, OIDC_KEYCLOAK_ISSUER: 'https://id.example/realms/shop' }).oidc.providers[0]?.allowInsecure, false)
})
