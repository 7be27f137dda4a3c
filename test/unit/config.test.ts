import t from 'tap'
import { ConfigError, loadConfig } from '../../src/config.js'

// Parsing of the environment (src/config.ts, loadConfig takes the environment as an argument).
// test/config.test.ts covers the process refusing to start, the compose file and OpenID Connect;
// these are the conversions and cross-checks of the values themselves.

const PRODUCTION = {
  NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), PAYMENT_WEBHOOK_SECRET: 'y'.repeat(40), TOTP_ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 9).toString('base64')}`,
  DATABASE_URL: 'postgres://db/shop', MONGODB_URL: 'mongodb://mongo/shop', REDIS_URL: 'redis://redis:6379', SMTP_URL: 'smtp://mail:25',
  PAYMENT_PROVIDERS: 'stripe', STRIPE_SECRET_KEY: 'sk_test_x', STRIPE_WEBHOOK_SECRET: 'whsec_x', WEBHOOK_SECRETS_KEY: 'w'.repeat(40),
}
const refused = (env: Record<string, string>, message: RegExp) => [env, message] as const

t.test('money settings: bounds of the tax rate, currency code and shipping amounts', async (t) => {
  t.same(loadConfig({}).checkout, { shippingFlatMinor: 499, shippingFreeOverMinor: 5000, taxRateBps: 0, pricesIncludeTax: false, paymentTimeoutMinutes: 30, lowStockThreshold: 5, returnWindowDays: 30, orderAccessTtlHours: 168, guestMaxUnpaidOrders: 3, guestMaxUnpaidOrdersPerClient: 20, concurrency: 10, queue: 2000 })
  t.equal(loadConfig({}).currency, 'EUR')
  t.equal(loadConfig({ TAX_RATE_BPS: '10000' }).checkout.taxRateBps, 10_000, '100% is the highest rate')
  t.equal(loadConfig({ TAX_RATE_BPS: '0' }).checkout.taxRateBps, 0)
  t.equal(loadConfig({ SHIPPING_FREE_OVER_MINOR: '0', SHIPPING_FLAT_MINOR: '0' }).checkout.shippingFreeOverMinor, 0)
  for (const [env, message] of [
    refused({ TAX_RATE_BPS: '10001' }, /TAX_RATE_BPS="10001"/),
    refused({ TAX_RATE_BPS: '-1' }, /TAX_RATE_BPS="-1"/),
    refused({ TAX_RATE_BPS: '20.5' }, /TAX_RATE_BPS="20.5".*integer/),
    refused({ TAX_RATE_BPS: '20%' }, /TAX_RATE_BPS="20%"/),
    refused({ SHIPPING_FLAT_MINOR: '-1' }, /SHIPPING_FLAT_MINOR="-1"/),
    refused({ STORE_CURRENCY: 'eur' }, /STORE_CURRENCY="eur".*ISO 4217/),
    refused({ STORE_CURRENCY: 'EURO' }, /STORE_CURRENCY="EURO"/),
    refused({ ORDER_PAYMENT_TIMEOUT_MINUTES: '0' }, /ORDER_PAYMENT_TIMEOUT_MINUTES="0"/),
  ]) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
})

t.test('booleans: true, false, 1 and 0, nothing else', async (t) => {
  for (const [value, expected] of [['true', true], ['1', true], ['false', false], ['0', false]] as const) {
    t.equal(loadConfig({ PRICES_INCLUDE_TAX: value }).checkout.pricesIncludeTax, expected, value)
  }
  for (const value of ['yes', 'TRUE', 'on', ' 1']) t.throws(() => loadConfig({ PRICES_INCLUDE_TAX: value }), { name: 'ConfigError', message: /PRICES_INCLUDE_TAX=.*one of true, false, 1, 0/ }, value)
  t.equal(loadConfig({ JOBS: 'off' }).jobs, false)
  t.equal(loadConfig({ CACHE: 'off' }).cacheEnabled, false)
  t.throws(() => loadConfig({ CACHE: 'false' }), /CACHE="false".*one of on, off/, 'on/off settings take on and off only')
})

t.test('integers: the edges of a range are in, one past is out', async (t) => {
  t.equal(loadConfig({ PORT: '0' }).port, 0)
  t.equal(loadConfig({ PORT: '65535' }).port, 65_535)
  t.throws(() => loadConfig({ PORT: '65536' }), /PORT="65536"/)
  t.equal(loadConfig({ ACCESS_TOKEN_TTL_SECONDS: '900' }).auth.accessTtlSeconds, 900)
  t.throws(() => loadConfig({ ACCESS_TOKEN_TTL_SECONDS: '901' }), /ACCESS_TOKEN_TTL_SECONDS="901".*at most 900/)
  t.equal(loadConfig({ REFRESH_TOKEN_TTL_DAYS: '7' }).auth.refreshTtlSeconds, 7 * 86_400, 'days become seconds')
  t.equal(loadConfig({ RATE_LIMIT_MAX: '1', RATE_LIMIT_WINDOW_MS: '1000' }).rateLimit.max, 1)
  t.throws(() => loadConfig({ RATE_LIMIT_WINDOW_MS: '999' }), /RATE_LIMIT_WINDOW_MS="999"/)
})

t.test('integers: only a whole number as written, never the start of one', async (t) => {
  // TypeBox's conversion alone read these as parseInt does: 1e3 requests a minute would be 1.
  for (const value of ['1e3', '20.5', '2000.0', '0x10', 'true', '12abc', '+5', '1 000']) {
    t.throws(() => loadConfig({ RATE_LIMIT_MAX: value }), { name: 'ConfigError', message: new RegExp(`^Invalid environment variable RATE_LIMIT_MAX=${JSON.stringify(value).replace(/[.+]/g, '\\$&')}: Expected integer: an integer of at least 1\\. `) }, value)
  }
  t.equal(loadConfig({ RATE_LIMIT_MAX: ' 1000 ' }).rateLimit.max, 1000, 'spaces around it are forgiven')
  t.equal(loadConfig({ RATE_LIMIT_MAX: '007' }).rateLimit.max, 7, 'leading zeros are decimal')
  t.throws(() => loadConfig({ RATE_LIMIT_MAX: '-5' }), /RATE_LIMIT_MAX="-5": Expected integer to be greater or equal to 1/, 'a negative whole number reaches the range check')
})

t.test('HTTP timeouts must agree with each other', async (t) => {
  t.equal(loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '30000', HTTP_REQUEST_TIMEOUT_MS: '30000' }).http.headersTimeoutMs, 30_000, 'headers may take the whole request time')
  t.throws(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '30001', HTTP_REQUEST_TIMEOUT_MS: '30000' }), { name: 'ConfigError', message: /HTTP_HEADERS_TIMEOUT_MS=30001: at most HTTP_REQUEST_TIMEOUT_MS \(30000\)/ })
  t.equal(loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '5000', HTTP_CONNECTION_TIMEOUT_MS: '5001' }).http.connectionTimeoutMs, 5001)
  t.throws(() => loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '5000', HTTP_CONNECTION_TIMEOUT_MS: '5000' }), /HTTP_CONNECTION_TIMEOUT_MS=5000: must be above HTTP_KEEP_ALIVE_TIMEOUT_MS/)
  t.throws(() => loadConfig({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '200000' }), /HTTP_CONNECTION_TIMEOUT_MS=120000/, 'a keep-alive above the default inactivity timeout needs that raised too')
})

t.test('values derived from others', async (t) => {
  t.equal(loadConfig({ PUBLIC_URL: 'https://shop.example/' }).publicUrl, 'https://shop.example', 'no trailing slash (links append paths)')
  t.equal(loadConfig({}).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: 'true' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: '10.0.0.1,10.0.0.2' }).trustProxy, '10.0.0.1,10.0.0.2')
  t.equal(loadConfig({ JWT_SECRET: 'j'.repeat(32) }).webhooks.secretsKey, `jwt:${'j'.repeat(32)}`, 'webhook secrets derive from the JWT secret unless given their own key')
  t.equal(loadConfig({ WEBHOOK_SECRETS_KEY: 'w'.repeat(32) }).webhooks.secretsKey, 'w'.repeat(32))
  t.same(loadConfig({ PAYMENT_PROVIDERS: 'test,stripe', STRIPE_SECRET_KEY: 'sk_x', STRIPE_WEBHOOK_SECRET: 'whsec_x' }).payments.providers, ['test', 'stripe'])
  t.equal(loadConfig({ OIDC_PROVIDERS: 'idp,idp', OIDC_IDP_ISSUER: 'https://id.example', OIDC_IDP_CLIENT_ID: 'c', OIDC_IDP_CLIENT_SECRET: 's' }).oidc.providers.length, 1, 'a provider named twice is one provider')
})

t.test('outbound webhooks may call private addresses outside production only, unless told', async (t) => {
  t.equal(loadConfig({}).webhooks.allowPrivateUrls, true, 'development')
  t.equal(loadConfig({ NODE_ENV: 'test' }).webhooks.allowPrivateUrls, true)
  t.equal(loadConfig(PRODUCTION).webhooks.allowPrivateUrls, false, 'production')
  t.equal(loadConfig({ ...PRODUCTION, WEBHOOK_ALLOW_PRIVATE_URLS: '1' }).webhooks.allowPrivateUrls, true, 'production, told so')
  t.equal(loadConfig({ WEBHOOK_ALLOW_PRIVATE_URLS: 'false' }).webhooks.allowPrivateUrls, false, 'development, told not to')
})

t.test('secrets and providers that do not fit are refused, naming the variable', async (t) => {
  for (const [env, message] of [
    refused({ TOTP_ENCRYPTION_KEYS: 'k1:c2hvcnQ=' }, /TOTP_ENCRYPTION_KEYS: each key is <id>:<32 bytes in base64>/),
    refused({ TOTP_ENCRYPTION_KEYS: `a:${Buffer.alloc(32).toString('base64')},a:${Buffer.alloc(32, 1).toString('base64')}` }, /TOTP_ENCRYPTION_KEYS: key ids must differ/),
    refused({ PAYMENT_PROVIDERS: 'stripe' }, /STRIPE_SECRET_KEY or STRIPE_WEBHOOK_SECRET: required when PAYMENT_PROVIDERS includes stripe/),
    refused({ PAYMENT_PROVIDERS: 'stripe', STRIPE_SECRET_KEY: 'sk_x' }, /STRIPE_WEBHOOK_SECRET/),
    refused({ PAYMENT_PROVIDERS: 'paypal' }, /PAYMENT_PROVIDERS="paypal"/),
    refused({ PAYMENT_PROVIDERS: 'test,' }, /PAYMENT_PROVIDERS="test,"/),
    refused({ STRIPE_SECRET_KEY: 'pk_live_x' }, /STRIPE_SECRET_KEY="pk_live_x".*an sk_ key/i),
    refused({ METRICS_TOKEN: 'short' }, /METRICS_TOKEN/),
    refused({ ...PRODUCTION, TOTP_ENCRYPTION_KEYS: `${PRODUCTION.TOTP_ENCRYPTION_KEYS},${loadConfigDevTotp()}` }, /production refuses the development key/),
  ]) t.throws(() => loadConfig(env), { name: 'ConfigError', message }, JSON.stringify(env))
  t.type(t.throws(() => loadConfig({ PORT: 'x' })), ConfigError)
})

/** The development TOTP key, as the default configuration carries it. */
function loadConfigDevTotp() {
  const [key] = loadConfig({}).auth.totpKeys
  return `${key!.id}:${key!.key.toString('base64')}`
}
