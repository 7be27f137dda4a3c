import t from 'tap'
import { buildTestApp } from './helpers.js'

// Issue #24: coupon codes could be tried anonymously through a guest cart (404 or 200), as fast
// as the global limit allowed. Trying codes is guessing, limited per client as sign-in is.
t.test('coupon codes cannot be probed through a guest cart faster than the guessing limit', async (t) => {
  const app = await buildTestApp(t, { AUTH_RATE_LIMIT_MAX: '5' })
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) {
    // A fresh guest cart for each try: the limit is the client's, not the cart's.
    const { cartToken } = (await app.inject({ method: 'POST', url: '/cart/guest', remoteAddress: '198.51.100.20' })).json()
    const res = await app.inject({ method: 'PUT', url: '/cart/coupon', remoteAddress: '198.51.100.20', headers: { 'x-cart-token': cartToken }, payload: { code: `GUESS${i}` } })
    statuses.push(res.statusCode)
  }
  t.same(statuses, [404, 404, 404, 404, 404, 429, 429, 429])
})
