import t from 'tap'
import { sql } from 'drizzle-orm'
import { loadConfig } from '../src/config.js'
import { loggerOptions } from '../src/app.js'
import { buildTestApp, captureLogs, createTestDatabase, testEnv } from './helpers.js'

// A 5xx is logged with its error, and drizzle's error quotes the statement's parameters in its
// message (and keeps them in `params`); PostgreSQL's `detail` quotes the failing row. Those are
// customers' addresses, password hashes, token hashes: the log keeps the statement and the error
// code for the operator, never the values.

t.test('a failed statement is logged with its SQL and error code, without its parameters or the row', async (t) => {
  const logs = captureLogs()
  const database = await createTestDatabase(t)
  // The logger the app runs with in production, writing here.
  const production = loggerOptions(loadConfig(testEnv(database, { LOG_LEVEL: 'info' }))) as object
  const app = await buildTestApp(t, { DATABASE_URL: database.url }, { logger: { ...production, level: 'info', stream: logs.stream } })
  // A constraint no new account can meet: the insert fails with the row in the error's detail.
  await app.db.execute(sql`alter table users add constraint logs_test_refuses_all check (false) not valid`)

  const email = 'leaky-param@example.com'
  const res = await app.inject({ method: 'POST', url: '/auth/register', payload: { email, name: 'Private Person', password: 'a password of mine' } })
  t.equal(res.statusCode, 500)

  const failed = (logs.lines as unknown as { msg: string; err?: { message: string; stack: string; params?: unknown; query?: string; code?: string } }[])
    .find((line) => line.msg === 'request failed')
  t.ok(failed?.err, 'the failure is logged with its error')
  const all = logs.lines.map((line) => JSON.stringify(line)).join('\n')
  for (const secret of [email, 'Private Person', '$argon2id$']) t.notOk(all.includes(secret), `no log line holds ${secret}`)
  t.match(failed?.err?.query, /insert into "users"/, 'the statement is kept')
  t.match(failed?.err?.message, /params: \[\d+ redacted\]/, 'the message says parameters were there')
  t.notOk(Array.isArray(failed?.err?.params), 'no parameter array')
  t.match(failed?.err?.stack, /Failed query/, 'the stack is kept')
  t.match(failed?.err, { dbError: { code: '23514', constraint: 'logs_test_refuses_all' } }, 'the database error code and constraint are kept')
})
