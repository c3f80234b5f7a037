import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { EndpointDefinition } from '../endpoints/define.ts'
import { specFor } from '../endpoints/define.ts'
import { PVE_SCHEMA_FACTS } from '../endpoints/pve-schema.generated.ts'
import type { SchemaMethod, SchemaProperty } from '../endpoints/schema-facts-types.ts'

/**
 * Parameter validation for the simulator, with the server's own messages. Driven by the schema facts
 * generated from the official PVE 9.1 schema (src/endpoints/pve-schema.generated.ts: enums, ranges,
 * lengths, patterns, required flags), or by a full official schema file when one is named, otherwise
 * by this package's endpoint definitions (names, types, required flags).
 */

export type { SchemaMethod, SchemaProperty } from '../endpoints/schema-facts-types.ts'

export interface SchemaNode {
  path: string
  text?: string
  info?: Record<string, SchemaMethod>
  children?: SchemaNode[]
}

/** Flattens the schema tree into `METHOD path` → method entry. */
export function indexSchema(tree: SchemaNode[]): Map<string, SchemaMethod> {
  const out = new Map<string, SchemaMethod>()
  const walk = (nodes: SchemaNode[]) => {
    for (const node of nodes) {
      for (const [method, info] of Object.entries(node.info ?? {})) out.set(`${method} ${node.path}`, info)
      if (node.children) walk(node.children)
    }
  }
  walk(tree)
  return out
}

/** The generated schema facts as a `METHOD path` → method map (what the simulator validates against). */
export function schemaFacts(): Map<string, SchemaMethod> {
  return new Map(Object.entries(PVE_SCHEMA_FACTS))
}

/**
 * The schema to validate against: a full official schema file (`apidata.js` as JSON) when `file` is
 * given (undefined when that file does not exist), else the generated facts shipped with the package.
 */
export function loadSchema(file?: string | URL): Map<string, SchemaMethod> | undefined {
  if (file === undefined) return schemaFacts()
  const path = typeof file === 'string' ? file : fileURLToPath(file)
  if (!existsSync(path)) return undefined
  return indexSchema(JSON.parse(readFileSync(path, 'utf8')) as SchemaNode[])
}

function propertyFor(properties: Record<string, SchemaProperty>, key: string): SchemaProperty | undefined {
  const direct = properties[key]
  if (direct) return direct
  const m = /^([a-z]+)(\d+)$/.exec(key)
  return m ? properties[`${m[1]}[n]`] : undefined
}

/** Returns the `errors` object a PVE server would send, or undefined when the parameters pass. */
export function validateParams(
  params: Record<string, string | string[]>,
  pathParams: Record<string, string>,
  schemaMethod: SchemaMethod | undefined,
  fallback: EndpointDefinition | undefined,
): Record<string, string> | undefined {
  const errors: Record<string, string> = {}
  const all: Record<string, string | string[]> = { ...params, ...pathParams }
  if (schemaMethod) {
    const properties = schemaMethod.parameters?.properties ?? {}
    const strict =
      schemaMethod.parameters?.additionalProperties === 0 ||
      schemaMethod.parameters?.additionalProperties === undefined
    for (const [key, raw] of Object.entries(all)) {
      const prop = propertyFor(properties, key)
      if (!prop) {
        if (strict)
          errors[key] =
            'property is not defined in schema and the schema does not allow additional properties'
        continue
      }
      const value = Array.isArray(raw) ? raw.join(',') : raw
      const problem = checkValue(prop, value)
      if (problem) errors[key] = problem
    }
    for (const [key, prop] of Object.entries(properties)) {
      if (key.endsWith('[n]')) continue
      if (!prop.optional && all[key] === undefined) errors[key] = 'property is missing and it is not optional'
    }
  } else if (fallback) {
    for (const [key, raw] of Object.entries(all)) {
      const spec = specFor(fallback, key)
      if (!spec) {
        errors[key] = 'property is not defined in schema and the schema does not allow additional properties'
        continue
      }
      const problem = checkValue({ type: spec.type }, Array.isArray(raw) ? raw.join(',') : raw)
      if (problem) errors[key] = problem
    }
    for (const [key, spec] of Object.entries(fallback.params)) {
      if (!key.endsWith('[n]') && !spec.optional && all[key] === undefined)
        errors[key] = 'property is missing and it is not optional'
    }
  }
  return Object.keys(errors).length > 0 ? errors : undefined
}

const DNS_LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?'
const DNS_NAME = new RegExp(`^(?:${DNS_LABEL}\\.)*${DNS_LABEL}$`)

function checkValue(prop: SchemaProperty, value: string): string | undefined {
  switch (prop.type) {
    case 'boolean':
      if (value !== '0' && value !== '1') return `type check ('boolean') failed - got '${value}'`
      break
    case 'integer':
      if (!/^-?\d+$/.test(value)) return `type check ('integer') failed - got '${value}'`
      break
    case 'number':
      if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value))
        return `type check ('number') failed - got '${value}'`
      break
    default:
      break
  }
  if (
    (prop.type === 'integer' || prop.type === 'number') &&
    prop.minimum !== undefined &&
    Number(value) < Number(prop.minimum)
  )
    return `value must have a minimum value of ${prop.minimum}`
  if (
    (prop.type === 'integer' || prop.type === 'number') &&
    prop.maximum !== undefined &&
    Number(value) > Number(prop.maximum)
  )
    return `value must have a maximum value of ${prop.maximum}`
  if (prop.enum && !prop.enum.includes(value))
    return `value '${value}' does not have a value in the enumeration '${prop.enum.join(', ')}'`
  if (prop.maxLength !== undefined && value.length > Number(prop.maxLength))
    return `value may only be ${prop.maxLength} characters long`
  if (prop.format === 'urlencoded' && !/^[-%a-zA-Z0-9_.!~*'()]*$/.test(value))
    return `invalid format - invalid urlencoded string: ${value}`
  // pve-common src/PVE/JSONSchema.pm pve_verify_dns_name
  if (prop.format === 'dns-name' && !DNS_NAME.test(value))
    return 'invalid format - value does not look like a valid DNS name'
  if (prop.pattern !== undefined) {
    try {
      if (!new RegExp(`^(?:${prop.pattern})$`).test(value)) return 'value does not match the regex pattern'
    } catch {
      // Perl-only regex syntax: skip, as a lenient simulator should.
    }
  }
  return undefined
}
