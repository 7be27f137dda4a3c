import { eq } from 'drizzle-orm'
import type { Test } from 'tap'
import { productVariants, stockLevels } from '../db/schema/index.js'
import { claim, releaseOrder } from '../src/inventory.js'
import type { App } from '../src/app.js'

// Stock helpers of the inventory tests: what a variant has, and orders paid or cancelled.

type Headers = Record<string, string>

/** The variant's sellable stock, as listings show it. */
export const stockOf = async (app: App, variantId: string) => (await app.db.select({ stock: productVariants.stock }).from(productVariants).where(eq(productVariants.id, variantId)))[0]!.stock
/** The variant's level at each location. */
export const levelsOf = async (app: App, variantId: string) => app.db.select().from(stockLevels).where(eq(stockLevels.variantId, variantId))

/** Pays an order with the test provider: the payment, then its confirmation, which captures. */
export async function payOrder(app: App, headers: Headers, orderId: string) {
  const payment = await app.inject({ method: 'POST', url: `/orders/${orderId}/payments`, headers: { ...headers, 'idempotency-key': `pay-${orderId}` }, payload: { provider: 'test', paymentMethod: 'tok_success' } })
  if (payment.statusCode !== 201) throw new Error(payment.body)
  const confirmed = await app.inject({ method: 'POST', url: `/payments/${payment.json().id}/confirm`, headers, payload: { paymentMethod: 'tok_success' } })
  if (confirmed.statusCode !== 200) throw new Error(confirmed.body)
}

/**
 * Pays every other placed order (its reservation claimed) and cancels the rest (released), then
 * claims and releases each again, as a retry or a resumed job would: the repeats move nothing.
 */
export async function payHalfCancelHalf<P extends { order: { id: string }; headers: Headers }>(t: Test, app: App, placed: P[]) {
  const paid = placed.filter((_, i) => i % 2 === 0)
  const cancelled = placed.filter((_, i) => i % 2 === 1)
  for (const p of paid) await payOrder(app, p.headers, p.order.id)
  for (const p of cancelled) t.equal((await app.inject({ method: 'POST', url: `/orders/${p.order.id}/cancel`, headers: p.headers })).statusCode, 200)
  await app.db.transaction(async (tx) => {
    for (const p of paid) t.equal(await claim(tx, p.order.id), 0, 'a second claim claims nothing')
  })
  await app.db.transaction(async (tx) => {
    for (const p of cancelled) t.equal((await releaseOrder(tx, p.order.id, 'cancellation')).productIds.size, 0, 'a second release moves nothing')
  })
  return { paid, cancelled }
}
