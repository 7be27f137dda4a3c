import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import { requiredRoles } from './auth.js'

export const API_INFO = {
  title: 'Shop API',
  // The contract's version, which sdk/package.json's must equal; a breaking change must move its
  // major (the minor below 1.0), else `npm run contract:breaking` fails (docs/clients.md).
  version: '0.2.0',
  description: 'E-commerce backend. Money is an integer count of minor units plus an ISO 4217 currency; errors are RFC 9457 problem details.',
}

interface Link { operationId: string; parameters?: Record<string, string>; requestBody?: unknown; description?: string }
const id = '$response.body#/id'
/**
 * How one answer feeds the next call (OpenAPI links, by operationId and answer status): a client
 * reads the journey from them (create a product -> add it to the cart -> check out -> pay ->
 * confirm -> refund), and schemathesis's stateful phase walks them.
 */
export const LINKS: Record<string, Record<string, Record<string, Link>>> = {
  createProduct: { 201: {
    GetProduct: { operationId: 'getProduct', parameters: { productId: id } },
    UpdateProduct: { operationId: 'updateProduct', parameters: { productId: id } },
    AddVariant: { operationId: 'createVariant', parameters: { productId: id } },
    AddToCart: { operationId: 'addCartItem', requestBody: { variantId: '$response.body#/variants/0/id', quantity: 1 }, description: 'its first variant, once' },
    AddToWishlist: { operationId: 'addWishlistItem', parameters: { productId: id } },
    ListReviews: { operationId: 'listProductReviews', parameters: { productId: id } },
  } },
  createVariant: { 201: {
    UpdateVariant: { operationId: 'updateVariant', parameters: { productId: '$request.path.productId', variantId: id } },
    AdjustStock: { operationId: 'adjustStock', parameters: { productId: '$request.path.productId', variantId: id } },
    AddToCart: { operationId: 'addCartItem', requestBody: { variantId: id, quantity: 1 } },
  } },
  addCartItem: { 200: {
    UpdateLine: { operationId: 'updateCartItem', parameters: { variantId: '$request.body#/variantId' } },
    RemoveLine: { operationId: 'removeCartItem', parameters: { variantId: '$request.body#/variantId' } },
  } },
  createMyAddress: { 201: {
    GetAddress: { operationId: 'getMyAddress', parameters: { addressId: id } },
    UpdateAddress: { operationId: 'updateMyAddress', parameters: { addressId: id } },
    CheckoutToAddress: { operationId: 'checkout', requestBody: { addressId: id }, description: 'check out the cart to this address' },
  } },
  createCoupon: { 201: {
    GetCoupon: { operationId: 'getCoupon', parameters: { couponId: id } },
    UpdateCoupon: { operationId: 'updateCoupon', parameters: { couponId: id } },
    ApplyToCart: { operationId: 'applyCartCoupon', requestBody: { code: '$response.body#/code' } },
  } },
  checkout: { 201: {
    GetOrder: { operationId: 'getOrder', parameters: { orderId: id } },
    Pay: { operationId: 'createPayment', parameters: { orderId: id } },
    Cancel: { operationId: 'cancelOrder', parameters: { orderId: id } },
    ChangeStatus: { operationId: 'changeOrderStatus', parameters: { orderId: id } },
  } },
  guestCheckout: { 201: {
    GetGuestOrder: { operationId: 'getGuestOrder', parameters: { orderId: '$response.body#/order/id', 'header.x-order-token': '$response.body#/orderToken' } },
    PayGuestOrder: { operationId: 'createGuestPayment', parameters: { orderId: '$response.body#/order/id', 'header.x-order-token': '$response.body#/orderToken' } },
    CancelGuestOrder: { operationId: 'cancelGuestOrder', parameters: { orderId: '$response.body#/order/id', 'header.x-order-token': '$response.body#/orderToken' } },
  } },
  createGuestPayment: { 201: {
    Confirm: { operationId: 'confirmGuestPayment', parameters: { orderId: '$request.path.orderId', paymentId: id, 'header.x-order-token': '$request.header.x-order-token' } },
  } },
  createPayment: { 201: {
    GetPayment: { operationId: 'getPayment', parameters: { paymentId: id } },
    Confirm: { operationId: 'confirmPayment', parameters: { paymentId: id } },
    Refund: { operationId: 'refundPayment', parameters: { paymentId: id } },
    GetOrder: { operationId: 'getOrder', parameters: { orderId: '$response.body#/orderId' } },
  } },
  confirmPayment: { 200: {
    Refund: { operationId: 'refundPayment', parameters: { paymentId: id } },
    GetOrder: { operationId: 'getOrder', parameters: { orderId: '$response.body#/orderId' } },
  } },
  createReview: { 201: {
    UpdateReview: { operationId: 'updateReview', parameters: { reviewId: id } },
    ModerateReview: { operationId: 'moderateReview', parameters: { reviewId: id } },
    VoteHelpful: { operationId: 'voteReviewHelpful', parameters: { reviewId: id } },
  } },
  createCategory: { 201: {
    GetBySlug: { operationId: 'getCategoryBySlug', parameters: { slug: '$response.body#/slug' } },
    UpdateCategory: { operationId: 'updateCategory', parameters: { categoryId: id } },
  } },
  uploadFile: { 201: { GetFile: { operationId: 'getFile', parameters: { uploadId: id } } } },
}

type OpenApiDocument = { paths?: Record<string, Record<string, { operationId?: string; responses?: Record<string, { links?: Record<string, Link> }> }>> }
/** Puts LINKS into the document; a link to or from an operation that does not exist fails generation. */
export function addLinks<T extends OpenApiDocument>(document: T): T {
  const operations = new Map(Object.values(document.paths ?? {}).flatMap((methods) => Object.values(methods)).filter((op) => op?.operationId).map((op) => [op.operationId!, op]))
  for (const [source, byStatus] of Object.entries(LINKS)) {
    for (const [status, links] of Object.entries(byStatus)) {
      const response = operations.get(source)?.responses?.[status]
      if (!response) throw new Error(`OpenAPI link from ${source} ${status}: no such operation or answer`)
      for (const link of Object.values(links)) if (!operations.has(link.operationId)) throw new Error(`OpenAPI link to ${link.operationId}: no such operation`)
      response.links = links
    }
  }
  return document
}

// The OpenAPI document is generated from the same TypeBox schemas that validate requests.
export default fp(async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: API_INFO,
      servers: [{ url: '/' }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          cartToken: { type: 'apiKey', in: 'header', name: 'X-Cart-Token', description: 'a guest cart token from POST /cart/guest' },
          orderToken: { type: 'apiKey', in: 'header', name: 'X-Order-Token', description: 'a guest order\'s access token, from the guest checkout answer or the order mail: opens that one order' },
        },
      },
      tags: [
        { name: 'health', description: 'Liveness and readiness probes' },
        { name: 'auth', description: 'Sign-up, sign-in (password or OpenID Connect providers), token refresh, password reset, two-factor authentication' },
        { name: 'users', description: 'My account and addresses; account administration' },
        { name: 'categories', description: 'The category tree' },
        { name: 'products', description: 'Products, variants, stock; search and listing' },
        { name: 'cart', description: 'Carts for signed-in users and guests, priced from the catalog on every read' },
        { name: 'wishlist', description: 'Products saved for later' },
        { name: 'coupons', description: 'Discount codes and their limits' },
        { name: 'inventory', description: 'Stock locations, levels per location, transfers (admin)' },
        { name: 'orders', description: 'Checkout and orders; the state machine' },
        { name: 'payments', description: 'Payments through providers, signed webhooks, refunds' },
        { name: 'reviews', description: 'Verified-purchase product reviews and moderation' },
        { name: 'uploads', description: 'Images, checked by their bytes' },
        { name: 'analytics', description: 'Sales, products, payments and customers; the activity log (admin)' },
        { name: 'webhooks', description: 'Signed outbound webhooks: endpoints, deliveries, replay (admin)' },
      ],
    },
    // Facts true of many routes, stated once: a route without a security requirement is public
    // (security: []), a rate-limited route may answer 429, and the framework's own refusals.
    transform: ({ schema, url, route }) => {
      if (!schema || schema.hide) return { schema, url }
      const rateLimited = (route.config as { rateLimit?: unknown } | undefined)?.rateLimit !== false
      const declared = { ...(schema.response as Record<string, unknown> | undefined) }
      if (schema.response && rateLimited && !declared[429]) declared[429] = { $ref: 'Problem#' }
      // What the framework answers before a handler runs: a body too large or of another type,
      // a path segment over 200 characters.
      if (schema.response && schema.body) { declared[413] ??= { $ref: 'Problem#' }; declared[415] ??= { $ref: 'Problem#' } }
      if (schema.response && schema.params) declared[414] ??= { $ref: 'Problem#' }
      // Errors are sent as application/problem+json; the document says so.
      const response = Object.fromEntries(Object.entries(declared).map(([status, body]) =>
        Number(status) >= 400 && !(body as { content?: unknown }).content ? [status, { description: 'A problem (RFC 9457)', content: { 'application/problem+json': { schema: body } } }] : [status, body]))
      // The roles a route demands, read from its requireRole hook, so clients and the contract
      // sweep (test/contract-sweep.test.ts) know which operations are the admin's.
      const roles = requiredRoles(route.onRequest)
      // The largest JSON body the route reads (413 beyond); multipart uploads state their own.
      const multipart = (schema.consumes as string[] | undefined)?.includes('multipart/form-data')
      const bodyLimit = schema.body && !multipart ? { 'x-body-limit': route.bodyLimit ?? app.config.bodyLimit } : {}
      return { url, schema: { ...schema, security: schema.security ?? [], ...(roles.length ? { 'x-roles': roles } : {}), ...bodyLimit, ...(schema.response ? { response } : {}) } }
    },
    transformObject: (documents) => ('openapiObject' in documents ? addLinks(documents.openapiObject as OpenApiDocument) : documents.swaggerObject),
    // Components are named after each schema's $id (Problem, Product), not def-0.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  })

  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: true, persistAuthorization: true },
    // Swagger UI's own CSP with hashes for its inline scripts, replacing the API's default-src 'none'.
    staticCSP: true,
    // Swagger UI sets inline style attributes; scripts stay hash-pinned.
    transformStaticCSP: (header) => header.replace(/style-src ([^;]*)/, "style-src $1 'unsafe-inline'"),
  })
}, { name: 'openapi', dependencies: ['errors'] })

// Security requirements, named once for every route file.
type SecurityRequirements = { [scheme: string]: string[] }[]
export const BEARER: SecurityRequirements = [{ bearerAuth: [] }]
/** Anonymous allowed; a token, when sent, is checked (admins see more). */
export const OPTIONAL_BEARER: SecurityRequirements = [{}, { bearerAuth: [] }]
export const BEARER_OR_CART_TOKEN: SecurityRequirements = [{ bearerAuth: [] }, { cartToken: [] }]
/** A guest: the cart token (guest checkout) or the order token (a guest order). */
export const CART_TOKEN: SecurityRequirements = [{ cartToken: [] }]
export const ORDER_TOKEN: SecurityRequirements = [{ orderToken: [] }]
