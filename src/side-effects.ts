import type { OutboxEvent } from './outbox.js'
import type { ActivityType } from '../db/models/activity.js'
import { CATALOG_CACHE, productCache } from '../routes/categories/service.js'

// The outbox events the money path writes, named once. Handlers: plugins/outbox.ts (cache,
// activity) and routes/orders/index.ts (cart).

/** Who asked, for the activity log. */
export interface Actor { userId: string | null; ip: string | null }

export const CATALOG_CHANGED = (namespace: string): OutboxEvent => ({ topic: 'cache.invalidate', payload: { namespace } })

/**
 * Stock moved for these products: their details are stale; listings only when what they show
 * (in stock, price range) changed, so a sale does not empty the whole catalog cache.
 */
export const STOCK_CHANGED = (productIds: Iterable<string>, listsChanged: boolean): OutboxEvent[] => [
  ...[...new Set(productIds)].map((id) => CATALOG_CHANGED(productCache(id))),
  ...(listsChanged ? [CATALOG_CHANGED(CATALOG_CACHE)] : []),
]

export const ACTIVITY = (actor: Actor, type: ActivityType, data: Record<string, unknown>): OutboxEvent =>
  ({ topic: 'activity.record', payload: { type, userId: actor.userId, ip: actor.ip, at: new Date().toISOString(), data } })

export const CART_CONSUMED = (userId: string, generation: number, lines: { variantId: string; quantity: number }[]): OutboxEvent =>
  ({ topic: 'cart.consumed', key: `cart:user:${userId}`, payload: { userId, generation, lines } })
export const cartKey = (userId: string) => `cart:user:${userId}`
