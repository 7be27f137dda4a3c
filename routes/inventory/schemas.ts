import { Type } from '@sinclair/typebox'

const Note = Type.String({ maxLength: 500 })
const Units = Type.Integer({ minimum: 0, maximum: 10_000_000 })

export const StockLocationCreate = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 100 }),
  priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, description: 'allocation tries lower first (default 100)' })),
}, { $id: 'StockLocationCreate', additionalProperties: false })

export const StockLocation = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  priority: Type.Integer(),
  isDefault: Type.Boolean({ description: 'where stock goes when no location is named' }),
  isActive: Type.Boolean(),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'StockLocation', additionalProperties: false })

export const StockLocationList = Type.Object({ items: Type.Array(Type.Ref(StockLocation)) }, { $id: 'StockLocationList', additionalProperties: false })

export const StockLevelSet = Type.Object({
  onHand: Units,
  note: Type.Optional(Note),
}, { $id: 'StockLevelSet', additionalProperties: false })

export const StockLevel = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  locationId: Type.String({ format: 'uuid' }),
  onHand: Type.Integer({ minimum: 0 }),
  reserved: Type.Integer({ minimum: 0, description: 'held by unpaid orders' }),
  available: Type.Integer({ minimum: 0, description: 'on hand - reserved: what can be sold here' }),
  updatedAt: Type.String({ format: 'date-time' }),
}, { $id: 'StockLevel', additionalProperties: false })

export const VariantStock = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  stock: Type.Integer({ minimum: 0, description: 'what can be sold over all locations (the variant\'s stock)' }),
  levels: Type.Array(Type.Ref(StockLevel)),
}, { $id: 'VariantStock', additionalProperties: false })

export const StockTransfer = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  fromLocationId: Type.String({ format: 'uuid' }),
  toLocationId: Type.String({ format: 'uuid' }),
  quantity: Type.Integer({ minimum: 1, maximum: 10_000_000 }),
  note: Type.Optional(Note),
}, { $id: 'StockTransfer', additionalProperties: false })

export const LevelParams = Type.Object({
  variantId: Type.String({ format: 'uuid' }),
  locationId: Type.String({ format: 'uuid' }),
}, { additionalProperties: false })
export const VariantParams = Type.Object({ variantId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [StockLocationCreate, StockLocation, StockLocationList, StockLevelSet, StockLevel, VariantStock, StockTransfer]
