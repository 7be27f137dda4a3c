// Rebuilds the template database every test database is cloned from, so each test file starts
// from the current migrations, and warms FerretDB up. Run by test/setup.ts before the suite.
import mongoose from 'mongoose'
import { openDb } from '../db/client.js'
import { TEMPLATE_DB, TEST_MONGODB_URL, adminQuery, databaseUrl } from './helpers.js'

await adminQuery(`drop database if exists ${TEMPLATE_DB} with (force)`)
await adminQuery(`create database ${TEMPLATE_DB}`)
const handle = await openDb({ url: databaseUrl(TEMPLATE_DB), pgliteDataDir: 'memory://', poolMax: 1 })
try {
  await handle.migrate()
} finally {
  await handle.close()
}

// FerretDB sets up its own metadata the first time it serves a database; done here, under a
// generous timeout, the first test file does not pay for it within MONGO_TIMEOUT_MS.
const mongo = await mongoose.createConnection(`${TEST_MONGODB_URL}warmup`, { serverSelectionTimeoutMS: 60_000, socketTimeoutMS: 120_000 }).asPromise()
try {
  await mongo.collection('warmup').createIndex({ at: 1 })
  await mongo.dropDatabase()
} finally {
  await mongo.close()
}
