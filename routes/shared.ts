import type { FastifyReply, FastifyRequest } from 'fastify'
import { viewerRole } from '../plugins/auth.js'
import type { StoredResponse } from '../src/idempotency.js'

// Route helpers several domains share, so no domain's route file imports another's.

/** Sends a (possibly replayed) idempotent response. */
export function sendStored(reply: FastifyReply, stored: StoredResponse & { replayed: boolean }) {
  if (stored.replayed) reply.header('idempotent-replayed', 'true')
  return reply.code(stored.status).send(stored.body)
}

/** Who is asking, as the services' visibility rules take it (signed-in routes). */
export const viewerOf = (req: FastifyRequest) => ({ userId: req.user.sub, isAdmin: viewerRole(req) === 'admin' })
