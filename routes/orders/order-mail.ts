import { readFileSync } from 'node:fs'
import { and, eq, inArray, sql } from 'drizzle-orm'
import Mustache from 'mustache'
import { orderItems, orders, productVariants, products, refunds, users } from '../../db/schema/index.js'
import { prepareOnce, type Db } from '../../db/client.js'
import type { OrderMailKind, OutboxTopics } from '../../src/side-effects.js'
import type { OutboxEventRef } from '../../src/outbox.js'
import type { MailSender } from '../../src/sent-mail.js'

// Order notifications. Each is an outbox event written in the transaction that changed the
// order (src/side-effects.ts), so a mail is never lost when SMTP is down: the drain job retries
// it. Its Message-ID is the event's id, so the one case that can repeat it (the process dying
// after the SMTP server accepted it and before the event was marked done) repeats the same
// message, which mail clients show once. Templates are files beside this one (text and HTML).
// A guest order's mail goes to its contact email; its placed mail and the lookup's link mail
// carry a link with a fresh order access token (minted as the mail is sent, so no secret waits
// in the outbox; a re-sent mail carries another token for the same order).

const SUBJECTS: Record<OrderMailKind | 'low-stock', string> = {
  placed: 'Your order {{number}}',
  paid: 'Payment received for order {{number}}',
  shipped: 'Your order {{number}} has shipped',
  cancelled: 'Your order {{number}} is cancelled',
  refunded: 'Refund for order {{number}}',
  link: 'The link to your order {{number}}',
  'low-stock': 'Low stock: {{count}} variant(s)',
}


const templates = new Map<string, string>()
function template(name: string) {
  let text = templates.get(name)
  if (text === undefined) {
    text = readFileSync(new URL(`./mail/${name}`, import.meta.url), 'utf8')
    templates.set(name, text)
  }
  return text
}

function render(kind: OrderMailKind | 'low-stock', view: Record<string, unknown>) {
  return {
    subject: Mustache.render(SUBJECTS[kind], view, {}, { escape: (s: string) => s }),
    // Plain text is not HTML: no escaping there; the HTML part escapes every value.
    text: Mustache.render(template(`${kind}.txt`), view, {}, { escape: (s: string) => s }),
    html: Mustache.render(template(`${kind}.html`), view),
  }
}

// One formatter per currency (at most the ISO list): making one per amount was 1.6% of the API's
// CPU in a checkout burst (the order mail formats every line).
// Its minor units per major unit are kept with it (resolvedOptions() builds an object per call).
const formats = new Map<string, { format: Intl.NumberFormat; scale: number }>()
/** An amount in minor units as a reader sees it: the currency's own number of decimals (EUR 2, JPY 0, BHD 3). */
export function formatMoney(minor: number, currency: string) {
  let money = formats.get(currency)
  if (!money) {
    const format = new Intl.NumberFormat('en', { style: 'currency', currency })
    formats.set(currency, money = { format, scale: 10 ** (format.resolvedOptions().maximumFractionDigits ?? 2) })
  }
  return money.format.format(minor / money.scale)
}

// The order, its buyer and the lines the mail lists, in one statement built once and prepared (it
// runs after every checkout).
const orderWithLines = prepareOnce((db: Db) => db.select({
  order: orders, email: users.email, name: users.name,
  items: sql<{ quantity: number; name: string; sku: string; lineTotalMinor: number }[]>`(select coalesce(json_agg(json_build_object('quantity', ${orderItems.quantity}, 'name', ${orderItems.name}, 'sku', ${orderItems.sku}, 'lineTotalMinor', ${orderItems.lineTotalMinor}) order by ${orderItems.sku}), '[]') from ${orderItems} where ${orderItems.orderId} = ${orders.id})`,
}).from(orders).leftJoin(users, eq(users.id, orders.userId)).where(eq(orders.id, sql.placeholder('orderId'))).prepare('order_mail_order'))

export interface OrderLinks { issue(orderId: string): Promise<{ token: string; expiresAt: Date }> }

export function createOrderMail({ db, mailer, domain, publicUrl, links }: { db: Db; mailer: MailSender; domain: string; publicUrl: string; links: OrderLinks }) {
  const messageId = (eventId: string) => `<${eventId}@${domain}>`

  return {
    async sendOrderMail(event: OutboxEventRef, payload: OutboxTopics['mail.order']) {
      const [row] = await orderWithLines(db).execute({ orderId: payload.orderId })
      if (!row) return
      const { order, items } = row
      // The link is for guests: a lookup's mail goes to the address the guest gave, never to an account's.
      const to = payload.kind === 'link' ? order.guestEmail : row.email ?? order.guestEmail
      if (!to) return
      const wantsLink = payload.kind === 'link' || (payload.kind === 'placed' && order.userId === null)
      const access = wantsLink ? await links.issue(order.id) : null
      const m = (minor: number) => formatMoney(minor, order.currency)
      const a = order.shippingAddress
      let amount = order.refundedMinor
      if (payload.refundId) {
        const [refund] = await db.select({ amountMinor: refunds.amountMinor }).from(refunds).where(eq(refunds.id, payload.refundId))
        amount = refund?.amountMinor ?? amount
      }
      const view = {
        name: row.name ?? order.shippingAddress.recipientName, number: order.number,
        link: access ? `${publicUrl}/order-status/${order.id}#token=${access.token}` : null, linkExpires: access?.expiresAt.toISOString() ?? null, total: m(order.totalMinor), subtotal: m(order.subtotalMinor), discount: m(order.discountMinor),
        hasDiscount: order.discountMinor > 0, shipping: m(order.shippingMinor), tax: m(order.taxMinor),
        address: [a.recipientName, a.line1, a.line2, `${a.postalCode} ${a.city}`, a.region, a.country].filter(Boolean).join(', '),
        items: items.map((i) => ({ quantity: i.quantity, name: i.name, sku: i.sku, lineTotal: m(i.lineTotalMinor) })),
        carrier: order.shippingCarrier, trackingNumber: order.trackingNumber, wasPaid: order.paidAt !== null,
        amount: m(amount), fully: order.refundedMinor >= order.totalMinor,
      }
      await mailer.send({ to, ...render(payload.kind, view), messageId: messageId(event.id), firstDelivery: event.attempt === 1 })
    },

    async sendLowStock(event: OutboxEventRef, payload: OutboxTopics['mail.low-stock'], threshold: number) {
      const admins = await db.select({ email: users.email }).from(users).where(and(eq(users.role, 'admin'), eq(users.isActive, true)))
      if (!admins.length || !payload.variantIds.length) return
      const variants = await db.select({ sku: productVariants.sku, name: products.name, stock: productVariants.stock })
        .from(productVariants).innerJoin(products, eq(products.id, productVariants.productId)).where(inArray(productVariants.id, payload.variantIds))
      const view = { threshold, count: variants.length, variants }
      await mailer.send({ to: admins.map((u) => u.email), ...render('low-stock', view), messageId: messageId(event.id), firstDelivery: event.attempt === 1 })
    },
  }
}
