import { Type } from '@sinclair/typebox'
import { StringEnum, StringMap } from '../../src/schema-types.js'
import { PageQuery, pageOf } from '../../src/pagination.js'
import { Slug } from '../categories/schemas.js'
import { ProductImage } from '../uploads/schemas.js'

const Minor = (description: string) => Type.Integer({ minimum: 0, maximum: 100_000_000, description: `${description}, in minor units of the store currency` })
const CurrencyAsked = {
  currency: Type.Optional(Type.String({ pattern: '^[A-Za-z]{3}$', description: 'ISO 4217: prices in this currency (default the store currency); products and variants not sold in it are left out' })),
  region: Type.Optional(Type.String({ format: 'uuid', description: "a region: prices in its currency (instead of currency)" })),
}
export const CurrencyQuery = Type.Object(CurrencyAsked, { additionalProperties: false })
const Currency = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217' })
const OptionValues = StringMap(Type.String({ minLength: 1, maxLength: 100 }), {
  maxKeyLength: 40, maxProperties: 10, description: 'option name to value, e.g. { "size": "M", "colour": "red" }',
})
const Attributes = StringMap(Type.String({ maxLength: 500 }), { maxKeyLength: 60, maxProperties: 50 })
const ImageIds = Type.Array(Type.String({ format: 'uuid' }), { maxItems: 20, uniqueItems: true, description: 'upload ids, in display order' })

export const ProductStatus = StringEnum(['draft', 'active', 'archived'], { $id: 'ProductStatus' })

export const Variant = Type.Object({
  id: Type.String({ format: 'uuid' }),
  sku: Type.String(),
  options: Type.Record(Type.String(), Type.String()),
  priceMinor: Type.Integer(),
  compareAtPriceMinor: Type.Union([Type.Null(), Type.Integer()]),
  currency: Currency,
  stock: Type.Integer({ minimum: 0 }),
  isActive: Type.Boolean(),
  weightGrams: Type.Union([Type.Null(), Type.Integer()], { description: 'for weight-banded shipping; null counts as 0' }),
}, { $id: 'Variant', additionalProperties: false })

export const PriceRange = Type.Object({
  minMinor: Type.Integer(), maxMinor: Type.Integer(), currency: Currency,
}, { $id: 'PriceRange', additionalProperties: false })

export const RatingSummary = Type.Object({
  average: Type.Number({ minimum: 0, maximum: 5 }), count: Type.Integer({ minimum: 0 }),
}, { $id: 'RatingSummary', additionalProperties: false })

const summaryFields = {
  id: Type.String({ format: 'uuid' }),
  slug: Type.String(),
  name: Type.String(),
  status: Type.Ref(ProductStatus),
  categoryId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  priceRange: Type.Ref(PriceRange),
  inStock: Type.Boolean(),
  rating: Type.Ref(RatingSummary),
  imageIds: Type.Array(Type.String({ format: 'uuid' })),
  images: Type.Array(Type.Ref(ProductImage), { description: 'the images of imageIds, in that order, each with the URLs of its sizes (so a storefront needs no request per image)' }),
  createdAt: Type.String({ format: 'date-time' }),
}

export const ProductSummary = Type.Object(summaryFields, { $id: 'ProductSummary', additionalProperties: false })

export const Product = Type.Object({
  ...summaryFields,
  description: Type.String(),
  attributes: Type.Record(Type.String(), Type.String()),
  variants: Type.Array(Type.Ref(Variant)),
  updatedAt: Type.String({ format: 'date-time' }),
}, { $id: 'Product', additionalProperties: false })

export const VariantCreate = Type.Object({
  sku: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', minLength: 1, maxLength: 64 }),
  options: Type.Optional(OptionValues),
  priceMinor: Minor('unit price'),
  compareAtPriceMinor: Type.Optional(Type.Union([Type.Null(), Minor('the "was" price shown struck through')])),
  stock: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'initial stock, recorded as a restock movement' })),
  isActive: Type.Optional(Type.Boolean()),
  weightGrams: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 0, maximum: 10_000_000, description: 'grams, for weight-banded shipping' })])),
}, { $id: 'VariantCreate', additionalProperties: false })

export const VariantUpdate = Type.Partial(Type.Omit(VariantCreate, ['stock']), {
  $id: 'VariantUpdate', additionalProperties: false, minProperties: 1,
  description: 'Stock changes only through a stock adjustment, which keeps the audit trail.',
})

export const ProductCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 200 }),
  slug: Slug,
  description: Type.Optional(Type.String({ maxLength: 20_000 })),
  status: Type.Optional(Type.Ref(ProductStatus)),
  categoryId: Type.Optional(Type.Union([Type.Null(), Type.String({ format: 'uuid' })])),
  attributes: Type.Optional(Attributes),
  imageIds: Type.Optional(ImageIds),
  variants: Type.Array(Type.Ref(VariantCreate), { minItems: 1, maxItems: 100, description: 'every product has at least one variant' }),
}, { $id: 'ProductCreate', additionalProperties: false })

export const ProductUpdate = Type.Partial(Type.Omit(ProductCreate, ['variants']), { $id: 'ProductUpdate', additionalProperties: false, minProperties: 1 })

export const InventoryReason = StringEnum(
  ['restock', 'correction', 'damage', 'return'],
  { $id: 'InventoryReason', description: 'sale, claim, cancellation and transfer movements are written by checkout, payments and transfers, not by hand' },
)

export const StockAdjustment = Type.Object({
  delta: Type.Integer({ minimum: -10_000_000, maximum: 10_000_000, not: { const: 0 }, description: 'units to add (positive) or remove (negative)' }),
  reason: Type.Ref(InventoryReason),
  note: Type.Optional(Type.String({ maxLength: 500 })),
  locationId: Type.Optional(Type.String({ format: 'uuid', description: 'the stock location; the default location when left out' })),
}, { $id: 'StockAdjustment', additionalProperties: false })

export const InventoryMovement = Type.Object({
  id: Type.String({ format: 'uuid' }),
  variantId: Type.String({ format: 'uuid' }),
  delta: Type.Integer({ description: 'change of what can be sold of the variant (all locations)' }),
  stockAfter: Type.Integer({ description: 'what can be sold of the variant afterwards' }),
  reason: Type.String(),
  locationId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  onHandDelta: Type.Integer({ description: 'change of on hand at the location' }),
  reservedDelta: Type.Integer({ description: 'change of reserved at the location' }),
  reference: Type.Union([Type.Null(), Type.String()], { description: 'what caused it: an order, a return, a transfer' }),
  note: Type.Union([Type.Null(), Type.String()]),
  actorId: Type.Union([Type.Null(), Type.String({ format: 'uuid' })]),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'InventoryMovement', additionalProperties: false })
export const InventoryMovementPage = pageOf(Type.Ref(InventoryMovement), 'InventoryMovementPage')

export const SORTS = ['relevance', 'newest', 'price_asc', 'price_desc', 'rating', 'name'] as const
export type ProductSort = (typeof SORTS)[number]

export const ProductListQuery = Type.Object({
  ...PageQuery,
  q: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'full-text search over name and description' })),
  category: Type.Optional(Type.String({ format: 'uuid', description: 'a category id; includes its descendants' })),
  minPrice: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'lowest variant price at least, as the shopper pays it (price lists, customer groups), in minor units of the listing currency' })),
  maxPrice: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'lowest variant price at most, as the shopper pays it (price lists, customer groups), in minor units of the listing currency' })),
  ...CurrencyAsked,
  inStock: Type.Optional(Type.Boolean({ description: 'only products with an active variant in stock' })),
  sort: Type.Optional(StringEnum(SORTS, { description: 'default: relevance with q, newest without; the price sorts use the lowest variant price the shopper pays in the listing currency' })),
  status: Type.Optional(Type.Ref(ProductStatus, { description: 'admins only; customers always see active products' })),
}, { additionalProperties: false })
export const ProductPage = pageOf(Type.Ref(ProductSummary), 'ProductPage')

export const ProductIdParams = Type.Object({ productId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const ProductSlugParams = Type.Object({ slug: Slug }, { additionalProperties: false })
export const VariantParams = Type.Object({
  productId: Type.String({ format: 'uuid' }), variantId: Type.String({ format: 'uuid' }),
}, { additionalProperties: false })
export const MovementListQuery = Type.Object({ ...PageQuery }, { additionalProperties: false })

export const schemas = [
  ProductStatus, Variant, PriceRange, RatingSummary, ProductSummary, Product, VariantCreate, VariantUpdate,
  ProductCreate, ProductUpdate, InventoryReason, StockAdjustment, InventoryMovement, InventoryMovementPage, ProductPage,
]
