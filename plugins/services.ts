import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { cartModel } from '../db/models/cart.js'
import { wishlistModel } from '../db/models/wishlist.js'
import { activityModel } from '../db/models/activity.js'
import { createAccountMail } from '../src/account-mail.js'
import { createIdempotency } from '../src/idempotency.js'
import { createOneTimeTokens } from '../src/one-time-tokens.js'
import { createSecretBox } from '../src/secret-box.js'
import { createStorages } from '../src/storages.js'
import { CATALOG_CACHE } from '../src/catalog.js'
import { createAnalyticsService } from '../routes/analytics/service.js'
import { createAuthService } from '../routes/auth/service.js'
import { createOidcService } from '../routes/auth/oidc.js'
import { createCartService } from '../routes/cart/service.js'
import { createCategoryService } from '../routes/categories/service.js'
import { createCouponService } from '../routes/coupons/service.js'
import { createInventoryService } from '../routes/inventory/service.js'
import { createHealthService } from '../routes/health/service.js'
import { createOrderService } from '../routes/orders/service.js'
import { createOrderMail } from '../routes/orders/order-mail.js'
import { createOrderAccess } from '../routes/orders/access.js'
import { createCheckoutWorkflow } from '../routes/orders/workflows/checkout.js'
import { guestClientKeyer } from '../src/guest-orders.js'
import { createSentMail } from '../src/sent-mail.js'
import { createCancelWorkflow } from '../routes/orders/workflows/cancel.js'
import { providersFromConfig } from '../routes/payments/providers.js'
import { createPaymentService } from '../routes/payments/service.js'
import { createPayWorkflow } from '../routes/payments/workflows/pay.js'
import { createConfirmWorkflow } from '../routes/payments/workflows/confirm.js'
import { createRefundWorkflow } from '../routes/payments/workflows/refund.js'
import { createReconciliation } from '../routes/payments/workflows/reconcile.js'
import { createProductService } from '../routes/products/service.js'
import { createPricingService } from '../routes/pricing/service.js'
import { createReturnService } from '../routes/returns/service.js'
import { createRefundReturnWorkflow } from '../routes/returns/workflows/refund-return.js'
import { createReviewService } from '../routes/reviews/service.js'
import { createShippingService } from '../routes/shipping/service.js'
import { createUploadService, type UploadService } from '../routes/uploads/service.js'
import { replicasCaughtUp } from '../db/replicas.js'
import { createUserService } from '../routes/users/service.js'
import { createDataExportService } from '../routes/users/data-export.js'
import { createErasureWorkflow } from '../routes/users/workflows/erasure.js'
import { createSecretBox as createWebhookSecretBox } from '../routes/webhooks/secrets.js'
import { createWebhookService, type WebhookService } from '../routes/webhooks/service.js'
import { createWishlistService } from '../routes/wishlist/service.js'
import { createCatalogIoService, type CatalogIoService } from '../routes/catalog-io/service.js'
import { ensureIndexes } from '../src/mongo-indexes.js'

// The composition root: every domain service is built here once, from the infrastructure
// decorators, and handed to the route plugins (app.services) and to the worker (src/worker.ts),
// as the Fastify demo app does with its repositories. Services know nothing of Fastify; what
// runs in the background (schedules, queue workers, outbox handlers) is in plugins/background.ts.

async function buildServices(app: FastifyInstance) {
  const { db, dbRead, cache, outbox, faults, metrics, mailer, sessions, redis } = app
  const config = app.config
  const { cart: limits, currency, checkout: checkoutConfig } = config

  const tokens = createOneTimeTokens(redis)
  const accountMail = createAccountMail({ mailer, tokens, publicUrl: config.publicUrl })
  const users = createUserService({ db, sessions, accountMail })
  const auth = createAuthService({
    db, redis, sessions, tokens, accountMail, users,
    issueAccessToken: app.issueAccessToken, accessTtlSeconds: config.auth.accessTtlSeconds, totpIssuer: 'Shop', secretBox: createSecretBox(config.auth.totpKeys),
  })
  const oidc = createOidcService({ db, redis, providers: config.oidc.providers, auth, accountMail })

  const storages = await createStorages({ kind: config.storage, s3: config.s3, dirs: { uploads: config.uploads.dir, exports: config.privacy.exportDir, catalogFiles: config.catalogIo.dir } })
  app.addHook('onClose', async () => { storages.close() })
  // Product image sizes are made in the worker, a bounded number at once, never in the request;
  // once an image's sizes are stored, cached product reads are made stale (after the replicas
  // have the row, so no entry of the new version is filled without them).
  const imageSizes = app.jobs.queue({
    name: 'image-sizes', maxRuns: 5, concurrency: config.uploads.images.concurrency,
    process: (id) => uploads.makeSizes(id),
  })
  const uploads: UploadService = createUploadService({
    db, storage: storages.uploads, quota: config.uploads.quota,
    sizes: {
      enqueue: (ids) => imageSizes.add(ids), maxPixels: config.uploads.images.maxPixels,
      changed: async () => { await replicasCaughtUp(dbRead); await cache.invalidate(CATALOG_CACHE) },
    },
  })

  const products = createProductService({ db, dbRead, cache, currency, outbox, images: (ids, on) => uploads.productImages(ids, on) })
  const carts = cartModel(app.mongo)
  const wishlists = wishlistModel(app.mongo)
  // The unique owner indexes must exist before the first request, or two first writes make two carts.
  if (app.mongo.readyState === 1) await ensureIndexes([carts, wishlists])
  const cart = createCartService({ carts, redis, catalog: products, currency, limits })
  // Regions, groups and price lists: a write that changes catalog prices makes cached reads stale.
  const pricing = createPricingService({ db, changed: () => cache.invalidate(CATALOG_CACHE) })

  // The outbox's mail handlers send through this: a retried event does not mail anyone twice.
  const mailOnce = createSentMail({ db, mailer, faults })

  const providers = await providersFromConfig(config.payments, db)
  const refunds = createRefundWorkflow({ db, outbox, faults, providers, metrics })
  const pay = createPayWorkflow({ db, outbox, faults, providers, refunds, metrics })
  const confirm = createConfirmWorkflow({ db, outbox, providers, refunds, metrics })
  const shipping = createShippingService({ db, defaults: checkoutConfig, currency })
  const returns = createReturnService({ db, outbox, windowDays: checkoutConfig.returnWindowDays })
  const orderAccess = createOrderAccess({ db, ttlHours: checkoutConfig.orderAccessTtlHours })

  // Webhook deliveries are a work queue of the jobs runner: enqueued here, sent by whichever
  // process runs the jobs (the API by default, else `npm run worker`).
  const webhookSettings = config.webhooks
  const webhookDeliveries = app.jobs.queue({
    name: 'webhooks', maxRuns: webhookSettings.maxAttempts, concurrency: 5,
    process: async (id) => {
      const { retryInMs } = await webhooks.attempt(id)
      return retryInMs === undefined ? {} : { retryInMs }
    },
  })
  const webhooks: WebhookService = createWebhookService({
    db, outbox, box: createWebhookSecretBox(webhookSettings.secretsKey), log: app.log, settings: webhookSettings,
    enqueue: (ids) => webhookDeliveries.add(ids),
    userAgent: 'shop-api-webhooks/1',
  })

  const reviews = createReviewService({ db, autoApprove: config.reviewsAutoApprove, onRatingChange: () => cache.invalidate(CATALOG_CACHE) })
  // A customer's data: exports (kept in a private storage of their own) and erasures.
  const activity = activityModel(app.mongo)
  const { privacy } = config
  const dataExports = createDataExportService({
    db, redis, storage: storages.exports, uploads, carts, wishlists, activity, log: app.log,
    settings: { exportTtlHours: privacy.exportTtlHours, linkTtlSeconds: privacy.linkTtlSeconds, leaseSeconds: privacy.leaseSeconds, signedUrlTtlSeconds: config.s3?.signedUrlTtlSeconds ?? 60 },
  })
  const erasure = createErasureWorkflow({
    db, redis, redisKeyPrefix: config.redis.keyPrefix, sessions, outbox, tokens, accountMail, uploads, reviews, exports: dataExports,
    carts, wishlists, activity, leaseSeconds: privacy.leaseSeconds, log: app.log,
  })

  // Catalog CSV imports and exports: a work queue of job ids (one job at a time, so a large
  // import never holds up the schedules), swept by a schedule for jobs whose queue entry was lost.
  const catalogQueue = app.jobs.queue({
    name: 'catalog-jobs', maxRuns: 1, concurrency: 1,
    process: async (id) => { await catalogIo.runJob(id); return {} },
  })
  const catalogIo: CatalogIoService = createCatalogIoService({
    db, cache, currency, storage: storages.catalogFiles, enqueue: (ids) => catalogQueue.add(ids),
    settings: { maxBytes: config.catalogIo.maxBytes, leaseSeconds: config.catalogIo.leaseSeconds, fileRetentionDays: config.catalogIo.fileRetentionDays, signedUrlTtlSeconds: config.s3?.signedUrlTtlSeconds ?? 60 },
  })

  return {
    catalogIo,
    health: createHealthService({ db, mongo: app.mongo, redis }),
    users, auth, oidc,
    categories: createCategoryService({ db, dbRead, cache }),
    products,
    pricing,
    uploads,
    cart,
    wishlist: createWishlistService({ items: wishlists, catalog: products, cart }),
    coupons: createCouponService({ db, currency }),
    inventory: createInventoryService({ db, outbox }),
    reviews,
    dataExports, erasure,
    analytics: createAnalyticsService({ db: dbRead, currency }),
    webhooks,
    // The money path.
    idempotency: createIdempotency(db),
    orders: createOrderService({ db, outbox }),
    payments: createPaymentService({ db }),
    checkout: createCheckoutWorkflow({ db, outbox, faults, cart, shipping, checkout: checkoutConfig, metrics, guestClientKey: guestClientKeyer(config.jwtSecret) }),
    cancel: createCancelWorkflow({ db, outbox, refunds, metrics, providers, log: app.log }),
    pay, confirm, refunds,
    reconcile: createReconciliation({ db, outbox, metrics, pay, confirm, refunds, providers }),
    shipping,
    returns,
    refundReturn: createRefundReturnWorkflow({ db, outbox, faults, refunds, returns }),
    orderAccess,
    mailOnce,
    orderMail: createOrderMail({ db, mailer: mailOnce, domain: new URL(config.publicUrl).hostname, publicUrl: config.publicUrl, links: orderAccess }),
  }
}

export type Services = Awaited<ReturnType<typeof buildServices>>

declare module 'fastify' {
  interface FastifyInstance { services: Services }
}

export default fp(async (app) => {
  app.decorate('services', await buildServices(app))
}, { name: 'services', dependencies: ['config', 'postgres', 'mongo', 'redis', 'cache', 'jobs', 'outbox', 'mailer', 'metrics', 'auth'] })
