// The baseline the API is measured against (npm run bench): node:http and `pg` with named
// prepared statements, running the same SQL as the API's catalog reads and answering the same
// JSON bytes, with nothing else (no framework, validation, auth, cache, rate limit or logging).
// A listing finds the same rows in the same way; the baseline selects their columns and serialises
// them in Node, the usual way, where the API has PostgreSQL write each item's JSON (#29).
// Also a bare /health answer, a login that is one argon2 verify at the API's parameters, and a
// checkout (POST /orders): the cart read with the plain MongoDB driver, then on one pooled
// connection one transaction with the statements the API's checkout writes, then the cart cleared;
// and the cart's read, add and remove with the API's MongoDB operations at their least.
//   tsx bench/baseline.ts   (DATABASE_URL, MONGODB_URL, JWT_SECRET, PORT, STORE_CURRENCY, DB_POOL_MAX from the environment)
import { createHmac, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import { MongoClient } from 'mongodb'
import pg from 'pg'
import { hashPassword, verifyPassword } from '../src/passwords.js'

// The statements, as drizzle sends them for the API (the bench smoke test compares them with
// the query builder's output, and the bench compares the bodies before measuring).
const PRODUCT_COLUMNS = '"id", "slug", "name", "description", "status", "category_id", "attributes", "image_ids", "min_price_minor", "max_price_minor", "in_stock", "rating_count", "rating_sum", "rating_avg", "created_at", "updated_at"'
const SUMMARY_COLUMNS = '"id", "slug", "name", "status", "category_id", "min_price_minor", "max_price_minor", "in_stock", "rating_avg", "rating_count", "image_ids", "created_at"'
export const BASELINE_SQL = {
  productById: `select ${PRODUCT_COLUMNS} from "products" where "products"."id" = $1 limit $2`,
  variantsOf: 'select "id", "product_id", "sku", "options", "price_minor", "compare_at_price_minor", "stock", "weight_grams", "is_active", "position", "created_at", "updated_at" from "product_variants" where "product_variants"."product_id" = $1 order by "product_variants"."position" asc, "product_variants"."created_at" asc',
  // Rows read in an index's order are limited by the most a page can ask for (101), the page by
  // the outer query: the API's statement, whose generic plan PostgreSQL keeps; a search keeps the
  // page's limit inside too.
  newest: `select * from (select ${SUMMARY_COLUMNS}, 0::real as "rank" from "products" where ("products"."status" = 'active' and "products"."has_active_variant") order by "products"."created_at" desc, "products"."id" desc limit 101) "u" order by "u"."created_at" desc, "u"."id" desc limit $1`,
  search: `select * from (select ${SUMMARY_COLUMNS}, ts_rank("products"."search_vector", websearch_to_tsquery('english', $1)) as "rank" from "products" where ("products"."status" = 'active' and "products"."has_active_variant" and "products"."search_vector" @@ websearch_to_tsquery('english', $2)) order by ts_rank("products"."search_vector", websearch_to_tsquery('english', $3)) desc, "products"."id" desc limit $4) "u" order by "rank" desc, "u"."id" desc limit $5`,
  category: `select * from (select ${SUMMARY_COLUMNS}, 0::real as "rank" from "products" where ("products"."status" = 'active' and "products"."has_active_variant" and "products"."category_id" in (
  with recursive sub(id) as (
    select id from "categories" where id = $1
    union all
    select c.id from "categories" c join sub on c.parent_id = sub.id
  ) select id from sub)) order by "products"."created_at" desc, "products"."id" desc limit 101) "u" order by "u"."created_at" desc, "u"."id" desc limit $2`,
}

// The checkout's statements, as the API's checkout sends them (routes/orders/workflows/checkout.ts,
// src/prices.ts, routes/shipping, src/inventory.ts), arrays as `= any($n)` instead of `in (...)`.
export const CHECKOUT_SQL = {
  // The cart's variants, then their base prices with the price lists that apply now (a cart read,
  // src/prices.ts priceVariants).
  variants: 'select v.id, v.product_id, v.sku, v.options, v.stock, v.is_active, v.weight_grams, p.name, p.status, p.category_id from product_variants v join products p on p.id = v.product_id where v.id = any($1) order by v.id',
  prices: `select vp.variant_id, vp.amount_minor, c.amount_minor as list_minor from variant_prices vp left join (
      select pp.variant_id, pp.amount_minor from price_list_prices pp join price_lists l on l.id = pp.price_list_id
      where pp.variant_id = any($1) and pp.currency = $2 and l.status = 'active' and (l.starts_at is null or l.starts_at <= now()) and (l.ends_at is null or l.ends_at > now())
      and (l.customer_group_id is null or exists (select 1 from customer_group_members m where m.group_id = l.customer_group_id and m.user_id = $3))
    ) c on c.variant_id = vp.variant_id where vp.variant_id = any($1) and vp.currency = $2`,
  // A checkout's variants with their base price and the lowest list price that applies now, in
  // one statement (the API's checkout reads each variant's pricing with its variants, src/prices.ts).
  checkoutVariants: `select v.id, v.product_id, v.sku, v.options, v.stock, v.is_active, v.weight_grams, p.name, p.status, p.category_id, vp.amount_minor as base_minor,
      (select min(pp.amount_minor) from price_list_prices pp join price_lists l on l.id = pp.price_list_id
        where pp.variant_id = v.id and pp.currency = $2 and l.status = 'active' and (l.starts_at is null or l.starts_at <= now()) and (l.ends_at is null or l.ends_at > now())
        and (l.customer_group_id is null or exists (select 1 from customer_group_members m where m.group_id = l.customer_group_id and m.user_id = $3))) as list_minor
    from product_variants v join products p on p.id = v.product_id left join variant_prices vp on vp.variant_id = v.id and vp.currency = $2
    where v.id = any($1) order by v.id`,
  // The options of the zones serving the country, with their zones' names and the country's tax
  // rates, in one statement (routes/shipping).
  options: `select o.id, o.zone_id, o.name, o.price_minor, o.free_over_minor, z.name as zone_name,
      (select json_agg(json_build_object('id', r.id, 'name', r.name, 'country', r.country, 'region', r.region, 'rate_bps', r.rate_bps)) from tax_rates r where r.country = $1 or r.country is null) as rates
    from shipping_options o join shipping_zones z on z.id = o.zone_id
    where (z.countries @> array[$1]::text[] or (cardinality(z.countries) = 0 and not exists (select 1 from shipping_zones l where l.countries @> array[$1]::text[])))
    and o.is_active and o.currency = $2 order by o.position, o.name, o.id`,
  order: `insert into orders (number, user_id, currency, subtotal_minor, discount_minor, shipping_minor, tax_minor, total_minor, shipping_address, shipping_option, tax_rate, prices_include_tax, expires_at, cart_id, cart_generation)
    values ((select 'SO-' || case when length(n) >= 6 then n else lpad(n, 6, '0') end from (select nextval('order_number_seq')::text as n) next),
    $1, $2, $3, 0, $4, $5, $6, $7, $8, $9, false, now() + interval '30 minutes', $10, $11) returning *`,
  item: `insert into order_items (order_id, variant_id, product_id, sku, name, options, unit_price_minor, quantity, line_total_minor, discount_minor, tax_minor)
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10) returning *`,
  // Written as handled: the baseline never handles them, and pending rows under the API's cart keys
  // (the bursts' buyers check out on both servers) were taken, failed and retried by the API's
  // checkouts, which settle their buyer's cart events first.
  outbox: 'insert into outbox (topic, key, payload, processed_at) select *, now() from unnest($1::text[], $2::text[], $3::jsonb[]) returning id',
  // src/inventory.ts reserve(): level, variant, reservation and movement in one statement.
  reserve: `with pick as (
      select sl.location_id from stock_levels sl join stock_locations l on l.id = sl.location_id
      where sl.variant_id = $1 and l.is_active and sl.on_hand - sl.reserved >= $2 order by l.priority, l.name limit 1),
    lvl as (
      update stock_levels s set reserved = s.reserved + $2, updated_at = now() from pick
      where s.variant_id = $1 and s.location_id = pick.location_id and s.on_hand - s.reserved >= $2 returning s.location_id),
    var as (update product_variants set stock = stock - $2, updated_at = now() where id = $1 and exists (select 1 from lvl) returning stock, product_id, sku),
    res as (insert into stock_reservations (order_id, variant_id, location_id, quantity) select $3, $1, location_id, $2 from lvl returning 1),
    mov as (
      insert into inventory_movements (variant_id, location_id, delta, stock_after, on_hand_delta, reserved_delta, reason, reference)
      select $1, lvl.location_id, -$2::int, var.stock, 0, $2, 'sale', $4 from lvl, var returning 1)
    select lvl.location_id, var.stock from lvl, var`,
}

interface CartLine { variantId: string; productId?: string; quantity: number; addedUnitPriceMinor?: number; addedAt?: Date }
interface CartDoc { _id: string; owner: string; lines: CartLine[]; version?: number; currency?: string | null; checkoutGeneration?: number; updatedAt?: Date }

interface ProductRow {
  id: string; slug: string; name: string; description: string; status: string; category_id: string | null
  attributes: Record<string, string>; image_ids: string[]; min_price_minor: number; max_price_minor: number; in_stock: boolean
  rating_count: number; rating_avg: string; created_at: Date; updated_at: Date
}
interface VariantRow {
  id: string; sku: string; options: Record<string, string>; price_minor: number; compare_at_price_minor: number | null; stock: number; is_active: boolean; weight_grams: number | null
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const BENCH_PASSWORD = 'correct horse battery'

export interface Baseline { server: Server; port: number; close(): Promise<void> }

/** The access token's subject when its HS256 signature holds (what the API's authenticate checks first). */
function bearerSubject(header: string | undefined, secret: string): string | null {
  const [h, p, sig] = header?.startsWith('Bearer ') ? header.slice(7).split('.') : []
  if (!h || !p || !sig) return null
  const expected = createHmac('sha256', secret).update(`${h}.${p}`).digest()
  const given = Buffer.from(sig, 'base64url')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null
  return (JSON.parse(Buffer.from(p, 'base64url').toString()) as { sub?: string }).sub ?? null
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body = ''
  for await (const chunk of req) body += chunk
  return JSON.parse(body || '{}') as Record<string, unknown>
}

export async function startBaseline(opts: { databaseUrl: string; mongodbUrl?: string; jwtSecret?: string; port?: number; currency?: string; poolMax?: number }): Promise<Baseline> {
  const currency = opts.currency ?? 'EUR'
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolMax ?? 10 })
  // As few connections as the pg pool: FerretDB (on PostgreSQL) was seen to hang for good under 300 at once.
  const mongo = opts.mongodbUrl ? await new MongoClient(opts.mongodbUrl, { maxPoolSize: opts.poolMax ?? 10 }).connect() : null
  const carts = mongo?.db().collection<CartDoc>('carts')
  const passwordHash = await hashPassword(BENCH_PASSWORD)
  const started = Date.now()
  const query = async <T extends pg.QueryResultRow>(name: keyof typeof BASELINE_SQL, values: unknown[]) =>
    (await pool.query<T>({ name, text: BASELINE_SQL[name], values })).rows

  const noImages = (r: ProductRow): never[] => {
    if (r.image_ids.length) throw new Error(`baseline: product ${r.id} has images, which the baseline does not read`)
    return []
  }
  const summary = (r: ProductRow) => ({
    id: r.id, slug: r.slug, name: r.name, status: r.status, categoryId: r.category_id,
    priceRange: { minMinor: r.min_price_minor, maxMinor: r.max_price_minor, currency },
    inStock: r.in_stock, rating: { average: Number(r.rating_avg), count: r.rating_count },
    // Bench products have no images, and the API makes no query for none; a product with images
    // would need the image rows here too, so refuse rather than compare unequal work.
    imageIds: r.image_ids, images: noImages(r), createdAt: r.created_at.toISOString(),
  })
  const page = (rows: (ProductRow & { rank?: number })[], key: (r: ProductRow & { rank?: number }) => (string | number)[]) => {
    const items = rows.slice(0, 20)
    const last = items[items.length - 1]
    return { items: items.map(summary), nextCursor: rows.length > 20 && last ? Buffer.from(JSON.stringify(key(last))).toString('base64url') : null }
  }

  const send = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/health') return send(res, 200, JSON.stringify({ status: 'ok', uptimeSeconds: (Date.now() - started) / 1000 }))
    if (url.pathname === '/auth/login' && req.method === 'POST') {
      for await (const _chunk of req) { /* drain the body */ }
      return send(res, (await verifyPassword(passwordHash, BENCH_PASSWORD)) ? 200 : 401, '{}')
    }
    if (url.pathname === '/products') {
      const q = url.searchParams.get('q')
      const category = url.searchParams.get('category')
      if (q) {
        const rows = await query<ProductRow & { rank: number }>('search', [q, q, q, 21, 21])
        return send(res, 200, JSON.stringify(page(rows, (r) => [r.rank!, r.id])))
      }
      const rows = category
        ? await query<ProductRow>('category', [category, 21])
        : await query<ProductRow>('newest', [21])
      return send(res, 200, JSON.stringify(page(rows, (r) => [r.created_at.toISOString(), r.id])))
    }
    if (url.pathname === '/orders' && req.method === 'POST') return checkout(req, res)
    if (url.pathname === '/cart' && req.method === 'GET') return cartRead(req, res)
    if (url.pathname === '/cart/items' && req.method === 'POST') return cartAdd(req, res)
    if (url.pathname.startsWith('/cart/items/') && req.method === 'DELETE') return cartRemove(req, res, url.pathname.slice('/cart/items/'.length))
    const id = url.pathname.startsWith('/products/') ? url.pathname.slice('/products/'.length) : ''
    if (UUID.test(id)) {
      const [row] = await query<ProductRow>('productById', [id, 1])
      if (!row || row.status !== 'active') return send(res, 404, '{}')
      const variants = (await query<VariantRow>('variantsOf', [id])).filter((v) => v.is_active)
      return send(res, 200, JSON.stringify({
        ...summary(row), description: row.description, attributes: row.attributes,
        variants: variants.map((v) => ({
          id: v.id, sku: v.sku, options: v.options, priceMinor: v.price_minor, compareAtPriceMinor: v.compare_at_price_minor,
          currency, stock: v.stock, isActive: v.is_active, weightGrams: v.weight_grams,
        })),
        updatedAt: row.updated_at.toISOString(),
      }))
    }
    send(res, 404, '{}')
  }

  // The cart: the API's MongoDB operations at their least (a read is one findOne; a change is a
  // findOne and an updateOne naming the version read) and its pricing statements (variants, base
  // and list prices, as its checkout sends them), on a pooled connection each.
  const priced = async (ids: string[], cartCurrency: string, userId: string) => {
    if (!ids.length) return new Map<string, { sku: string; name: string; options: unknown; stock: number; buyable: boolean; price: number | null; productId: string }>()
    const one = async <T extends pg.QueryResultRow>(name: keyof typeof CHECKOUT_SQL, values: unknown[]) => (await pool.query<T>({ name, text: CHECKOUT_SQL[name], values })).rows
    const variants = await one<{ id: string; product_id: string; sku: string; options: unknown; stock: number; is_active: boolean; name: string; status: string }>('variants', [ids])
    const prices = await one<{ variant_id: string; amount_minor: number; list_minor: number | null }>('prices', [ids, cartCurrency, userId])
    const base = new Map(prices.map((p) => [p.variant_id, p.amount_minor]))
    return new Map(variants.map((v) => {
      const sale = prices.filter((l) => l.variant_id === v.id && l.list_minor !== null).map((l) => l.list_minor!)
      const b = base.get(v.id)
      return [v.id, { sku: v.sku, name: v.name, options: v.options, stock: v.stock, buyable: v.is_active && v.status === 'active', price: b === undefined ? null : Math.min(b, ...sale), productId: v.product_id }]
    }))
  }
  const cartView = async (cart: CartDoc, userId: string) => {
    const cartCurrency = cart.currency ?? currency
    const variants = await priced(cart.lines.map((l) => l.variantId), cartCurrency, userId)
    let subtotalMinor = 0
    const lines = cart.lines.map((l) => {
      const v = variants.get(l.variantId)
      const available = Boolean(v?.buyable && v.price !== null && v.stock >= l.quantity)
      const lineTotalMinor = available ? v!.price! * l.quantity : 0
      subtotalMinor += lineTotalMinor
      return { variantId: l.variantId, productId: l.productId, sku: v?.sku ?? null, name: v?.name ?? null, options: v?.options ?? {}, quantity: l.quantity, unitPriceMinor: v?.price ?? null, lineTotalMinor, stock: v?.stock ?? 0, available }
    })
    return JSON.stringify({ id: cart._id, lines, subtotalMinor, currency: cartCurrency, updatedAt: cart.updatedAt ?? null })
  }
  async function cartRead(req: IncomingMessage, res: ServerResponse) {
    const userId = bearerSubject(req.headers.authorization, opts.jwtSecret ?? '')
    if (!userId || !carts) return send(res, 401, '{}')
    const cart = await carts.findOne({ owner: `user:${userId}` })
    if (!cart) return send(res, 404, '{}')
    send(res, 200, await cartView(cart, userId))
  }
  /** One optimistic change of a user's cart: read, change, write naming the version read. */
  async function changeCart(userId: string, change: (cart: CartDoc) => CartLine[] | null): Promise<CartDoc | null> {
    for (let attempt = 0; attempt < 100; attempt++) {
      const cart = await carts!.findOne({ owner: `user:${userId}` })
      if (!cart) return null
      const lines = change(cart)
      if (!lines) return null
      const set = { lines, version: (cart.version ?? 0) + 1, updatedAt: new Date() }
      if ((await carts!.updateOne({ _id: cart._id, version: cart.version ?? 0 }, { $set: set })).matchedCount === 1) return { ...cart, ...set }
    }
    return null
  }
  async function cartAdd(req: IncomingMessage, res: ServerResponse) {
    const userId = bearerSubject(req.headers.authorization, opts.jwtSecret ?? '')
    if (!userId || !carts) return send(res, 401, '{}')
    const { variantId, quantity } = await readJson(req) as { variantId: string; quantity: number }
    const cart0 = await carts.findOne({ owner: `user:${userId}` })
    const v = (await priced([variantId], cart0?.currency ?? currency, userId)).get(variantId)
    if (!v || !v.buyable || v.price === null) return send(res, 404, '{}')
    const cart = await changeCart(userId, (c) => {
      const line = c.lines.find((l) => l.variantId === variantId)
      if ((line?.quantity ?? 0) + quantity > v.stock) return null
      return line ? c.lines.map((l) => (l === line ? { ...l, quantity: l.quantity + quantity } : l))
        : [...c.lines, { variantId, productId: v.productId, quantity, addedUnitPriceMinor: v.price!, addedAt: new Date() }]
    })
    if (!cart) return send(res, 409, '{}')
    send(res, 200, await cartView(cart, userId))
  }
  async function cartRemove(req: IncomingMessage, res: ServerResponse, variantId: string) {
    const userId = bearerSubject(req.headers.authorization, opts.jwtSecret ?? '')
    if (!userId || !carts) return send(res, 401, '{}')
    const cart = await changeCart(userId, (c) => (c.lines.some((l) => l.variantId === variantId) ? c.lines.filter((l) => l.variantId !== variantId) : null))
    if (!cart) return send(res, 404, '{}')
    send(res, 200, await cartView(cart, userId))
  }

  // Checkout: the cart from MongoDB, one transaction on one connection, then the cart cleared.
  async function checkout(req: IncomingMessage, res: ServerResponse) {
    const userId = bearerSubject(req.headers.authorization, opts.jwtSecret ?? '')
    if (!userId || !carts) return send(res, 401, '{}')
    const input = await readJson(req) as { shippingAddress: { country: string }; shippingOptionId?: string }
    const cart = await carts.findOne({ owner: `user:${userId}` })
    if (!cart?.lines.length) return send(res, 409, '{}')
    const cartCurrency = cart.currency ?? currency
    const ids = [...new Set(cart.lines.map((l) => l.variantId))].sort()
    const client = await pool.connect()
    let order: Record<string, unknown>
    const items: Record<string, unknown>[] = []
    try {
      const q = async <T extends pg.QueryResultRow>(name: keyof typeof CHECKOUT_SQL, values: unknown[] = []) =>
        (await client.query<T>({ name, text: CHECKOUT_SQL[name], values })).rows
      await client.query('begin')
      const variants = new Map((await q<{ id: string; product_id: string; sku: string; options: unknown; stock: number; is_active: boolean; name: string; status: string; base_minor: number | null }>('checkoutVariants', [ids, cartCurrency, userId])).map((v) => [v.id, v]))
      const base = new Map([...variants.values()].flatMap((v) => (v.base_minor === null ? [] : [[v.id, v.base_minor] as const])))
      if (cart.lines.some((l) => { const v = variants.get(l.variantId); return !v || !v.is_active || v.status !== 'active' || !base.has(l.variantId) || v.stock < l.quantity })) {
        await client.query('rollback')
        return send(res, 409, '{}')
      }
      const goods = cart.lines.reduce((s, l) => s + base.get(l.variantId)! * l.quantity, 0)
      const options = await q<{ id: string; zone_id: string; name: string; price_minor: number; free_over_minor: number | null; zone_name: string; rates: { id: string; name: string; country: string | null; region: string | null; rate_bps: number }[] | null }>('options', [input.shippingAddress.country, cartCurrency])
      const option = options.find((o) => o.id === input.shippingOptionId) ?? options[0]
      if (!option) { await client.query('rollback'); return send(res, 409, '{}') }
      const shippingMinor = option.free_over_minor !== null && goods >= option.free_over_minor ? 0 : option.price_minor
      const rates = option.rates ?? []
      const rate = rates.find((r) => r.country === input.shippingAddress.country) ?? rates[0] ?? null
      const taxMinor = Math.round((goods + shippingMinor) * (rate?.rate_bps ?? 0) / 10_000)
      ;[order] = await q('order', [userId, cartCurrency, goods, shippingMinor, taxMinor, goods + shippingMinor + taxMinor, input.shippingAddress,
        { optionId: option.id, name: option.name, zoneId: option.zone_id, zoneName: option.zone_name },
        rate && { rateId: rate.id, name: rate.name, country: rate.country, region: rate.region, rateBps: rate.rate_bps }, cart._id, cart.checkoutGeneration ?? 0]) as [Record<string, unknown>]
      for (const l of cart.lines) {
        const v = variants.get(l.variantId)!
        const unit = base.get(l.variantId)!
        items.push(...await q('item', [order.id, v.id, v.product_id, v.sku, v.name, v.options, unit, l.quantity, unit * l.quantity, 0]))
      }
      // The five events the API writes: cart clear, cache, activity, mail, webhook.
      const events = [['cart.consumed', `cart:user:${userId}`, { userId, lines: cart.lines }], ['cache.invalidate', null, { key: 'product' }],
        ['activity.record', null, { orderId: order.id }], ['mail.order', `order:${order.id as string}`, { orderId: order.id, kind: 'placed' }], ['webhook.event', null, { order }]] as const
      await q('outbox', [events.map((e) => e[0]), events.map((e) => e[1]), events.map((e) => JSON.stringify(e[2]))])
      for (const l of cart.lines) {
        if (!(await q('reserve', [l.variantId, l.quantity, order.id, `order ${order.number as string}`])).length) {
          await client.query('rollback')
          return send(res, 409, '{}')
        }
      }
      await client.query('commit')
    } catch (err) {
      await client.query('rollback').catch(() => {})
      throw err
    } finally {
      client.release()
    }
    // What the API's cart.consumed event does: the ordered lines out, the generation moved on.
    await carts.updateOne({ _id: cart._id, checkoutGeneration: cart.checkoutGeneration ?? 0 }, { $set: { lines: [], couponCode: null, checkoutGeneration: (cart.checkoutGeneration ?? 0) + 1 } })
    send(res, 201, JSON.stringify({ ...order, items }))
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: Error) => send(res, 500, JSON.stringify({ error: err.message })))
  })
  server.keepAliveTimeout = 72_000
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', resolve))
  return {
    server,
    port: (server.address() as { port: number }).port,
    async close() {
      await new Promise((resolve) => server.close(resolve))
      await pool.end()
      await mongo?.close()
    },
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseline = await startBaseline({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/postgres', mongodbUrl: process.env.MONGODB_URL, jwtSecret: process.env.JWT_SECRET,
    port: Number(process.env.PORT ?? 0), currency: process.env.STORE_CURRENCY, poolMax: Number(process.env.DB_POOL_MAX ?? 10),
  })
  // The bench reads the port from this line.
  console.log(JSON.stringify({ listening: baseline.port }))
  const stop = () => { baseline.close().finally(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
