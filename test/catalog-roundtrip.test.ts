import t from 'tap'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { buildTestApp } from './helpers.js'
import { createCategory } from './catalog.js'
import { registerAdmin } from './users.js'
import { png, upload } from './uploads-fixtures.js'
import type { App } from '../src/app.js'

// The catalog CSV carries everything a product and its variants hold (#28): attributes, images,
// the compare-at price, whether a variant is sold, options, prices per currency, stock per
// location. An export imported into an empty shop reproduces the catalog.

type Headers = Record<string, string>
const filesDir = () => mkdtempSync(join(tmpdir(), 'catalog-roundtrip-'))

async function post(app: App, headers: Headers, url: string, payload: object, status = 201) {
  const res = await app.inject({ method: 'POST', url, headers, payload })
  if (res.statusCode !== status) throw new Error(`${url}: ${res.statusCode} ${res.body}`)
  return res.json()
}
async function runJob(app: App, headers: Headers, kind: 'imports' | 'exports', id: string) {
  await app.services.catalogIo.runDue()
  return (await app.inject({ method: 'GET', url: `/${kind}/${id}`, headers })).json()
}
async function exportCatalog(app: App, headers: Headers) {
  const job = await runJob(app, headers, 'exports', (await post(app, headers, '/exports/products', {}, 202)).id)
  return (await app.inject({ method: 'GET', url: job.downloadUrl, headers })).rawPayload
}
async function importCatalog(app: App, headers: Headers, csv: Buffer | string, query = '') {
  const res = await app.inject({ method: 'POST', url: `/imports/products${query}`, headers: { ...headers, 'content-type': 'text/csv' }, payload: csv })
  if (res.statusCode !== 202) throw new Error(`import: ${res.statusCode} ${res.body}`)
  return runJob(app, headers, 'imports', res.json().id)
}

/** The catalog as values (no ids, no times): what an export and import must carry across. */
async function catalogOf(app: App) {
  const { rows } = await app.db.execute(sql`
    select p.slug, p.name, p.description, p.status::text, c.slug as category, p.attributes, p.image_ids::text as images, p.min_price_minor, p.max_price_minor, p.in_stock,
      coalesce((select json_agg(json_build_object(
        'sku', v.sku, 'options', v.options, 'weight', v.weight_grams, 'price', v.price_minor, 'compareAt', v.compare_at_price_minor,
        'active', v.is_active, 'position', v.position, 'stock', v.stock,
        'prices', (select json_object_agg(vp.currency, vp.amount_minor order by vp.currency) from variant_prices vp where vp.variant_id = v.id),
        'levels', (select json_object_agg(l.name, sl.on_hand order by l.name) from stock_levels sl join stock_locations l on l.id = sl.location_id where sl.variant_id = v.id and sl.on_hand > 0)
      ) order by v.position, v.sku) from product_variants v where v.product_id = p.id), '[]') as variants
    from products p left join categories c on c.id = p.category_id order by p.slug`)
  return rows
}

t.test('export then import into an empty shop reproduces the catalog, attributes, compare-at prices and inactive variants included', async (t) => {
  const source = await buildTestApp(t, { CATALOG_FILES_DIR: filesDir() })
  const admin = (await registerAdmin(source)).headers
  const clothes = await createCategory(source, admin, { slug: 'clothes' })
  const shirts = await createCategory(source, admin, { slug: 'shirts', parentId: clothes.id })
  await post(source, admin, '/inventory/locations', { name: 'Warehouse B' })
  await post(source, admin, '/products', {
    name: 'Oxford shirt', slug: 'oxford-shirt', description: 'Cotton,\n"button-down"', status: 'active', categoryId: shirts.id,
    attributes: { material: 'cotton', fit: 'slim' },
    variants: [
      { sku: 'OX-S', options: { size: 'S', colour: 'blue' }, priceMinor: 4990, compareAtPriceMinor: 5990, stock: 3, weightGrams: 250 },
      { sku: 'OX-M', options: { size: 'M', colour: 'blue' }, priceMinor: 4990, stock: 0, isActive: false },
    ],
  })
  const hat = await post(source, admin, '/products', { name: 'Hat', slug: 'hat', status: 'draft', attributes: { material: 'wool' }, variants: [{ sku: 'HAT-1', priceMinor: 1500, stock: 7 }] })
  await post(source, admin, `/products/${hat.id}/variants`, { sku: 'HAT-2', priceMinor: 1700, compareAtPriceMinor: 2000 })
  const [ox] = (await source.inject({ method: 'GET', url: '/products/by-slug/oxford-shirt', headers: admin })).json().variants
  const put = await source.inject({ method: 'PUT', url: `/products/${(await source.inject({ method: 'GET', url: '/products/by-slug/oxford-shirt', headers: admin })).json().id}/variants/${ox.id}/prices/USD`, headers: admin, payload: { amountMinor: 5500 } })
  t.equal(put.statusCode, 200, put.body)
  const levels = (await source.inject({ method: 'GET', url: `/inventory/variants/${ox.id}/levels`, headers: admin })).json()
  t.ok(levels.levels.length >= 1)

  const file = await exportCatalog(source, admin)
  const header = file.toString('utf8').replace(/^\ufeff/, '').split(/\r?\n/)[0]
  t.match(header, /,active,images,compare_at_EUR,attribute_fit,attribute_material$/)
  const again = await importCatalog(source, admin, file)
  t.match(again, { status: 'completed', created: 0, updated: 0, unchanged: 4 }, 'the export imported back changes nothing')

  // An empty shop with the same category tree and stock locations (an import creates neither).
  const target = await buildTestApp(t, { CATALOG_FILES_DIR: filesDir() })
  const targetAdmin = (await registerAdmin(target)).headers
  const c2 = await createCategory(target, targetAdmin, { slug: 'clothes' })
  await createCategory(target, targetAdmin, { slug: 'shirts', parentId: c2.id })
  await post(target, targetAdmin, '/inventory/locations', { name: 'Warehouse B' })
  t.same(await catalogOf(target), [], 'empty before')
  const imported = await importCatalog(target, targetAdmin, file)
  t.match(imported, { status: 'completed', created: 4, failed: 0 }, JSON.stringify(imported.errors))
  const expected = await catalogOf(source)
  t.equal(expected.length, 2)
  t.same(await catalogOf(target), expected, 'every value of every product and variant, as in the source')
  t.match(expected[1], { slug: 'oxford-shirt', attributes: { material: 'cotton', fit: 'slim' }, variants: [{ sku: 'OX-S', compareAt: 5990, active: true }, { sku: 'OX-M', active: false }] })
})

t.test('images are product uploads by id; compare-at, active and attributes are checked like the API checks them', async (t) => {
  const app = await buildTestApp(t, { CATALOG_FILES_DIR: filesDir() })
  const admin = (await registerAdmin(app)).headers
  const images = await Promise.all([1, 2].map(async (i) => (await upload(app, admin, 'product_image', `p${i}.png`, 'image/png', png())).json().id as string))
  const avatar = (await upload(app, admin, 'avatar', 'me.png', 'image/png', png())).json().id as string
  const csv = [
    'handle,name,sku,price_EUR,compare_at_EUR,active,images,attribute_material',
    `lamp,Lamp,LAMP-1,20.00,25.00,true,${images[1]}|${images[0]},brass`,
    `lamp,Lamp,LAMP-2,21.00,,false,${images[1]}|${images[0]},brass`,
    `rug,Rug,RUG-1,30.00,30.001,true,,wool`,
    `mat,Mat,MAT-1,30.00,,maybe,,`,
    `vase,Vase,VASE-1,30.00,,,${avatar},`,
    `cup,Cup,CUP-1,30.00,,,not-an-id,`,
  ].join('\n') + '\n'
  const job = await importCatalog(app, admin, csv, '?mode=good-rows')
  const reported = job.errors.map((e: { line: number; column: string }) => [e.line, e.column]).sort((a: [number], b: [number]) => a[0] - b[0])
  t.same(reported, [[4, 'compare_at_EUR'], [5, 'active'], [6, 'images'], [7, 'images']], JSON.stringify(job.errors))
  t.match(job, { created: 2, failed: 4 })
  const lamp = (await app.inject({ method: 'GET', url: '/products/by-slug/lamp', headers: admin })).json()
  t.same(lamp.imageIds, [images[1], images[0]], 'in the order of the cell')
  t.same(lamp.attributes, { material: 'brass' })
  t.same(lamp.variants.map((v: { sku: string; compareAtPriceMinor: number | null; isActive: boolean }) => [v.sku, v.compareAtPriceMinor, v.isActive]), [['LAMP-1', 2500, true], ['LAMP-2', null, false]])

  // A compare-at price in another currency than the store's is refused with the header.
  const usd = await importCatalog(app, admin, 'handle,name,sku,price_EUR,compare_at_USD\nx,X,X-1,1.00,2.00\n')
  t.match(usd, { status: 'failed', errors: [{ line: 1, column: 'compare_at_USD' }] })
  // Changing them updates; the images in a new order are a change too.
  const change = await importCatalog(app, admin, `handle,name,sku,price_EUR,compare_at_EUR,active,images,attribute_material\nlamp,Lamp,LAMP-1,20.00,26.00,false,${images[0]}|${images[1]},steel\n`)
  t.match(change, { status: 'completed', updated: 1 })
  const after = (await app.inject({ method: 'GET', url: '/products/by-slug/lamp', headers: admin })).json()
  t.same([after.imageIds, after.attributes, after.variants[0].compareAtPriceMinor, after.variants[0].isActive], [[images[0], images[1]], { material: 'steel' }, 2600, false])
  // And the export carries the images back.
  t.match((await exportCatalog(app, admin)).toString('utf8'), new RegExp(`,${images[0]}\\|${images[1]},26\\.00,steel`))
})
