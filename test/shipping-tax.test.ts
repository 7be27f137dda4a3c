import tap, { type Test } from 'tap'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'
import type { App } from '../src/app.js'

// Shipping zones and options, tax by destination, both price modes. Every total is checked
// against the calculation below, written from the rules, not from the code.
const env = { TAX_RATE_BPS: '2000', SHIPPING_FLAT_MINOR: '499', SHIPPING_FREE_OVER_MINOR: '10000' }
type Headers = Record<string, string>

interface Expect { lines: { price: number; qty: number }[]; percent?: number; shipping: number; freeOver?: number; bps: number; inclusive: boolean }
function expectedTotals(e: Expect) {
  const subtotal = e.lines.reduce((s, l) => s + l.price * l.qty, 0)
  const discount = e.percent ? Math.round((subtotal * e.percent) / 100) : 0
  const goods = subtotal - discount
  const shipping = e.freeOver && goods >= e.freeOver ? 0 : e.shipping
  const base = goods + shipping
  // Half up: Math.round on a non-negative exact quotient.
  const tax = e.inclusive ? base - Math.round((base * 10000) / (10000 + e.bps)) : Math.round((base * e.bps) / 10000)
  return { subtotalMinor: subtotal, discountMinor: discount, shippingMinor: shipping, taxMinor: tax, totalMinor: e.inclusive ? base : base + tax }
}

const address = (country: string, region?: string) => ({ recipientName: 'R', line1: '1 Road', city: 'C', postalCode: '12345', country, ...(region ? { region } : {}) })
const post = (app: App, url: string, headers: Headers, payload: object) => app.inject({ method: 'POST', url, headers, payload })

/** Zones EU (DE, FR: Standard 599 free over 8000, Express by weight), US (Ground by subtotal), and rates DE, FR, US, US-CA. */
async function setUpDestinations(app: App, admin: Headers) {
  const eu = (await post(app, '/shipping/zones', admin, { name: 'EU', countries: ['DE', 'FR'] })).json()
  const us = (await post(app, '/shipping/zones', admin, { name: 'US', countries: ['US'] })).json()
  const standard = (await post(app, `/shipping/zones/${eu.id}/options`, admin, { name: 'Standard', priceMinor: 599, freeOverMinor: 8000 })).json()
  const express = (await post(app, `/shipping/zones/${eu.id}/options`, admin, { name: 'Express', priceMinor: 0, bandBasis: 'weight', bands: [{ upTo: 5000, priceMinor: 1990 }, { upTo: 1000, priceMinor: 990 }], position: 1 })).json()
  const ground = (await post(app, `/shipping/zones/${us.id}/options`, admin, { name: 'Ground', priceMinor: 0, bandBasis: 'subtotal', bands: [{ upTo: 5000, priceMinor: 800 }, { upTo: 20000, priceMinor: 1200 }] })).json()
  const inactive = (await post(app, `/shipping/zones/${us.id}/options`, admin, { name: 'Air', priceMinor: 100, isActive: false })).json()
  for (const rate of [{ name: 'DE VAT', country: 'DE', rateBps: 1900 }, { name: 'FR TVA', country: 'FR', rateBps: 2000 }, { name: 'US', country: 'US', rateBps: 500 }, { name: 'California', country: 'US', region: 'ca', rateBps: 725 }]) {
    const res = await post(app, '/tax-rates', admin, rate)
    if (res.statusCode !== 201) throw new Error(res.body)
  }
  const [fallback] = (await app.inject({ method: 'GET', url: '/shipping/zones', headers: admin })).json().items.filter((z: { countries: string[] }) => z.countries.length === 0)
  return { standard, express, ground, inactive, fallbackOption: fallback.options[0] }
}

async function scenario(t: Test, inclusive: boolean) {
  const app = await buildTestApp(t, { ...env, ...(inclusive ? { PRICES_INCLUDE_TAX: 'true' } : {}) })
  const admin = (await registerAdmin(app)).headers
  const opts = await setUpDestinations(app, admin)
  const a = (await createProduct(app, admin, { variants: [{ priceMinor: 2499, stock: 100, weightGrams: 400 }] })).variants[0].id
  const b = (await createProduct(app, admin, { variants: [{ priceMinor: 1299, stock: 100, weightGrams: 1200 }] })).variants[0].id
  const c = (await createProduct(app, admin, { variants: [{ priceMinor: 333, stock: 100 }] })).variants[0].id
  t.equal((await post(app, '/coupons', admin, { code: 'TENOFF', kind: 'percentage', value: 10 })).statusCode, 201)
  const { headers } = await register(app, { email: 'shopper@example.com' })

  interface CartSpec { items: [string, number][]; lines: { price: number; qty: number }[]; weight: number; percent?: number }
  const cart1: CartSpec = { items: [[a, 2], [c, 3]], lines: [{ price: 2499, qty: 2 }, { price: 333, qty: 3 }], weight: 800 }
  const cart2: CartSpec = { items: [[a, 3], [b, 2]], lines: [{ price: 2499, qty: 3 }, { price: 1299, qty: 2 }], weight: 3600, percent: 10 }
  const cases = [
    { name: 'DE standard', cart: cart1, dest: address('DE'), option: opts.standard, shipping: 599, freeOver: 8000, bps: 1900, quoted: { Standard: 599, Express: 990 } },
    { name: 'DE express (weight band 1)', cart: cart1, dest: address('DE'), option: opts.express, shipping: 990, bps: 1900, quoted: { Standard: 599, Express: 990 } },
    { name: 'DE standard, free over, coupon', cart: cart2, dest: address('DE'), option: opts.standard, shipping: 599, freeOver: 8000, bps: 1900, quoted: { Standard: 0, Express: 1990 } },
    { name: 'DE express (weight band 2), coupon', cart: cart2, dest: address('DE'), option: opts.express, shipping: 1990, bps: 1900, quoted: { Standard: 0, Express: 1990 } },
    { name: 'FR standard', cart: cart1, dest: address('FR', 'Bretagne'), option: opts.standard, shipping: 599, freeOver: 8000, bps: 2000, quoted: { Standard: 599, Express: 990 } },
    { name: 'US California (region rate, subtotal band 2), option left out', cart: cart2, dest: address('US', 'CA'), option: null, shipping: 1200, bps: 725, quoted: { Ground: 1200 } },
    { name: 'US New York (country rate, subtotal band 2)', cart: cart1, dest: address('US', 'NY'), option: opts.ground, shipping: 1200, bps: 500, quoted: { Ground: 1200 } },
    { name: 'GB (fallback zone and default rate from the environment)', cart: cart1, dest: address('GB'), option: opts.fallbackOption, shipping: 499, freeOver: 10000, bps: 2000, quoted: { Standard: 499 } },
    { name: 'JP (fallback, free over 10000 not reached after coupon)', cart: cart2, dest: address('JP'), option: null, shipping: 499, freeOver: 10000, bps: 2000, quoted: { Standard: 499 } },
  ]
  for (const k of cases) {
    for (const [variantId, quantity] of k.cart.items) await post(app, '/cart/items', headers, { variantId, quantity })
    if (k.cart.percent) await app.inject({ method: 'PUT', url: '/cart/coupon', headers, payload: { code: 'TENOFF' } })
    const quote = await app.inject({ method: 'GET', url: `/cart/shipping-options?country=${k.dest.country}${k.dest.region ? `&region=${k.dest.region}` : ''}`, headers })
    t.equal(quote.statusCode, 200, quote.body)
    t.same(Object.fromEntries(quote.json().options.map((o: { name: string; priceMinor: number }) => [o.name, o.priceMinor])), k.quoted, `${k.name}: options quoted`)
    t.equal(quote.json().taxRateBps, k.bps)
    t.equal(quote.json().pricesIncludeTax, inclusive)
    t.equal(quote.json().weightGrams, k.cart.weight)

    const res = await post(app, '/orders', headers, { shippingAddress: k.dest, ...(k.option ? { shippingOptionId: k.option.id } : {}) })
    t.equal(res.statusCode, 201, `${k.name}: ${res.body}`)
    const order = res.json()
    const want = expectedTotals({ lines: k.cart.lines, percent: k.cart.percent, shipping: k.shipping, freeOver: k.freeOver, bps: k.bps, inclusive })
    t.match(order, { ...want, pricesIncludeTax: inclusive, taxRate: { rateBps: k.bps } }, `${k.name}: totals (${inclusive ? 'inclusive' : 'exclusive'})`)
    if (k.option) t.equal(order.shippingOption.id, k.option.id)
    t.ok(order.items.reduce((s: number, i: { taxMinor: number }) => s + i.taxMinor, 0) <= order.taxMinor, 'line taxes within the order tax')
  }
  return { app, admin, headers, opts, a, b }
}

tap.test('totals by destination, prices exclusive of tax', async (t) => {
  const { app, admin, headers, opts, a, b } = await scenario(t, false)

  // Refusals: an option of another zone, an unknown one, none chosen when several apply, nothing reaches.
  await post(app, '/cart/items', headers, { variantId: a, quantity: 1 })
  const wrongZone = await post(app, '/orders', headers, { shippingAddress: address('US'), shippingOptionId: opts.standard.id })
  t.equal(wrongZone.statusCode, 409)
  t.equal(wrongZone.json().type, 'urn:problem-type:shipping-option-not-applicable')
  t.equal((await post(app, '/orders', headers, { shippingAddress: address('US'), shippingOptionId: opts.inactive.id })).json().type, 'urn:problem-type:shipping-option-not-applicable', 'an inactive option does not apply')
  t.equal((await post(app, '/orders', headers, { shippingAddress: address('DE'), shippingOptionId: '00000000-0000-4000-8000-000000000000' })).statusCode, 409)
  const unchosen = await post(app, '/orders', headers, { shippingAddress: address('DE') })
  t.equal(unchosen.json().type, 'urn:problem-type:shipping-option-required')
  t.equal((await post(app, '/orders', headers, { shippingAddress: address('DE'), shippingOptionId: 'nope' })).statusCode, 400)
  await post(app, '/cart/items', headers, { variantId: b, quantity: 20 })
  const tooBig = await post(app, '/orders', headers, { shippingAddress: address('US') })
  t.equal(tooBig.statusCode, 409, 'beyond the last subtotal band Ground does not apply')
  t.equal(tooBig.json().type, 'urn:problem-type:no-shipping-option')
  t.same((await app.inject({ method: 'GET', url: '/cart/shipping-options?country=US', headers })).json().options, [])

  // Placed orders keep the option and rate they were priced with.
  await app.inject({ method: 'DELETE', url: '/cart', headers })
  await post(app, '/cart/items', headers, { variantId: a, quantity: 1 })
  const placed = (await post(app, '/orders', headers, { shippingAddress: address('DE'), shippingOptionId: opts.standard.id })).json()
  const rates = (await app.inject({ method: 'GET', url: '/tax-rates', headers: admin })).json().items
  const de = rates.find((r: { country: string | null }) => r.country === 'DE')
  t.equal((await app.inject({ method: 'PATCH', url: `/tax-rates/${de.id}`, headers: admin, payload: { rateBps: 2500 } })).statusCode, 200)
  t.equal((await app.inject({ method: 'PATCH', url: `/shipping/options/${opts.standard.id}`, headers: admin, payload: { priceMinor: 1, name: 'Cheap' } })).statusCode, 200)
  const again = (await app.inject({ method: 'GET', url: `/orders/${placed.id}`, headers })).json()
  t.match(again, { shippingMinor: 599, taxMinor: placed.taxMinor, totalMinor: placed.totalMinor, taxRate: { rateBps: 1900, name: 'DE VAT' }, shippingOption: { name: 'Standard', zoneName: 'EU' } })
})

tap.test('totals by destination, prices inclusive of tax', async (t) => {
  await scenario(t, true)
})

tap.test('admin CRUD, defaults from the environment, bad input and auth', async (t) => {
  const app = await buildTestApp(t, env)
  const admin = (await registerAdmin(app)).headers
  const { headers: customer } = await register(app, { email: 'c@example.com' })

  const zones = await app.inject({ method: 'GET', url: '/shipping/zones', headers: admin })
  t.equal(zones.statusCode, 200)
  t.match(zones.json().items, [{ name: 'Everywhere', countries: [], options: [{ name: 'Standard', priceMinor: 499, freeOverMinor: 10000, isActive: true }] }], 'seeded from SHIPPING_* env')
  t.match((await app.inject({ method: 'GET', url: '/tax-rates', headers: admin })).json().items, [{ name: 'Default', country: null, region: null, rateBps: 2000 }], 'seeded from TAX_RATE_BPS')

  for (const [method, url] of [['GET', '/shipping/zones'], ['POST', '/shipping/zones'], ['GET', '/tax-rates'], ['POST', '/tax-rates']] as const) {
    t.equal((await app.inject({ method, url, payload: method === 'POST' ? { name: 'x', countries: [] } : undefined })).statusCode, 401, `${method} ${url} anonymous`)
    t.equal((await app.inject({ method, url, headers: customer, payload: method === 'POST' ? { name: 'x', countries: [] } : undefined })).statusCode, 403, `${method} ${url} customer`)
  }

  const bad = [
    ['/shipping/zones', { name: 'EU', countries: ['de'] }],
    ['/shipping/zones', { name: 'EU', countries: ['DE', 'DE'] }],
    ['/shipping/zones', { name: '', countries: [] }],
    ['/shipping/zones', { name: 'EU', countries: [], extra: 1 }],
    ['/tax-rates', { name: 'x', country: 'DE', rateBps: 10001 }],
    ['/tax-rates', { name: 'x', country: null, region: 'CA', rateBps: 100 }],
    ['/tax-rates', { name: 'x', country: 'Germany', rateBps: 100 }],
  ] as const
  for (const [url, payload] of bad) {
    const res = await post(app, url, admin, payload)
    t.equal(res.statusCode, 400, `${url} ${JSON.stringify(payload)}`)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  const zone = (await post(app, '/shipping/zones', admin, { name: 'Nordics', countries: ['SE', 'NO'] })).json()
  for (const payload of [{ name: 'x', priceMinor: 100, bandBasis: 'weight' }, { name: 'x', priceMinor: 100, bands: [{ upTo: 1, priceMinor: 1 }] },
    { name: 'x', priceMinor: -1 }, { name: 'x', priceMinor: 100, freeOverMinor: 0 }, { name: 'x', priceMinor: 100, bandBasis: 'weight', bands: [{ upTo: 5, priceMinor: 1 }, { upTo: 5, priceMinor: 2 }] }]) {
    t.equal((await post(app, `/shipping/zones/${zone.id}/options`, admin, payload)).statusCode, 400, JSON.stringify(payload))
  }
  t.equal((await post(app, '/shipping/zones/00000000-0000-4000-8000-000000000000/options', admin, { name: 'x', priceMinor: 1 })).statusCode, 404)
  const option = (await post(app, `/shipping/zones/${zone.id}/options`, admin, { name: 'Post', priceMinor: 900 })).json()
  t.equal((await app.inject({ method: 'PATCH', url: `/shipping/options/${option.id}`, headers: admin, payload: { bandBasis: 'weight' } })).statusCode, 400, 'a basis without bands')
  t.match((await app.inject({ method: 'PATCH', url: `/shipping/zones/${zone.id}`, headers: admin, payload: { countries: ['SE', 'NO', 'DK'] } })).json(), { countries: ['SE', 'NO', 'DK'], options: [{ name: 'Post' }] })
  t.equal((await post(app, '/tax-rates', admin, { name: 'SE', country: 'SE', rateBps: 2500 })).statusCode, 201)
  const dup = await post(app, '/tax-rates', admin, { name: 'SE again', country: 'SE', rateBps: 2400 })
  t.equal(dup.statusCode, 409)
  t.equal((await post(app, '/tax-rates', admin, { name: 'Default 2', country: null, rateBps: 1 })).statusCode, 409, 'one default rate')

  // The quote: a destination is required, and a saved address needs sign-in.
  t.equal((await app.inject({ method: 'GET', url: '/cart/shipping-options', headers: customer })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/cart/shipping-options?country=se', headers: customer })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/cart/shipping-options?country=SE&addressId=00000000-0000-4000-8000-000000000000', headers: customer })).statusCode, 400)
  t.equal((await app.inject({ method: 'GET', url: '/cart/shipping-options?addressId=00000000-0000-4000-8000-000000000000', headers: customer })).statusCode, 404)
  const guest = (await app.inject({ method: 'POST', url: '/cart/guest' })).json()
  t.equal((await app.inject({ method: 'GET', url: '/cart/shipping-options?addressId=00000000-0000-4000-8000-000000000000', headers: { 'x-cart-token': guest.cartToken } })).statusCode, 401)
  const guestQuote = await app.inject({ method: 'GET', url: '/cart/shipping-options?country=DK', headers: { 'x-cart-token': guest.cartToken } })
  t.match(guestQuote.json(), { country: 'DK', goodsMinor: 0, taxRateBps: 2000, options: [{ name: 'Post', priceMinor: 900 }] })
  const saved = (await post(app, '/users/me/addresses', customer, { recipientName: 'R', line1: 'x', city: 'Oslo', postalCode: '0150', country: 'NO' })).json()
  t.match((await app.inject({ method: 'GET', url: `/cart/shipping-options?addressId=${saved.id}`, headers: customer })).json(), { country: 'NO', options: [{ id: option.id }] })

  t.equal((await app.inject({ method: 'DELETE', url: `/shipping/options/${option.id}`, headers: admin })).statusCode, 204)
  t.equal((await app.inject({ method: 'DELETE', url: `/shipping/options/${option.id}`, headers: admin })).statusCode, 404)
  t.equal((await app.inject({ method: 'DELETE', url: `/shipping/zones/${zone.id}`, headers: admin })).statusCode, 204)
  t.equal((await app.inject({ method: 'GET', url: `/shipping/zones/${zone.id}`, headers: admin })).statusCode, 404)
})
