export * from './users.js'
