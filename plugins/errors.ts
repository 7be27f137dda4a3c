import fp from 'fastify-plugin'
import FindMyWay from 'find-my-way'
import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { pgError } from '../db/client.js'
import { requestTraceId } from '../src/tracing.js'
import { AppError, PROBLEM_CONTENT_TYPE, Problem, ValidationIssue, type ProblemBody } from '../src/errors.js'

// Every error leaves as application/problem+json: domain errors, validation failures, framework
// errors (404, 413, 415, 429) and crashes. A 5xx never carries the internal message.

// A store that is down is the server's trouble, not the client's: 503, so clients retry.
const STORE_ERRORS = new Set(['MongoNetworkError', 'MongoNetworkTimeoutError', 'MongoServerSelectionError', 'MongoNotConnectedError', 'MongoTopologyClosedError', 'MongoOperationTimeoutError', 'MongoWaitQueueTimeoutError'])
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'])
// PostgreSQL: a statement cancelled by statement_timeout, a transaction ended by the idle timeout,
// the server shutting down or refusing connections, a lost connection (class 08).
const PG_UNAVAILABLE = /^(57014|25P03|57P0[123]|53300|08...)$/
function isStoreUnavailable(error: Error): boolean {
  // drizzle wraps the driver's error in `cause`
  for (let e: Error | undefined = error; e; e = e.cause instanceof Error ? e.cause : undefined) {
    const code = String((e as { code?: unknown }).code ?? '')
    if (STORE_ERRORS.has(e.name) || NETWORK_CODES.has(code) || PG_UNAVAILABLE.test(code)) return true
    // ioredis: a command that timed out (hung server) or could not be queued (no connection);
    // node-postgres: no answer within query_timeout, a connection lost or not opened in time
    if (/before initial connection|Connection is closed|connection timeout|Command timed out|Stream isn't writeable|max retries per request|Query read timeout|Connection terminated|timeout exceeded when trying to connect|not queryable/i.test(e.message)) return true
  }
  return false
}

// PostgreSQL data exceptions that only a client's value can cause: NUL or unencodable text,
// a number past the column's range, an impossible date. Found by schemathesis; answered 400.
const BAD_VALUE_CODES = new Set(['22P05', '22021', '22003', '22007', '22008'])
const isBadValue = (error: unknown) => BAD_VALUE_CODES.has(pgError(error)?.code ?? '')

function problemFor(error: FastifyError | AppError | Error, req: FastifyRequest): ProblemBody {
  if (error instanceof AppError) {
    return { type: error.type, title: error.title, status: error.statusCode, detail: error.message, instance: req.id, ...(error.issues ? { errors: error.issues } : {}) }
  }
  const fe = error as FastifyError
  if (fe.validation) {
    const part = fe.validationContext ?? 'request'
    const errors = fe.validation.map((issue) => {
      const missing = issue.keyword === 'required' ? `/${String(issue.params.missingProperty)}` : ''
      const extra = issue.keyword === 'additionalProperties' ? `/${String(issue.params.additionalProperty)}` : ''
      const message = issue.keyword === 'additionalProperties' ? 'is not allowed'
        : issue.keyword === 'enum' ? `must be one of: ${(issue.params.allowedValues as unknown[]).join(', ')}`
        : issue.message ?? 'is invalid'
      return { path: `/${part}${issue.instancePath}${missing}${extra}`, message }
    })
    return {
      type: 'urn:problem-type:validation',
      title: 'Bad Request',
      status: 400,
      detail: errors.map((e) => `${e.path} ${e.message}`).join('; '),
      instance: req.id,
      errors,
    }
  }
  if (isBadValue(error)) {
    return { type: 'urn:problem-type:invalid-value', title: 'Bad Request', status: 400, detail: 'A value in the request cannot be stored (text with NUL characters, a number out of range, or an impossible date)', instance: req.id }
  }
  if (isStoreUnavailable(error)) {
    return { type: 'urn:problem-type:store-unavailable', title: 'Service Unavailable', status: 503, detail: 'A data store is not reachable; retry shortly', instance: req.id }
  }
  const status = typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 600 ? fe.statusCode : 500
  const detail = status < 500 ? error.message : 'An unexpected error occurred; it has been logged'
  return { type: 'about:blank', title: STATUS_CODES[status] ?? 'Error', status, detail, instance: req.id }
}

export function sendProblem(reply: FastifyReply, body: ProblemBody) {
  return reply.code(body.status).type(PROBLEM_CONTENT_TYPE).send(body)
}

/** The longest path segment the router accepts (longer: 414). */
export const MAX_PARAM_LENGTH = 200

/** Errors the router answers before any hook runs (a bad URL, a path segment over MAX_PARAM_LENGTH). */
export function frameworkProblem(error: FastifyError, req: FastifyRequest, reply: FastifyReply) {
  const status = error.statusCode ?? 400
  return sendProblem(reply, { type: 'about:blank', title: STATUS_CODES[status] ?? 'Bad Request', status, detail: error.message, instance: req.id })
}

export default fp(async (app) => {
  app.addSchema(ValidationIssue)
  app.addSchema(Problem)

  app.setErrorHandler((error: FastifyError, req, reply) => {
    const body = problemFor(error, req)
    // The trace id leads the operator from the client's report to the trace of the failure.
    const traceId = body.status >= 500 ? requestTraceId(req.log) : undefined
    if (traceId) body.traceId = traceId
    if (body.status >= 500) req.log.error({ err: error }, 'request failed')
    else req.log.info({ status: body.status, detail: body.detail }, 'request rejected')
    if (error instanceof AppError && error.retryAfterSeconds) reply.header('retry-after', error.retryAfterSeconds)
    return sendProblem(reply, body)
  })

  // Unknown routes count against the rate limit too, so scanning is throttled like any request.
  // Which methods each path answers, matched like the real router, so a known path asked with
  // another method (TRACE, QUERY, a DELETE of a list) is 405 with Allow, not 404.
  const paths = FindMyWay({ ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH })
  const methodsOf = new Map<string, Set<string>>()
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (!methodsOf.has(route.url)) {
        methodsOf.set(route.url, new Set())
        paths.on('GET', route.url, () => {}, { url: route.url })
      }
      methodsOf.get(route.url)!.add(method)
    }
  })
  app.setNotFoundHandler({ preHandler: app.rateLimit() }, (req, reply) => {
    const path = req.url.split('?')[0]!
    const known = paths.find('GET', path)
    const allowed = known ? methodsOf.get((known.store as { url: string }).url) : undefined
    if (allowed && !allowed.has(req.method)) {
      reply.header('allow', [...allowed].join(', '))
      return sendProblem(reply, { type: 'about:blank', title: 'Method Not Allowed', status: 405, detail: `${path} answers ${[...allowed].join(', ')}, not ${req.method}`, instance: req.id })
    }
    return sendProblem(reply, { type: 'about:blank', title: 'Not Found', status: 404, detail: `Route ${req.method} ${path} not found`, instance: req.id })
  })
}, { name: 'errors', dependencies: ['security'] })
