import t, { type Test } from 'tap'
import pg from 'pg'
import { createTestDatabase, runProcess, tsx } from './helpers.js'

const seed = (t: Test, url: string, args: string[]) => runProcess(t, tsx('db/seed.ts', ...args), {
  env: { PATH: process.env.PATH ?? '', DATABASE_URL: url }, timeoutMs: 60_000,
})

async function snapshot(url: string) {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows } = await client.query(`
      select p.slug, p.name, p.status, c.slug as category, p.min_price_minor, p.max_price_minor, p.in_stock,
             json_agg(json_build_object('sku', v.sku, 'price', v.price_minor, 'stock', v.stock) order by v.sku) as variants
      from products p left join categories c on c.id = p.category_id join product_variants v on v.product_id = p.id
      group by p.id, c.slug order by p.slug`)
    const { rows: [movements] } = await client.query(`select count(*)::int n, sum(delta)::int total from inventory_movements`)
    const { rows: [stock] } = await client.query(`select sum(stock)::int total from product_variants`)
    return { rows, movements, stock }
  } finally {
    await client.end()
  }
}

t.test('db:seed builds the same catalog every time, with consistent aggregates', async (t) => {
  const [a, b] = [await createTestDatabase(t), await createTestDatabase(t)]
  // Two databases seeded side by side: the same seed gives the same catalog.
  for (const res of await Promise.all([a, b].map((db) => seed(t, db.url, ['--categories', '8', '--products', '40', '--variants', '2', '--seed', '7'])))) {
    t.equal(res.code, 0, res.stderr)
    t.match(res.stdout, /seeded 8 categories, 40 products, 80 variants, 4 shipping zones, 8 tax rates/)
  }
  const [first, second] = [await snapshot(a.url), await snapshot(b.url)]
  t.equal(first.rows.length, 40)
  t.same(first, second, 'deterministic')
  for (const row of first.rows) {
    const prices = row.variants.map((v: { price: number }) => v.price)
    t.equal(row.min_price_minor, Math.min(...prices))
    t.equal(row.max_price_minor, Math.max(...prices))
    t.equal(row.in_stock, row.variants.some((v: { stock: number }) => v.stock > 0))
  }
  t.equal(first.movements.total, first.stock.total, 'initial movements add up to the stock')
  const client = new pg.Client({ connectionString: a.url })
  await client.connect()
  const { rows: zones } = await client.query(`select z.name, z.countries, count(o.id)::int as options from shipping_zones z join shipping_options o on o.zone_id = z.id group by z.id order by z.name`)
  const { rows: [weights] } = await client.query(`select count(*) filter (where weight_grams is null)::int as missing from product_variants`)
  await client.end()
  t.match(zones, [{ name: 'EU', options: 1 }, { name: 'Germany', countries: ['DE'], options: 2 }, { name: 'Rest of the world', countries: [], options: 1 }, { name: 'UK and Switzerland', options: 1 }])
  t.equal(weights.missing, 0, 'every demo variant has a weight')

  const again = await seed(t, a.url, ['--products', '5'])
  t.equal(again.code, 1, 'refuses to seed over an existing catalog')
  const reset = await seed(t, a.url, ['--categories', '2', '--products', '5', '--reset'])
  t.equal(reset.code, 0, reset.stderr)
  t.equal((await snapshot(a.url)).rows.length, 5)
  t.match(reset.stdout, /0 shipping zones, 0 tax rates/, 'zones and rates already there are kept')
  t.equal((await seed(t, a.url, ['--products', 'many'])).code, 2)
})
