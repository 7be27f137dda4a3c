// Order arithmetic, in integer minor units, with no I/O: the one place totals are computed.
// Rounding is half up, once per amount.

export interface PricedLine { variantId: string; productId: string; categoryId: string | null; unitPriceMinor: number; quantity: number }
export interface CouponRule {
  kind: 'percentage' | 'fixed'; value: number; minSubtotalMinor: number; maxDiscountMinor: number | null
  productIds: string[]
  /** The coupon's categories with all their descendants. */
  categoryIds: string[]
}
export interface ShippingRule { flatMinor: number; freeOverMinor: number }
export interface Totals {
  subtotalMinor: number; discountMinor: number; shippingMinor: number; taxMinor: number; totalMinor: number
  lineDiscounts: Map<string, number>
  /** Each line's share of the tax (what is left is the tax on shipping). */
  lineTaxes: Map<string, number>
}
/** A shipping option's price rule; bands by weight (grams) or by goods after discount. */
export interface ShippingOptionRule { priceMinor: number; freeOverMinor: number | null; bandBasis: 'weight' | 'subtotal' | null; bands: { upTo: number; priceMinor: number }[] }

export const roundHalfUp = (numerator: number, denominator: number) => Math.floor((numerator * 2 + denominator) / (denominator * 2))

export function isEligible(line: PricedLine, coupon: CouponRule) {
  const unrestricted = coupon.productIds.length === 0 && coupon.categoryIds.length === 0
  return unrestricted || coupon.productIds.includes(line.productId) || (line.categoryId !== null && coupon.categoryIds.includes(line.categoryId))
}

/** Why a coupon gives nothing on these lines, or null when it applies. Limits are checked elsewhere. */
export function couponShortfall(lines: PricedLine[], coupon: CouponRule): string | null {
  const eligible = lines.filter((l) => isEligible(l, coupon))
  if (!eligible.length) return 'The code does not apply to any item in the cart'
  const subtotal = lines.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0)
  if (subtotal < coupon.minSubtotalMinor) return `The code needs a subtotal of at least ${coupon.minSubtotalMinor} (minor units)`
  return null
}

/** The discount on the eligible lines, capped, and spread over them in proportion (largest remainder). */
export function discountFor(lines: PricedLine[], coupon: CouponRule | null): { discountMinor: number; lineDiscounts: Map<string, number> } {
  const lineDiscounts = new Map<string, number>()
  if (!coupon || couponShortfall(lines, coupon)) return { discountMinor: 0, lineDiscounts }
  const eligible = lines.filter((l) => isEligible(l, coupon))
  const eligibleSubtotal = eligible.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0)
  let discount = coupon.kind === 'percentage' ? roundHalfUp(eligibleSubtotal * coupon.value, 100) : coupon.value
  if (coupon.maxDiscountMinor !== null) discount = Math.min(discount, coupon.maxDiscountMinor)
  discount = Math.min(discount, eligibleSubtotal)
  if (discount === 0) return { discountMinor: 0, lineDiscounts }

  const shares = eligible.map((l) => {
    const exact = (discount * l.unitPriceMinor * l.quantity) / eligibleSubtotal
    return { id: l.variantId, floor: Math.floor(exact), remainder: exact - Math.floor(exact) }
  })
  let left = discount - shares.reduce((s, x) => s + x.floor, 0)
  for (const share of [...shares].sort((a, b) => b.remainder - a.remainder || (a.id < b.id ? -1 : 1))) {
    lineDiscounts.set(share.id, share.floor + (left > 0 ? 1 : 0))
    left--
  }
  return { discountMinor: discount, lineDiscounts }
}

/**
 * What an option charges for goods (after discount) of this value and weight, as a ShippingRule;
 * null when its bands do not reach that far (the option does not apply).
 */
export function shippingRuleFor(option: ShippingOptionRule, cart: { goodsMinor: number; weightGrams: number }): ShippingRule | null {
  let flatMinor = option.priceMinor
  if (option.bandBasis) {
    const measure = option.bandBasis === 'weight' ? cart.weightGrams : cart.goodsMinor
    const band = [...option.bands].sort((a, b) => a.upTo - b.upTo).find((b) => measure <= b.upTo)
    if (!band) return null
    flatMinor = band.priceMinor
  }
  return { flatMinor, freeOverMinor: option.freeOverMinor ?? 0 }
}

/** Splits `total` over `weights` in proportion, by largest remainder (ties to the earlier key). */
export function allocate(total: number, weights: [string, number][]): Map<string, number> {
  const sum = weights.reduce((s, [, w]) => s + w, 0)
  const shares = new Map<string, number>()
  if (sum === 0) return shares
  const exact = weights.map(([key, w]) => ({ key, floor: Math.floor((total * w) / sum), remainder: ((total * w) % sum) / sum }))
  let left = total - exact.reduce((s, x) => s + x.floor, 0)
  for (const share of [...exact].sort((a, b) => b.remainder - a.remainder || (a.key < b.key ? -1 : 1))) {
    shares.set(share.key, share.floor + (left > 0 ? 1 : 0))
    left--
  }
  return shares
}

/**
 * Totals of an order. Tax is one rate (the destination's) on goods after discount plus shipping,
 * rounded half up once: added on top when prices exclude tax, or the part of the price that is
 * tax when they include it (then the total does not grow by it).
 */
export function computeTotals(lines: PricedLine[], coupon: CouponRule | null, shipping: ShippingRule, taxRateBps: number, pricesIncludeTax = false): Totals {
  const subtotalMinor = lines.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0)
  const { discountMinor, lineDiscounts } = discountFor(lines, coupon)
  const goods = subtotalMinor - discountMinor
  const shippingMinor = lines.length === 0 || (shipping.freeOverMinor > 0 && goods >= shipping.freeOverMinor) ? 0 : shipping.flatMinor
  const taxable = goods + shippingMinor
  const taxMinor = pricesIncludeTax ? taxable - roundHalfUp(taxable * 10_000, 10_000 + taxRateBps) : roundHalfUp(taxable * taxRateBps, 10_000)
  const shares = allocate(taxMinor, [...lines.map((l): [string, number] => [l.variantId, l.unitPriceMinor * l.quantity - (lineDiscounts.get(l.variantId) ?? 0)]), ['~shipping', shippingMinor]])
  shares.delete('~shipping')
  return { subtotalMinor, discountMinor, shippingMinor, taxMinor, totalMinor: taxable + (pricesIncludeTax ? 0 : taxMinor), lineDiscounts, lineTaxes: shares }
}
