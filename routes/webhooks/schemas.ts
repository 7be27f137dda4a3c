import { Type } from '@sinclair/typebox'
import { StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'
import { WEBHOOK_EVENT_TYPES } from '../../src/side-effects.js'

const Timestamp = Type.Union([Type.Null(), Type.String({ format: 'date-time' })])
const NullableText = Type.Union([Type.Null(), Type.String()])

export const WebhookEventType = StringEnum(WEBHOOK_EVENT_TYPES, { $id: 'WebhookEventType', description: 'an event an endpoint may subscribe to' })

const endpointInput = {
  url: Type.String({ minLength: 1, maxLength: 2048, description: 'http(s) URL that receives the POSTs; https on a public address in production unless WEBHOOK_ALLOW_PRIVATE_URLS' }),
  events: Type.Array(Type.Ref(WebhookEventType), { minItems: 1, maxItems: WEBHOOK_EVENT_TYPES.length, uniqueItems: true }),
  description: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 500 })])),
  isActive: Type.Optional(Type.Boolean({ description: 'false pauses deliveries; true re-enables a disabled endpoint and clears its failure count' })),
}
export const WebhookEndpointCreate = Type.Object(endpointInput, { $id: 'WebhookEndpointCreate', additionalProperties: false })
export const WebhookEndpointUpdate = Type.Partial(Type.Object(endpointInput), { $id: 'WebhookEndpointUpdate', additionalProperties: false, minProperties: 1 })

const endpointFields = {
  id: Type.String({ format: 'uuid' }),
  url: Type.String(),
  description: NullableText,
  events: Type.Array(Type.Ref(WebhookEventType)),
  isActive: Type.Boolean(),
  consecutiveFailures: Type.Integer({ description: 'deliveries in a row that ran out of attempts' }),
  disabledAt: Timestamp,
  disabledReason: NullableText,
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
}
export const WebhookEndpoint = Type.Object(endpointFields, { $id: 'WebhookEndpoint', additionalProperties: false })
export const WebhookEndpointWithSecret = Type.Object({
  ...endpointFields,
  secret: Type.String({ description: 'the signing secret (HMAC-SHA256 key), shown only now; store it with the receiver' }),
}, { $id: 'WebhookEndpointWithSecret', additionalProperties: false })
export const WebhookEndpointPage = pageOf(Type.Ref(WebhookEndpoint), 'WebhookEndpointPage')

export const WebhookAttempt = Type.Object({
  id: Type.String({ format: 'uuid' }),
  attemptedAt: Type.String({ format: 'date-time' }),
  succeeded: Type.Boolean(),
  statusCode: Type.Union([Type.Null(), Type.Integer()], { description: 'null when no answer came (timeout, refused connection)' }),
  responseExcerpt: Type.Union([Type.Null(), Type.String()], { description: 'the first KiB of the answer' }),
  error: NullableText,
  durationMs: Type.Integer(),
}, { $id: 'WebhookAttempt', additionalProperties: false })

export const WebhookDelivery = Type.Object({
  id: Type.String({ format: 'uuid' }),
  eventId: Type.String({ format: 'uuid', description: 'the event id (Shop-Event-Id), the same for every endpoint and every attempt' }),
  endpointId: Type.String({ format: 'uuid' }),
  eventType: Type.String(),
  status: StringEnum(['pending', 'succeeded', 'failed']),
  nextAttemptAt: Type.Union([Type.Null(), Type.String({ format: 'date-time' })], { description: 'when it is tried next; null unless pending' }),
  lastError: NullableText,
  succeededAt: Timestamp,
  createdAt: Type.String({ format: 'date-time' }),
  body: Type.String({ description: 'the exact JSON body sent and signed' }),
  attempts: Type.Array(Type.Ref(WebhookAttempt), { description: 'every attempt, oldest first' }),
}, { $id: 'WebhookDelivery', additionalProperties: false })
export const WebhookDeliveryPage = pageOf(Type.Ref(WebhookDelivery), 'WebhookDeliveryPage')

export const EndpointParams = Type.Object({ endpointId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const DeliveryParams = Type.Object({ deliveryId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const EndpointListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })
export const DeliveryListQuery = Type.Object({ ...PageQuery, status: Type.Optional(StringEnum(['pending', 'succeeded', 'failed'])) }, { additionalProperties: false })

export const schemas = [WebhookEventType, WebhookEndpointCreate, WebhookEndpointUpdate, WebhookEndpoint, WebhookEndpointWithSecret, WebhookEndpointPage, WebhookAttempt, WebhookDelivery, WebhookDeliveryPage]
