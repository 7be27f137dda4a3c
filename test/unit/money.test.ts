import t from 'tap'
import { formatMoney } from '../../routes/orders/order-mail.js'
import { lineValues, refundForUnits } from '../../routes/returns/service.js'
import { checkRange, ratio } from '../../routes/analytics/service.js'

// Money as people read it (order mails), what returned goods pay back, and the analytics ratios.

t.test('formatMoney: minor units in the currency\'s own decimals', async (t) => {
  t.equal(formatMoney(1999, 'EUR'), '€19.99')
  t.equal(formatMoney(5, 'EUR'), '€0.05', 'cents below a unit')
  t.equal(formatMoney(0, 'USD'), '$0.00')
  t.equal(formatMoney(-500, 'EUR'), '-€5.00', 'a negative amount')
  t.equal(formatMoney(1999, 'JPY'), '¥1,999', 'yen have no minor unit')
  t.equal(formatMoney(1999, 'BHD'), 'BHD\u00a01.999', 'dinars have three decimals')
  t.equal(formatMoney(2_147_483_647, 'EUR'), '€21,474,836.47', 'the largest amount an orders column holds, to the cent')
  t.throws(() => formatMoney(100, 'EURO'), RangeError, 'not a currency code')
})

t.test('refundForUnits: a line returned in parts pays back its value exactly once', async (t) => {
  t.equal(refundForUnits(1000, 3, 0, 1), 333, 'a third of 1000')
  t.equal(refundForUnits(1000, 3, 1, 1), 334, 'the second third carries the rounding')
  t.equal(refundForUnits(1000, 3, 2, 1), 333, 'the last third makes 1000')
  t.equal(refundForUnits(1000, 3, 0, 3), 1000, 'all at once')
  t.equal(refundForUnits(1000, 3, 0, 0), 0, 'nothing back, nothing paid')
  t.equal(refundForUnits(5, 2, 0, 1), 3, '2.5 rounds up...')
  t.equal(refundForUnits(5, 2, 1, 1), 2, '... and the other half gets what is left')
  t.equal(refundForUnits(0, 4, 1, 2), 0, 'a free line')

  for (let ordered = 1; ordered <= 12; ordered++) {
    for (const value of [1, 7, 999, 1000, 123_457, 2_147_483_647]) {
      // Back one by one, in two unequal parts, and all at once: always the line's value.
      let oneByOne = 0
      for (let earlier = 0; earlier < ordered; earlier++) oneByOne += refundForUnits(value, ordered, earlier, 1)
      const first = Math.floor(ordered / 3)
      const inTwo = refundForUnits(value, ordered, 0, first) + refundForUnits(value, ordered, first, ordered - first)
      if (oneByOne !== value || inTwo !== value) t.fail(`${value} over ${ordered}: ${oneByOne} one by one, ${inTwo} in two parts`)
    }
  }
  t.pass('every split of 72 lines adds up to the line value')
})

t.test('lineValues: what each order line is worth back', async (t) => {
  const items = [
    { id: 'a', lineTotalMinor: 2000, discountMinor: 200, taxMinor: 360 },
    { id: 'b', lineTotalMinor: 1000, discountMinor: 0, taxMinor: 200 },
  ]
  const taxed = { taxRate: { rateId: 'r', name: 'VAT', country: 'FR', region: null, rateBps: 2000 }, taxMinor: 660, shippingMinor: 500, pricesIncludeTax: false }
  t.same(Object.fromEntries(lineValues(taxed, items)), { a: 2160, b: 1200 }, 'after discount, with the tax the line carried')
  t.same(Object.fromEntries(lineValues({ ...taxed, pricesIncludeTax: true }, items)), { a: 1800, b: 1000 }, 'prices with tax included: the tax is already in them')

  // Orders from before lines carried their tax share: the order's tax is spread now, over the
  // lines and shipping in proportion (1800, 1000, 500 of 3300 share 660: 360, 200, 100).
  const legacy = { taxRate: null, taxMinor: 660, shippingMinor: 500, pricesIncludeTax: false }
  t.same(Object.fromEntries(lineValues(legacy, items.map((i) => ({ ...i, taxMinor: 0 })))), { a: 2160, b: 1200 })
  t.same(Object.fromEntries(lineValues({ ...legacy, taxMinor: 0 }, items)), { a: 2160, b: 1200 }, 'no order tax: the lines keep what they carry')
  t.same(Object.fromEntries(lineValues(legacy, [{ id: 'a', lineTotalMinor: 100, discountMinor: 100, taxMinor: 0 }])), { a: 0 }, 'a line given away is worth nothing back')
})

t.test('analytics: ratios to four decimals, and ranges of at most 366 days', async (t) => {
  t.equal(ratio(1, 3), 0.3333)
  t.equal(ratio(2, 3), 0.6667)
  t.equal(ratio(5, 5), 1)
  t.equal(ratio(0, 7), 0)
  t.equal(ratio(3, 0), 0, 'nothing to divide by')
  t.equal(ratio(1, 20_000), 0.0001, 'half of the last decimal rounds up')

  const day = 86_400_000
  const from = new Date(Date.UTC(2031, 0, 1))
  const iso = (ms: number) => new Date(from.getTime() + ms).toISOString()
  t.doesNotThrow(() => checkRange({ from: iso(0), to: iso(1) }), 'a millisecond')
  t.doesNotThrow(() => checkRange({ from: iso(0), to: iso(366 * day) }), '366 days (a leap year)')
  t.throws(() => checkRange({ from: iso(0), to: iso(366 * day + 1) }), { statusCode: 400, slug: 'invalid-range', message: /at most 366 days/ })
  t.throws(() => checkRange({ from: iso(0), to: iso(0) }), { statusCode: 400, message: /from must be before to/ }, 'empty')
  t.throws(() => checkRange({ from: iso(day), to: iso(0) }), { statusCode: 400, message: /from must be before to/ }, 'reversed')
})
