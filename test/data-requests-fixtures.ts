import { randomUUID } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { Redis } from 'ioredis'
import type mongoose from 'mongoose'
import type pg from 'pg'
import type { App } from '../src/app.js'
import { createProduct } from './catalog.js'
import { TEST_REDIS_URL } from './helpers.js'
import { png, upload } from './uploads-fixtures.js'
import { register } from './users.js'

// A customer with a bit of everything the shop holds about a person, made through the API, and
// a search of every store for what would identify them: for the data export and erasure tests.

type Headers = Record<string, string>

/** A name, email and address line no other fixture has, so finding one means finding them. */
export function person(tag: string) {
  const id = randomUUID().slice(0, 8)
  return {
    email: `${tag}.${id}@example.com`,
    name: `${tag[0]!.toUpperCase()}${tag.slice(1)} Quibbleworth-${id}`,
    line1: `${id} Xylophone Row`,
  }
}

async function call(app: App, method: string, url: string, headers: Headers, payload?: object, expect = [200, 201, 204]) {
  const res = await app.inject({ method: method as 'GET', url, headers: { ...headers, 'idempotency-key': randomUUID() }, ...(payload ? { payload } : {}) })
  if (!expect.includes(res.statusCode)) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.body ? res.json() : undefined
}

/** A product two customers can buy and review. */
export async function shopProduct(app: App, admin: { headers: Headers }) {
  return createProduct(app, admin.headers, { name: 'Erasable mug', variants: [{ priceMinor: 1500, stock: 500 }, { priceMinor: 700, stock: 500 }] })
}

/**
 * A verified, signed-in customer with an address, a paid and delivered order with a (rejected)
 * return, a review, a helpful vote on `voteOn`, a cart line, a wishlist item, an avatar and
 * activity entries.
 */
export async function customerWithData(app: App, admin: { headers: Headers }, product: { id: string; variants: { id: string }[] }, who: ReturnType<typeof person>, voteOn?: string) {
  const account = await register(app, { email: who.email, name: who.name })
  const h = account.headers
  const address = await call(app, 'POST', '/users/me/addresses', h, { recipientName: who.name, line1: who.line1, city: 'Leeds', postalCode: 'LS1 1AA', country: 'GB', phone: '+44 113 496 0000' })
  await call(app, 'POST', '/cart/items', h, { variantId: product.variants[0]!.id, quantity: 2 })
  const order = await call(app, 'POST', '/orders', h, { addressId: address.id })
  const payment = await call(app, 'POST', `/orders/${order.id}/payments`, h, { provider: 'test', paymentMethod: 'tok_success' })
  await call(app, 'POST', `/payments/${payment.id}/confirm`, h, { paymentMethod: 'tok_success' })
  for (const status of ['fulfilled', 'shipped', 'delivered']) await call(app, 'PATCH', `/orders/${order.id}/status`, admin.headers, { status })
  const { items } = await call(app, 'GET', `/orders/${order.id}`, h)
  const ret = await call(app, 'POST', `/orders/${order.id}/returns`, h, { items: [{ orderItemId: items[0].id, quantity: 1, reason: 'damaged', note: `${who.name} says the handle broke` }] })
  await call(app, 'POST', `/returns/${ret.id}/reject`, admin.headers, { reason: 'Outside the policy' })
  const review = await call(app, 'POST', `/products/${product.id}/reviews`, h, { rating: 5, title: `Lovely, says ${who.name}`, body: 'I use it every day.' })
  if (voteOn) await call(app, 'POST', `/reviews/${voteOn}/helpful`, h)
  await call(app, 'POST', '/cart/items', h, { variantId: product.variants[1]!.id, quantity: 1 })
  await call(app, 'PUT', `/wishlist/items/${product.id}`, h)
  const avatarRes = await upload(app, h, 'avatar', 'me.png', 'image/png', png())
  if (avatarRes.statusCode !== 201) throw new Error(avatarRes.body)
  const avatar = avatarRes.json()
  await call(app, 'PATCH', '/users/me', h, { avatarId: avatar.id })
  await call(app, 'GET', `/products/${product.id}`, h)
  await app.activity.flush()
  return { id: account.body.user.id as string, headers: h, ...who, addressId: address.id as string, orderId: order.id as string, paymentId: payment.id as string, returnId: ret.id as string, reviewId: review.id as string, avatar: avatar as { id: string; url: string } }
}

/** Every row of every table of the public schema, as text, by table. */
export async function dumpPostgres(client: pg.Client) {
  const tables = (await client.query<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public'")).rows.map((r) => r.name)
  const out: Record<string, string> = {}
  for (const table of tables) {
    const rows = await client.query<{ row: string }>(`select t::text as row from "${table}" t`)
    out[table] = rows.rows.map((r) => r.row).join('\n')
  }
  return out
}

/** Every document of every collection of the database, as JSON, by collection. */
export async function dumpMongo(db: mongoose.mongo.Db) {
  const out: Record<string, string> = {}
  for (const { name } of await db.listCollections().toArray()) out[name] = JSON.stringify(await db.collection(name).find({}).toArray())
  return out
}

/** Every key under the prefix with its value (strings, hashes, sets, lists, sorted sets). */
export async function dumpRedis(prefix: string) {
  const redis = new Redis(TEST_REDIS_URL)
  const out: Record<string, string> = {}
  try {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      for (const key of keys) {
        const type = await redis.type(key)
        const value = type === 'string' ? await redis.get(key)
          : type === 'hash' ? JSON.stringify(await redis.hgetall(key))
            : type === 'set' ? JSON.stringify(await redis.smembers(key))
              : type === 'list' ? JSON.stringify(await redis.lrange(key, 0, -1))
                : type === 'zset' ? JSON.stringify(await redis.zrange(key, 0, -1)) : `(${type})`
        out[key] = value ?? ''
      }
    } while (cursor !== '0')
  } finally {
    redis.disconnect()
  }
  return out
}

/** File names in a directory (none when it does not exist). */
export const filesIn = (dir: string) => { try { return readdirSync(dir) } catch { return [] } }

/** Where each needle is found: `store/place` for every place whose text contains it. */
export function findTraces(stores: Record<string, Record<string, string>>, needles: string[]) {
  const found: string[] = []
  for (const [store, places] of Object.entries(stores)) {
    for (const [place, text] of Object.entries(places)) {
      for (const needle of needles) if (place.includes(needle) || text.includes(needle)) found.push(`${store}/${place}: ${needle}`)
    }
  }
  return found
}
