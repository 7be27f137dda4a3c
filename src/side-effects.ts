import type { OutboxEvent } from './outbox.js'
import type { ActivityType } from '../db/models/activity.js'
import { CATALOG_CACHE, productCache } from '../routes/categories/service.js'

// The outbox events the money path writes, named once. Handlers: plugins/outbox.ts (cache,
// activity) and plugins/money.ts (cart, order mail).

/** Who asked, for the activity log. */
export interface Actor { userId: string | null; ip: string | null }

const CACHE_STALE = (namespace: string): OutboxEvent => ({ topic: 'cache.invalidate', payload: { namespace } })

/**
 * Stock moved for these products: their details are stale; listings only when what they show
 * (in stock, price range) changed, so a sale does not empty the whole catalog cache.
 */
export const STOCK_CHANGED = (productIds: Iterable<string>, listsChanged: boolean): OutboxEvent[] => [
  ...[...new Set(productIds)].map((id) => CACHE_STALE(productCache(id))),
  ...(listsChanged ? [CACHE_STALE(CATALOG_CACHE)] : []),
]

export const ACTIVITY = (actor: Actor, type: ActivityType, data: Record<string, unknown>): OutboxEvent =>
  ({ topic: 'activity.record', payload: { type, userId: actor.userId, ip: actor.ip, at: new Date().toISOString(), data } })

/** The outbox key of a user's cart: its events are handled in order. */
export const cartKey = (userId: string) => `cart:user:${userId}`
export const CART_CONSUMED = (userId: string, generation: number, lines: { variantId: string; quantity: number }[]): OutboxEvent =>
  ({ topic: 'cart.consumed', key: cartKey(userId), payload: { userId, generation, lines } })
