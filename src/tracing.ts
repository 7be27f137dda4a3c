import { SpanStatusCode, trace, type SpanContext } from '@opentelemetry/api'

// Tracing as the application code sees it: only the OpenTelemetry API, which does nothing until
// src/telemetry.ts has started the SDK (server.ts does, when the OTEL_* environment asks).

/**
 * Whether the standard OTEL_* variables ask for traces. Off by default (the SDK's own default
 * exporter is otlp; ours is none): on with OTEL_TRACES_EXPORTER (otlp, console; not none) or an
 * OTLP endpoint; OTEL_SDK_DISABLED=true wins over both.
 */
export function tracingWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return false
  const exporters = env.OTEL_TRACES_EXPORTER?.split(',').map((e) => e.trim()).filter(Boolean)
  if (exporters?.length) return !exporters.includes('none')
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
}

const tracer = trace.getTracer('shop-api')

/** Runs one workflow step in a child span of the current one (a no-op span when tracing is off). */
export function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  return tracer.startActiveSpan(name, async (span) => {
    try {
      return await fn()
    } catch (err) {
      span.recordException(err as Error)
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message })
      throw err
    } finally {
      span.end()
    }
  })
}

// Request loggers tied to their request's span, for the lines written outside its context
// (fastify's "request completed" is written after the last hook).
const requestSpans = new WeakMap<object, SpanContext>()

/** Called in an onRequest hook: this request's logger names the span active now. */
export function bindRequestLog(log: object) {
  const span = trace.getActiveSpan()
  if (span?.isRecording()) requestSpans.set(log, span.spanContext())
}

/** pino mixin: every log line of a traced request carries its trace and span ids. */
export function traceLogFields(_merge: object, _level: number, logger: object): Record<string, string> {
  const span = trace.getActiveSpan()
  const context = span?.isRecording() ? span.spanContext() : requestSpans.get(logger)
  return context ? { traceId: context.traceId, spanId: context.spanId } : {}
}

/** The trace id of a request (by its logger), from any point of its handling. */
export function requestTraceId(log: object): string | undefined {
  const span = trace.getActiveSpan()
  return span?.isRecording() ? span.spanContext().traceId : requestSpans.get(log)?.traceId
}
