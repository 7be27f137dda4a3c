import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { PROBLEM_CONTENT_TYPE } from '../../src/errors.js'
import { Liveness, NotReady, Readiness } from './schemas.js'

const health: FastifyPluginAsyncTypebox = async (app) => {
  const service = app.services.health

  // Probes are polled by orchestrators from one address; they are exempt from the rate limit.
  app.get('/health', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'], operationId: 'getHealth', summary: 'Liveness: the process is up',
      response: { 200: Type.Ref(Liveness) },
    },
  }, async () => ({ status: 'ok' as const, uptimeSeconds: process.uptime() }))

  app.get('/ready', {
    config: { rateLimit: false },
    schema: {
      tags: ['health'], operationId: 'getReadiness', summary: 'Readiness: every store answers',
      description: 'Pings PostgreSQL, MongoDB and Redis (on a Redis Cluster, every master, and the cluster state). 503 names each store that did not answer; a Redis Cluster that serves every slot but has lost a node or a replica is `degraded`, still ready.',
      response: { 200: Type.Ref(Readiness), 503: Type.Ref(NotReady) },
    },
  }, async (req, reply) => {
    const report = await service.readiness()
    if (report.ready) return { status: 'ready' as const, checks: report.checks }
    req.log.warn({ failures: report.failures }, 'not ready')
    return reply.code(503).type(PROBLEM_CONTENT_TYPE).send({
      type: 'urn:problem-type:not-ready', title: 'Service Unavailable', status: 503 as const,
      detail: `Unavailable: ${report.failures.join(', ')}`, instance: req.id, checks: report.checks,
    })
  })
}
export default health
