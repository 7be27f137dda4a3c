import { Schema, type Connection, type Model } from 'mongoose'
import { dayOf } from '../../src/mongo-retention.js'

export const ACTIVITY_TYPES = ['sign_in', 'sign_out', 'product_view', 'cart_change', 'checkout', 'payment', 'order_status_change', 'admin_action'] as const
export type ActivityType = (typeof ACTIVITY_TYPES)[number]
/** `day` is the UTC date of `at` (YYYY-MM-DD): retention deletes whole days by equality on it (dayRetention). Entries written before it existed lack it. */
export interface ActivityDoc { _id: string; type: ActivityType; userId: string | null; at: Date; day?: string; ip: string | null; data: Record<string, unknown> }

/** A new entry, with the day it belongs to. */
export const activityEntry = (entry: Omit<ActivityDoc, 'day'>): ActivityDoc => ({ ...entry, day: dayOf(entry.at) })

const ActivitySchema = new Schema({
  _id: { type: String, required: true },
  type: { type: String, enum: ACTIVITY_TYPES, required: true },
  userId: { type: String, default: null },
  at: { type: Date, required: true },
  day: { type: String },
  ip: { type: String, default: null },
  data: { type: Schema.Types.Mixed, default: {} },
}, { collection: 'activity_logs', versionKey: false, minimize: false })
ActivitySchema.index({ at: -1, _id: -1 })
ActivitySchema.index({ userId: 1, at: -1 })
ActivitySchema.index({ type: 1, at: -1 })
// Retention's equality deletes (src/mongo-retention.ts dayRetention) on a MongoDB that uses indexes.
ActivitySchema.index({ day: 1 })

export function activityModel(connection: Connection): Model<ActivityDoc> {
  return (connection.models.Activity as Model<ActivityDoc> | undefined) ?? connection.model<ActivityDoc>('Activity', ActivitySchema)
}
