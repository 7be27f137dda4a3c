import { readFileSync } from 'node:fs'
import { parse } from 'yaml'

/**
 * The compose file's app environment, interpolated as compose does: `${X:-default}` falls back,
 * `${X:?message}` must be given by the operator (from `given`; `required` lists them).
 */
export function composeAppEnv(given: Record<string, string>) {
  const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8')) as { services: { app: { environment: Record<string, string | number> } } }
  const required: string[] = []
  const env = Object.fromEntries(Object.entries(compose.services.app.environment).map(([name, value]) => [name,
    String(value).replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_m, variable: string, kind?: string, fallback?: string) => {
      if (kind === '?') required.push(variable)
      return given[variable] ?? (kind === '-' ? fallback ?? '' : '')
    })]))
  return { env, required }
}
