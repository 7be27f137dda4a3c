import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { parseAllDocuments } from 'yaml'
import * as k8sModels from '@kubernetes/client-node/dist/gen/models/all.js'
import { loadConfig } from '../src/config.js'
import { composeAppEnv } from './compose.js'

// The Kubernetes manifests under deploy/k8s, checked two ways against the Kubernetes API schema
// (no cluster here): kubernetes-models validates types, required fields and enums; the field
// lists of @kubernetes/client-node's models catch misspelt or misplaced keys, which a cluster
// would drop without a word. Then they are checked against the image and the app's own config.

type Doc = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string> }; [key: string]: unknown }
type Container = { name: string; image: string; command?: string[]; ports?: { name?: string; containerPort: number }[]; env?: { name: string; value?: string }[]; envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[]; livenessProbe?: { httpGet?: { path: string; port: string | number } }; readinessProbe?: { httpGet?: { path: string; port: string | number } }; securityContext?: Record<string, unknown> }
type PodSpec = { containers: Container[]; securityContext?: { runAsUser?: number }; volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[] }
type Deployment = Doc & { spec: { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } } }

const dir = new URL('../deploy/k8s/', import.meta.url)
const docs: Doc[] = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().flatMap((file) =>
  parseAllDocuments(readFileSync(new URL(file, dir), 'utf8')).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`)
    return doc.toJSON() as Doc
  }))
const find = <T extends Doc>(kind: string, name: string) => {
  const doc = docs.find((d) => d.kind === kind && d.metadata.name === name)
  if (!doc) throw new Error(`no ${kind} ${name} in deploy/k8s`)
  return doc as T
}

type AttributeMap = { name: string; baseName: string; type: string }[]
const models = k8sModels as unknown as Record<string, { getAttributeTypeMap?: () => AttributeMap }>

/** Paths of keys the Kubernetes model of `type` does not have, anywhere below `value`. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  const array = /^Array<(.+)>$/.exec(type)
  if (array) return Array.isArray(value) ? value.flatMap((item, i) => unknownFields(item, array[1]!, `${path}[${i}]`)) : []
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type)
  if (map) return value && typeof value === 'object' ? Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`)) : []
  const fields = models[type]?.getAttributeTypeMap?.()
  if (!fields || !value || typeof value !== 'object' || Array.isArray(value)) return []
  return Object.entries(value).flatMap(([key, child]) => {
    const field = fields.find((f) => f.baseName === key)
    return field ? unknownFields(child, field.type, `${path}.${key}`) : [`${path}.${key}`]
  })
}

/** The client-node model name of a document: apps/v1 Deployment -> V1Deployment. */
const modelName = (doc: Doc) => {
  const version = doc.apiVersion.split('/').pop()!
  return `${version[0]!.toUpperCase()}${version.slice(1)}${doc.kind}`
}

t.test('every manifest is a valid Kubernetes object with no unknown field', async (t) => {
  t.ok(docs.length >= 7, `${docs.length} objects`)
  for (const doc of docs) {
    const where = `${doc.kind} ${doc.metadata.name}`
    const mod = await import(`kubernetes-models/${doc.apiVersion}/${doc.kind}`) as Record<string, new (data: unknown) => { validate(): void }>
    const Model = mod[doc.kind]!
    t.doesNotThrow(() => new Model(doc).validate(), `${where}: schema`)
    t.ok(models[modelName(doc)]?.getAttributeTypeMap, `${where}: a known kind`)
    t.same(unknownFields(doc, modelName(doc), doc.kind), [], `${where}: no unknown field`)
  }
})

t.test('the strict check finds a misplaced field (it can fail)', async (t) => {
  const api = structuredClone(find<Deployment>('Deployment', 'shop-api'))
  ;(api.spec.template.spec.containers[0] as unknown as Record<string, unknown>).readinessprobe = { httpGet: { path: '/ready' } }
  t.same(unknownFields(api, 'V1Deployment', 'Deployment'), ['Deployment.spec.template.spec.containers[0].readinessprobe'])
})

t.test('the manifests agree with the image, the API and each other', async (t) => {
  const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8')
  const exposed = Number(/^EXPOSE (\d+)/m.exec(dockerfile)?.[1])
  const api = find<Deployment>('Deployment', 'shop-api')
  const worker = find<Deployment>('Deployment', 'shop-worker')
  const [apiContainer] = api.spec.template.spec.containers
  const [workerContainer] = worker.spec.template.spec.containers

  t.equal(apiContainer!.ports?.[0]?.containerPort, exposed, 'container port is the image\'s EXPOSE')
  t.equal(apiContainer!.env?.find((e) => e.name === 'PORT')?.value, String(exposed), 'PORT is the same port')
  t.equal(apiContainer!.env?.find((e) => e.name === 'JOBS')?.value, 'off', 'the API leaves jobs to the worker')
  t.equal(apiContainer!.livenessProbe?.httpGet?.path, '/health')
  t.equal(apiContainer!.readinessProbe?.httpGet?.path, '/ready')
  t.equal(workerContainer!.livenessProbe?.httpGet?.path, '/health', 'the worker is probed on its own /health')
  t.equal(String(workerContainer!.ports?.[0]?.containerPort), workerContainer!.env?.find((e) => e.name === 'WORKER_PORT')?.value, 'on WORKER_PORT')
  const contract = JSON.parse(readFileSync(new URL('../openapi/openapi.json', import.meta.url), 'utf8')) as { paths: Record<string, unknown> }
  t.ok(contract.paths['/health'] && contract.paths['/ready'], 'both probe paths are operations of the API')

  // The commands run files the image builds: src/X.ts compiles to dist/src/X.js.
  for (const container of [apiContainer!, workerContainer!]) {
    const script = container.command?.[1] ?? ''
    t.ok(existsSync(new URL(`../${script.replace(/^dist\//, '').replace(/\.js$/, '.ts')}`, import.meta.url)), `${container.name}: ${script} is built from a source file`)
  }
  t.match(dockerfile, /^CMD \["node", "dist\/src\/server\.js"\]/m, 'the image\'s own command is the API\'s')

  // The image runs as `node` (uid 1000); the pods say so too and may not escalate.
  for (const deployment of [api, worker]) {
    t.equal(deployment.spec.template.spec.securityContext?.runAsUser, 1000, `${deployment.metadata.name}: uid 1000`)
    t.same(deployment.spec.selector.matchLabels, Object.fromEntries(Object.entries(deployment.spec.template.metadata.labels).filter(([k]) => k in deployment.spec.selector.matchLabels)), `${deployment.metadata.name}: the selector matches its pods`)
    t.same(deployment.spec.template.spec.containers[0]!.envFrom, [{ configMapRef: { name: 'shop-api' } }, { secretRef: { name: 'shop-api' } }], `${deployment.metadata.name}: config from the ConfigMap and the Secret`)
    t.same(deployment.spec.template.spec.volumes?.filter((v) => v.persistentVolumeClaim), [], `${deployment.metadata.name}: no shared volume (files are in the object store)`)
  }
  t.equal(api.spec.selector.matchLabels['app.kubernetes.io/component'], 'api')
  t.equal(worker.spec.selector.matchLabels['app.kubernetes.io/component'], 'worker', 'the Service cannot select the worker')

  const service = find<Doc & { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } }>('Service', 'shop-api')
  t.same(service.spec.selector, api.spec.selector.matchLabels, 'the Service selects the API pods')
  t.equal(service.spec.ports[0]!.targetPort, apiContainer!.ports?.[0]?.name, 'and targets the named port')
  const hpa = find<Doc & { spec: { scaleTargetRef: { kind: string; name: string } } }>('HorizontalPodAutoscaler', 'shop-api')
  t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'shop-api' })
  t.same(docs.filter((d) => d.kind === 'PersistentVolumeClaim'), [], 'no ReadWriteMany uploads claim')
})

t.test('the app accepts the manifests\' configuration once the Secret is filled, and refuses it empty', async (t) => {
  const configMap = find<Doc & { data: Record<string, string> }>('ConfigMap', 'shop-api')
  const secret = find<Doc & { stringData: Record<string, string> }>('Secret', 'shop-api')
  const api = find<Deployment>('Deployment', 'shop-api')
  const podEnv = Object.fromEntries((api.spec.template.spec.containers[0]!.env ?? []).map((e) => [e.name, e.value ?? '']))

  // Every key is a variable the app reads (a misspelt one would be ignored in silence).
  const tableRows = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8').split('\n').filter((line) => line.startsWith('| `'))
  for (const name of [...Object.keys(configMap.data), ...Object.keys(secret.stringData), ...Object.keys(podEnv)]) {
    t.ok(tableRows.some((row) => row.split('|')[1]!.includes(`\`${name}\``)), `${name} is documented in docs/configuration.md`)
  }
  // Every secret compose requires is in the Secret, and none has a value in the repository.
  for (const name of composeAppEnv({}).required) t.ok(name in secret.stringData || name in configMap.data, `${name} is configured`)
  t.same(Object.values(secret.stringData).filter((v) => v !== ''), [], 'the Secret carries no value')

  const base = { ...configMap.data, ...secret.stringData, ...podEnv }
  t.throws(() => loadConfig(base), /Missing environment variable|production refuses/, 'the unfilled Secret stops the app')
  const filled = {
    ...base,
    DATABASE_URL: 'postgres://shop:pw@postgres:5432/shop',
    MONGODB_URL: 'mongodb://mongo-0:27017,mongo-1:27017,mongo-2:27017/shop?replicaSet=rs0',
    REDIS_URL: 'redis://:pw@redis:6379',
    JWT_SECRET: randomBytes(32).toString('hex'),
    PAYMENT_WEBHOOK_SECRET: randomBytes(24).toString('hex'),
    TOTP_ENCRYPTION_KEYS: `k1:${randomBytes(32).toString('base64')}`,
    WEBHOOK_SECRETS_KEY: randomBytes(32).toString('hex'),
    SMTP_URL: 'smtp://mail:587',
    STRIPE_SECRET_KEY: 'sk_live_x',
    STRIPE_WEBHOOK_SECRET: 'whsec_x',
  }
  const config = loadConfig(filled)
  t.equal(config.env, 'production')
  t.equal(config.port, 3000)
  // Files in the object store, its keys from the Secret (empty: the pod's role).
  t.equal(config.storage, 's3')
  t.match(config.s3, { bucket: configMap.data.S3_BUCKET, region: configMap.data.S3_REGION, accessKeyId: undefined, secretAccessKey: undefined })
  t.ok('S3_ACCESS_KEY_ID' in secret.stringData && 'S3_SECRET_ACCESS_KEY' in secret.stringData, 'the S3 keys are read from the Secret')
  t.notOk(Object.keys(configMap.data).some((k) => k.startsWith('S3_') && /KEY/.test(k)), 'and not from the ConfigMap')
  t.match(loadConfig({ ...filled, S3_ACCESS_KEY_ID: 'AKIAEXAMPLE', S3_SECRET_ACCESS_KEY: 'secret' }).s3, { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'secret' })
})
