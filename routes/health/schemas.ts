import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'

export const StoreState = StringEnum(['up', 'down', 'degraded'], { $id: 'StoreState', description: 'degraded: serving, but short of a node (a Redis Cluster with a failed node or a master without a replica)' })

export const Liveness = Type.Object({
  status: Type.Literal('ok'),
  uptimeSeconds: Type.Number({ minimum: 0 }),
}, { $id: 'Liveness', additionalProperties: false })

const Checks = Type.Object({
  postgres: Type.Ref(StoreState),
  mongo: Type.Ref(StoreState),
  redis: Type.Ref(StoreState),
}, { additionalProperties: false })

export const Readiness = Type.Object({
  status: Type.Literal('ready'),
  checks: Checks,
}, { $id: 'Readiness', additionalProperties: false })

/** 503 answer of /ready: a problem document that also carries each store's state. */
export const NotReady = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Literal(503),
  detail: Type.String(),
  instance: Type.Optional(Type.String()),
  checks: Checks,
}, { $id: 'NotReady', additionalProperties: false })

export const schemas = [StoreState, Liveness, Readiness, NotReady]
