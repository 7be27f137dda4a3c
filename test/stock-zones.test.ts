import t from 'tap'
import { eq, inArray } from 'drizzle-orm'
import { inventoryMovements, orders, stockReservations } from '../db/schema/index.js'
import { buildTestApp } from './helpers.js'
import { quickCustomers, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import { levelsOf, payHalfCancelHalf, stockOf } from './stock.js'
import type { App } from '../src/app.js'

// Shipping zones name the stock locations that serve them; checkout reserves only there.
// Zone A (FR) is served by location 1 only, zone B (DE) by locations 1 and 2.

type Headers = Record<string, string>
const address = (country: string) => ({ recipientName: 'Ada Lovelace', line1: '1 Rue de Rivoli', city: 'Paris', postalCode: '75001', country })
const add = (app: App, headers: Headers, variantId: string, quantity = 1) => app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity } })
const checkout = (app: App, headers: Headers, country: string) => app.inject({ method: 'POST', url: '/orders', headers, payload: { shippingAddress: address(country) } })
const reservationsOf = async (app: App, variantId: string) => app.db.select().from(stockReservations).where(eq(stockReservations.variantId, variantId))
const setLevel = async (app: App, headers: Headers, variantId: string, locationId: string, onHand: number) => {
  const res = await app.inject({ method: 'PUT', url: `/inventory/variants/${variantId}/levels/${locationId}`, headers, payload: { onHand } })
  if (res.statusCode !== 200) throw new Error(res.body)
}
/** Two locations, zone A (FR) served by location 1, zone B (DE) by both. */
async function shop(app: App) {
  const admin = await registerAdmin(app)
  const post = async (url: string, payload: Record<string, unknown>) => {
    const res = await app.inject({ method: 'POST', url, headers: admin.headers, payload })
    if (res.statusCode !== 201) throw new Error(res.body)
    return res.json<{ id: string }>().id
  }
  const one = await post('/inventory/locations', { name: 'One', priority: 10 })
  const two = await post('/inventory/locations', { name: 'Two', priority: 20 })
  const zoneA = await post('/shipping/zones', { name: 'A', countries: ['FR'] })
  const zoneB = await post('/shipping/zones', { name: 'B', countries: ['DE'] })
  await post(`/shipping/zones/${zoneA}/options`, { name: 'A post', priceMinor: 500 })
  await post(`/shipping/zones/${zoneB}/options`, { name: 'B post', priceMinor: 500 })
  const put = async (url: string, payload: Record<string, unknown>) => {
    const res = await app.inject({ method: 'PUT', url, headers: admin.headers, payload })
    if (res.statusCode !== 200) throw new Error(res.body)
  }
  await put(`/shipping/zones/${zoneA}/locations`, { locationIds: [one] })
  await put(`/shipping/zones/${zoneB}/locations`, { locationIds: [two, one] })
  const variant = async () => (await createProduct(app, admin.headers, { variants: [{ stock: 0 }] })).variants[0].id as string
  return { admin, one, two, zoneA, zoneB, variant }
}

t.test('admins name the locations serving a zone: idempotent, 4xx on unknown ids, none named means every active location', async (t) => {
  const app = await buildTestApp(t)
  const admin = await registerAdmin(app)
  const customer = (await quickCustomers(app, 1))[0]!
  const post = async (url: string, payload: Record<string, unknown>) => (await app.inject({ method: 'POST', url, headers: admin.headers, payload })).json<{ id: string }>().id
  const one = await post('/inventory/locations', { name: 'One', priority: 10 })
  const two = await post('/inventory/locations', { name: 'Two', priority: 20 })
  const zone = await post('/shipping/zones', { name: 'A', countries: ['FR'] })
  const call = (method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: Record<string, unknown>, headers = admin.headers) => app.inject({ method, url, headers, ...(payload ? { payload } : {}) })

  const fresh = await call('GET', `/shipping/zones/${zone}/locations`)
  t.equal(fresh.statusCode, 200)
  t.same(fresh.json(), { zoneId: zone, locationIds: [], allLocations: true }, 'a zone naming none is served by every active location')

  const set = await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [two, one] })
  t.equal(set.statusCode, 200)
  t.same(set.json(), { zoneId: zone, locationIds: [one, two], allLocations: false }, 'listed in allocation order')
  const again = await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [two, one] })
  t.same(again.json(), set.json(), 'setting the same set twice is the same')

  t.same((await call('DELETE', `/shipping/zones/${zone}/locations/${two}`)).json().locationIds, [one])
  t.same((await call('DELETE', `/shipping/zones/${zone}/locations/${two}`)).json().locationIds, [one], 'removing one not there changes nothing')
  t.same((await call('PUT', `/shipping/zones/${zone}/locations/${two}`)).json().locationIds, [one, two])
  t.same((await call('PUT', `/shipping/zones/${zone}/locations/${two}`)).json().locationIds, [one, two], 'adding one already there changes nothing')

  const missing = '00000000-0000-4000-8000-000000000000'
  const unknownLocation = await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [one, missing] })
  t.equal(unknownLocation.statusCode, 404)
  t.equal(unknownLocation.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(unknownLocation.json().detail, missing, 'the problem names the unknown location')
  t.same((await call('GET', `/shipping/zones/${zone}/locations`)).json().locationIds, [one, two], 'and nothing changed')
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations/${missing}`)).statusCode, 404)
  t.equal((await call('DELETE', `/shipping/zones/${zone}/locations/${missing}`)).statusCode, 404)
  t.equal((await call('GET', `/shipping/zones/${missing}/locations`)).statusCode, 404)
  t.equal((await call('PUT', `/shipping/zones/${missing}/locations`, { locationIds: [one] })).statusCode, 404)
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: ['not-a-uuid'] })).statusCode, 400)
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [one, one] })).statusCode, 400, 'a location named twice')
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [one], extra: 1 })).statusCode, 400)
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [one] }, customer.headers)).statusCode, 403, 'admins only')

  t.same((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [] })).json(), { zoneId: zone, locationIds: [], allLocations: true }, 'an empty set gives the zone back to every location')
  t.equal((await call('PUT', `/shipping/zones/${zone}/locations`, { locationIds: [one] })).statusCode, 200)
  t.equal((await app.inject({ method: 'DELETE', url: `/shipping/zones/${zone}`, headers: admin.headers })).statusCode, 204, 'a zone naming locations can be deleted')
})

t.test('an order to zone A takes stock only from location 1, and is a 409 when 1 is empty even though 2 has stock', async (t) => {
  const app = await buildTestApp(t)
  const { admin, one, two, variant } = await shop(app)
  const variantId = await variant()
  await setLevel(app, admin.headers, variantId, one, 2)
  await setLevel(app, admin.headers, variantId, two, 5)
  const [first, second] = await quickCustomers(app, 2)

  t.equal((await add(app, first!.headers, variantId, 2)).statusCode, 200)
  const placed = await checkout(app, first!.headers, 'FR')
  t.equal(placed.statusCode, 201, placed.body)
  const reservations = await reservationsOf(app, variantId)
  t.same(reservations.map((r) => [r.locationId, r.quantity, r.state]), [[one, 2, 'held']], 'reserved at location 1 only')
  const moves = await app.db.select().from(inventoryMovements).where(eq(inventoryMovements.reason, 'sale'))
  t.same(moves.map((m) => [m.locationId, m.reservedDelta]), [[one, 2]])

  // Location 1 is empty now; 5 units at 2 do not serve FR.
  t.equal((await add(app, second!.headers, variantId, 1)).statusCode, 200, 'the cart still shows the global stock (5)')
  const fr = await app.inject({ method: 'GET', url: '/cart/shipping-options?country=FR', headers: second!.headers })
  t.equal(fr.statusCode, 200)
  t.same(fr.json().options, [], 'no option to FR is offered: no location serving it has the units')
  const de = await app.inject({ method: 'GET', url: '/cart/shipping-options?country=DE', headers: second!.headers })
  t.same(de.json().options.map((o: { name: string }) => o.name), ['B post'], 'DE is served by location 2')

  const levelsBefore = await levelsOf(app, variantId)
  const ordersBefore = (await app.db.select().from(orders)).length
  const refused = await checkout(app, second!.headers, 'FR')
  t.equal(refused.statusCode, 409)
  t.equal(refused.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(refused.json().detail, 'out of stock for this destination')
  t.same(await levelsOf(app, variantId), levelsBefore, 'no level changed')
  t.equal((await app.db.select().from(orders)).length, ordersBefore, 'no order')
  t.equal((await reservationsOf(app, variantId)).length, 1, 'no reservation')
  t.equal(await stockOf(app, variantId), 5)

  const toDe = await checkout(app, second!.headers, 'DE')
  t.equal(toDe.statusCode, 201, 'the same cart to DE is served by location 2')
  t.same((await reservationsOf(app, variantId)).filter((r) => r.locationId === two).map((r) => r.quantity), [1])
})

t.test('an order to zone B: one location when one can fill the line, else split across both by priority', async (t) => {
  const app = await buildTestApp(t)
  const { admin, one, two, variant } = await shop(app)
  const [a, b] = await quickCustomers(app, 2)

  // 3 at One, 5 at Two, 4 wanted: Two fills it alone (fewest locations before priority).
  const whole = await variant()
  await setLevel(app, admin.headers, whole, one, 3)
  await setLevel(app, admin.headers, whole, two, 5)
  await add(app, a!.headers, whole, 4)
  t.equal((await checkout(app, a!.headers, 'DE')).statusCode, 201)
  t.same((await reservationsOf(app, whole)).map((r) => [r.locationId, r.quantity]), [[two, 4]], 'one parcel from the location that can fill the line')

  // 3 at One, 2 at Two, 4 wanted: none fills it, so One (priority 10) gives its 3 and Two the last 1.
  const split = await variant()
  await setLevel(app, admin.headers, split, one, 3)
  await setLevel(app, admin.headers, split, two, 2)
  await add(app, b!.headers, split, 4)
  const res = await checkout(app, b!.headers, 'DE')
  t.equal(res.statusCode, 201, res.body)
  const orderId = res.json<{ id: string }>().id
  const held = (await reservationsOf(app, split)).sort((x, y) => x.quantity - y.quantity)
  t.same(held.map((r) => [r.orderId, r.locationId, r.quantity, r.state]), [[orderId, two, 1, 'held'], [orderId, one, 3, 'held']])
  const moves = await app.db.select().from(inventoryMovements).where(eq(inventoryMovements.variantId, split))
  t.same(moves.filter((m) => m.reason === 'sale').map((m) => [m.locationId, m.reservedDelta, m.delta]).sort((x, y) => Number(x[1]) - Number(y[1])), [[two, 1, -1], [one, 3, -3]], 'a sale movement per location')
  const levels = new Map((await levelsOf(app, split)).map((l) => [l.locationId, l]))
  t.same([levels.get(one)!.reserved, levels.get(two)!.reserved], [3, 1])
  t.equal(await stockOf(app, split), 1)
})

t.test('150 buyers race for the last units across two serving locations: never oversold, each reservation claimed or released once', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '20', RATE_LIMIT_MAX: '100000' })
  const { admin, one, two, variant } = await shop(app)
  const variantId = await variant()
  await setLevel(app, admin.headers, variantId, one, 4)
  await setLevel(app, admin.headers, variantId, two, 3)
  // A third location serves neither zone: its units must never be sold to FR or DE.
  const three = (await app.inject({ method: 'POST', url: '/inventory/locations', headers: admin.headers, payload: { name: 'Three', priority: 1 } })).json<{ id: string }>().id
  await setLevel(app, admin.headers, variantId, three, 50)

  // 100 buyers to DE (locations 1 and 2), 50 to FR (location 1 only), one unit each.
  const buyers = await quickCustomers(app, 150)
  const countries = buyers.map((_, i) => (i % 3 === 2 ? 'FR' : 'DE'))
  for (const b of buyers) t.equal((await add(app, b.headers, variantId, 1)).statusCode, 200)
  const started = performance.now()
  const results = await Promise.all(buyers.map((b, i) => checkout(app, b.headers, countries[i]!)))
  const elapsed = performance.now() - started
  t.comment(`150 checkouts in ${Math.round(elapsed)} ms`)
  const placed = results.flatMap((r, i) => (r.statusCode === 201 ? [{ order: r.json<{ id: string }>(), country: countries[i]!, headers: buyers[i]!.headers }] : []))
  t.same([...new Set(results.map((r) => r.statusCode))].sort(), [201, 409], 'each buyer has an order or a 409')
  t.equal(placed.length, 7, 'exactly the 7 units at the serving locations were sold, one order each')

  const reservations = await reservationsOf(app, variantId)
  t.equal(reservations.length, 7)
  t.ok(reservations.every((r) => r.quantity === 1 && r.state === 'held'))
  t.ok(reservations.every((r) => r.locationId !== three), 'nothing from the location that serves neither zone')
  const frOrders = new Set(placed.filter((p) => p.country === 'FR').map((p) => p.order.id))
  t.ok(reservations.filter((r) => frOrders.has(r.orderId)).every((r) => r.locationId === one), 'FR orders only from location 1')
  const levels = new Map((await levelsOf(app, variantId)).map((l) => [l.locationId, l]))
  t.same([levels.get(one)!.reserved, levels.get(two)!.reserved, levels.get(three)!.reserved], [4, 3, 0], 'both serving locations emptied, the other untouched')
  t.equal(await stockOf(app, variantId), 50)

  const { paid, cancelled } = await payHalfCancelHalf(t, app, placed)

  const after = await app.db.select().from(stockReservations).where(inArray(stockReservations.orderId, placed.map((p) => p.order.id)))
  t.equal(after.filter((r) => r.state === 'claimed').length, paid.length)
  t.equal(after.filter((r) => r.state === 'released').length, cancelled.length)
  t.equal(after.filter((r) => r.state === 'held').length, 0, 'nothing left held')
  const final = await levelsOf(app, variantId)
  t.ok(final.every((l) => l.onHand >= 0 && l.reserved >= 0 && l.reserved <= l.onHand), 'no level negative')
  t.equal(final.reduce((n, l) => n + l.reserved, 0), 0, 'nothing reserved')
  t.equal(final.reduce((n, l) => n + l.onHand, 0), 57 - paid.length, 'on hand lost exactly what was claimed')
  t.equal(await stockOf(app, variantId), 57 - paid.length)
})
