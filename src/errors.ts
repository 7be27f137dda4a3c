import { Type, type Static } from '@sinclair/typebox'

// The error contract (RFC 9457 problem details) and the domain errors services throw.
// plugins/errors.ts turns any thrown error into this shape.

export const ValidationIssue = Type.Object({
  path: Type.String({ description: 'JSON pointer into the request part, e.g. /body/email' }),
  message: Type.String(),
}, { $id: 'ValidationIssue', additionalProperties: false })

export const Problem = Type.Object({
  type: Type.String({ description: 'URI identifying the problem type; about:blank for plain HTTP errors' }),
  title: Type.String(),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String({ description: 'the request id' })),
  errors: Type.Optional(Type.Array(Type.Ref(ValidationIssue))),
  traceId: Type.Optional(Type.String({ description: 'OpenTelemetry trace id of a 5xx, when tracing is on' })),
}, { $id: 'Problem', additionalProperties: false, description: 'RFC 9457 problem details' })
export type ProblemBody = Static<typeof Problem>

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8'

/** Base of every error a service may throw on purpose; `slug` names the problem type. */
export class AppError extends Error {
  override name = 'AppError'
  /** Per-item details, answered as the problem's `errors` (e.g. each cart line that failed). */
  issues?: { path: string; message: string }[]
  /** Answered as Retry-After when set (429, 503). */
  retryAfterSeconds?: number
  constructor(
    readonly statusCode: number,
    readonly slug: string,
    readonly title: string,
    detail: string,
  ) {
    super(detail)
  }
  get type() { return `urn:problem-type:${this.slug}` }
}

export class BadRequest extends AppError {
  constructor(detail: string, slug = 'bad-request') { super(400, slug, 'Bad Request', detail) }
}
export class Unauthorized extends AppError {
  constructor(detail = 'Authentication is required', slug = 'unauthorized') { super(401, slug, 'Unauthorized', detail) }
}
export class Forbidden extends AppError {
  constructor(detail = 'You are not allowed to do this', slug = 'forbidden') { super(403, slug, 'Forbidden', detail) }
}
export class NotFound extends AppError {
  constructor(what: string, id?: string) {
    super(404, 'not-found', 'Not Found', id === undefined ? `${what} not found` : `${what} ${id} not found`)
  }
}
export class Conflict extends AppError {
  constructor(detail: string, slug = 'conflict') { super(409, slug, 'Conflict', detail) }
}
export class ContentTooLarge extends AppError {
  constructor(detail: string, slug = 'content-too-large') { super(413, slug, 'Content Too Large', detail) }
}
export class Unprocessable extends AppError {
  constructor(detail: string, slug = 'unprocessable') { super(422, slug, 'Unprocessable Content', detail) }
}
export class TooManyRequests extends AppError {
  constructor(detail: string, retryAfterSeconds?: number) {
    super(429, 'rate-limited', 'Too Many Requests', detail)
    this.retryAfterSeconds = retryAfterSeconds
  }
}
export class ServiceUnavailable extends AppError {
  constructor(detail: string, slug = 'unavailable') { super(503, slug, 'Service Unavailable', detail) }
}
/** Admission control shed the request (src/gate.ts): 503 `overloaded`, worth retrying in a second. */
export class Overloaded extends ServiceUnavailable {
  constructor(detail: string) {
    super(detail, 'overloaded')
    this.retryAfterSeconds = 1
  }
}

/** A payment provider refused or failed a call; what we recorded stays pending and is reconciled. */
export class ProviderFailure extends AppError {
  constructor(detail: string, slug = 'payment-provider-error') { super(502, slug, 'Bad Gateway', detail) }
}

/** The response schema of every error status in route definitions. */
export const ProblemRef = Type.Ref(Problem)
