import t from 'tap'
import { and, eq } from 'drizzle-orm'
import { inventoryMovements, stockReservations } from '../db/schema/index.js'
import { buildTestApp, upgradeFixture } from './helpers.js'
import { quickCustomers, register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import { levelsOf, payHalfCancelHalf, payOrder, stockOf } from './stock.js'
import type { App } from '../src/app.js'

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }
const add = (app: App, headers: Record<string, string>, variantId: string, quantity = 1) => app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
const checkout = (app: App, headers: Record<string, string>) => app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: ADDRESS } })

async function location(app: App, headers: Record<string, string>, name: string, priority: number) {
  const res = await app.inject({ method: 'POST', url: '/inventory/locations', headers, payload: { name, priority } })
  if (res.statusCode !== 201) throw new Error(res.body)
  return res.json<{ id: string }>().id
}
const setLevel = (app: App, headers: Record<string, string>, variantId: string, locationId: string, onHand: number) =>
  app.inject({ method: 'PUT', url: `/inventory/variants/${variantId}/levels/${locationId}`, headers, payload: { onHand } })

t.test('500 buyers race for the last units across two locations: never oversold, each reservation claimed or released once', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20', RATE_LIMIT_MAX: '100000' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 0 }] })
  const variantId = product.variants[0].id as string
  const north = await location(app, admin.headers, 'North', 10)
  const south = await location(app, admin.headers, 'South', 20)
  t.equal((await setLevel(app, admin.headers, variantId, north, 7)).statusCode, 200)
  t.equal((await setLevel(app, admin.headers, variantId, south, 6)).statusCode, 200)
  t.equal(await stockOf(app, variantId), 13, 'stock is the sum of what each location can sell')

  // Buyers of 1 and of 2 units: with 13 units in 7 + 6, some 2-unit lines must split.
  const buyers = await quickCustomers(app, 500)
  const wants = buyers.map((_, i) => (i % 3 === 0 ? 2 : 1))
  for (const [i, b] of buyers.entries()) t.equal((await add(app, b.headers, variantId, wants[i])).statusCode, 200)
  const results = await Promise.all(buyers.map((b) => checkout(app, b.headers)))
  const placed = results.flatMap((r, i) => (r.statusCode === 201 ? [{ order: r.json<{ id: string }>(), qty: wants[i]!, headers: buyers[i]!.headers }] : []))
  t.same([...new Set(results.map((r) => r.statusCode))].sort(), [201, 409], 'each buyer has an order or a 409')
  const sold = placed.reduce((n, p) => n + p.qty, 0)
  t.ok(sold <= 13, `never oversold (${sold} of 13 units in ${placed.length} orders)`)
  t.ok(sold >= 12, 'and what is left is less than the smallest line someone asked for, or nothing')

  const reservations = await app.db.select().from(stockReservations).where(eq(stockReservations.variantId, variantId))
  t.equal(reservations.reduce((n, r) => n + r.quantity, 0), sold, 'the reservations hold exactly what was sold')
  t.ok(reservations.every((r) => r.state === 'held'))
  t.equal(new Set(reservations.map((r) => r.locationId)).size, 2, 'both locations were drawn on')
  const levels = await levelsOf(app, variantId)
  t.equal(levels.reduce((n, l) => n + l.reserved, 0), sold, 'reserved at the levels is the same')
  t.ok(levels.every((l) => l.reserved <= l.onHand && l.onHand >= 0))
  t.equal(await stockOf(app, variantId), 13 - sold)

  // Half are paid (claimed), half cancelled (released); then everything is done a second time, as
  // a retry or a resumed job would: nothing moves twice.
  const { paid } = await payHalfCancelHalf(t, app, placed)

  const after = await app.db.select().from(stockReservations).where(eq(stockReservations.variantId, variantId))
  const claimedQty = paid.reduce((n, p) => n + p.qty, 0)
  t.equal(after.filter((r) => r.state === 'claimed').reduce((n, r) => n + r.quantity, 0), claimedQty)
  t.equal(after.filter((r) => r.state === 'released').reduce((n, r) => n + r.quantity, 0), sold - claimedQty)
  t.equal(after.filter((r) => r.state === 'held').length, 0, 'nothing left held')
  const final = await levelsOf(app, variantId)
  t.equal(final.reduce((n, l) => n + l.reserved, 0), 0, 'nothing reserved')
  t.equal(final.reduce((n, l) => n + l.onHand, 0), 13 - claimedQty, 'on hand lost exactly what was claimed')
  t.equal(await stockOf(app, variantId), 13 - claimedQty)
  // One movement per reservation for each step: the sale, then its claim or its release.
  const moves = await app.db.select().from(inventoryMovements).where(eq(inventoryMovements.variantId, variantId))
  t.equal(moves.filter((m) => m.reason === 'sale').length, after.length)
  t.equal(moves.filter((m) => m.reason === 'claim').length, after.filter((r) => r.state === 'claimed').length)
  t.equal(moves.filter((m) => m.reason === 'cancellation').length, after.filter((r) => r.state === 'released').length)
  t.equal(moves.filter((m) => m.reason !== 'correction').reduce((n, m) => n + m.delta, 0), -claimedQty, 'movements add up to the change in what can be sold')
})

t.test('a transfer moves stock atomically between locations', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20' })
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 10 }] })
  const variantId = product.variants[0].id as string
  const [def] = (await app.inject({ method: 'GET', url: '/inventory/locations', headers: admin.headers })).json().items
  const shop = await location(app, admin.headers, 'Shop', 50)
  const transfer = (from: string, to: string, quantity: number) =>
    app.inject({ method: 'POST', url: '/inventory/transfers', headers: admin.headers, payload: { variantId, fromLocationId: from, toLocationId: to, quantity } })

  const moved = await transfer(def.id, shop, 4)
  t.equal(moved.statusCode, 200, moved.body)
  t.same(moved.json().levels.map((l: { onHand: number }) => l.onHand).sort(), [4, 6])
  t.equal((await transfer(def.id, shop, 7)).statusCode, 409, 'more than the source has')
  t.equal((await transfer(def.id, def.id, 1)).statusCode, 409, 'a location to itself')

  // Many transfers both ways at once: every unit is at one place, never lost or doubled.
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? transfer(def.id, shop, 1) : transfer(shop, def.id, 1))))
  t.ok(answers.every((a) => a.statusCode === 200 || a.statusCode === 409), 'no deadlock or error')
  const levels = await levelsOf(app, variantId)
  t.equal(levels.reduce((n, l) => n + l.onHand, 0), 10, 'total on hand unchanged')
  t.equal(await stockOf(app, variantId), 10, 'what can be sold unchanged')
  const moves = await app.db.select().from(inventoryMovements).where(and(eq(inventoryMovements.variantId, variantId), eq(inventoryMovements.reason, 'transfer')))
  t.equal(moves.length, 2 * answers.filter((a) => a.statusCode === 200).length + 2, 'a movement on each side of each transfer')
  t.equal(moves.reduce((n, m) => n + m.onHandDelta, 0), 0)

  // A transfer that fails after its first side (the destination is refused by the database)
  // leaves the source untouched: one transaction.
  const before = await levelsOf(app, variantId)
  t.equal((await transfer(shop, '00000000-0000-4000-8000-000000000000', 1)).statusCode, 404)
  t.same(await levelsOf(app, variantId), before, 'nothing moved')

  t.equal((await app.inject({ method: 'PUT', url: `/inventory/variants/${variantId}/levels/${shop}`, headers: (await register(app, { email: 'c@example.com' })).headers, payload: { onHand: 1 } })).statusCode, 403, 'admins only')
})

t.test('a return restocks its location once', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const product = await createProduct(app, admin.headers, { variants: [{ stock: 5 }] })
  const variantId = product.variants[0].id as string
  const back = await location(app, admin.headers, 'Returns desk', 90)
  const buyer = await register(app, { email: 'r@example.com' })
  await add(app, buyer.headers, variantId, 2)
  const order = (await checkout(app, buyer.headers)).json()
  await payOrder(app, buyer.headers, order.id)
  for (const status of ['fulfilled', 'shipped', 'delivered']) {
    t.equal((await app.inject({ method: 'PATCH', url: `/orders/${order.id}/status`, headers: admin.headers, payload: { status } })).statusCode, 200, status)
  }
  t.equal(await stockOf(app, variantId), 3)
  const asked = await app.inject({ method: 'POST', url: `/orders/${order.id}/returns`, headers: buyer.headers, payload: { items: [{ orderItemId: order.items[0].id, quantity: 2, reason: 'damaged' }] } })
  t.equal(asked.statusCode, 201, asked.body)
  const ret = asked.json()
  t.equal((await app.inject({ method: 'POST', url: `/returns/${ret.id}/approve`, headers: admin.headers })).statusCode, 200)
  const receive = () => app.inject({ method: 'POST', url: `/returns/${ret.id}/receive`, headers: admin.headers, payload: { locationId: back, items: [{ returnItemId: ret.items[0].id, quantity: 2, resellable: true }] } })
  const answers = await Promise.all([receive(), receive(), receive()])
  t.same(answers.map((a) => a.statusCode).sort(), [200, 409, 409], 'received once')
  const level = (await levelsOf(app, variantId)).find((l) => l.locationId === back)
  t.equal(level?.onHand, 2, 'into the location named')
  t.equal(await stockOf(app, variantId), 5)
  const moves = await app.db.select().from(inventoryMovements).where(and(eq(inventoryMovements.variantId, variantId), eq(inventoryMovements.reason, 'return')))
  t.equal(moves.length, 1)
  t.equal(moves[0]!.locationId, back)
})

t.test('the upgrade migration keeps every variant\'s stock as its level at the default location', async (t) => {
  // A database migrated up to the one before inventory_locations, with stock as it was, then upgraded.
  const { client, upgrade } = await upgradeFixture(t, 'inventory_locations')
  const { rows: [p] } = await client.query(`insert into products (name, slug, status) values ('Old', 'old', 'active') returning id`)
  await client.query(`insert into product_variants (product_id, sku, price_minor, stock) values ($1, 'OLD-1', 100, 17), ($1, 'OLD-2', 100, 0), ($1, 'OLD-3', 100, 250)`, [p.id])
  await upgrade()
  const { rows } = await client.query(`select v.sku, v.stock, l.on_hand, l.reserved, loc.is_default from product_variants v
    join stock_levels l on l.variant_id = v.id join stock_locations loc on loc.id = l.location_id order by v.sku`)
  t.same(rows.map((r) => [r.sku, r.stock, r.on_hand, r.reserved, r.is_default]), [['OLD-1', 17, 17, 0, true], ['OLD-2', 0, 0, 0, true], ['OLD-3', 250, 250, 0, true]])
})
