import t from 'tap'
import { DrizzleQueryError } from 'drizzle-orm/errors'
import { serializeError } from '../../src/log-errors.js'

// The logs' error serializer: a database error's quoted values never reach a log line.

const pgFailure = (detail: string) => Object.assign(new Error('duplicate key value violates unique constraint "users_email_key"'), { code: '23505', constraint: 'users_email_key', detail })

t.test('drizzle query errors lose their parameters, PostgreSQL errors their detail', async (t) => {
  const cause = pgFailure('Key (email)=(someone@example.com) already exists.')
  const wrapped = new DrizzleQueryError('update "users" set "email" = $1 where "id" = $2', ['someone@example.com', '6f1c...'], cause)
  const out = serializeError(wrapped)
  const text = JSON.stringify(out)
  t.notOk(text.includes('someone@example.com'), 'no parameter, no quoted key')
  t.equal(out.params, '[2 redacted]')
  t.equal(out.query, 'update "users" set "email" = $1 where "id" = $2')
  t.match(out.message, /^Failed query: update "users".*\nparams: \[2 redacted\]/s)
  t.same(out.dbError, { code: '23505', constraint: 'users_email_key' })

  const direct = serializeError(pgFailure('Failing row contains (1, x@example.com, $argon2id$v=19$...).'))
  t.equal(direct.detail, '[redacted]')
  t.equal(direct.code, '23505', 'its own code stays')
  t.notOk(JSON.stringify(direct).includes('argon2id'))

  // A wrapper that repeats its cause's message is cleaned too.
  const outer = new Error(`checkout failed: ${wrapped.message}`, { cause: wrapped })
  t.notOk(JSON.stringify(serializeError(outer)).includes('someone@example.com'))
})

t.test('other errors are serialized as pino does', async (t) => {
  const plain = Object.assign(new Error('boom'), { statusCode: 500 })
  t.match(serializeError(plain), { type: 'Error', message: 'boom', statusCode: 500 })
  t.notOk('dbError' in serializeError(plain))
})
