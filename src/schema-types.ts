import { Type, type SchemaOptions } from '@sinclair/typebox'

/**
 * A closed set of strings as a JSON Schema `enum`: one readable validation error ("must be one
 * of ...") and one OpenAPI enum, where a union of literals gives an anyOf with an error per branch.
 */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ ...options, type: 'string', enum: [...values] })
}
