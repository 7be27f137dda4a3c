import type { OutboxEvent } from './outbox.js'
import type { ActivityType } from '../db/models/activity.js'
import type { orders } from '../db/schema/index.js'
import { CATALOG_CACHE, productCache } from './catalog.js'

// The outbox events the money path writes, named once. Their handlers are in
// plugins/background.ts (the order mail's rendering in routes/orders/order-mail.ts).

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

/** What outbound webhook endpoints may subscribe to (routes/webhooks). */
export const WEBHOOK_EVENT_TYPES = ['order.created', 'order.paid', 'order.shipped', 'order.cancelled', 'order.refunded', 'product.updated', 'stock.low'] as const
export type WebhookEventType = typeof WEBHOOK_EVENT_TYPES[number]

/**
 * An event for outbound webhooks, written with the change it describes. After the commit it fans
 * out to one delivery per active endpoint subscribed to its type (plugins/webhooks.ts); the
 * outbox event's id is the webhook event's id. Not keyed: a slow fan-out never holds up mail.
 */
export const WEBHOOK = (type: WebhookEventType, data: Record<string, unknown>): OutboxEvent =>
  ({ topic: 'webhook.event', payload: { type, createdAt: new Date().toISOString(), data } })

/** An order event: the order as it stands after the change, plus what the event adds (a refund). */
export const ORDER_WEBHOOK = (type: Extract<WebhookEventType, `order.${string}`>, order: typeof orders.$inferSelect, extra: Record<string, unknown> = {}): OutboxEvent => WEBHOOK(type, {
  order: {
    id: order.id, number: order.number, status: order.status, userId: order.userId, currency: order.currency,
    subtotalMinor: order.subtotalMinor, discountMinor: order.discountMinor, shippingMinor: order.shippingMinor, taxMinor: order.taxMinor,
    totalMinor: order.totalMinor, refundedMinor: order.refundedMinor, couponCode: order.couponCode,
    shippingCarrier: order.shippingCarrier, trackingNumber: order.trackingNumber,
    createdAt: order.createdAt.toISOString(), paidAt: order.paidAt?.toISOString() ?? null, cancelledAt: order.cancelledAt?.toISOString() ?? null,
  },
  ...extra,
})

/** Order notifications (routes/orders/order-mail.ts renders and sends them). */
export type OrderMailKind = 'placed' | 'paid' | 'shipped' | 'cancelled' | 'refunded'
export const ORDER_MAIL = (orderId: string, kind: OrderMailKind, extra: { refundId?: string } = {}): OutboxEvent =>
  ({ topic: 'mail.order', key: `order:${orderId}`, payload: { orderId, kind, ...extra } })
export const LOW_STOCK_MAIL = (variantIds: string[]): OutboxEvent => ({ topic: 'mail.low-stock', payload: { variantIds } })
