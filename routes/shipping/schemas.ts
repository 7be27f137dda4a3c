import { Type } from '@sinclair/typebox'
import { CurrencyCode, StringEnum } from '../../src/schema-types.js'

const Minor = Type.Integer({ minimum: 0, maximum: 100_000_000 })
export const CountryCode = Type.String({ pattern: '^[A-Z]{2}$', description: 'ISO 3166-1 alpha-2' })
const Region = Type.String({ minLength: 1, maxLength: 100, description: 'as written in addresses (compared case-insensitively)' })
const Name = Type.String({ minLength: 1, maxLength: 100 })

export const ShippingBandSchema = Type.Object({
  upTo: Type.Integer({ minimum: 0, maximum: 100_000_000, description: 'grams (weight bands) or minor units of goods after discount (subtotal bands), inclusive' }),
  priceMinor: Minor,
}, { $id: 'ShippingBand', additionalProperties: false })

export const ShippingOption = Type.Object({
  id: Type.String({ format: 'uuid' }),
  zoneId: Type.String({ format: 'uuid' }),
  name: Type.String(),
  currency: Type.String({ description: "the currency of its price, bands and free-over amount: it is offered to carts in that currency only" }),
  priceMinor: Type.Integer({ description: 'the price when the option has no bands' }),
  freeOverMinor: Type.Union([Type.Null(), Type.Integer()], { description: 'free from this amount of goods after discount; null: never free' }),
  bandBasis: Type.Union([Type.Null(), StringEnum(['weight', 'subtotal'])]),
  bands: Type.Array(Type.Ref(ShippingBandSchema)),
  isActive: Type.Boolean(),
  position: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'ShippingOption', additionalProperties: false })

export const ShippingZone = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  countries: Type.Array(Type.String(), { description: 'empty: the fallback zone, serving every country no other zone lists' }),
  options: Type.Array(Type.Ref(ShippingOption)),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'ShippingZone', additionalProperties: false })
export const ShippingZoneList = Type.Object({ items: Type.Array(Type.Ref(ShippingZone)) }, { $id: 'ShippingZoneList', additionalProperties: false })

const zoneFields = {
  name: Name,
  countries: Type.Array(CountryCode, { maxItems: 250, uniqueItems: true, description: 'empty: fallback zone for every country no other zone lists' }),
}
export const ShippingZoneCreate = Type.Object(zoneFields, { $id: 'ShippingZoneCreate', additionalProperties: false })
export const ShippingZoneUpdate = Type.Partial(Type.Object(zoneFields), { $id: 'ShippingZoneUpdate', additionalProperties: false, minProperties: 1 })

const optionFields = {
  name: Name,
  currency: Type.Optional({ ...CurrencyCode, description: "ISO 4217: the option's amounts are in it and it is offered to carts in it only (default the store currency)" }),
  priceMinor: Minor,
  freeOverMinor: Type.Optional(Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 100_000_000 })])),
  bandBasis: Type.Optional(Type.Union([Type.Null(), StringEnum(['weight', 'subtotal'])], { description: 'with bands: the price is that of the first band whose upTo covers the cart; beyond the last the option does not apply' })),
  bands: Type.Optional(Type.Array(Type.Ref(ShippingBandSchema), { maxItems: 50 })),
  isActive: Type.Optional(Type.Boolean()),
  position: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
}
export const ShippingOptionCreate = Type.Object(optionFields, { $id: 'ShippingOptionCreate', additionalProperties: false })
export const ShippingOptionUpdate = Type.Partial(Type.Object(optionFields), { $id: 'ShippingOptionUpdate', additionalProperties: false, minProperties: 1 })

export const TaxRate = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  country: Type.Union([Type.Null(), Type.String()], { description: 'null: the rate of every destination without its own' }),
  region: Type.Union([Type.Null(), Type.String()]),
  rateBps: Type.Integer({ description: 'basis points: 2000 = 20%' }),
  createdAt: Type.String({ format: 'date-time' }),
}, { $id: 'TaxRate', additionalProperties: false })
export const TaxRateList = Type.Object({ items: Type.Array(Type.Ref(TaxRate)) }, { $id: 'TaxRateList', additionalProperties: false })
const rateFields = {
  name: Name,
  country: Type.Union([Type.Null(), CountryCode], { description: 'null: the default rate' }),
  region: Type.Optional(Type.Union([Type.Null(), Region], { description: 'a region of the country; its rate wins over the country\'s' })),
  rateBps: Type.Integer({ minimum: 0, maximum: 10_000 }),
}
export const TaxRateCreate = Type.Object(rateFields, { $id: 'TaxRateCreate', additionalProperties: false })
export const TaxRateUpdate = Type.Partial(Type.Object(rateFields), { $id: 'TaxRateUpdate', additionalProperties: false, minProperties: 1 })

export const ZoneParams = Type.Object({ zoneId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const OptionParams = Type.Object({ optionId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })
export const TaxRateParams = Type.Object({ taxRateId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const ShippingQuoteQuery = Type.Object({
  addressId: Type.Optional(Type.String({ format: 'uuid', description: 'one of my saved addresses (signed in)' })),
  country: Type.Optional(CountryCode),
  region: Type.Optional(Region),
}, { additionalProperties: false })
export const ShippingQuote = Type.Object({
  country: Type.String(),
  region: Type.Union([Type.Null(), Type.String()]),
  currency: Type.String(),
  goodsMinor: Type.Integer({ description: 'the available lines after the cart coupon (signed in), priced now' }),
  weightGrams: Type.Integer(),
  pricesIncludeTax: Type.Boolean(),
  taxRateBps: Type.Integer({ description: 'the rate of this destination' }),
  options: Type.Array(Type.Object({
    id: Type.String({ format: 'uuid' }), name: Type.String(), zoneId: Type.String({ format: 'uuid' }), zoneName: Type.String(),
    priceMinor: Type.Integer({ description: 'what this cart pays for it now (0 when free)' }),
  }, { additionalProperties: false }), { description: 'what checkout accepts as shippingOptionId for this destination, less the options whose zone cannot fill the available lines from the stock locations serving it' }),
}, { $id: 'ShippingQuote', additionalProperties: false })

const LocationIds = Type.Array(Type.String({ format: 'uuid' }), { maxItems: 100, uniqueItems: true })
export const ShippingZoneLocationsSet = Type.Object({
  locationIds: Type.Array(Type.String({ format: 'uuid' }), { maxItems: 100, uniqueItems: true, description: 'the stock locations that serve the zone; empty: every active location does' }),
}, { $id: 'ShippingZoneLocationsSet', additionalProperties: false })
export const ShippingZoneLocations = Type.Object({
  zoneId: Type.String({ format: 'uuid' }),
  locationIds: LocationIds,
  allLocations: Type.Boolean({ description: 'true when the zone names no location: every active location serves it' }),
}, { $id: 'ShippingZoneLocations', additionalProperties: false, description: "The stock locations an order to this zone is reserved from (in the inventory's allocation order: priority, then name). Inactive ones named here serve nothing until active again." })
export const ZoneLocationParams = Type.Object({ zoneId: Type.String({ format: 'uuid' }), locationId: Type.String({ format: 'uuid' }) }, { additionalProperties: false })

export const schemas = [ShippingZoneLocationsSet, ShippingZoneLocations, ShippingBandSchema, ShippingOption, ShippingZone, ShippingZoneList, ShippingZoneCreate, ShippingZoneUpdate, ShippingOptionCreate, ShippingOptionUpdate, TaxRate, TaxRateList, TaxRateCreate, TaxRateUpdate, ShippingQuote]
