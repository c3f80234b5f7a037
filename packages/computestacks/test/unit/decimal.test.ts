import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { addDecimals, DecimalSchema, toDecimalString } from '../../src/decimal.ts'

describe('decimal amounts', () => {
  it('keeps strings exact and expands numbers without float noise', () => {
    expect(toDecimalString('12.50')).toBe('12.50')
    expect(toDecimalString(' 3 ')).toBe('3')
    expect(toDecimalString(0)).toBe('0')
    expect(toDecimalString(-0)).toBe('0')
    expect(toDecimalString(12.5)).toBe('12.5')
    expect(toDecimalString(1e-7)).toBe('0.0000001')
    expect(toDecimalString(1.5e21)).toBe('1500000000000000000000')
    expect(toDecimalString('-0.000')).toBe('0.000')
    expect(toDecimalString('1.25E+3')).toBe('1250')
    expect(toDecimalString('007.10')).toBe('7.10')
    expect(() => toDecimalString('12,5')).toThrow(RangeError)
    expect(() => toDecimalString(Number.NaN)).toThrow(RangeError)
  })

  it('parses both wire forms through the schema and names bad values', () => {
    expect(DecimalSchema.parse('0.0069')).toBe('0.0069')
    expect(DecimalSchema.parse(0)).toBe('0')
    const bad = DecimalSchema.safeParse('lots')
    expect(bad.success).toBe(false)
  })

  it('property: a number becomes a decimal string that reads back as the same number', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        const text = toDecimalString(n)
        expect(text).toMatch(/^-?\d+(\.\d+)?$/)
        expect(Number(text)).toBe(n === 0 ? 0 : n)
      }),
    )
  })

  it('property: adding scaled decimals matches integer arithmetic', () => {
    const amount = fc.tuple(
      fc.bigInt({ min: -(10n ** 15n), max: 10n ** 15n }),
      fc.integer({ min: 0, max: 6 }),
    )
    const render = ([n, scale]: [bigint, number]) => {
      const negative = n < 0n
      const digits = (negative ? -n : n).toString().padStart(scale + 1, '0')
      const out = scale > 0 ? `${digits.slice(0, -scale)}.${digits.slice(-scale)}` : digits
      return negative ? `-${out}` : out
    }
    fc.assert(
      fc.property(amount, amount, (a, b) => {
        const scale = Math.max(a[1], b[1])
        const expected = a[0] * 10n ** BigInt(scale - a[1]) + b[0] * 10n ** BigInt(scale - b[1])
        expect(addDecimals(render(a), render(b))).toBe(toDecimalString(render([expected, scale])))
      }),
    )
  })
})
