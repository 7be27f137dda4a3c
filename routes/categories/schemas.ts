import { Type } from '@sinclair/typebox'

export const Slug = Type.String({ pattern: '^[a-z0-9]+(?:-[a-z0-9]+)*$', minLength: 1, maxLength: 100, description: 'lower-case words joined by hyphens (at most 100 characters, the router limit for a path segment)' })

const categoryFields = {
  id: Type.String({ format: 'uuid' }),
  parentId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  name: Type.String(),
  slug: Type.String(),
  description: Type.Union([Type.Null(), Type.String()]),
  position: Type.Integer(),
}

export const Category = Type.Object(categoryFields, { $id: 'Category', additionalProperties: false })

export const CategoryNode = Type.Recursive((Self) => Type.Object({ ...categoryFields, children: Type.Array(Self) }, { additionalProperties: false }), { $id: 'CategoryNode' })

export const CategoryTree = Type.Object({ items: Type.Array(Type.Ref(CategoryNode)) }, { $id: 'CategoryTree', additionalProperties: false })

export const CategoryCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  slug: Slug,
  parentId: Type.Optional(Type.Union([Type.Null(), Type.String({ format: 'uuid' })])),
  description: Type.Optional(Type.Union([Type.Null(), Type.String({ maxLength: 2000 })])),
  position: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000 })),
}, { $id: 'CategoryCreate', additionalProperties: false })

export const CategoryUpdate = Type.Partial(CategoryCreate, {
  $id: 'CategoryUpdate', additionalProperties: false, minProperties: 1,
  description: 'Any subset; parentId and position move the category (never under itself or a descendant).',
})

export const CategoryIdParams = Type.Object({ categoryId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const CategorySlugParams = Type.Object({ slug: Slug }, { additionalProperties: false })

export const schemas = [Category, CategoryNode, CategoryTree, CategoryCreate, CategoryUpdate]
