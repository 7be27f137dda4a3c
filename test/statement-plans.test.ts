import t from 'tap'
import { sql } from 'drizzle-orm'
import { buildTestApp } from './helpers.js'
import { register, registerAdmin } from './users.js'
import { createProduct } from './catalog.js'

const ADDRESS = { recipientName: 'Ada Lovelace', line1: '12 St James Square', city: 'London', postalCode: 'SW1Y 4JH', country: 'GB' }

// PostgreSQL runs a prepared statement on a custom plan its first five times, then keeps its
// generic plan unless a custom one looks cheaper. The cart's and the checkout's statements
// filter by an array of ids: a cart's few made each custom plan look cheaper than the generic
// plan's ten, and every execution was planned again, the planning costing several times the run
// (db/client.ts idsForPlan). One pooled connection, so every statement below is on it.
t.test("a cart's and a checkout's statements keep their generic plans", async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '1', TAX_RATE_BPS: '2000', SHIPPING_FLAT_MINOR: '499', SHIPPING_FREE_OVER_MINOR: '10000' })
  const admin = await registerAdmin(app)
  const variants: string[] = []
  for (let i = 0; i < 3; i++) variants.push((await createProduct(app, admin.headers, { name: `Plan ${i}`, variants: [{ sku: `PLAN-${i}`, priceMinor: 1000 + i, stock: 100 }] })).variants[0].id)
  const { headers } = await register(app, { email: 'planned@example.com' })
  const runs = 8
  for (let i = 0; i < runs; i++) {
    // One line, then two: carts of different sizes share the plan.
    for (const variantId of variants.slice(0, 1 + (i % 2))) {
      t.equal((await app.inject({ method: 'POST', url: '/cart/items', headers, payload: { variantId, quantity: 1 } })).statusCode, 200)
    }
    t.equal((await app.inject({ method: 'GET', url: '/cart', headers })).statusCode, 200)
    const order = await app.inject({ method: 'POST', url: '/orders', headers: { ...headers, 'idempotency-key': `plans-${i}-key` }, payload: { shippingAddress: ADDRESS } })
    t.equal(order.statusCode, 201, order.body)
  }
  const plans = new Map((await app.db.execute<{ name: string; generic_plans: string; custom_plans: string }>(
    sql`select name, generic_plans, custom_plans from pg_prepared_statements`)).rows.map((r) => [r.name, r]))
  for (const name of ['cart_variants', 'checkout_variants', 'prices_with_lists']) {
    const plan = plans.get(name)
    t.ok(plan, `${name} was prepared`)
    t.ok(Number(plan?.generic_plans) > 0, `${name}: kept its generic plan (${plan?.generic_plans} generic, ${plan?.custom_plans} custom runs)`)
  }
})

// A listing under price lists: its items' ranges priced in its statement (`_pr`), and the
// listings by price under sales only (`_ps`, the lists' kept lowest prices) and under an override
// (`_pl`). Each page a cache miss (a different limit), on one connection.
t.test('listings under price lists keep their generic plans', async (t) => {
  const app = await buildTestApp(t, { DB_POOL_MAX: '1' })
  const admin = await registerAdmin(app)
  const made = []
  for (let i = 0; i < 4; i++) made.push(await createProduct(app, admin.headers, { name: `Listed ${i}`, variants: [{ sku: `LISTED-${i}`, priceMinor: 1000 + i * 100, stock: 5 }] }))
  const create = async (payload: object) => t.equal((await app.inject({ method: 'POST', url: '/price-lists', headers: admin.headers, payload })).statusCode, 201)
  const kept = async (shape: string, query: string) => {
    for (let limit = 1; limit <= 8; limit++) t.equal((await app.inject({ url: `/products?limit=${limit}${query}` })).statusCode, 200)
    const [plan] = (await app.db.execute<{ name: string; generic_plans: string; custom_plans: string }>(
      sql`select name, generic_plans, custom_plans from pg_prepared_statements where name like ${`product_list_%${shape}`}`)).rows
    t.ok(Number(plan?.generic_plans) > 0, `${plan?.name ?? shape}: kept its generic plan (${plan?.generic_plans} generic, ${plan?.custom_plans} custom runs)`)
  }
  await create({ name: 'Sale', kind: 'sale', status: 'active', prices: [{ variantId: made[1]!.variants[0].id, currency: 'EUR', amountMinor: 500 }] })
  await kept('_pr', '')
  await kept('_ps', '&sort=price_asc')
  await create({ name: 'Contract', kind: 'override', status: 'active', prices: [{ variantId: made[2]!.variants[0].id, currency: 'EUR', amountMinor: 1500 }] })
  await kept('_pl', '&sort=price_asc')
})
