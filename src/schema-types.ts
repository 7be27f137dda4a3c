import { Type, type SchemaOptions, type Static, type TSchema } from '@sinclair/typebox'

/**
 * A closed set of strings as a JSON Schema `enum`: one readable validation error ("must be one
 * of ...") and one OpenAPI enum, where a union of literals gives an anyOf with an error per branch.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] })
}

/**
 * A date-time a client may send: ISO 8601 with a zone, in years 1970-9999, which PostgreSQL and
 * JavaScript both represent and read back the same (years before 0020 do not survive the trip).
 */
export const DateTimeInput = (options: SchemaOptions = {}) =>
  Type.String({ ...options, format: 'date-time', pattern: '^(19[7-9][0-9]|[2-9][0-9]{3})-', description: `${options.description ? `${options.description}; ` : ''}ISO 8601 with a zone, years 1970-9999` })

/** What an Idempotency-Key may be: the contract's header schema and src/idempotency.ts both use it. */
export const IDEMPOTENCY_KEY_PATTERN = '^[A-Za-z0-9._:-]{8,255}$'

/**
 * A map of text to `value` that a client sends (variant options, product attributes). Every key
 * is checked: 1 to `maxKeyLength` characters without control characters, never a name that
 * would reach an object's prototype. (A TypeBox Record turns its key schema into the pattern
 * `^(.*)$`, which a key with a line break does not match, so such keys skipped validation.)
 */
export function StringMap<T extends TSchema>(value: T, options: { maxKeyLength: number; maxProperties: number; description?: string }) {
  return Type.Unsafe<Record<string, Static<T>>>({
    type: 'object',
    propertyNames: { type: 'string', pattern: `^[^\\u0000-\\u001f\\u007f]{1,${options.maxKeyLength}}$`, not: { enum: ['__proto__', 'constructor', 'prototype'] } },
    additionalProperties: value,
    maxProperties: options.maxProperties,
    ...(options.description ? { description: options.description } : {}),
  })
}

/** The answer of a request that is accepted and finished by mail (registered with the auth schemas). */
export const Accepted = Type.Object({ message: Type.String() }, { $id: 'Accepted', additionalProperties: false })

/** An ISO 4217 code; amounts in it are integer minor units of its own exponent. */
export const CurrencyCode = Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 (amounts are in its minor units: JPY 0 decimals, EUR 2, KWD 3)' })
