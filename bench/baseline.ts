// The baseline the API is measured against (npm run bench): node:http and `pg` with named
// prepared statements, running the same SQL as the API's catalog reads and answering the same
// JSON bytes, with nothing else (no framework, validation, auth, cache, rate limit or logging).
// Also a bare /health answer and a login that is one argon2 verify at the API's parameters.
//   tsx bench/baseline.ts   (DATABASE_URL, PORT, STORE_CURRENCY, DB_POOL_MAX from the environment)
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { hashPassword, verifyPassword } from '../src/passwords.js'

// The statements, as drizzle sends them for the API (the bench smoke test compares them with
// the query builder's output, and the bench compares the bodies before measuring).
const PRODUCT_COLUMNS = '"id", "slug", "name", "description", "status", "category_id", "attributes", "image_ids", "min_price_minor", "max_price_minor", "in_stock", "rating_count", "rating_sum", "rating_avg", "created_at", "updated_at"'
const SUMMARY_COLUMNS = '"id", "slug", "name", "status", "category_id", "min_price_minor", "max_price_minor", "in_stock", "rating_avg", "rating_count", "image_ids", "created_at"'
export const BASELINE_SQL = {
  productById: `select ${PRODUCT_COLUMNS} from "products" where "products"."id" = $1 limit $2`,
  variantsOf: 'select "id", "product_id", "sku", "options", "price_minor", "compare_at_price_minor", "stock", "weight_grams", "is_active", "position", "created_at", "updated_at" from "product_variants" where "product_variants"."product_id" = $1 order by "product_variants"."position" asc, "product_variants"."created_at" asc',
  newest: `select ${SUMMARY_COLUMNS}, 0::real from "products" where "products"."status" = $1 order by "products"."created_at" desc, "products"."id" desc limit $2`,
  search: `select ${SUMMARY_COLUMNS}, ts_rank("products"."search_vector", websearch_to_tsquery('english', $1)) from "products" where ("products"."status" = $2 and "products"."search_vector" @@ websearch_to_tsquery('english', $3)) order by ts_rank("products"."search_vector", websearch_to_tsquery('english', $4)) desc, "products"."id" desc limit $5`,
  category: `select ${SUMMARY_COLUMNS}, 0::real from "products" where ("products"."status" = $1 and "products"."category_id" in (
  with recursive sub(id) as (
    select id from "categories" where id = $2
    union all
    select c.id from "categories" c join sub on c.parent_id = sub.id
  ) select id from sub)) order by "products"."created_at" desc, "products"."id" desc limit $3`,
}

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

export async function startBaseline(opts: { databaseUrl: string; port?: number; currency?: string; poolMax?: number }): Promise<Baseline> {
  const currency = opts.currency ?? 'EUR'
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: opts.poolMax ?? 10 })
  const passwordHash = await hashPassword(BENCH_PASSWORD)
  const started = Date.now()
  const query = async <T extends pg.QueryResultRow>(name: keyof typeof BASELINE_SQL, values: unknown[]) =>
    (await pool.query<T>({ name, text: BASELINE_SQL[name], values })).rows

  const summary = (r: ProductRow) => ({
    id: r.id, slug: r.slug, name: r.name, status: r.status, categoryId: r.category_id,
    priceRange: { minMinor: r.min_price_minor, maxMinor: r.max_price_minor, currency },
    inStock: r.in_stock, rating: { average: Number(r.rating_avg), count: r.rating_count },
    imageIds: r.image_ids, createdAt: r.created_at.toISOString(),
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
        const rows = await query<ProductRow & { ts_rank: number }>('search', [q, 'active', q, q, 21])
        return send(res, 200, JSON.stringify(page(rows, (r) => [(r as { ts_rank?: number }).ts_rank!, r.id])))
      }
      const rows = category
        ? await query<ProductRow>('category', ['active', category, 21])
        : await query<ProductRow>('newest', ['active', 21])
      return send(res, 200, JSON.stringify(page(rows, (r) => [r.created_at.toISOString(), r.id])))
    }
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
    },
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const baseline = await startBaseline({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:55432/postgres',
    port: Number(process.env.PORT ?? 0), currency: process.env.STORE_CURRENCY, poolMax: Number(process.env.DB_POOL_MAX ?? 10),
  })
  // The bench reads the port from this line.
  console.log(JSON.stringify({ listening: baseline.port }))
  const stop = () => { baseline.close().finally(() => process.exit(0)) }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
