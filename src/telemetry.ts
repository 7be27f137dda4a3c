import { register } from 'node:module'
import { createAddHookMessageChannel } from 'import-in-the-middle'
import { NodeSDK } from '@opentelemetry/sdk-node'
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis'
import { MongoDBInstrumentation } from '@opentelemetry/instrumentation-mongodb'

// The OpenTelemetry SDK: a span per request (@fastify/otel, named "METHOD /route/template"),
// child spans for PostgreSQL, Redis and MongoDB commands and for the workflow steps
// (src/tracing.ts). The instrumentations patch pg, ioredis and mongodb as those modules load, so
// this must run before anything imports them: src/server.ts starts it first and only then
// imports the app. ESM imports are seen through import-in-the-middle's loader hook, limited to
// the modules an instrumentation asks for.
//
// Exporter, endpoint, sampler, service name and propagators come from the standard OTEL_*
// variables, read by the SDK. Metrics stay with Prometheus (GET /metrics) and logs with stdout,
// so the SDK's own metric and log exporters are off unless asked for.

export interface TracingOptions {
  /** Replaces the exporter the environment names (tests pass an in-memory one). */
  spanProcessors?: SpanProcessor[]
}

export async function startTracing(opts: TracingOptions = {}) {
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel()
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions)
  process.env.OTEL_METRICS_EXPORTER ??= 'none'
  process.env.OTEL_LOGS_EXPORTER ??= 'none'

  const sdk = new NodeSDK({
    ...(process.env.OTEL_SERVICE_NAME ? {} : { serviceName: 'shop-api' }),
    ...(opts.spanProcessors ? { spanProcessors: opts.spanProcessors } : {}),
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        // Probes and scrapes are not traffic worth a trace.
        ignorePaths: (route) => route.url === '/health' || route.url === '/ready' || route.url === '/metrics',
        requestHook: (span, req) => { span.updateName(`${req.method} ${req.routeOptions.url ?? 'unmatched'}`) },
      }),
      // Only beneath a request span: no root spans for jobs or the pool's own housekeeping.
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
      new MongoDBInstrumentation({ requireParentSpan: true }),
    ],
  })
  sdk.start()
  await waitForAllMessagesAcknowledged()
  return sdk
}
