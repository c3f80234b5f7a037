import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeForm, formatWhmcsDate, PhpArray, parseForm } from '../../src/protocol/form.ts'
import {
  decodePhpArray,
  encodePhpArray,
  type PhpValue,
  phpSerialize,
  phpUnserialize,
} from '../../src/protocol/php-serialize.ts'

describe('PHP serialize', () => {
  it('writes the format WHMCS reads, with integer keys for numeric ids and byte lengths', () => {
    expect(phpSerialize({ 12: 'abc', name: 'é' })).toBe('a:2:{i:12;s:3:"abc";s:4:"name";s:2:"é";}')
    expect(phpSerialize([true, false, null, 1.5, -3])).toBe('a:5:{i:0;b:1;i:1;b:0;i:2;N;i:3;d:1.5;i:4;i:-3;}')
    expect(phpSerialize({ 7: { optionid: 3, qty: 2 } })).toBe(
      'a:1:{i:7;a:2:{s:8:"optionid";i:3;s:3:"qty";i:2;}}',
    )
  })

  it('round-trips any value through serialize and unserialize', () => {
    const key = fc.oneof(fc.string(), fc.integer({ min: 0, max: 1e6 }).map(String))
    const value: fc.Arbitrary<PhpValue> = fc.letrec<{ v: PhpValue }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.integer(),
        fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
        fc.string({ unit: 'grapheme' }),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(key, tie('v'), { maxKeys: 4 }),
      ),
    })).v
    fc.assert(
      fc.property(value, (v) => {
        const back = phpUnserialize(phpSerialize(v))
        expect(back).toEqual(normalise(v))
      }),
      { numRuns: 300 },
    )
  })

  it('base64-wraps for customfields and configoptions, and rejects garbage', () => {
    const b64 = encodePhpArray({ 5: 'Secret-1' })
    expect(Buffer.from(b64, 'base64').toString()).toBe('a:1:{i:5;s:8:"Secret-1";}')
    expect(decodePhpArray(b64)).toEqual({ 5: 'Secret-1' })
    expect(() => phpUnserialize('a:1:{i:0;s:5:"abc";}')).toThrow(/Invalid serialized PHP/)
    expect(() => phpUnserialize('s:3:"abc";trailing')).toThrow(/trailing/)
    expect(() => decodePhpArray('not base64!')).toThrow()
  })
})

/** What PHP gives back: integer-like keys, lists for 0..n-1 maps, -0 as 0. */
function normalise(v: PhpValue): PhpValue {
  if (Array.isArray(v)) return v.map(normalise)
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v).map(([k, x]) => [k, normalise(x)] as const)
    if (entries.length > 0 && entries.every(([k], i) => k === String(i))) return entries.map(([, x]) => x)
    if (entries.length === 0) return []
    return Object.fromEntries(entries)
  }
  if (typeof v === 'number' && Object.is(v, -0)) return 0
  return v
}

describe('form encoding', () => {
  it('sends booleans as 1/0, arrays in bracket notation and dates as YYYY-MM-DD', () => {
    const body = encodeForm({
      stats: true,
      noemail: false,
      pid: [1, 2],
      billingcycle: ['monthly', 'annually'],
      email_preferences: { general: true },
      duedate: new Date('2026-03-04T23:59:00Z'),
      skip: undefined,
    })
    const parsed = new URLSearchParams(body)
    expect(parsed.get('stats')).toBe('1')
    expect(parsed.get('noemail')).toBe('0')
    expect(parsed.get('pid[0]')).toBe('1')
    expect(parsed.get('pid[1]')).toBe('2')
    expect(parsed.get('billingcycle[1]')).toBe('annually')
    expect(parsed.get('email_preferences[general]')).toBe('1')
    expect(parsed.get('duedate')).toBe('2026-03-04')
    expect(parsed.has('skip')).toBe(false)
    expect(body).not.toMatch(/false|true/)
  })

  it('encodes PhpArray markers as base64 serialized arrays', () => {
    const body = encodeForm({ customfields: new PhpArray({ 3: 'x' }) })
    expect(decodePhpArray(new URLSearchParams(body).get('customfields') ?? '')).toEqual({ 3: 'x' })
  })

  it('parses bodies as PHP does: nested brackets, appended [] and last-wins plain keys', () => {
    expect(parseForm('a[0]=x&a[1]=y&b[k][j]=z&c[]=1&c[]=2&pid=1&pid=2')).toEqual({
      a: { 0: 'x', 1: 'y' },
      b: { k: { j: 'z' } },
      c: { 0: '1', 1: '2' },
      pid: '2',
    })
  })

  it('round-trips nested parameters through encode and parse', () => {
    const scalar = fc.oneof(fc.string(), fc.integer().map(String))
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.stringMatching(/^[a-z][a-z0-9_]{0,8}$/),
          fc.oneof(scalar, fc.array(scalar, { minLength: 1, maxLength: 3 })),
          { maxKeys: 5 },
        ),
        (params) => {
          const parsed = parseForm(encodeForm(params))
          for (const [k, v] of Object.entries(params)) {
            if (Array.isArray(v)) expect(Object.values(parsed[k] as object)).toEqual(v)
            else expect(parsed[k]).toBe(v)
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it('formats dates by the UTC day and refuses invalid dates', () => {
    expect(formatWhmcsDate(new Date(Date.UTC(2026, 0, 9)))).toBe('2026-01-09')
    expect(() => formatWhmcsDate(new Date('nope'))).toThrow(RangeError)
  })
})
