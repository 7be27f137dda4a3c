import { randomBytes } from 'node:crypto'
import { composeAppEnv } from './compose.js'

// Prints the compose file's app environment as an env file, for test/container.sh: the secrets
// compose requires get random values, and KEY=VALUE arguments override (the stores' addresses).
const overrides = Object.fromEntries(process.argv.slice(2).map((arg) => [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]))
const secrets: Record<string, string> = {
  JWT_SECRET: randomBytes(32).toString('hex'),
  PAYMENT_WEBHOOK_SECRET: randomBytes(24).toString('hex'),
  TOTP_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
  WEBHOOK_SECRETS_KEY: randomBytes(32).toString('hex'),
  S3_SECRET_ACCESS_KEY: randomBytes(24).toString('hex'),
  // Nothing listens there: mail is sent in the background and a failure is only logged.
  SMTP_URL: 'smtp://127.0.0.1:2525',
  // A demo shop: the container check pays with the test provider.
  PAYMENT_PROVIDERS: 'test',
  ALLOW_TEST_PAYMENTS: 'true',
}
const { env } = composeAppEnv(secrets)
for (const [name, value] of Object.entries({ ...env, ...overrides })) process.stdout.write(`${name}=${value}\n`)
