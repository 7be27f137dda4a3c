import t from 'tap'
import { allocate, computeTotals, couponShortfall, discountFor, isEligible, roundHalfUp, shippingRuleFor, type CouponRule, type PricedLine } from '../../src/pricing.js'

// Order arithmetic (src/pricing.ts): integer minor units, half-up rounding, remainders spread
// so the parts always add up to the whole.

const line = (variantId: string, unitPriceMinor: number, quantity = 1, more: Partial<PricedLine> = {}): PricedLine =>
  ({ variantId, productId: `p-${variantId}`, categoryId: null, unitPriceMinor, quantity, ...more })
const coupon = (more: Partial<CouponRule>): CouponRule =>
  ({ kind: 'percentage', value: 10, minSubtotalMinor: 0, maxDiscountMinor: null, productIds: [], categoryIds: [], ...more })
const sum = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0)
const NO_SHIPPING = { flatMinor: 0, freeOverMinor: 0 }

/** A deterministic pseudo-random sequence (mulberry32), so a failing case can be replayed. */
function random(seed: number) {
  return (below: number) => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return Math.floor((((x ^ (x >>> 14)) >>> 0) / 4_294_967_296) * below)
  }
}

t.test('roundHalfUp: halves go up, the rest to the nearest', async (t) => {
  t.equal(roundHalfUp(4, 10), 0, '0.4')
  t.equal(roundHalfUp(5, 10), 1, '0.5 up')
  t.equal(roundHalfUp(15, 10), 2, '1.5 up')
  t.equal(roundHalfUp(25, 10), 3, '2.5 up, not to even')
  t.equal(roundHalfUp(2499, 1000), 2, '2.499')
  t.equal(roundHalfUp(30, 10), 3, 'exact')
  t.equal(roundHalfUp(0, 7), 0, 'zero')
  t.equal(roundHalfUp(1, 3), 0, 'a third')
  t.equal(roundHalfUp(2, 3), 1, 'two thirds')
  // No caller passes a negative amount; this pins what "up" means for one: towards +infinity.
  t.equal(roundHalfUp(-5, 10), 0, '-0.5 goes to 0')
  t.equal(roundHalfUp(-15, 10), -1, '-1.5 goes to -1')
  t.equal(roundHalfUp(-16, 10), -2, '-1.6 goes to -2')
  t.equal(roundHalfUp(1e15 + 5, 10), 1e14 + 1, 'exact at the size of the largest amounts times a rate')
})

t.test('isEligible: an unrestricted coupon takes every line; a restricted one its products and categories', async (t) => {
  const shirt = line('v1', 100, 1, { productId: 'shirt', categoryId: 'tops' })
  const mug = line('v2', 100, 1, { productId: 'mug', categoryId: null })
  t.ok(isEligible(shirt, coupon({})))
  t.ok(isEligible(mug, coupon({})))
  t.ok(isEligible(shirt, coupon({ productIds: ['shirt'] })))
  t.notOk(isEligible(mug, coupon({ productIds: ['shirt'] })))
  t.ok(isEligible(shirt, coupon({ categoryIds: ['tops'] })))
  t.notOk(isEligible(mug, coupon({ categoryIds: ['tops'] })), 'a line without a category is not in any')
  t.ok(isEligible(mug, coupon({ productIds: ['mug'], categoryIds: ['tops'] })), 'product or category')
})

t.test('couponShortfall: says why a coupon gives nothing, or null', async (t) => {
  const lines = [line('v1', 1500, 2, { productId: 'shirt' }), line('v2', 1000, 1, { productId: 'mug' })]
  t.equal(couponShortfall(lines, coupon({})), null)
  t.match(couponShortfall(lines, coupon({ productIds: ['hat'] })), /does not apply to any item/)
  t.match(couponShortfall([], coupon({})), /does not apply to any item/, 'an empty cart')
  t.equal(couponShortfall(lines, coupon({ minSubtotalMinor: 4000 })), null, 'exactly the minimum is enough')
  t.match(couponShortfall(lines, coupon({ minSubtotalMinor: 4001 })), /at least 4001/)
  // The minimum is on the whole cart, not only the eligible lines.
  t.equal(couponShortfall(lines, coupon({ productIds: ['mug'], minSubtotalMinor: 4000 })), null)
})

t.test('discountFor: percentage rounded half up, capped, never above the eligible goods', async (t) => {
  t.equal(discountFor([line('a', 1995)], coupon({ value: 10 })).discountMinor, 200, '199.5 -> 200')
  t.equal(discountFor([line('a', 1994)], coupon({ value: 10 })).discountMinor, 199, '199.4 -> 199')
  t.equal(discountFor([line('a', 1000)], coupon({ value: 100 })).discountMinor, 1000, '100% is the whole line')
  t.equal(discountFor([line('a', 10_000)], coupon({ value: 50, maxDiscountMinor: 1000 })).discountMinor, 1000, 'capped')
  t.equal(discountFor([line('a', 300)], coupon({ kind: 'fixed', value: 500 })).discountMinor, 300, 'a fixed amount above the goods gives the goods')
  t.equal(discountFor([line('a', 300, 1, { productId: 'x' }), line('b', 5000)], coupon({ kind: 'fixed', value: 500, productIds: ['x'] })).discountMinor, 300, '... the eligible goods')

  for (const [what, c] of [['no coupon', null], ['a cap of 0', coupon({ maxDiscountMinor: 0 })], ['0%', coupon({ value: 0 })], ['a shortfall', coupon({ minSubtotalMinor: 10_000 })]] as const) {
    const none = discountFor([line('a', 1000)], c)
    t.same([none.discountMinor, none.lineDiscounts.size], [0, 0], what)
  }
})

t.test('discountFor: spread over eligible lines in proportion, remainders to the largest, ties by variant id', async (t) => {
  const three = discountFor([line('c', 100), line('a', 100), line('b', 100)], coupon({ kind: 'fixed', value: 100 }))
  t.same(Object.fromEntries(three.lineDiscounts), { a: 34, b: 33, c: 33 }, '33.33 each; the cent left goes to the first id')

  const uneven = discountFor([line('a', 300), line('b', 100)], coupon({ kind: 'fixed', value: 10 }))
  t.same(Object.fromEntries(uneven.lineDiscounts), { a: 8, b: 2 }, '7.5 and 2.5: a tie of remainders, to a')

  const largest = discountFor([line('a', 100), line('b', 200)], coupon({ kind: 'fixed', value: 10 }))
  t.same(Object.fromEntries(largest.lineDiscounts), { a: 3, b: 7 }, '3.33 and 6.67: the larger remainder gets the cent')

  const quantities = discountFor([line('a', 250, 4), line('b', 1000, 1)], coupon({ value: 20 }))
  t.same(Object.fromEntries(quantities.lineDiscounts), { a: 200, b: 200 }, 'a line weighs its price times quantity')

  const restricted = discountFor([line('a', 1000, 1, { productId: 'x' }), line('b', 1000, 1, { productId: 'y' })], coupon({ value: 10, productIds: ['y'] }))
  t.same(Object.fromEntries(restricted.lineDiscounts), { b: 100 }, 'lines the coupon does not cover get nothing')

  const next = random(7)
  for (let i = 0; i < 200; i++) {
    const lines = Array.from({ length: 1 + next(6) }, (_, j) => line(`v${j}`, 1 + next(50_000), 1 + next(5)))
    const c = next(2) ? coupon({ value: 1 + next(100) }) : coupon({ kind: 'fixed', value: 1 + next(100_000) })
    const { discountMinor, lineDiscounts } = discountFor(lines, c)
    if (sum(lineDiscounts) !== discountMinor) t.fail(`case ${i}: lines ${sum(lineDiscounts)} != discount ${discountMinor}`)
    for (const l of lines) if ((lineDiscounts.get(l.variantId) ?? 0) > l.unitPriceMinor * l.quantity) t.fail(`case ${i}: a line got more off than it costs`)
  }
  t.pass('200 random carts: the line discounts add up to the discount and none exceeds its line')
})

t.test('shippingRuleFor: flat, or the first band that reaches the weight or goods value', async (t) => {
  t.same(shippingRuleFor({ priceMinor: 499, freeOverMinor: 5000, bandBasis: null, bands: [] }, { goodsMinor: 10, weightGrams: 10 }), { flatMinor: 499, freeOverMinor: 5000 })
  t.same(shippingRuleFor({ priceMinor: 499, freeOverMinor: null, bandBasis: null, bands: [] }, { goodsMinor: 0, weightGrams: 0 }), { flatMinor: 499, freeOverMinor: 0 }, 'no threshold: never free')

  // Bands given out of order still apply smallest first.
  const byWeight = { priceMinor: 0, freeOverMinor: null, bandBasis: 'weight' as const, bands: [{ upTo: 5000, priceMinor: 900 }, { upTo: 1000, priceMinor: 500 }] }
  t.equal(shippingRuleFor(byWeight, { goodsMinor: 99_999, weightGrams: 0 })?.flatMinor, 500, 'weightless')
  t.equal(shippingRuleFor(byWeight, { goodsMinor: 0, weightGrams: 1000 })?.flatMinor, 500, 'a band includes its upper bound')
  t.equal(shippingRuleFor(byWeight, { goodsMinor: 0, weightGrams: 1001 })?.flatMinor, 900)
  t.equal(shippingRuleFor(byWeight, { goodsMinor: 0, weightGrams: 5000 })?.flatMinor, 900)
  t.equal(shippingRuleFor(byWeight, { goodsMinor: 0, weightGrams: 5001 }), null, 'beyond the last band the option does not apply')

  const byValue = { priceMinor: 0, freeOverMinor: 20_000, bandBasis: 'subtotal' as const, bands: [{ upTo: 2000, priceMinor: 700 }, { upTo: 1_000_000, priceMinor: 300 }] }
  t.same(shippingRuleFor(byValue, { goodsMinor: 2000, weightGrams: 99_999 }), { flatMinor: 700, freeOverMinor: 20_000 }, 'value bands ignore the weight')
  t.equal(shippingRuleFor(byValue, { goodsMinor: 2001, weightGrams: 0 })?.flatMinor, 300)
  t.equal(shippingRuleFor({ ...byValue, bands: [] }, { goodsMinor: 1, weightGrams: 0 }), null, 'a basis with no bands applies to nothing')
})

t.test('allocate: shares in proportion that add up to the total', async (t) => {
  t.same(Object.fromEntries(allocate(10, [['a', 1], ['b', 1], ['c', 1]])), { a: 4, b: 3, c: 3 })
  t.same(Object.fromEntries(allocate(1, [['b', 1], ['a', 1]])), { a: 1, b: 0 }, 'a tie goes to the key that sorts first, whatever the order given')
  t.same(Object.fromEntries(allocate(100, [['x', 2], ['y', 1]])), { x: 67, y: 33 }, '66.67 and 33.33')
  t.same(Object.fromEntries(allocate(5, [['x', 10], ['~shipping', 0]])), { x: 5, '~shipping': 0 }, 'a zero weight gets nothing')
  t.same(Object.fromEntries(allocate(0, [['a', 3], ['b', 7]])), { a: 0, b: 0 }, 'nothing to share')
  t.equal(allocate(10, [['a', 0], ['b', 0]]).size, 0, 'all weights zero: no shares at all')
  t.equal(allocate(10, []).size, 0, 'no keys')

  const next = random(11)
  for (let i = 0; i < 300; i++) {
    const weights = Array.from({ length: 1 + next(8) }, (_, j): [string, number] => [`k${j}`, next(3) ? next(1_000_000) : 0])
    const total = next(2_000_000)
    const shares = allocate(total, weights)
    const weightSum = weights.reduce((s, [, w]) => s + w, 0)
    if (weightSum === 0) continue
    if (sum(shares) !== total) t.fail(`case ${i}: shares add up to ${sum(shares)}, not ${total}`)
    for (const [key, w] of weights) {
      if (Math.abs(shares.get(key)! - (total * w) / weightSum) >= 1) t.fail(`case ${i}: ${key} is a whole unit or more from its exact share`)
    }
  }
  t.pass('300 random splits: exact totals, each share within one unit of its exact value')
})

t.test('computeTotals: prices without tax', async (t) => {
  const totals = computeTotals([line('a', 1000, 2), line('b', 500, 1)], null, { flatMinor: 499, freeOverMinor: 5000 }, 2000)
  t.match(totals, { subtotalMinor: 2500, discountMinor: 0, shippingMinor: 499, taxMinor: 600, totalMinor: 3599 }, '20% of 2999 is 599.8')
  // 600 over a 2000, b 500, shipping 499: 400.13, 100.03, 99.83; the unit left goes to shipping.
  t.same(Object.fromEntries(totals.lineTaxes), { a: 400, b: 100 }, 'the lines carry their share; the rest is the tax on shipping')

  const discounted = computeTotals([line('a', 1000)], coupon({ value: 10 }), NO_SHIPPING, 2000)
  t.match(discounted, { subtotalMinor: 1000, discountMinor: 100, taxMinor: 180, totalMinor: 1080 }, 'tax on goods after discount')
  t.same(Object.fromEntries(discounted.lineDiscounts), { a: 100 })

  t.match(computeTotals([line('a', 1)], null, NO_SHIPPING, 5000), { taxMinor: 1, totalMinor: 2 }, 'a half unit of tax rounds up')
  t.match(computeTotals([line('a', 1)], null, NO_SHIPPING, 4999), { taxMinor: 0, totalMinor: 1 }, 'just under a half rounds down')
  t.match(computeTotals([line('a', 1234)], null, NO_SHIPPING, 0), { taxMinor: 0, totalMinor: 1234 }, 'no tax')
  t.match(computeTotals([line('a', 1234)], null, { flatMinor: 66, freeOverMinor: 0 }, 10_000), { taxMinor: 1300, totalMinor: 2600 }, 'the highest rate, 100%, doubles goods and shipping')
})

t.test('computeTotals: prices that include tax', async (t) => {
  const totals = computeTotals([line('a', 1000)], null, { flatMinor: 200, freeOverMinor: 0 }, 2000, true)
  t.match(totals, { subtotalMinor: 1000, shippingMinor: 200, taxMinor: 200, totalMinor: 1200 }, 'the tax is inside the 1200, the total does not grow')
  t.same(Object.fromEntries(totals.lineTaxes), { a: 167 }, '1000 of 1200 carries 166.67 of the 200')
  t.match(computeTotals([line('a', 3)], null, NO_SHIPPING, 2000, true), { taxMinor: 0, totalMinor: 3 }, '3 / 1.2 = 2.5 rounds up to 3 net: no tax')
  t.match(computeTotals([line('a', 4)], null, NO_SHIPPING, 2000, true), { taxMinor: 1, totalMinor: 4 }, '4 / 1.2 = 3.33: 1 of tax')
  t.match(computeTotals([line('a', 1000)], null, NO_SHIPPING, 0, true), { taxMinor: 0, totalMinor: 1000 })
})

t.test('computeTotals: shipping is free from the threshold, judged after the discount', async (t) => {
  const shipping = { flatMinor: 499, freeOverMinor: 5000 }
  t.equal(computeTotals([line('a', 5000)], null, shipping, 0).shippingMinor, 0, 'exactly the threshold')
  t.equal(computeTotals([line('a', 4999)], null, shipping, 0).shippingMinor, 499, 'one unit under')
  t.equal(computeTotals([line('a', 5200)], coupon({ value: 10 }), shipping, 0).shippingMinor, 499, '5200 less 10% is 4680: not free')
  t.equal(computeTotals([line('a', 999_999)], null, { flatMinor: 499, freeOverMinor: 0 }, 0).shippingMinor, 499, 'a threshold of 0 means never free')
  t.match(computeTotals([], null, shipping, 2000), { subtotalMinor: 0, shippingMinor: 0, taxMinor: 0, totalMinor: 0 }, 'an empty order ships nothing')
  t.match(computeTotals([line('a', 1000)], coupon({ value: 100 }), shipping, 2000), { discountMinor: 1000, shippingMinor: 499, taxMinor: 100, totalMinor: 599 }, 'free goods still ship, taxed')
})

t.test('computeTotals: large amounts stay exact', async (t) => {
  // The largest an orders column holds is 2^31 - 1; the arithmetic must stay exact far past it.
  const totals = computeTotals([line('a', 999_999_999, 1000)], null, NO_SHIPPING, 2000)
  t.match(totals, { subtotalMinor: 999_999_999_000, taxMinor: 199_999_999_800, totalMinor: 1_199_999_998_800 })
  t.ok(Number.isSafeInteger(totals.totalMinor))
  t.match(computeTotals([line('a', 2_147_483_647)], null, NO_SHIPPING, 1, false), { taxMinor: 214_748, totalMinor: 2_147_698_395 }, '0.01% of the int4 maximum, 214748.36')
})

t.test('computeTotals: the invariants the orders table checks hold for any cart', async (t) => {
  const next = random(23)
  let checked = 0
  for (let i = 0; i < 500; i++) {
    const lines = Array.from({ length: 1 + next(5) }, (_, j) => line(`v${j}`, 1 + next(100_000), 1 + next(4), { productId: `p${next(3)}` }))
    const c = [null, coupon({ value: 1 + next(100) }), coupon({ kind: 'fixed', value: next(50_000), maxDiscountMinor: next(2) ? next(30_000) : null, productIds: next(2) ? ['p1'] : [] })][next(3)]!
    const includeTax = next(2) === 1
    const totals = computeTotals(lines, c, { flatMinor: next(1000), freeOverMinor: next(2) ? next(200_000) : 0 }, next(10_001), includeTax)
    const { subtotalMinor, discountMinor, shippingMinor, taxMinor, totalMinor } = totals
    const problems = [
      [subtotalMinor >= 0 && discountMinor >= 0 && shippingMinor >= 0 && taxMinor >= 0, 'no negative amount'],
      [discountMinor <= subtotalMinor, 'discount within the goods'],
      [totalMinor === subtotalMinor - discountMinor + shippingMinor + (includeTax ? 0 : taxMinor), 'total = subtotal - discount + shipping (+ tax when added)'],
      [sum(totals.lineDiscounts) === discountMinor, 'line discounts add up'],
      [sum(totals.lineTaxes) <= taxMinor && taxMinor - sum(totals.lineTaxes) <= shippingMinor, 'line taxes plus the shipping share make the tax'],
      [!includeTax || taxMinor <= subtotalMinor - discountMinor + shippingMinor, 'included tax is part of what is paid'],
    ].filter(([ok]) => !ok).map(([, what]) => what)
    if (problems.length) t.fail(`case ${i}: ${problems.join('; ')}`, { totals, lines, coupon: c })
    checked++
  }
  t.equal(checked, 500, '500 random orders')
})
