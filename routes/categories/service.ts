import { asc, eq, sql } from 'drizzle-orm'
import { categories, products } from '../../db/schema/index.js'
import { isForeignKeyViolation, isUniqueViolation, type Db } from '../../db/client.js'
import { replicasCaughtUp } from '../../db/replicas.js'
import { Conflict, NotFound } from '../../src/errors.js'
import type { Cache } from '../../src/cache.js'
import { CATALOG_CACHE, categoryAndDescendants } from '../../src/catalog.js'


type CategoryRow = typeof categories.$inferSelect
export interface CategoryNode {
  id: string; parentId: string | null; name: string; slug: string; description: string | null; position: number; children: CategoryNode[]
}

const toCategory = (row: CategoryRow) => ({
  id: row.id, parentId: row.parentId, name: row.name, slug: row.slug, description: row.description, position: row.position,
})

// Tree moves are serialised: two concurrent moves could otherwise each pass the cycle check
// and together make a loop.
const TREE_LOCK = sql`select pg_advisory_xact_lock(7361842002)`

/** `dbRead` (replicas when configured) serves the cached public tree, which tolerates replication lag; writes use `db`. */
export function createCategoryService({ db, dbRead = db, cache }: { db: Db; dbRead?: Db; cache: Cache }) {
  const allOrdered = dbRead.select().from(categories).orderBy(asc(categories.position), asc(categories.name)).prepare('categories_all')

  async function buildTree() {
    const rows = await allOrdered.execute()
    const nodes = new Map<string, CategoryNode>(rows.map((r) => [r.id, { ...toCategory(r), children: [] }]))
    const roots: CategoryNode[] = []
    for (const node of nodes.values()) {
      const parent = node.parentId ? nodes.get(node.parentId) : undefined
      if (parent) parent.children.push(node)
      else roots.push(node)
    }
    return { roots, nodes }
  }

  function translateWriteError(err: unknown, parentId?: string | null): never {
    if (isUniqueViolation(err, 'categories_slug_key')) throw new Conflict('Another category uses that slug', 'slug-taken')
    if (isForeignKeyViolation(err)) throw new NotFound('parent category', parentId ?? undefined)
    throw err
  }

  return {
    async tree() {
      return cache.wrap(CATALOG_CACHE, 'category-tree', async () => ({ items: (await buildTree()).roots }))
    },

    /** One category with its subtree. */
    async getBySlug(slug: string) {
      return cache.wrap(CATALOG_CACHE, `category:${slug}`, async () => {
        const { nodes } = await buildTree()
        const node = [...nodes.values()].find((n) => n.slug === slug)
        if (!node) throw new NotFound('category', slug)
        return node
      })
    },

    async create(input: { name: string; slug: string; parentId?: string | null; description?: string | null; position?: number }) {
      try {
        const [row] = await db.insert(categories).values(input).returning()
        await replicasCaughtUp(dbRead)
        await cache.invalidate(CATALOG_CACHE)
        return toCategory(row!)
      } catch (err) {
        translateWriteError(err, input.parentId)
      }
    },

    async update(id: string, input: { name?: string; slug?: string; parentId?: string | null; description?: string | null; position?: number }) {
      try {
        const row = await db.transaction(async (tx) => {
          if (input.parentId !== undefined && input.parentId !== null) {
            await tx.execute(TREE_LOCK)
            const { rows } = await tx.execute<{ id: string }>(sql`select id from ${categoryAndDescendants(id)} as d where d.id = ${input.parentId}`)
            if (rows.length) throw new Conflict('A category cannot move under itself or one of its descendants', 'category-cycle')
          }
          const [updated] = await tx.update(categories).set({ ...input, updatedAt: new Date() }).where(eq(categories.id, id)).returning()
          if (!updated) throw new NotFound('category', id)
          return updated
        })
        await replicasCaughtUp(dbRead)
        await cache.invalidate(CATALOG_CACHE)
        return toCategory(row)
      } catch (err) {
        translateWriteError(err, input.parentId)
      }
    },

    async remove(id: string) {
      try {
        await db.transaction(async (tx) => {
          const [children] = await tx.select({ n: sql<number>`count(*)::int` }).from(categories).where(eq(categories.parentId, id)) as [{ n: number }]
          if (children.n > 0) throw new Conflict(`The category has ${children.n} subcategories; move or delete them first`, 'category-not-empty')
          const [used] = await tx.select({ n: sql<number>`count(*)::int` }).from(products).where(eq(products.categoryId, id)) as [{ n: number }]
          if (used.n > 0) throw new Conflict(`The category has ${used.n} products; move them first`, 'category-not-empty')
          const deleted = await tx.delete(categories).where(eq(categories.id, id)).returning({ id: categories.id })
          if (!deleted.length) throw new NotFound('category', id)
        })
      } catch (err) {
        // A product or child added between the count and the delete still hits the RESTRICT key.
        if (isForeignKeyViolation(err)) throw new Conflict('The category is still in use', 'category-not-empty')
        throw err
      }
      await replicasCaughtUp(dbRead)
      await cache.invalidate(CATALOG_CACHE)
    },
  }
}
