import { Type } from '@sinclair/typebox'
import { DateTimeInput, StringEnum } from '../../src/schema-types.js'

const Range = {
  from: DateTimeInput({ description: 'inclusive' }),
  to: DateTimeInput({ description: 'exclusive' }),
  currency: Type.Optional(Type.String({ pattern: '^[A-Z]{3}$', description: 'the currency whose orders are summed (default the store currency); amounts of different currencies are never added' })),
}
export const RangeQuery = Type.Object(Range, { additionalProperties: false })
export const TopProductsQuery = Type.Object({ ...Range, by: Type.Optional(StringEnum(['revenue', 'units'], { default: 'revenue' })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 10 })) }, { additionalProperties: false })
export const LowStockQuery = Type.Object({ threshold: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, default: 5 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 50 })) }, { additionalProperties: false })

const Day = Type.String({ format: 'date', description: 'UTC day' })
const BuyerTotals = Type.Object({ orders: Type.Integer(), revenueMinor: Type.Integer() }, { additionalProperties: false })
export const SalesSummary = Type.Object({
  currency: Type.String(),
  orders: Type.Integer({ description: 'orders paid in the range' }),
  revenueMinor: Type.Integer({ description: 'their totals less refunds' }),
  averageOrderValueMinor: Type.Integer(),
  byDay: Type.Array(Type.Object({ day: Day, orders: Type.Integer(), revenueMinor: Type.Integer() }, { additionalProperties: false })),
  byBuyer: Type.Object({
    guests: BuyerTotals,
    customers: BuyerTotals,
  }, { additionalProperties: false, description: 'the same orders and revenue split by who placed them: a guest (also once claimed into an account) or a signed-in customer' }),
  byCurrency: Type.Array(Type.Object({ currency: Type.String(), orders: Type.Integer(), revenueMinor: Type.Integer(), averageOrderValueMinor: Type.Integer() }, { additionalProperties: false }), { description: 'every currency paid in the range, each summed apart' }),
}, { $id: 'SalesSummary', additionalProperties: false })
export const TopProducts = Type.Object({
  currency: Type.String(),
  items: Type.Array(Type.Object({ productId: Type.Union([Type.Null(), Type.String()]), name: Type.String(), units: Type.Integer(), revenueMinor: Type.Integer() }, { additionalProperties: false })),
}, { $id: 'TopProducts', additionalProperties: false })
export const LowStock = Type.Object({
  items: Type.Array(Type.Object({ variantId: Type.String(), productId: Type.String(), sku: Type.String(), name: Type.String(), stock: Type.Integer() }, { additionalProperties: false })),
}, { $id: 'LowStock', additionalProperties: false })
export const PaymentStats = Type.Object({
  byProvider: Type.Array(Type.Object({
    provider: Type.String(), currency: Type.String(), payments: Type.Integer(), succeeded: Type.Integer(), failed: Type.Integer(),
    successRate: Type.Number({ description: 'succeeded / (succeeded + failed), 0 when none finished' }),
    capturedMinor: Type.Integer(), refundedMinor: Type.Integer(),
    refundRate: Type.Number({ description: 'refunded / captured amount' }),
  }, { additionalProperties: false })),
}, { $id: 'PaymentStats', additionalProperties: false })
export const NewCustomers = Type.Object({
  total: Type.Integer(),
  byDay: Type.Array(Type.Object({ day: Day, customers: Type.Integer() }, { additionalProperties: false })),
}, { $id: 'NewCustomers', additionalProperties: false })

export const ShippingTaxStats = Type.Object({
  currency: Type.String(),
  orders: Type.Integer({ description: 'orders paid in the range, not cancelled or wholly refunded' }),
  shippingMinor: Type.Integer({ description: 'shipping charged on them' }),
  taxMinor: Type.Integer({ description: 'tax charged on them' }),
  byCountry: Type.Array(Type.Object({ country: Type.String(), orders: Type.Integer(), shippingMinor: Type.Integer(), taxMinor: Type.Integer() }, { additionalProperties: false })),
}, { $id: 'ShippingTaxStats', additionalProperties: false })
export const ReturnStats = Type.Object({
  currency: Type.String(),
  returns: Type.Integer({ description: 'returns asked for in the range' }),
  refundedMinor: Type.Integer({ description: 'refunded for them' }),
  byStatus: Type.Array(Type.Object({ status: Type.String(), returns: Type.Integer() }, { additionalProperties: false })),
  byReason: Type.Array(Type.Object({ reason: Type.String(), lines: Type.Integer(), units: Type.Integer() }, { additionalProperties: false }), { description: 'most units first' }),
}, { $id: 'ReturnStats', additionalProperties: false })

export const schemas = [SalesSummary, TopProducts, LowStock, PaymentStats, NewCustomers, ShippingTaxStats, ReturnStats]
