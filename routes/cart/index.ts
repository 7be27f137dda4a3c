import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { BEARER, BEARER_OR_CART_TOKEN } from '../../plugins/openapi.js'
import { BadRequest, ProblemRef, Unauthorized } from '../../src/errors.js'
import { ShippingQuote, ShippingQuoteQuery } from '../shipping/schemas.js'
import type { AccessClaims } from '../../plugins/auth.js'
import { CartContact, CartCoupon, CartRegion, Cart, CartItemAdd, CartItemUpdate, CartLineParams, CartMerge, CartTokenHeader, GuestCart } from './schemas.js'
import { ownerOf } from './service.js'
import { normalizeEmail } from '../users/service.js'

const errors = { 400: ProblemRef, 401: ProblemRef, 404: ProblemRef, 409: ProblemRef }

const cartRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { cart: service, coupons, shipping, pricing } = app.services
  const owner = (req: FastifyRequest) => ownerOf(req.user as AccessClaims | null, req.headers['x-cart-token'] as string | undefined)

  const changed = <T extends { id: string; itemCount: number }>(req: FastifyRequest, action: string, cart: T) => {
    app.activity.record(req, 'cart_change', { action, cartId: cart.id, itemCount: cart.itemCount })
    return cart
  }

  app.post('/guest', {
    schema: {
      tags: ['cart'], operationId: 'createGuestCart', summary: 'Start a guest cart; answers its token once',
      response: { 201: Type.Ref(GuestCart) },
    },
  }, async (_req, reply) => reply.code(201).send(await service.createGuest()))

  app.get('', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'getCart', summary: 'My cart, priced now',
      description: 'Signed in: your cart. Otherwise the guest cart named by X-Cart-Token. Prices and availability are read from the catalog at this moment.',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, response: { 200: Type.Ref(Cart), ...errors },
    },
  }, (req) => service.get(owner(req)))

  app.post('/items', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'addCartItem', summary: 'Add a variant (quantities add up)',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, body: Type.Ref(CartItemAdd), response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => changed(req, 'add', await service.addItem(owner(req), req.body.variantId, req.body.quantity ?? 1)))

  app.patch('/items/:variantId', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'updateCartItem', summary: 'Set the quantity of a line',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, params: CartLineParams, body: Type.Ref(CartItemUpdate), response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => changed(req, 'set-quantity', await service.setQuantity(owner(req), req.params.variantId, req.body.quantity)))

  app.delete('/items/:variantId', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'removeCartItem', summary: 'Remove a line',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, params: CartLineParams, response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => changed(req, 'remove', await service.removeItem(owner(req), req.params.variantId)))

  app.delete('', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'clearCart', summary: 'Empty the cart',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => changed(req, 'clear', await service.clear(owner(req))))

  // Trying codes is guessing: limited per client as sign-in is (a fresh guest cart is free).
  const guessing = { rateLimit: { max: app.config.auth.rateLimitPerIp, timeWindow: 60_000 } }

  app.put('/coupon', {
    config: guessing,
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'applyCartCoupon', summary: 'Apply a coupon code to the cart',
      description: 'The code must exist and be active; its limits and eligibility are checked at checkout (POST /coupons/validate explains them now).',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, body: Type.Ref(CartCoupon), response: { 200: Type.Ref(Cart), ...errors, 429: ProblemRef },
    },
  }, async (req) => {
    // Whose cart first: a caller who has none learns nothing about which codes exist.
    const cartOwner = owner(req)
    await service.get(cartOwner)
    const coupon = await coupons.requireActive(req.body.code)
    return service.setCoupon(cartOwner, coupon.code)
  })

  app.delete('/coupon', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'removeCartCoupon', summary: 'Remove the coupon code from the cart',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, response: { 200: Type.Ref(Cart), ...errors },
    },
  }, (req) => service.setCoupon(owner(req), null))

  app.put('/contact', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'setCartContact', summary: 'Set the contact email a guest checks out with',
      description: 'Guest checkout (POST /orders/guest) mails the order and its link here. Any address is accepted, including one that has an account: nothing tells which.',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, body: Type.Ref(CartContact), response: { 200: Type.Ref(Cart), ...errors },
    },
  }, (req) => service.setEmail(owner(req), normalizeEmail(req.body.email)))

  app.get('/shipping-options', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'listCartShippingOptions', summary: 'Shipping options for my cart at a destination, with their prices now',
      description: 'Name the destination by `addressId` (signed in) or `country` (and `region`). The options listed are those checkout accepts as `shippingOptionId`, less those whose zone cannot fill the available lines from the stock locations serving it; prices use the available lines after the cart coupon (signed in). The tax rate of the destination comes with them.',
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, querystring: ShippingQuoteQuery, response: { 200: Type.Ref(ShippingQuote), ...errors },
    },
  }, async (req) => {
    const cartOwner = owner(req)
    const { addressId, country, region } = req.query
    if (addressId && (country || region)) throw new BadRequest('Send addressId or country (and region), not both', 'destination-ambiguous')
    if (!addressId && !country) throw new BadRequest('Send addressId or country', 'destination-required')
    if (addressId && cartOwner.kind !== 'user') throw new Unauthorized('addressId names a saved address: sign in, or send country')
    const destination = addressId && cartOwner.kind === 'user' ? await shipping.destinationOf(cartOwner.userId, addressId) : { country: country!, region: region ?? null }
    const { lines: priced, couponCode, currency, regionId } = await service.priced(cartOwner)
    const subtotal = priced.reduce((s, l) => s + l.unitPriceMinor * l.quantity, 0)
    const discount = couponCode && cartOwner.kind === 'user' ? (await coupons.validate(couponCode, cartOwner.userId, priced, currency)).discountMinor : 0
    const weightGrams = priced.reduce((s, l) => s + l.weightGrams * l.quantity, 0)
    const quote = await shipping.quote(destination, { goodsMinor: subtotal - discount, weightGrams, currency }, priced)
    const pricesIncludeTax = regionId ? (await pricing.resolveRegion({ regionId }).catch(() => null))?.pricesIncludeTax ?? app.config.checkout.pricesIncludeTax : app.config.checkout.pricesIncludeTax
    return { ...quote, currency, pricesIncludeTax }
  })

  app.put('/region', {
    onRequest: app.identify,
    schema: {
      tags: ['cart'], operationId: 'setCartRegion', summary: 'Put the cart in a region (by id or shipping country) and re-price it',
      description: "Every line is priced again in the region's currency; 409 when one has no price there (the cart is left as it was). Checkout charges in the cart's currency.",
      security: BEARER_OR_CART_TOKEN, headers: CartTokenHeader, body: Type.Ref(CartRegion), response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => {
    const cartOwner = owner(req)
    const region = await pricing.resolveRegion(req.body)
    return changed(req, 'set-region', await service.setRegion(cartOwner, region))
  })

  app.post('/merge', {
    onRequest: app.authenticate,
    schema: {
      tags: ['cart'], operationId: 'mergeGuestCart', summary: 'Move a guest cart into my cart (call after signing in)',
      description: 'Quantities add up, capped by stock; the guest cart and its token are gone afterwards.',
      security: BEARER, body: Type.Ref(CartMerge), response: { 200: Type.Ref(Cart), ...errors },
    },
  }, async (req) => changed(req, 'merge', await service.merge(req.user.sub, req.body.cartToken)))
}
export default cartRoutes
