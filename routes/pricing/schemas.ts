import { Type } from '@sinclair/typebox'
import { CurrencyCode, DateTimeInput, StringEnum } from '../../src/schema-types.js'

export { CurrencyCode }
const Minor = Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'minor units of the currency' })
const Uuid = Type.String({ format: 'uuid' })
const Name = Type.String({ minLength: 1, maxLength: 100 })
const Timestamp = Type.Union([Type.Null(), Type.String({ format: 'date-time' })])

export const Region = Type.Object({
  id: Uuid,
  name: Type.String(),
  currency: CurrencyCode,
  pricesIncludeTax: Type.Boolean({ description: 'prices in this region include tax (checkout takes the tax out of them)' }),
  isDefault: Type.Boolean({ description: 'the region made from STORE_CURRENCY when the shop went multi-currency' }),
  countries: Type.Array(Type.String(), { description: 'ISO 3166-1 alpha-2; a country is in one region at most' }),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'Region', additionalProperties: false })
export const RegionList = Type.Object({ items: Type.Array(Type.Ref(Region)) }, { $id: 'RegionList', additionalProperties: false })
const regionFields = {
  name: Name,
  currency: CurrencyCode,
  pricesIncludeTax: Type.Optional(Type.Boolean()),
  countries: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]{2}$' }), { maxItems: 250, uniqueItems: true })),
}
export const RegionCreate = Type.Object(regionFields, { $id: 'RegionCreate', additionalProperties: false })
export const RegionUpdate = Type.Partial(Type.Object(regionFields), { $id: 'RegionUpdate', additionalProperties: false, minProperties: 1 })
export const RegionParams = Type.Object({ regionId: Uuid }, { additionalProperties: false })

export const VariantPrice = Type.Object({ currency: CurrencyCode, amountMinor: Type.Integer() }, { $id: 'VariantPrice', additionalProperties: false })
export const VariantPriceList = Type.Object({ items: Type.Array(Type.Ref(VariantPrice)) }, { $id: 'VariantPriceList', additionalProperties: false })
export const VariantPriceSet = Type.Object({ amountMinor: Minor }, { $id: 'VariantPriceSet', additionalProperties: false })
export const VariantPriceParams = Type.Object({ productId: Uuid, variantId: Uuid, currency: CurrencyCode }, { additionalProperties: false })

export const CustomerGroup = Type.Object({ id: Uuid, name: Type.String(), createdAt: Type.String({ format: 'date-time' }) }, { $id: 'CustomerGroup', additionalProperties: false })
export const CustomerGroupList = Type.Object({ items: Type.Array(Type.Ref(CustomerGroup)) }, { $id: 'CustomerGroupList', additionalProperties: false })
export const CustomerGroupCreate = Type.Object({ name: Name }, { $id: 'CustomerGroupCreate', additionalProperties: false })
export const GroupMember = Type.Object({ userId: Uuid, email: Type.String(), addedAt: Type.String({ format: 'date-time' }) }, { $id: 'GroupMember', additionalProperties: false })
export const GroupMemberList = Type.Object({ items: Type.Array(Type.Ref(GroupMember)) }, { $id: 'GroupMemberList', additionalProperties: false })
export const GroupMemberAdd = Type.Object({ userId: Uuid }, { $id: 'GroupMemberAdd', additionalProperties: false })
export const GroupParams = Type.Object({ groupId: Uuid }, { additionalProperties: false })
export const MemberParams = Type.Object({ groupId: Uuid, userId: Uuid }, { additionalProperties: false })

export const PriceListPrice = Type.Object({ variantId: Uuid, currency: CurrencyCode, amountMinor: Minor }, { $id: 'PriceListPrice', additionalProperties: false })
const listFields = {
  name: Name,
  kind: StringEnum(['sale', 'override'], { description: 'sale: the lowest of base and sale prices is paid; override: its price is paid, even above the base' }),
  status: Type.Optional(StringEnum(['draft', 'active'], { description: 'only active lists apply' })),
  startsAt: Type.Optional(Type.Union([Type.Null(), DateTimeInput()])),
  endsAt: Type.Optional(Type.Union([Type.Null(), DateTimeInput()])),
  customerGroupId: Type.Optional(Type.Union([Type.Null(), Uuid], { description: 'applies only to signed-in members of this group' })),
  minQuantity: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'applies to lines of at least this quantity' })),
}
export const PriceListCreate = Type.Object({
  ...listFields,
  prices: Type.Optional(Type.Array(Type.Ref(PriceListPrice), { maxItems: 1000 })),
}, { $id: 'PriceListCreate', additionalProperties: false })
export const PriceListUpdate = Type.Partial(Type.Object(listFields), { $id: 'PriceListUpdate', additionalProperties: false, minProperties: 1 })
export const PriceListPricesPut = Type.Object({ prices: Type.Array(Type.Ref(PriceListPrice), { minItems: 1, maxItems: 1000 }) }, { $id: 'PriceListPricesPut', additionalProperties: false })
const listOut = {
  id: Uuid, name: Type.String(), kind: StringEnum(['sale', 'override']), status: StringEnum(['draft', 'active']),
  startsAt: Timestamp, endsAt: Timestamp, customerGroupId: Type.Union([Type.Null(), Uuid]), minQuantity: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }), updatedAt: Type.String({ format: 'date-time' }),
}
export const PriceListSummary = Type.Object(listOut, { $id: 'PriceListSummary', additionalProperties: false })
export const PriceList = Type.Object({ ...listOut, prices: Type.Array(Type.Ref(PriceListPrice)) }, { $id: 'PriceList', additionalProperties: false })
export const PriceListList = Type.Object({ items: Type.Array(Type.Ref(PriceListSummary)) }, { $id: 'PriceListList', additionalProperties: false })
export const PriceListParams = Type.Object({ priceListId: Uuid }, { additionalProperties: false })
export const PriceListPriceParams = Type.Object({ priceListId: Uuid, variantId: Uuid, currency: CurrencyCode }, { additionalProperties: false })

export const schemas = [
  Region, RegionList, RegionCreate, RegionUpdate, VariantPrice, VariantPriceList, VariantPriceSet,
  CustomerGroup, CustomerGroupList, CustomerGroupCreate, GroupMember, GroupMemberList, GroupMemberAdd,
  PriceListPrice, PriceListCreate, PriceListUpdate, PriceListPricesPut, PriceListSummary, PriceList, PriceListList,
]
