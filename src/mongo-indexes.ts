import mongoose from 'mongoose'
import pRetry from 'p-retry'

type IndexedModel = { init(): Promise<unknown>; createIndexes(): Promise<unknown> }

/**
 * Creates each model's collection and indexes before the first request. An attempt that times
 * out (MONGO_TIMEOUT_MS bounds every command) is tried again: a MongoDB-wire server creating a
 * database for the first time, as FerretDB does with a PostgreSQL schema and tables, can take
 * longer than one command should, and it finishes the work server-side meanwhile.
 */
export async function ensureIndexes(models: IndexedModel[]) {
  await Promise.all(models.map((model) => pRetry(
    // Mongoose keeps the first init()'s outcome, so a retry asks for the indexes directly.
    (attempt) => attempt === 1 ? model.init() : model.createIndexes(),
    { retries: 3, minTimeout: 200, shouldRetry: (err) => err instanceof mongoose.mongo.MongoNetworkTimeoutError },
  )))
}
