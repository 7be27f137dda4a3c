import { randomUUID } from 'node:crypto'
import { Schema, type Connection, type Model } from 'mongoose'

// Carts live in MongoDB, written as whole documents (no positional updates, no transactions).
// Optimistic concurrency on `version` alone is not enough here: FerretDB 1.24 lets two racing
// updateOne({ _id, version: n }) calls both match (measured: 50 racing increments left n = 25),
// so the cart service also holds a per-cart Redis lock (src/locks.ts) around read-modify-write.
const CartLineSchema = new Schema({
  variantId: { type: String, required: true },
  productId: { type: String, required: true },
  quantity: { type: Number, required: true, min: 1 },
  // The price when the line was added: only to tell the shopper it changed. Never charged.
  addedUnitPriceMinor: { type: Number, required: true },
  addedAt: { type: Date, required: true },
}, { _id: false })

const CartSchema = new Schema({
  _id: { type: String, default: () => randomUUID() },
  // 'user:<userId>' or 'guest:<sha256 of the cart token>': one cart per owner.
  owner: { type: String, required: true },
  kind: { type: String, enum: ['user', 'guest'], required: true },
  lines: { type: [CartLineSchema], default: [] },
  // A code the shopper applied; checked again, with its limits, at checkout.
  couponCode: { type: String, default: null },
  // The cart's region and currency (PUT /cart/region); unset: the store currency. Every line is
  // priced in it, and checkout charges in it.
  regionId: { type: String, default: null },
  currency: { type: String, default: null },
  // A guest's contact address (PUT /cart/contact): guest checkout sends the order mail there.
  email: { type: String, default: null },
  version: { type: Number, required: true, default: 0 },
  // How many checkouts consumed this cart. An order records the generation it consumed under a
  // unique index in PostgreSQL, and clearing the cart after it moves the generation on: so one
  // generation of a cart makes one order, whatever retries or lock expiries do.
  checkoutGeneration: { type: Number, required: true, default: 0 },
}, { collection: 'carts', timestamps: true, versionKey: false })
CartSchema.index({ owner: 1 }, { unique: true })
CartSchema.index({ kind: 1, updatedAt: 1 })

/** A cart as read with lean(): plain data. */
export interface CartLineDoc { variantId: string; productId: string; quantity: number; addedUnitPriceMinor: number; addedAt: Date }
export interface CartDoc { _id: string; owner: string; kind: 'user' | 'guest'; lines: CartLineDoc[]; couponCode?: string | null; email?: string | null; regionId?: string | null; currency?: string | null; version: number; checkoutGeneration?: number; createdAt: Date; updatedAt: Date }

export function cartModel(connection: Connection): Model<CartDoc> {
  return (connection.models.Cart as Model<CartDoc> | undefined) ?? connection.model<CartDoc>('Cart', CartSchema)
}
