import t from 'tap'
import { DrizzleQueryError } from 'drizzle-orm/errors'
import { failureText, serializeError } from '../../src/log-errors.js'

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

t.test("a background run's last_error says what PostgreSQL answered, and quotes nothing", async (t) => {
  const timeout = Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })
  const wrapped = new DrizzleQueryError('delete from "reviews" where "user_id" = $1', ['4b1e-someone'], timeout)
  t.equal(failureText(wrapped), 'Failed query: delete from "reviews" where "user_id" = $1\nparams: [1 redacted]; cause: canceling statement due to statement timeout')
  const unique = new DrizzleQueryError('insert into "users" ("email") values ($1)', ['x@example.com'], pgFailure('Key (email)=(x@example.com) already exists.'))
  t.notOk(failureText(new Error('export failed', { cause: unique })).includes('x@example.com'))
  t.equal(failureText(new Error('x'.repeat(2000))).length, 1000, 'at most 1,000 characters')
  t.equal(failureText('a string thrown'), 'a string thrown')
})
