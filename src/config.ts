import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseSecretKeys, type SecretKey } from './secret-box.js'
import type { RedisConfig } from './redis-client.js'
import type { S3Settings } from './storage.js'

// Every setting the process reads, with safe development defaults. Secrets have development
// values so `npm start` works with no environment; production refuses to run on them.
const DEV_JWT_SECRET = 'dev-only-jwt-secret-change-me-0123456789abcdef'
// 32 bytes, for development only: production refuses it.
const DEV_TOTP_KEYS = `dev:${Buffer.from('dev-only-totp-key-change-me-0123').toString('base64')}`
const DEV_WEBHOOK_SECRET = 'whsec_dev_only_change_me_0123456789abcdef'
/** Defaults that only development may run on (docs/configuration.md shows them as such, not their value). */
export const DEVELOPMENT_SECRETS: ReadonlySet<unknown> = new Set([DEV_JWT_SECRET, DEV_TOTP_KEYS, DEV_WEBHOOK_SECRET])

/** An enumerated string (TypeBox's Value checker needs a union of literals here, not the
 * StringEnum the HTTP schemas use); `allowedValues` lists them in errors and docs. */
function oneOf<const T extends string>(values: readonly T[], defaultValue: T | undefined, description: string) {
  return Type.Union(values.map((v) => Type.Literal(v)), { ...(defaultValue === undefined ? {} : { default: defaultValue }), description })
}
const bool = (defaultValue: 'true' | 'false' | undefined, description: string) => oneOf(['true', 'false', '1', '0'], defaultValue, description)
const OIDC_NAME = '[a-z][a-z0-9_]{0,31}'

// The descriptions are the documentation: `npm run docs:config` renders this schema as
// docs/configuration.md (CI fails when that file is stale), and a bad value's error quotes them.
// Plain text on one line each: they end up in a one-line error message too.
export const ConfigSchema = Type.Object({
  NODE_ENV: oneOf(['development', 'test', 'production'], 'development', 'Production refuses the development secrets (JWT_SECRET, TOTP_ENCRYPTION_KEYS, PAYMENT_WEBHOOK_SECRET), the embedded stores and logged mail: it requires DATABASE_URL, MONGODB_URL, REDIS_URL (or REDIS_CLUSTER_NODES) and SMTP_URL.'),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Interface to listen on.' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000, description: 'Port to listen on.' }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info', 'The pino log level; logs are JSON, pretty only on a terminal outside production.'),
  TRUST_PROXY: Type.String({ minLength: 1, default: 'false', description: 'false, or the comma-separated proxy addresses/CIDRs whose X-Forwarded-For entries are trusted (set it to the load balancer\'s address range so rate limits count the client\'s address); true (trust every hop: clients choose their address) is refused in production. Per-IP limits count an IPv6 client per /64.' }),
  DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', description: 'A postgres:// URL. Unset: the embedded PGlite under PGLITE_DATA_DIR.' })),
  PGLITE_DATA_DIR: Type.String({ minLength: 1, default: './data/pglite', description: 'The embedded PGlite database\'s directory, or memory:// for an in-memory database.' }),
  PGLITE_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 54329, description: 'Where the API serves the embedded database (PostgreSQL wire protocol, on 127.0.0.1) to psql and the CLI; another free port when taken, named in the log.' }),
  DB_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 10, description: 'PostgreSQL pool size. Keep it times the number of instances below the server\'s max_connections (or put PgBouncer in transaction mode in front).' }),
  PG_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'The server cancels an API statement that runs longer (statement_timeout); one that gets no answer at all (a hung server or network) fails a second later in the client (query_timeout), and a transaction left idle 2 s beyond it is ended. Either way the route answers 503. Migrations and db:seed are not bounded.' }),
  PG_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 5000, description: 'Time to open a PostgreSQL connection, or to wait for a free one in the pool (503 beyond).' }),
  DB_MIGRATE: bool('true', 'Apply migrations at start-up, under an advisory lock so instances take turns.'),
  DATABASE_REPLICA_URLS: Type.Optional(Type.String({ pattern: '^postgres(ql)?://[^,]+(,postgres(ql)?://[^,]+)*$', description: 'The comma-separated postgres:// URLs of streaming read replicas (needs DATABASE_URL). Unset: every read on the primary. See docs/operations.md#postgresql-read-replicas.' })),
  DB_REPLICA_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 5, description: 'Connections per replica (connect timeout 2 s, statement timeout 15 s).' }),
  DB_REPLICA_MAX_LAG_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 2000, description: 'A catalog write waits at most this long for each replica to replay it, and every replica in use is checked this often; a replica further behind is taken out of use, so no read comes from one much more than twice this behind.' }),
  DB_REPLICA_DOWN_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'A replica out of use (connection failure, too far behind) is skipped, its reads going to the primary, and probed again after this long.' }),
  MONGODB_URL: Type.Optional(Type.String({ pattern: '^mongodb(\\+srv)?://', description: 'A mongodb:// URL; its path names the database (default shop). Unset: see EMBEDDED_MONGO.' })),
  MONGO_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 3000, description: 'Finding a MongoDB server, opening a connection, or waiting for an answer on one longer than this fails (503); a read or write the driver retries once can take about three times as long. It also bounds the retention jobs\' deletes: a worker clearing a large backlog may want more.' }),
  MONGO_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 20, description: 'Connections to the MongoDB server per instance; a request finding them all busy waits at most MONGO_TIMEOUT_MS, then 503. The driver\'s default (100) let one burst of checkouts open enough connections to wedge FerretDB 1.24\'s own PostgreSQL pool.' }),
  EMBEDDED_MONGO: oneOf(['ferretdb', 'off'], 'ferretdb', 'Without MONGODB_URL: ferretdb starts FerretDB on SQLite under FERRETDB_DATA_DIR as a child process; off runs without MongoDB.'),
  FERRETDB_BIN: Type.Optional(Type.String({ minLength: 1, description: 'The FerretDB v1.24 binary for the embedded mode. Unset: searched in PATH, then in $GOPATH/bin (built there by test/install-ferretdb.sh on first start when Go is installed).' })),
  FERRETDB_DATA_DIR: Type.String({ minLength: 1, default: './data/ferretdb', description: 'Embedded FerretDB\'s SQLite directory.' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'A redis:// URL. Unset: an in-process stand-in (ioredis-mock, one process only).' })),
  REDIS_CLUSTER_NODES: Type.Optional(Type.String({ pattern: '^[^,:\\s]+:[0-9]+(,[^,:\\s]+:[0-9]+)*$', description: 'Comma-separated host:port seed nodes of a Redis Cluster (e.g. 10.0.0.1:6379,10.0.0.2:6379); when set, the app, its rate limits and BullMQ use the cluster instead of REDIS_URL. See docs/operations.md#redis-cluster.' })),
  // No braces: a hash tag in the prefix would put every key of the app on one cluster slot.
  REDIS_KEY_PREFIX: Type.String({ default: 'shop:', pattern: '^[^{}]*$', description: 'Prefix of every Redis key; text without { or } (a hash tag there would put every key on one cluster slot).' }),
  REDIS_COMMAND_TIMEOUT_MS: Type.Integer({ minimum: 10, maximum: 60_000, default: 2000, description: 'A Redis command that takes longer fails (a route that needs Redis, such as sign-in, answers 503). After a failure the cache and the rate limits go without Redis (reads from the database, the global and account limits counted in each process alone) until a probe, at most once a second, finds it back.' }),
  JWT_SECRET: Type.String({ minLength: 32, default: DEV_JWT_SECRET, description: 'Signs access tokens (HS256); must be set in production.' }),
  TOTP_ENCRYPTION_KEYS: Type.String({ default: DEV_TOTP_KEYS, description: 'Keys sealing two-factor secrets at rest (AES-256-GCM, bound to the account): <id>:<32 bytes in base64>, comma-separated; the first seals, every one opens; must be set in production (k1:$(openssl rand -base64 32)). Rotation: put a new key first and keep the old one; each secret moves to the new key at its owner\'s next two-factor sign-in (and secrets stored in plain text before sealing existed are sealed then); drop the old key once no totp_secret starts with v1.<old id>.' }),
  STORE_CURRENCY: Type.String({ pattern: '^[A-Z]{3}$', default: 'EUR', description: 'ISO 4217 code of the store currency, e.g. EUR: a variant\'s priceMinor, catalog reads without ?currency and carts without a region are in it; other currencies come with regions (prices are integer minor units). The upgrade to regions (migration 0013_multi_currency) makes it the default region\'s.' }),
  CACHE_TTL_SECONDS: Type.Integer({ minimum: 1, maximum: 86_400, default: 300, description: 'Lifetime of cached catalog reads (writes make them stale at once).' }),
  CACHE: oneOf(['on', 'off'], 'on', 'off: public catalog reads skip the cache and go to PostgreSQL every time (to rule the cache out when something looks stale, and for the bench\'s cache-off column); writes still announce their changes to instances that cache.'),
  CART_MAX_LINES: Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Distinct items per cart.' }),
  CART_MAX_QUANTITY: Type.Integer({ minimum: 1, maximum: 10_000, default: 99, description: 'Largest quantity of one cart line.' }),
  GUEST_CART_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 365, default: 30, description: 'Guest carts untouched this many days are removed by an hourly job.' }),
  JOBS: oneOf(['on', 'off'], 'on', 'on: the API runs the background work itself (schedules, the outbox drain and the webhook delivery queue; BullMQ on Redis, each run taken by one instance; in-process timers without Redis). off: the API only enqueues, and `npm run worker` does the work (see docs/operations.md#workers).'),
  WORKER_PORT: Type.Integer({ minimum: 0, maximum: 65_535, default: 3001, description: 'Where `npm run worker` answers GET /health, on HOST (0: no HTTP port).' }),
  SHIPPING_FLAT_MINOR: Type.Integer({ minimum: 0, default: 499, description: 'Seed of the default shipping option (zone "Everywhere", option "Standard"): its price in minor units. Used only when no shipping zone exists; see docs/money-path.md#shipping-and-tax.' }),
  SHIPPING_FREE_OVER_MINOR: Type.Integer({ minimum: 0, default: 5000, description: 'Seed of the default shipping option: free from this subtotal after discount (0: never free). Used only when no shipping zone exists.' }),
  TAX_RATE_BPS: Type.Integer({ minimum: 0, maximum: 10_000, default: 0, description: 'Seed of the default tax rate (every destination without its own), in basis points (2000 = 20%); used only when no tax rate exists.' }),
  PRICES_INCLUDE_TAX: bool('false', 'true: catalog and shipping prices include tax (the tax is the part of them that is tax); false: tax is added on top.'),
  RETURN_WINDOW_DAYS: Type.Integer({ minimum: 0, maximum: 3650, default: 30, description: 'Days after delivery within which a customer may request a return.' }),
  LOW_STOCK_THRESHOLD: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 5, description: 'Admins are mailed (and a stock.low webhook sent) when a sale takes a variant\'s stock to this or below.' }),
  ORDER_ACCESS_TOKEN_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 8_760, default: 168, description: 'Lifetime of a guest order\'s access token (the link in its mail and the token in the checkout answer); a lookup by order number and email mails a fresh one.' }),
  GUEST_MAX_UNPAID_ORDERS: Type.Integer({ minimum: 1, maximum: 1000, default: 3, description: 'How many unpaid guest orders one contact email may hold at once (each reserves stock and coupon uses until paid, cancelled or expired); guest checkout beyond it is a 409.' }),
  GUEST_MAX_UNPAID_ORDERS_PER_CLIENT: Type.Integer({ minimum: 1, maximum: 10_000, default: 20, description: 'How many unpaid guest orders one client address (an IPv4 address or an IPv6 /64, as TRUST_PROXY resolves it) may hold at once, whatever emails it types; beyond it guest checkout is a 409. Room for a shared office or carrier NAT, a bound for a script holding stock.' }),
  CHECKOUT_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 500, default: 10, description: 'Checkouts run at once per instance; the rest wait their turn in arrival order, so a started checkout finishes instead of sharing the pool and the CPU with every later one (see docs/operations.md#checkout-admission).' }),
  CHECKOUT_QUEUE: Type.Integer({ minimum: 0, default: 2000, description: 'Checkouts waiting their turn at most per instance; one beyond that is answered 503 overloaded with Retry-After at once.' }),
  ORDER_PAYMENT_TIMEOUT_MINUTES: Type.Integer({ minimum: 1, maximum: 10_080, default: 30, description: 'Unpaid orders are cancelled after this and their stock released (a job, every minute).' }),
  PAYMENT_PROVIDERS: Type.String({ pattern: '^(test|stripe)(,(test|stripe))*$', default: 'test', description: 'Comma-separated: test, stripe, or both. Production refuses test unless ALLOW_TEST_PAYMENTS=true (with it any customer can mark an order paid: a demo shop only).' }),
  ALLOW_TEST_PAYMENTS: bool('false', 'Lets production run the test payment provider; see PAYMENT_PROVIDERS.'),
  PAYMENT_WEBHOOK_SECRET: Type.String({ minLength: 16, default: DEV_WEBHOOK_SECRET, description: 'Signing secret of the test provider\'s webhooks; must be set in production.' }),
  STRIPE_SECRET_KEY: Type.Optional(Type.String({ pattern: '^sk_', description: 'An sk_ key; required when PAYMENT_PROVIDERS includes stripe.' })),
  STRIPE_WEBHOOK_SECRET: Type.Optional(Type.String({ pattern: '^whsec_', description: 'A whsec_ secret; required when PAYMENT_PROVIDERS includes stripe.' })),
  STRIPE_API_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Points the Stripe SDK elsewhere, e.g. a stripe-mock URL.' })),
  REVIEWS_AUTO_APPROVE: bool('true', 'Publish reviews at once; false holds them for moderation.'),
  STORAGE: oneOf(['local', 's3'], 'local', 'Where uploads, data exports and catalog CSV files are kept. local: on disk under UPLOAD_DIR, DATA_EXPORT_DIR and CATALOG_FILES_DIR (one instance, or a directory every instance mounts). s3: in S3_BUCKET of an S3-compatible object store (AWS S3, MinIO, SeaweedFS, ...), so instances share nothing on disk; see docs/operations.md#file-storage.'),
  S3_BUCKET: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'The bucket (it must exist); required with STORAGE=s3.' })),
  S3_ENDPOINT: Type.Optional(Type.String({ pattern: '^https?://', description: 'The store\'s URL, for a store other than AWS S3 (e.g. http://minio:9000). Unset: AWS S3 in S3_REGION.' })),
  S3_REGION: Type.String({ minLength: 1, default: 'us-east-1', description: 'The bucket\'s region (most S3-compatible stores accept us-east-1).' }),
  S3_ACCESS_KEY_ID: Type.Optional(Type.String({ minLength: 1, description: 'Access key. Unset: the AWS SDK\'s own chain (AWS_* environment, web identity, instance role).' })),
  S3_SECRET_ACCESS_KEY: Type.Optional(Type.String({ minLength: 1, description: 'Secret of S3_ACCESS_KEY_ID.' })),
  S3_FORCE_PATH_STYLE: bool('false', 'true: address the bucket as ENDPOINT/BUCKET/key (MinIO, SeaweedFS and most self-hosted stores); false: as BUCKET.ENDPOINT/key (AWS S3).'),
  S3_PREFIX: Type.String({ pattern: '^([A-Za-z0-9._-]+/)*$', default: '', description: 'Prefix of every key (ending in /), so several shops or environments can share one bucket. Objects are kept under PREFIX/uploads/, PREFIX/exports/ and PREFIX/catalog-files/.' }),
  S3_PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://', description: 'Base URL under which the bucket\'s keys are public (a CDN in front of the bucket, or the bucket\'s public address), e.g. https://cdn.example.com for https://cdn.example.com/uploads/ID.png. Set: product image URLs point there (immutable, cached a year); only PREFIX/uploads/ needs to be public. Unset: the API serves them.' })),
  S3_SIGNED_URL_TTL_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 60, description: 'With STORAGE=s3, a download link of a private file (data export, catalog export) redirects to a presigned link of the store valid this long.' }),
  S3_PART_SIZE_BYTES: Type.Integer({ minimum: 5 * 1024 * 1024, maximum: 512 * 1024 * 1024, default: 8 * 1024 * 1024, description: 'Files larger than this are sent in parts of this size (multipart upload); memory per upload in flight is about this times S3_UPLOAD_QUEUE.' }),
  S3_UPLOAD_QUEUE: Type.Integer({ minimum: 1, maximum: 16, default: 2, description: 'Parts of one upload sent at once.' }),
  UPLOAD_DIR: Type.String({ minLength: 1, default: './uploads', description: 'With STORAGE=local: the directory of uploads; every instance and worker must mount the same one.' }),
  UPLOAD_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 100 * 1024 * 1024, default: 5 * 1024 * 1024, description: 'Largest upload (413 beyond).' }),
  UPLOAD_QUOTA_FILES: Type.Integer({ minimum: 1, default: 100, description: 'Uploads one customer may keep (413 beyond).' }),
  UPLOAD_QUOTA_BYTES: Type.Integer({ minimum: 1024, default: 50 * 1024 * 1024, description: 'Total bytes of uploads one customer may keep (413 beyond).' }),
  UPLOAD_ADMIN_QUOTA_FILES: Type.Integer({ minimum: 1, default: 10_000, description: 'Uploads one admin may keep.' }),
  UPLOAD_ADMIN_QUOTA_BYTES: Type.Integer({ minimum: 1024, default: 2 * 1024 * 1024 * 1024, description: 'Total bytes of uploads one admin may keep.' }),
  UPLOAD_ORPHAN_GRACE_HOURS: Type.Integer({ minimum: 1, maximum: 8760, default: 24, description: 'An upload no product or avatar uses is deleted (row and file) this many hours after it was made, by an hourly job.' }),
  IMAGE_RESIZE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 16, default: 2, description: 'Product images the worker makes sizes of at once (per process running the jobs); a burst of uploads waits in the queue beyond this. Each takes about one core while it encodes.' }),
  IMAGE_MAX_PIXELS: Type.Integer({ minimum: 1_000_000, maximum: 268_402_689, default: 40_000_000, description: 'Most pixels (width x height) of a product image the worker makes sizes of; a larger one (a decompression bomb among them) is marked failed without being decoded.' }),
  DATA_EXPORT_DIR: Type.String({ minLength: 1, default: './data/exports', description: 'Where customers\' data export archives are kept (private: served only through a short-lived link); every instance and worker must mount the same directory.' }),
  DATA_EXPORT_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 720, default: 72, description: 'A data export archive can be downloaded this long after it is built; then an hourly job deletes it.' }),
  DATA_EXPORT_LINK_TTL_SECONDS: Type.Integer({ minimum: 30, maximum: 86_400, default: 600, description: 'Lifetime of a download link of a data export (each read of a ready export gives a new one).' }),
  CATALOG_FILES_DIR: Type.String({ minLength: 1, default: './data/catalog-files', description: 'Where catalog CSV imports (as uploaded) and exports (as built) are kept, private to admins; every instance and worker must mount the same directory.' }),
  CATALOG_IMPORT_MAX_BYTES: Type.Integer({ minimum: 1024, maximum: 2_000_000_000, default: 200 * 1024 * 1024, description: 'Largest catalog CSV import (413 beyond); the file is streamed to disk and parsed as a stream, so memory does not grow with it.' }),
  CATALOG_JOB_LEASE_SECONDS: Type.Integer({ minimum: 5, maximum: 3600, default: 120, description: 'A worker running a catalog import or export holds it this long, renewed after every batch; a worker that died loses it after this, and the next run does the job again from the top (imports are upserts, so the result is that of one run).' }),
  CATALOG_FILE_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 7, description: 'Catalog import uploads and export files (products and orders; they hold customer data) are deleted this many days after their job ended, by an hourly job; the job row and its counts stay, its download goes (404). Files no job refers to are deleted after the same time.' }),
  DATA_REQUEST_LEASE_SECONDS: Type.Integer({ minimum: 1, maximum: 3600, default: 120, description: 'A worker building an export or running an erasure holds it this long, renewed at each step; a worker that died loses it after this, and the next run resumes the work.' }),
  ACTIVITY_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: 3650, default: 90, description: 'Activity log entries older than this are removed by an hourly job, a whole UTC day per delete (bench/README.md, "Retention").' }),
  CORS_ORIGINS: Type.String({ default: 'http://localhost:3000,http://127.0.0.1:3000', description: 'Comma-separated allowlist of origins; other origins get no CORS headers.' }),
  RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 300, description: 'Global limit of requests per window per client IP, counted across instances in Redis (/health and /ready are exempt): in process and synchronised every 100 ms while a client is far from it, in Redis on every request within half the limit of it. While Redis is unreachable each instance counts alone (the limit holds per instance).' }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1000, default: 60_000, description: 'The window of RATE_LIMIT_MAX.' }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, maximum: 10 * 1024 * 1024, default: 262_144, description: 'Largest JSON request body (413 problem+json beyond); product create and update take up to 1 MiB, uploads are limited by UPLOAD_MAX_BYTES instead.' }),
  HTTP_REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 30_000, description: 'A client must send its whole request, headers and body, within this (408 and the socket closed beyond).' }),
  HTTP_HEADERS_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'A client must send its request headers within this (408 beyond); at most HTTP_REQUEST_TIMEOUT_MS.' }),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 72_000, description: 'An idle keep-alive connection is closed after this; keep it above the idle timeout of the proxy in front (60 s on common load balancers), so the proxy closes first and never reuses a socket the API just closed.' }),
  HTTP_CONNECTION_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 120_000, description: 'A socket with no traffic either way for this long is closed, a stuck handler included; must be above HTTP_KEEP_ALIVE_TIMEOUT_MS.' }),
  JWT_ISSUER: Type.String({ minLength: 1, default: 'shop-api', description: 'Issuer checked on every access token (HS256 only).' }),
  JWT_AUDIENCE: Type.String({ minLength: 1, default: 'shop-clients', description: 'Audience checked on every access token.' }),
  ACCESS_TOKEN_TTL_SECONDS: Type.Integer({ minimum: 30, maximum: 900, default: 900, description: 'Access token lifetime, at most 900 (15 minutes).' }),
  REFRESH_REUSE_GRACE_SECONDS: Type.Integer({ minimum: 0, maximum: 60, default: 10, description: 'How long the refresh token just rotated may be presented again (a lost answer retried, two tabs racing).' }),
  REFRESH_TOKEN_TTL_DAYS: Type.Integer({ minimum: 1, maximum: 365, default: 30, description: 'Absolute lifetime of a sign-in session (its refresh-token family).' }),
  AUTH_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 20, description: 'Sign-in, register, reset and 2FA requests per minute per IP and route; coupon codes tried (PUT /cart/coupon, POST /coupons/validate) too.' }),
  PASSWORD_HASH_CONCURRENCY: Type.Integer({ minimum: 1, default: 2, description: 'Password hashes (argon2id, 19 MiB each) computed at once, on libuv\'s thread pool.' }),
  PASSWORD_HASH_QUEUE: Type.Integer({ minimum: 0, default: 64, description: 'Password hashes waiting at most; a sign-in or registration beyond that is answered 503 overloaded with Retry-After at once.' }),
  AUTH_ACCOUNT_RATE_LIMIT_MAX: Type.Integer({ minimum: 1, default: 10, description: 'Per 15 minutes: sign-in attempts per account and source address (a stranger elsewhere cannot use up the owner\'s attempts), reset requests per account, and (together) password checks of /users/me/email and /users/me/password per signed-in user. Failed sign-ins to one account from anywhere slow it down, not lock it out: after 5 failures in 15 minutes sign-ins to the account take turns, each waiting 250 ms, then 500 ms, doubling per failure up to 5 s after the turn before, the right password too (so parallel guesses cannot read a slow answer as a miss); an attempt whose turn is over 10 s away is refused (429, Retry-After) unchecked.' }),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16, description: 'Bearer token of GET /metrics (Prometheus text format). Unset: no /metrics, and nothing is timed or collected. See docs/operations.md#metrics.' })),
  SMTP_URL: Type.Optional(Type.String({ pattern: '^smtps?://', description: 'An smtp:// or smtps:// URL (smtp://user:pass@host:port); required in production. Unset: mail is logged.' })),
  MAIL_FROM: Type.String({ minLength: 3, default: 'Shop <no-reply@shop.localhost>', description: 'Sender of account and order mail.' }),
  PUBLIC_URL: Type.String({ pattern: '^https?://', default: 'http://127.0.0.1:3000', description: 'Base of the links in verification and reset mail, and of the OpenID Connect redirect URIs.' }),
  // Each named provider reads OIDC_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _REDIRECT_URI and _SCOPE (OIDC_PROVIDER_VARIABLES).
  OIDC_PROVIDERS: Type.Optional(Type.String({ pattern: `^${OIDC_NAME}(,${OIDC_NAME})*$`, description: 'Comma-separated names (lower-case letters, digits and _, e.g. google,keycloak) of OpenID Connect providers to sign in with; each reads the OIDC_<NAME>_* variables with its name upper-cased. Unset: none.' })),
  WEBHOOK_SECRETS_KEY: Type.Optional(Type.String({ minLength: 32, description: 'Encrypts the outbound webhook endpoints\' signing secrets at rest. Set it so JWT_SECRET can rotate without them; changing it makes stored secrets unusable (rotate them). Unset: derived from JWT_SECRET, in development only (production requires it).' })),
  // No default: unset means off in production and on elsewhere (tests and development call loopback).
  WEBHOOK_ALLOW_PRIVATE_URLS: Type.Optional(bool(undefined, 'Accept http and private or loopback webhook URLs. Unset: false in production, true elsewhere.')),
  WEBHOOK_TIMEOUT_MS: Type.Integer({ minimum: 50, maximum: 60_000, default: 10_000, description: 'Time an endpoint has to answer one delivery.' }),
  WEBHOOK_MAX_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 25, default: 10, description: 'Attempts of one delivery before it fails.' }),
  WEBHOOK_BACKOFF_MS: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 60_000, description: 'Wait before the first retry of a delivery; doubled after each failed attempt.' }),
  WEBHOOK_DISABLE_AFTER: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'Deliveries in a row that fail all their attempts before the endpoint is disabled.' }),
}, { additionalProperties: true })

type RawConfig = Static<typeof ConfigSchema>

export interface Config {
  env: RawConfig['NODE_ENV']
  host: string
  port: number
  logLevel: RawConfig['LOG_LEVEL']
  trustProxy: boolean | string
  postgres: { url?: string; storeCurrency: string; pgliteDataDir: string; pglitePort: number; poolMax: number; migrate: boolean; statementTimeoutMs: number; connectTimeoutMs: number; replicas: { urls: string[]; poolMax: number; maxLagMs: number; downSeconds: number } }
  mongo: { timeoutMs: number; poolMax: number; url?: string; embedded: 'ferretdb' | 'off'; ferretdbBin?: string; ferretdbDataDir: string }
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
    /** Product image sizes (src/image-sizes.ts): made this many at once, from originals of at most maxPixels. */
    images: { concurrency: number; maxPixels: number }
  }
  /** Where files are kept (src/storage.ts); s3 is set when storage is s3. */
  storage: 'local' | 's3'
  s3?: S3Settings & { signedUrlTtlSeconds: number }
  activityRetentionDays: number
  /** Data exports and erasures (routes/users/data-export.ts, routes/users/workflows/erasure.ts). */
  catalogIo: { dir: string; maxBytes: number; leaseSeconds: number; fileRetentionDays: number }
  privacy: { exportDir: string; exportTtlHours: number; linkTtlSeconds: number; leaseSeconds: number }
  checkout: { shippingFlatMinor: number; shippingFreeOverMinor: number; taxRateBps: number; pricesIncludeTax: boolean; paymentTimeoutMinutes: number; lowStockThreshold: number; returnWindowDays: number; orderAccessTtlHours: number; guestMaxUnpaidOrders: number; guestMaxUnpaidOrdersPerClient: number; concurrency: number; queue: number }
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

/** What each provider named in OIDC_PROVIDERS reads, as OIDC_<NAME>_<key> with its name upper-cased
 * (docs/configuration.md is generated from this); no default: required. */
export const OIDC_PROVIDER_VARIABLES = {
  ISSUER: { description: 'The provider\'s issuer URL (discovery at /.well-known/openid-configuration); https in production, http allowed elsewhere.' },
  CLIENT_ID: { description: 'The shop\'s confidential client at the provider.' },
  CLIENT_SECRET: { description: 'That client\'s secret (sent as client_secret_post).' },
  REDIRECT_URI: { default: 'PUBLIC_URL + /sign-in/<name>/callback', description: 'The shop\'s page the provider returns the browser to (register it at the provider); no query or fragment.' },
  SCOPE: { default: 'openid email profile', description: 'Space-separated scopes asked for; must include openid.' },
} as const satisfies Record<string, { default?: string; description: string }>

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
    const scope = read('SCOPE') ?? OIDC_PROVIDER_VARIABLES.SCOPE.default
    if (!scope.split(' ').includes('openid')) throw new ConfigError(`Invalid environment variable ${prefix}SCOPE=${JSON.stringify(scope)}: space-separated scopes including openid`)
    return {
      name, issuer, clientId: clientId!, clientSecret: clientSecret!, redirectUri, scope,
      allowInsecure: new URL(issuer).protocol === 'http:',
    }
  })
}

/** The values a setting accepts, in words, for its error message and docs/configuration.md;
 * undefined where only the description can say (URLs and other patterns). */
export function allowedValues(schema: TSchema): string | undefined {
  const s = schema as { anyOf?: { const?: unknown }[]; type?: string; minimum?: number; maximum?: number; minLength?: number }
  if (s.anyOf?.every((member) => typeof member.const === 'string')) return `one of ${s.anyOf.map((member) => member.const).join(', ')}`
  if (s.type === 'integer') return s.maximum === undefined ? `an integer of at least ${s.minimum ?? 0}` : `an integer from ${s.minimum ?? 0} to ${s.maximum}`
  if (s.type === 'string' && (s.minLength ?? 0) > 1) return `at least ${s.minLength} characters`
  return undefined
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const truthy = (v: string) => v === 'true' || v === '1'

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

/** Reads and validates the environment. Throws ConfigError with one line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings count as unset, as in most .env tooling.
  const input: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key]
    if (value !== undefined && value !== '') input[key] = value
  }
  // Value.Convert reads an integer as parseInt does ('20.5' is 20, '1e3' is 1, 'true' is 1): a
  // value not written as a whole number stays text, which the check below refuses.
  const properties = ConfigSchema.properties as Record<string, TSchema>
  const notWhole = Object.entries(input).filter(([key, value]) => properties[key]?.type === 'integer' && !/^\s*-?\d+\s*$/.test(String(value)))
  const converted = Value.Convert(ConfigSchema, input) as Record<string, unknown>
  for (const [key, value] of notWhole) converted[key] = value
  const withDefaults = Value.Default(ConfigSchema, converted) as Record<string, unknown>
  const error = Value.Errors(ConfigSchema, withDefaults).First()
  if (error) {
    const name = error.path.replace(/^\//, '')
    const schema = properties[name]
    const explained = schema ? [allowedValues(schema), schema.description].filter(Boolean).join('. ') : ''
    const expected = explained ? `${error.message}: ${explained}` : error.message
    throw new ConfigError(`Invalid environment variable ${name}=${JSON.stringify(env[name] ?? '')}: ${expected}`)
  }
  const raw = withDefaults as RawConfig
  let totpKeys: SecretKey[]
  try { totpKeys = parseSecretKeys(raw.TOTP_ENCRYPTION_KEYS) } catch (err) {
    throw new ConfigError(`Invalid environment variable TOTP_ENCRYPTION_KEYS: ${(err as Error).message}`)
  }
  if (raw.STORAGE === 's3' && !raw.S3_BUCKET) throw new ConfigError('Missing environment variable S3_BUCKET: required when STORAGE=s3')
  if (Boolean(raw.S3_ACCESS_KEY_ID) !== Boolean(raw.S3_SECRET_ACCESS_KEY)) {
    throw new ConfigError('S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY are set together or not at all')
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
    postgres: { url: raw.DATABASE_URL, storeCurrency: raw.STORE_CURRENCY, pgliteDataDir: raw.PGLITE_DATA_DIR, pglitePort: raw.PGLITE_PORT, poolMax: raw.DB_POOL_MAX, migrate: truthy(raw.DB_MIGRATE), statementTimeoutMs: raw.PG_STATEMENT_TIMEOUT_MS, connectTimeoutMs: raw.PG_CONNECT_TIMEOUT_MS,
      replicas: { urls: raw.DATABASE_REPLICA_URLS?.split(',') ?? [], poolMax: raw.DB_REPLICA_POOL_MAX, maxLagMs: raw.DB_REPLICA_MAX_LAG_MS, downSeconds: raw.DB_REPLICA_DOWN_SECONDS } },
    mongo: { timeoutMs: raw.MONGO_TIMEOUT_MS, poolMax: raw.MONGO_POOL_MAX, url: raw.MONGODB_URL, embedded: raw.EMBEDDED_MONGO, ferretdbBin: raw.FERRETDB_BIN, ferretdbDataDir: raw.FERRETDB_DATA_DIR },
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
      images: { concurrency: raw.IMAGE_RESIZE_CONCURRENCY, maxPixels: raw.IMAGE_MAX_PIXELS },
    },
    storage: raw.STORAGE,
    s3: raw.STORAGE === 's3'
      ? {
          bucket: raw.S3_BUCKET!, endpoint: raw.S3_ENDPOINT, region: raw.S3_REGION, prefix: raw.S3_PREFIX,
          forcePathStyle: truthy(raw.S3_FORCE_PATH_STYLE), accessKeyId: raw.S3_ACCESS_KEY_ID, secretAccessKey: raw.S3_SECRET_ACCESS_KEY,
          publicUrl: raw.S3_PUBLIC_URL, partSizeBytes: raw.S3_PART_SIZE_BYTES, queueSize: raw.S3_UPLOAD_QUEUE, signedUrlTtlSeconds: raw.S3_SIGNED_URL_TTL_SECONDS,
        }
      : undefined,
    activityRetentionDays: raw.ACTIVITY_RETENTION_DAYS,
    catalogIo: { dir: raw.CATALOG_FILES_DIR, maxBytes: raw.CATALOG_IMPORT_MAX_BYTES, leaseSeconds: raw.CATALOG_JOB_LEASE_SECONDS, fileRetentionDays: raw.CATALOG_FILE_RETENTION_DAYS },
    privacy: { exportDir: raw.DATA_EXPORT_DIR, exportTtlHours: raw.DATA_EXPORT_TTL_HOURS, linkTtlSeconds: raw.DATA_EXPORT_LINK_TTL_SECONDS, leaseSeconds: raw.DATA_REQUEST_LEASE_SECONDS },
    checkout: {
      shippingFlatMinor: raw.SHIPPING_FLAT_MINOR, shippingFreeOverMinor: raw.SHIPPING_FREE_OVER_MINOR,
      taxRateBps: raw.TAX_RATE_BPS, pricesIncludeTax: truthy(raw.PRICES_INCLUDE_TAX), paymentTimeoutMinutes: raw.ORDER_PAYMENT_TIMEOUT_MINUTES,
      lowStockThreshold: raw.LOW_STOCK_THRESHOLD, returnWindowDays: raw.RETURN_WINDOW_DAYS, orderAccessTtlHours: raw.ORDER_ACCESS_TOKEN_TTL_HOURS, guestMaxUnpaidOrders: raw.GUEST_MAX_UNPAID_ORDERS, guestMaxUnpaidOrdersPerClient: raw.GUEST_MAX_UNPAID_ORDERS_PER_CLIENT,
      concurrency: raw.CHECKOUT_CONCURRENCY, queue: raw.CHECKOUT_QUEUE,
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
