import { Type } from '@sinclair/typebox'
import { DateTimeInput, StringEnum } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'
import { ACTIVITY_TYPES } from '../../db/models/activity.js'

export const ActivityEntry = Type.Object({
  id: Type.String(),
  type: StringEnum(ACTIVITY_TYPES),
  userId: Type.Union([Type.Null(), Type.String()]),
  at: Type.String({ format: 'date-time' }),
  ip: Type.Union([Type.Null(), Type.String()]),
  data: Type.Record(Type.String(), Type.Unknown()),
}, { $id: 'ActivityEntry', additionalProperties: false })
export const ActivityPage = pageOf(Type.Ref(ActivityEntry), 'ActivityPage')
export const ActivityQuery = Type.Object({
  ...PageQuery,
  userId: Type.Optional(Type.String({ format: 'uuid' })),
  type: Type.Optional(StringEnum(ACTIVITY_TYPES)),
  from: Type.Optional(DateTimeInput()),
  to: Type.Optional(DateTimeInput()),
}, { additionalProperties: false })

export const schemas = [ActivityEntry, ActivityPage]
