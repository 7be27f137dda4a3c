import fp from 'fastify-plugin'
import { cartModel } from '../db/models/cart.js'
import { createIdempotency, type Idempotency } from '../src/idempotency.js'
import { createCartService } from '../routes/cart/service.js'
import { createProductService } from '../routes/products/service.js'
import { createOrderService, type OrderService } from '../routes/orders/service.js'
import { createOrderMail } from '../routes/orders/order-mail.js'
import { createCheckoutWorkflow, type CheckoutWorkflow } from '../routes/orders/workflows/checkout.js'
import { createCancelWorkflow, type CancelWorkflow } from '../routes/orders/workflows/cancel.js'
import { providersFromConfig } from '../routes/payments/providers.js'
import { createPaymentService, type PaymentService } from '../routes/payments/service.js'
import { createPayWorkflow, type PayWorkflow } from '../routes/payments/workflows/pay.js'
import { createConfirmWorkflow, type ConfirmWorkflow } from '../routes/payments/workflows/confirm.js'
import { createRefundWorkflow, type RefundWorkflow } from '../routes/payments/workflows/refund.js'
import { createReconciliation } from '../routes/payments/workflows/reconcile.js'
import { createShippingService, type ShippingService } from '../routes/shipping/service.js'
import { createReturnService, type ReturnService } from '../routes/returns/service.js'
import { createRefundReturnWorkflow, type RefundReturnWorkflow } from '../routes/returns/workflows/refund-return.js'

/** The money path, built once: the orders and payments routes and the jobs share it. */
export interface MoneyPath {
  idempotency: Idempotency
  orders: OrderService
  payments: PaymentService
  checkout: CheckoutWorkflow
  cancel: CancelWorkflow
  pay: PayWorkflow
  confirm: ConfirmWorkflow
  refunds: RefundWorkflow
  reconcile: ReturnType<typeof createReconciliation>
  shipping: ShippingService
  returns: ReturnService
  refundReturn: RefundReturnWorkflow
}

declare module 'fastify' {
  interface FastifyInstance { money: MoneyPath }
}

export default fp(async (app) => {
  const { db, outbox, faults } = app
  const { cart: limits, currency, checkout: checkoutConfig } = app.config
  const catalog = createProductService({ db, cache: app.cache, currency })
  const cart = createCartService({ carts: cartModel(app.mongo), redis: app.redis, catalog, currency, limits })
  const providers = await providersFromConfig(app.config.payments, db)

  const { metrics } = app
  const refunds = createRefundWorkflow({ db, outbox, faults, providers, metrics })
  const pay = createPayWorkflow({ db, outbox, faults, providers, refunds, metrics })
  const confirm = createConfirmWorkflow({ db, outbox, providers, refunds, metrics })
  const shipping = createShippingService({ db, defaults: checkoutConfig })
  const returns = createReturnService({ db, outbox, windowDays: checkoutConfig.returnWindowDays })
  const money: MoneyPath = {
    idempotency: createIdempotency(db),
    orders: createOrderService({ db, outbox }),
    payments: createPaymentService({ db }),
    checkout: createCheckoutWorkflow({ db, outbox, faults, cart, shipping, currency, checkout: checkoutConfig, metrics }),
    cancel: createCancelWorkflow({ db, outbox, refunds, metrics }),
    pay, confirm, refunds,
    reconcile: createReconciliation({ pay, confirm, refunds, providers }),
    shipping,
    returns,
    refundReturn: createRefundReturnWorkflow({ db, outbox, faults, refunds, returns }),
  }
  app.decorate('money', money)

  // The cart clear after a checkout (its outbox event): ordered quantities out, generation on.
  outbox.on('cart.consumed', async (payload) => {
    faults.at('cart.before-clear')
    await cart.consume(String(payload.userId), Number(payload.generation), payload.lines as { variantId: string; quantity: number }[])
  })

  // Order notifications and low-stock alerts (outbox events written with the change).
  const orderMail = createOrderMail({ db, mailer: app.mailer, domain: new URL(app.config.publicUrl).hostname })
  outbox.on('mail.order', (payload, event) => orderMail.sendOrderMail(event.id, payload as Parameters<typeof orderMail.sendOrderMail>[1]))
  outbox.on('mail.low-stock', (payload, event) => orderMail.sendLowStock(event.id, payload as { variantIds: string[] }, checkoutConfig.lowStockThreshold))

  app.jobs.every('order-expiry', 60_000, () => money.cancel.expireUnpaid())
  app.jobs.every('payments-reconcile', 60_000, () => money.reconcile())
  app.jobs.every('idempotency-purge', 3_600_000, () => money.idempotency.purgeExpired())
}, { name: 'money', dependencies: ['postgres', 'mongo', 'redis', 'cache', 'jobs', 'outbox', 'mailer', 'metrics'] })
