import { randomBytes } from 'node:crypto'
import t from 'tap'
import mongoose from 'mongoose'
import { Toxiproxy } from 'toxiproxy-node-client'
import { cartModel } from '../db/models/cart.js'
import { ensureIndexes } from '../src/mongo-indexes.js'
import { TEST_MONGODB_URL, freePort } from './helpers.js'

// The startup index build outlasts one command's timeout (as FerretDB's first use of a database
// can on a busy machine): it is tried again rather than failing the boot. Seen in CI, where the
// first test file's boot failed with "connection 2 ... timed out".
t.test('an index build that times out is tried again, and the indexes exist', async (t) => {
  const toxiproxy = new Toxiproxy(process.env.TEST_TOXIPROXY_URL ?? 'http://127.0.0.1:58474')
  const upstream = new URL(TEST_MONGODB_URL)
  const port = await freePort()
  const proxy = await toxiproxy.createProxy({ name: `indexes-${randomBytes(4).toString('hex')}`, listen: `127.0.0.1:${port}`, upstream: upstream.host })
  t.teardown(() => proxy.remove().catch(() => {}))
  const dbName = `indexes_${randomBytes(4).toString('hex')}`
  const timeoutMs = 500
  const connection = await mongoose.createConnection(`mongodb://127.0.0.1:${port}/${dbName}`, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs, socketTimeoutMS: timeoutMs }).asPromise()
  t.teardown(async () => {
    await connection.dropDatabase().catch(() => {})
    await connection.close()
  })

  // Answers come 800 ms late (beyond the 500 ms timeout) for the first second, then on time.
  const slow = await proxy.addToxic({ name: 'slow', type: 'latency', stream: 'downstream', toxicity: 1, attributes: { latency: 800, jitter: 0 } } as never)
  const healed = new Promise((resolve) => setTimeout(resolve, 1000)).then(() => slow.remove())
  const carts = cartModel(connection)
  await ensureIndexes([carts])
  await healed
  const names = (await carts.collection.indexes()).map((index) => index.name)
  t.ok(names.length > 1, `the indexes exist: ${names.join(', ')}`)
})
