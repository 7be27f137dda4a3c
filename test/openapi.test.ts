import t from 'tap'
import { readFileSync } from 'node:fs'
import SwaggerParser from '@apidevtools/swagger-parser'
import { OPENAPI_FILE } from '../openapi/generate.js'
import { buildTestApp } from './helpers.js'

t.test('the served OpenAPI document is valid and equals the committed file', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/docs/json' })
  t.equal(res.statusCode, 200)
  const served = res.json()

  await t.resolves(SwaggerParser.validate(structuredClone(served)), 'valid OpenAPI')
  t.same(served, JSON.parse(readFileSync(OPENAPI_FILE, 'utf8')), 'openapi/openapi.json is current')

  // Components carry readable names from the schemas' $id, never def-N.
  const names = Object.keys(served.components.schemas)
  t.ok(names.includes('Problem'))
  t.notOk(names.some((n: string) => /^def-\d+$/.test(n)), names.join(', '))
})

t.test('every operation has an operationId, a tag and a summary, and ids are unique', async (t) => {
  const doc = JSON.parse(readFileSync(OPENAPI_FILE, 'utf8'))
  const ids = new Set<string>()
  for (const [path, item] of Object.entries<Record<string, { operationId?: string; tags?: string[]; summary?: string }>>(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(op.operationId, `${where} has an operationId`)
      t.notOk(ids.has(op.operationId!), `${where} operationId is unique`)
      ids.add(op.operationId!)
      t.ok(op.tags?.length, `${where} has a tag`)
      t.ok(op.summary, `${where} has a summary`)
    }
  }
})

t.test('Swagger UI is served at /docs', async (t) => {
  const app = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /text\/html/)
  t.match(res.body, /swagger-ui/i)
})
