/**
 * PHP's `serialize()` format, the subset WHMCS reads for custom fields and configurable options:
 * arrays (lists and maps), strings, integers, floats, booleans and null. WHMCS wants these base64
 * encoded (`customfields=base64(serialize([12 => 'value']))`), so `encodePhpArray` does both steps.
 *
 * String lengths in the format are counted in UTF-8 bytes, not characters, which is why the parser
 * works on a Buffer.
 */

export type PhpValue = null | boolean | number | string | PhpValue[] | { [key: string]: PhpValue }

function serializeKey(key: string): string {
  // PHP turns decimal-integer string keys into integer keys; do the same so WHMCS sees `i:12`.
  if (/^(0|-?[1-9][0-9]{0,15})$/.test(key)) return `i:${key};`
  return `s:${Buffer.byteLength(key, 'utf8')}:"${key}";`
}

export function phpSerialize(value: PhpValue): string {
  if (value === null) return 'N;'
  switch (typeof value) {
    case 'boolean':
      return `b:${value ? 1 : 0};`
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`Cannot serialize ${value} for PHP`)
      return Number.isInteger(value) ? `i:${value};` : `d:${value};`
    case 'string':
      return `s:${Buffer.byteLength(value, 'utf8')}:"${value}";`
    default: {
      const entries: [string, PhpValue][] = Array.isArray(value)
        ? value.map((v, i) => [String(i), v])
        : Object.entries(value)
      let out = `a:${entries.length}:{`
      for (const [k, v] of entries) out += serializeKey(k) + phpSerialize(v)
      return `${out}}`
    }
  }
}

/** Thrown for input that is not valid serialized PHP. */
export class PhpUnserializeError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'PhpUnserializeError'
  }
}

/**
 * Parses serialized PHP. Arrays come back as JS arrays when their keys are exactly 0..n-1 (what PHP
 * calls a list), otherwise as plain objects with string keys.
 */
export function phpUnserialize(input: string | Buffer): PhpValue {
  const buf = typeof input === 'string' ? Buffer.from(input, 'utf8') : input
  let pos = 0
  const fail = (why: string): never => {
    throw new PhpUnserializeError(`Invalid serialized PHP at byte ${pos}: ${why}`)
  }
  const expect = (ch: string) => {
    if (buf[pos] !== ch.charCodeAt(0)) fail(`expected '${ch}'`)
    pos++
  }
  const readUntil = (ch: string): string => {
    const end = buf.indexOf(ch.charCodeAt(0), pos)
    if (end < 0) fail(`missing '${ch}'`)
    const text = buf.toString('latin1', pos, end)
    pos = end + 1
    return text
  }
  const readValue = (): PhpValue => {
    const type = String.fromCharCode(buf[pos] ?? 0)
    pos++
    if (type === 'N') {
      expect(';')
      return null
    }
    expect(':')
    switch (type) {
      case 'b': {
        const v = readUntil(';')
        if (v !== '0' && v !== '1') fail('bad boolean')
        return v === '1'
      }
      case 'i': {
        const v = readUntil(';')
        if (!/^-?[0-9]+$/.test(v)) fail('bad integer')
        return Number(v)
      }
      case 'd': {
        const v = readUntil(';')
        const n = Number(v)
        if (v === '' || Number.isNaN(n)) fail('bad float')
        return n
      }
      case 's': {
        const len = Number(readUntil(':'))
        if (!Number.isInteger(len) || len < 0) fail('bad string length')
        expect('"')
        if (pos + len > buf.length) fail('string runs past the end')
        const s = buf.toString('utf8', pos, pos + len)
        pos += len
        expect('"')
        expect(';')
        return s
      }
      case 'a': {
        const count = Number(readUntil(':'))
        if (!Number.isInteger(count) || count < 0) fail('bad array length')
        expect('{')
        const keys: string[] = []
        const values: PhpValue[] = []
        for (let i = 0; i < count; i++) {
          const key = readValue()
          if (typeof key !== 'string' && typeof key !== 'number') fail('array key must be int or string')
          keys.push(String(key))
          values.push(readValue())
        }
        expect('}')
        if (keys.every((k, i) => k === String(i))) return values
        const obj: Record<string, PhpValue> = {}
        keys.forEach((k, i) => {
          obj[k] = values[i] as PhpValue
        })
        return obj
      }
      default:
        return fail(`unsupported type '${type}'`)
    }
  }
  const value = readValue()
  if (pos !== buf.length) fail('trailing data')
  return value
}

/** `base64(serialize(value))`, the form WHMCS takes for `customfields` and `configoptions`. */
export function encodePhpArray(value: Record<string, PhpValue> | PhpValue[]): string {
  return Buffer.from(phpSerialize(value), 'utf8').toString('base64')
}

/** The inverse of `encodePhpArray`, for tests and the simulator. */
export function decodePhpArray(base64: string): PhpValue {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new PhpUnserializeError('Not base64')
  return phpUnserialize(Buffer.from(base64, 'base64'))
}
