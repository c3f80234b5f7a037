import { z } from 'zod'

/**
 * ComputeStacks renders money as decimal strings, but some amounts (a run rate summed from nothing)
 * arrive as JSON numbers. Both are accepted and exposed as exact decimal strings, so nothing is ever
 * rounded through a binary float on our side.
 */

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/** Normalises `'12.50'`, `12.5`, `'1e-7'`, `' 3 '` to a plain decimal string (`'12.50'`, `'12.5'`, `'0.0000001'`, `'3'`). */
export function toDecimalString(value: string | number): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new RangeError(`Not a finite amount: ${value}`)
    // The shortest round-trip representation is the number JSON had on the wire.
    return expand(Object.is(value, -0) ? '0' : String(value))
  }
  const text = value.trim()
  if (!DECIMAL.test(text)) throw new RangeError(`Not a decimal amount: ${JSON.stringify(value)}`)
  return expand(text)
}

/** Expands exponent notation without floating-point arithmetic and tidies signs and leading zeros. */
function expand(text: string): string {
  let sign = ''
  let body = text
  if (body.startsWith('+') || body.startsWith('-')) {
    sign = body[0] === '-' ? '-' : ''
    body = body.slice(1)
  }
  let exponent = 0
  const e = body.search(/[eE]/)
  if (e >= 0) {
    exponent = Number(body.slice(e + 1))
    body = body.slice(0, e)
  }
  const dot = body.indexOf('.')
  let intPart = dot >= 0 ? body.slice(0, dot) : body
  let fracPart = dot >= 0 ? body.slice(dot + 1) : ''
  if (exponent > 0) {
    const moved = fracPart.slice(0, exponent).padEnd(exponent, '0')
    intPart += moved
    fracPart = fracPart.slice(exponent)
  } else if (exponent < 0) {
    const n = -exponent
    const padded = intPart.padStart(n + 1, '0')
    fracPart = padded.slice(padded.length - n) + fracPart
    intPart = padded.slice(0, padded.length - n)
  }
  intPart = intPart.replace(/^0+(?=\d)/, '')
  if (intPart === '') intPart = '0'
  // Trailing zeros are kept when they were written ('12.50' stays '12.50'); exponent forms drop them.
  if (e >= 0) fracPart = fracPart.replace(/0+$/, '')
  const out = fracPart.length > 0 ? `${intPart}.${fracPart}` : intPart
  return sign === '-' && /[1-9]/.test(out) ? `-${out}` : out
}

/** Accepts a decimal string or a JSON number and yields an exact decimal string. */
export const DecimalSchema = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return toDecimalString(v)
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message })
    return z.NEVER
  }
})

/** Adds decimal strings exactly (for sums of usage rows); scale is the larger of the two. */
export function addDecimals(a: string, b: string): string {
  const [ai, as] = toScaled(a)
  const [bi, bs] = toScaled(b)
  const scale = Math.max(as, bs)
  const sum = ai * 10n ** BigInt(scale - as) + bi * 10n ** BigInt(scale - bs)
  return fromScaled(sum, scale)
}

function toScaled(value: string): [bigint, number] {
  const text = toDecimalString(value)
  const negative = text.startsWith('-')
  const [i = '0', f = ''] = (negative ? text.slice(1) : text).split('.')
  const n = BigInt(i + f)
  return [negative ? -n : n, f.length]
}

function fromScaled(n: bigint, scale: number): string {
  const negative = n < 0n
  const digits = (negative ? -n : n).toString().padStart(scale + 1, '0')
  const out = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits
  return negative ? `-${out}` : out
}

/** An exact decimal string rounded half away from zero to `places` decimals, always with that many. */
export function roundDecimal(value: string | number, places = 2): string {
  const text = toDecimalString(value)
  const negative = text.startsWith('-')
  const [whole = '0', fraction = ''] = (negative ? text.slice(1) : text).split('.')
  const padded = (fraction + '0'.repeat(places + 1)).slice(0, places + 1)
  let units = BigInt(whole + padded.slice(0, places))
  if (Number(padded.charAt(places)) >= 5) units += 1n
  const digits = units.toString().padStart(places + 1, '0')
  const out = places > 0 ? `${digits.slice(0, -places)}.${digits.slice(-places)}` : digits
  return negative && units !== 0n ? `-${out}` : out
}
