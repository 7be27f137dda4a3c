import type { App } from '../src/app.js'

// Catalog fixtures made through the admin API, so tests exercise the same path as a shop.

let counter = 0
const unique = (base: string) => `${base}-${++counter}-${Math.random().toString(36).slice(2, 7)}`

export async function createCategory(app: App, headers: Record<string, string>, input: { name?: string; slug?: string; parentId?: string | null; position?: number } = {}) {
  const res = await app.inject({ method: 'POST', url: '/categories', headers, payload: { name: input.name ?? 'Category', slug: input.slug ?? unique('cat'), ...input } })
  if (res.statusCode !== 201) throw new Error(`createCategory: ${res.statusCode} ${res.body}`)
  return res.json()
}

export interface VariantSpec { sku?: string; priceMinor?: number; stock?: number; isActive?: boolean; options?: Record<string, string>; compareAtPriceMinor?: number | null; weightGrams?: number | null }

export async function createProduct(app: App, headers: Record<string, string>, input: {
  name?: string; slug?: string; description?: string; status?: 'draft' | 'active' | 'archived'; categoryId?: string | null; variants?: VariantSpec[]
} = {}) {
  const variants = (input.variants ?? [{}]).map((v) => ({ sku: v.sku ?? unique('SKU').toUpperCase(), priceMinor: v.priceMinor ?? 1000, stock: v.stock ?? 10, ...v }))
  const res = await app.inject({
    method: 'POST', url: '/products', headers,
    payload: { name: input.name ?? 'Product', slug: input.slug ?? unique('product'), status: input.status ?? 'active', ...input, variants },
  })
  if (res.statusCode !== 201) throw new Error(`createProduct: ${res.statusCode} ${res.body}`)
  return res.json()
}
