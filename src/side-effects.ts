import type { OutboxEvent } from './outbox.js'
import type { ActivityType } from '../db/models/activity.js'

// The outbox events the money path writes, named once. Handlers: plugins/outbox.ts (cache,
// activity) and routes/orders/index.ts (cart).

/** Who asked, for the activity log. */
export interface Actor { userId: string | null; ip: string | null }

export const CATALOG_CHANGED = (namespace: string): OutboxEvent => ({ topic: 'cache.invalidate', payload: { namespace } })

export const ACTIVITY = (actor: Actor, type: ActivityType, data: Record<string, unknown>): OutboxEvent =>
  ({ topic: 'activity.record', payload: { type, userId: actor.userId, ip: actor.ip, at: new Date().toISOString(), data } })

export const CART_CONSUMED = (userId: string, generation: number, lines: { variantId: string; quantity: number }[]): OutboxEvent =>
  ({ topic: 'cart.consumed', key: `cart:user:${userId}`, payload: { userId, generation, lines } })
export const cartKey = (userId: string) => `cart:user:${userId}`
