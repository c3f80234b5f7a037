/**
 * Request encoding as WHMCS (PHP) reads a form body: booleans as `1`/`0` (PHP treats the string
 * "false" as true), arrays and maps in bracket notation (`pid[0]=1`), dates as `YYYY-MM-DD`.
 * `parseForm` is the inverse PHP performs, used by the simulator.
 */

import { encodePhpArray, type PhpValue } from './php-serialize.ts'

/**
 * A value WHMCS wants as `base64(serialize(array))` (custom fields, configurable options). Kept as a
 * marker until the body is encoded so that logs can show the keys without the values.
 */
export class PhpArray {
  readonly value: Record<string, PhpValue> | PhpValue[]
  constructor(value: Record<string, PhpValue> | PhpValue[]) {
    this.value = value
  }
  encode(): string {
    return encodePhpArray(this.value)
  }
}

export type FormScalar = string | number | boolean | Date | bigint | PhpArray
export type FormValue =
  | FormScalar
  | null
  | undefined
  | readonly FormValue[]
  | { readonly [key: string]: FormValue }

/** `YYYY-MM-DD` from the date's UTC calendar day. WHMCS stores dates without a time zone. */
export function formatWhmcsDate(date: Date): string {
  if (Number.isNaN(date.getTime())) throw new RangeError('Invalid date')
  return date.toISOString().slice(0, 10)
}

function scalar(value: FormScalar): string {
  if (typeof value === 'boolean') return value ? '1' : '0'
  if (value instanceof Date) return formatWhmcsDate(value)
  if (value instanceof PhpArray) return value.encode()
  if (typeof value === 'number' && !Number.isFinite(value)) throw new RangeError(`Cannot send ${value}`)
  return String(value)
}

function append(out: URLSearchParams, key: string, value: FormValue): void {
  if (value === undefined || value === null) return
  if (Array.isArray(value)) {
    value.forEach((item, i) => {
      append(out, `${key}[${i}]`, item)
    })
    return
  }
  if (typeof value === 'object' && !(value instanceof Date) && !(value instanceof PhpArray)) {
    for (const [k, v] of Object.entries(value)) append(out, `${key}[${k}]`, v)
    return
  }
  out.append(key, scalar(value as FormScalar))
}

/** Encodes parameters as `application/x-www-form-urlencoded` the way PHP's `http_build_query` does. */
export function encodeForm(params: Readonly<Record<string, FormValue>>): string {
  const out = new URLSearchParams()
  for (const [key, value] of Object.entries(params)) append(out, key, value)
  return out.toString()
}

export type ParsedForm = { [key: string]: string | ParsedForm }

/**
 * Parses a form body the way PHP fills `$_POST`: bracketed keys build nested maps (`a[0]`, `a[]`,
 * `a[x][y]`), and a repeated plain key keeps only the last value (`pid=1&pid=2` → `pid=2`).
 */
export function parseForm(body: string | URLSearchParams): ParsedForm {
  const params = typeof body === 'string' ? new URLSearchParams(body) : body
  const out: ParsedForm = {}
  for (const [rawKey, value] of params) {
    const open = rawKey.indexOf('[')
    if (open <= 0) {
      out[rawKey] = value
      continue
    }
    const base = rawKey.slice(0, open)
    const parts: string[] = []
    const re = /\[([^\]]*)\]/g
    re.lastIndex = open
    let m: RegExpExecArray | null = re.exec(rawKey)
    while (m !== null) {
      parts.push(m[1] ?? '')
      m = re.exec(rawKey)
    }
    let node: ParsedForm
    const existing = out[base]
    if (typeof existing === 'object') node = existing
    else {
      node = {}
      out[base] = node
    }
    for (let i = 0; i < parts.length; i++) {
      let part = parts[i] as string
      if (part === '') part = String(Object.keys(node).length)
      if (i === parts.length - 1) {
        node[part] = value
      } else {
        const next = node[part]
        if (typeof next === 'object') node = next
        else {
          const created: ParsedForm = {}
          node[part] = created
          node = created
        }
      }
    }
  }
  return out
}

/** A parsed bracket map as a list in key order (`{0: 'a', 1: 'b'}` → `['a', 'b']`). */
export function formList(value: string | ParsedForm | undefined): (string | ParsedForm)[] {
  if (value === undefined) return []
  if (typeof value === 'string') return [value]
  return Object.keys(value)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => value[k] as string | ParsedForm)
}
