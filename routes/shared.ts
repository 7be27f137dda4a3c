import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import { viewerRole } from '../plugins/auth.js'
import type { StoredResponse } from '../src/idempotency.js'
import { IDEMPOTENCY_KEY_PATTERN } from '../src/schema-types.js'
import type { Viewer } from '../src/viewer.js'

// Route helpers several domains share, so no domain's route file imports another's.

/** Sends a (possibly replayed) idempotent response. */
export function sendStored(reply: FastifyReply, stored: StoredResponse & { replayed: boolean }) {
  if (stored.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(stored.status).send(stored.body)
}

/** Who is asking, as the services' visibility rules take it (signed-in routes). */
export const viewerOf = (req: FastifyRequest): Viewer => ({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' })

/** The Idempotency-Key header of checkout, payment creation and refunds. */
export const IdempotencyHeader = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 8, maxLength: 255, pattern: IDEMPOTENCY_KEY_PATTERN, description: 'retrying with the same key returns the first result (8-255 letters, digits or ._:-; a UUID will do)' })),
})
