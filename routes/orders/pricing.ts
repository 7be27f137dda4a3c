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
export interface Totals { subtotalMinor: number; discountMinor: number; shippingMinor: number; taxMinor: number; totalMinor: number; lineDiscounts: Map<string, number> }

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

export function computeTotals(lines: PricedLine[], coupon: CouponRule | null, shipping: ShippingRule, taxRateBps: number): Totals {
  const subtotalMinor = lines.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0)
  const { discountMinor, lineDiscounts } = discountFor(lines, coupon)
  const goods = subtotalMinor - discountMinor
  const shippingMinor = lines.length === 0 || (shipping.freeOverMinor > 0 && goods >= shipping.freeOverMinor) ? 0 : shipping.flatMinor
  const taxMinor = roundHalfUp((goods + shippingMinor) * taxRateBps, 10_000)
  return { subtotalMinor, discountMinor, shippingMinor, taxMinor, totalMinor: goods + shippingMinor + taxMinor, lineDiscounts }
}
