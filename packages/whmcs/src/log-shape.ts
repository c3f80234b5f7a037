import { REDACTED } from '@panelkit/core'
import { type FormValue, PhpArray } from './protocol/form.ts'

/**
 * What the module log shows of requests and responses. Service passwords and password-like custom
 * fields travel in the response body under keys the generic redactor cannot know (`value` of a
 * custom field named "Password"), so they are masked here by structure. Large lists are reduced to
 * a count and the first ids: a full pass must not copy every customer into the log.
 */

const SECRET_NAME = /pass|pwd|secret|token|pin\b|key/i
const SECRET_PARAM = /^(servicepassword|password2|rootpw|password|secret|accesskey)$/i
const LIST_SAMPLE = 10

export interface LogShapeOptions {
  /** Custom-field names (exact) whose values are secrets, beyond the names that look like one. */
  secretFieldNames?: ReadonlySet<string>
}

function isSecretField(name: unknown, options: LogShapeOptions): boolean {
  return (
    typeof name === 'string' && (SECRET_NAME.test(name) || (options.secretFieldNames?.has(name) ?? false))
  )
}

/** The request as logged: custom-field and config-option values masked (which are secrets is unknown). */
export function logRequest(params: Readonly<Record<string, FormValue>>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const shape = (value: FormValue, key: string): unknown => {
    if (value instanceof PhpArray) {
      const v = value.value
      const keys = Array.isArray(v) ? v.map((_, i) => String(i)) : Object.keys(v)
      return Object.fromEntries(keys.map((k) => [k, REDACTED]))
    }
    if (SECRET_PARAM.test(key) && value !== undefined && value !== null && value !== '') return REDACTED
    if (Array.isArray(value)) return value.map((item) => shape(item, key))
    if (value instanceof Date) return value.toISOString().slice(0, 10)
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v as FormValue, k)]))
    }
    return value
  }
  for (const [key, value] of Object.entries(params)) if (value !== undefined) out[key] = shape(value, key)
  return out
}

function maskItem(value: unknown, options: LogShapeOptions, parentKey: string): unknown {
  if (Array.isArray(value)) return value.map((v) => maskItem(v, options, parentKey))
  if (value === null || typeof value !== 'object') return value
  const record = value as Record<string, unknown>
  const out: Record<string, unknown> = {}
  // A custom field is `{id, name, value}`; client custom fields are `{id, value}` with no name, so
  // their values are masked whole (there is no telling which one is a password).
  const fieldLike = 'value' in record && 'id' in record
  const secretValue =
    fieldLike &&
    (parentKey === 'customfields' || parentKey === 'customfield'
      ? !('name' in record) || isSecretField(record.name, options)
      : false)
  // for…in over parsed JSON (no inherited keys) and primitives copied inline: this runs on every
  // answer, so it avoids the entry arrays and calls Object.entries and recursion would make.
  for (const k in record) {
    const v = record[k]
    if (k === 'password' || k === 'password2' || k === 'servicepassword') out[k] = v === '' ? v : REDACTED
    else if (k === 'value' && secretValue && v !== '') out[k] = REDACTED
    else out[k] = v === null || typeof v !== 'object' ? v : maskItem(v, options, k)
  }
  return out
}

function idOf(item: unknown): unknown {
  if (item === null || typeof item !== 'object') return undefined
  const r = item as Record<string, unknown>
  return r.id ?? r.pid ?? r.billableid
}

/** Shapes a normalised response for the log. */
export function summarizeResponse(response: Record<string, unknown>, options: LogShapeOptions = {}): unknown {
  const out: Record<string, unknown> = {}
  for (const [key, raw] of Object.entries(response)) {
    // `{products: {product: [...]}}` is a list too.
    let value = raw
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      const inner = Object.values(raw)
      if (inner.length === 1 && Array.isArray(inner[0])) value = inner[0]
    }
    if (Array.isArray(value) && value.length > LIST_SAMPLE) {
      out[key] = { count: value.length, ids: value.slice(0, LIST_SAMPLE).map(idOf) }
    } else {
      out[key] = maskItem(raw, options, key)
    }
  }
  return out
}
