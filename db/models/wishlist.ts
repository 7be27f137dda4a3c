import { Schema, type Connection, type Model } from 'mongoose'

// One document per (user, product): adding is an upsert, so it is idempotent under any race.
const WishlistItemSchema = new Schema({
  userId: { type: String, required: true },
  productId: { type: String, required: true },
  addedAt: { type: Date, required: true },
}, { collection: 'wishlist_items', versionKey: false })
WishlistItemSchema.index({ userId: 1, productId: 1 }, { unique: true })
WishlistItemSchema.index({ userId: 1, addedAt: -1 })

export interface WishlistItemDoc { userId: string; productId: string; addedAt: Date }

export function wishlistModel(connection: Connection): Model<WishlistItemDoc> {
  return (connection.models.WishlistItem as Model<WishlistItemDoc> | undefined) ?? connection.model<WishlistItemDoc>('WishlistItem', WishlistItemSchema)
}
