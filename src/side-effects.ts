import type { ActivityType } from '../db/models/activity.js'
import type { orders } from '../db/schema/index.js'
import { CATALOG_CACHE, productCache } from './catalog.js'

// The outbox's topics and the payload each carries, in one map, and the events written under
// them, named once. Writers (`emit` in outbox.transaction) and handlers (outbox.on, all in
// plugins/background.ts) are typed by this map, so an event with the wrong payload for its
// topic, or a handler reading a field its topic does not carry, does not compile (see
// test/outbox.test.ts). Payloads are stored as JSON: strings for dates, no class instances.

/** Topic name -> payload. */
export interface OutboxTopics {
  /** Cached reads of a namespace are stale (app.cache.bump). */
  'cache.invalidate': { namespace: string }
  /** One activity log entry; the event's id is the entry's. */
  'activity.record': { type: ActivityType; userId: string | null; ip: string | null; at: string; data: Record<string, unknown> }
  /**
   * A checkout took these lines from the user's cart at this generation (cart service `consume`):
   * all of the lines the cart had at `seen` (its id and version as the checkout read it; absent
   * in events written before it was added).
   */
  'cart.consumed': ({ userId: string } | { owner: string }) & { generation: number; lines: { variantId: string; quantity: number }[]; seen?: CartSeen }
  /** An outbound webhook event, fanned out to its subscribers (routes/webhooks/service.ts `fanOut`). */
  'webhook.event': { type: WebhookEventType; createdAt: string; data: Record<string, unknown> }
  /** The customer's mail about their order (routes/orders/order-mail.ts renders and sends it). */
  'mail.order': { orderId: string; kind: OrderMailKind; refundId?: string }
  /** The admins' mail that these variants fell to the low-stock threshold. */
  'mail.low-stock': { variantIds: string[] }
  /** The admins' mail that a webhook endpoint was disabled (routes/webhooks/service.ts). */
  'mail.webhook-disabled': { endpointId: string }
}
export type OutboxTopic = keyof OutboxTopics
/** An event of one topic (or, by default, of any), its payload the one its topic carries. */
export type OutboxEvent<T extends OutboxTopic = OutboxTopic> = { [K in T]: { topic: K; payload: OutboxTopics[K]; key?: string } }[T]

/** Who asked, for the activity log. */
export interface Actor { userId: string | null; ip: string | null }

const CACHE_STALE = (namespace: string): OutboxEvent<'cache.invalidate'> => ({ topic: 'cache.invalidate', payload: { namespace } })

/**
 * Stock moved for these products: their details are stale; listings only when what they show
 * (in stock, price range) changed, so a sale does not empty the whole catalog cache.
 */
export const STOCK_CHANGED = (productIds: Iterable<string>, listsChanged: boolean): OutboxEvent<'cache.invalidate'>[] => [
  ...[...new Set(productIds)].map((id) => CACHE_STALE(productCache(id))),
  ...(listsChanged ? [CACHE_STALE(CATALOG_CACHE)] : []),
]

export const ACTIVITY = (actor: Actor, type: ActivityType, data: Record<string, unknown>): OutboxEvent<'activity.record'> =>
  ({ topic: 'activity.record', payload: { type, userId: actor.userId, ip: actor.ip, at: new Date().toISOString(), data } })

/** A cart as a checkout read it: its id and version. */
export interface CartSeen { cartId: string; version: number }

/** The outbox key of a user's cart: its events are handled in order. */
export const cartKey = (userId: string) => `cart:user:${userId}`
/** The same for a guest cart, named by its stored owner key (`guest:<sha256 of its token>`). */
export const guestCartKey = (owner: string) => `cart:${owner}`
export const CART_CONSUMED = (userId: string, generation: number, lines: { variantId: string; quantity: number }[], seen?: CartSeen): OutboxEvent<'cart.consumed'> =>
  ({ topic: 'cart.consumed', key: cartKey(userId), payload: { userId, generation, lines, ...(seen ? { seen } : {}) } })
export const GUEST_CART_CONSUMED = (owner: string, generation: number, lines: { variantId: string; quantity: number }[], seen?: CartSeen): OutboxEvent<'cart.consumed'> =>
  ({ topic: 'cart.consumed', key: guestCartKey(owner), payload: { owner, generation, lines, ...(seen ? { seen } : {}) } })

/** What outbound webhook endpoints may subscribe to (routes/webhooks). */
export const WEBHOOK_EVENT_TYPES = ['order.created', 'order.paid', 'order.shipped', 'order.cancelled', 'order.refunded', 'product.updated', 'stock.low', 'customer.erased'] as const
export type WebhookEventType = typeof WEBHOOK_EVENT_TYPES[number]

/**
 * An event for outbound webhooks, written with the change it describes. After the commit its
 * handler (plugins/background.ts) fans it out to one delivery per active endpoint subscribed to
 * its type (`fanOut` in routes/webhooks/service.ts), which the `webhooks` queue sends; the outbox
 * event's id is the webhook event's id. Not keyed: a slow fan-out never holds up mail.
 */
export const WEBHOOK = (type: WebhookEventType, data: Record<string, unknown>): OutboxEvent<'webhook.event'> =>
  ({ topic: 'webhook.event', payload: { type, createdAt: new Date().toISOString(), data } })

/** An order event: the order as it stands after the change, plus what the event adds (a refund). */
export const ORDER_WEBHOOK = (type: Extract<WebhookEventType, `order.${string}`>, order: typeof orders.$inferSelect, extra: Record<string, unknown> = {}): OutboxEvent<'webhook.event'> => WEBHOOK(type, {
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
/** `link`: a guest asked for their order's link again (lookup by number and email). */
export type OrderMailKind = 'placed' | 'paid' | 'shipped' | 'cancelled' | 'refunded' | 'link'
export const ORDER_MAIL = (orderId: string, kind: OrderMailKind, extra: { refundId?: string } = {}): OutboxEvent<'mail.order'> =>
  ({ topic: 'mail.order', key: `order:${orderId}`, payload: { orderId, kind, ...extra } })
export const LOW_STOCK_MAIL = (variantIds: string[]): OutboxEvent<'mail.low-stock'> => ({ topic: 'mail.low-stock', payload: { variantIds } })
