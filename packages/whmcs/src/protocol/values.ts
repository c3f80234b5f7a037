import { z } from 'zod'

/**
 * Every schema here except `WhmcsIdSchema` also accepts a missing key (`.optional()` before the
 * transform, so the transform still runs and the output is never `undefined`): WHMCS versions add and
 * drop fields (`qty` since 8.12, `owner_user_id` since 8.0, `invoiceid` absent with `noinvoice`).
 *
 * Normalising schemas for WHMCS's loosely typed JSON. The same field arrives as `"1"` from one action
 * and `1` from another (GetClientsProducts and GetOrders come from legacy row fetches and send every
 * number as a string), money is a decimal string, "no date" is `0000-00-00`, and lists are wrapped
 * in an object keyed by the singular name, with three different shapes for "empty".
 */

/** An id as a string, whatever type it arrived as. Ids are compared as values, never as types. */
export const WhmcsIdSchema = z
  .union([z.string(), z.number().int()])
  .transform((v) => (typeof v === 'number' ? String(v) : v.trim()))

/** An optional id: missing, null, `""` and `"0"` mean none. */
export const OptionalIdSchema = z
  .union([z.string(), z.number().int(), z.null()])
  .optional()
  .transform((v) => (v === null || v === undefined || v === '' || v === 0 || v === '0' ? null : String(v)))

/** An integer from a number or a numeric string (`""` and missing are 0). */
export const WhmcsIntSchema = z
  .union([z.number(), z.string(), z.null()])
  .optional()
  .transform((v, ctx) => {
    if (v === null || v === undefined || v === '') return 0
    const n = typeof v === 'number' ? v : Number(v.trim())
    if (!Number.isFinite(n)) {
      ctx.addIssue({ code: 'custom', message: `expected a number, got ${JSON.stringify(v)}` })
      return z.NEVER
    }
    return Math.trunc(n)
  })

const DECIMAL = /^-?\d+(\.\d+)?$/

/**
 * Money as an exact decimal string with at least two decimals (`"12.95"`, `"-1.00"`). Never a float:
 * `0.1 + 0.2` must not appear on an invoice.
 */
export function normaliseMoney(value: string | number): string | null {
  let text = typeof value === 'number' ? (Number.isFinite(value) ? String(value) : '') : value.trim()
  if (/e/i.test(text) && typeof value === 'number') text = value.toFixed(2)
  if (text === '') text = '0'
  if (text.startsWith('+')) text = text.slice(1)
  if (text.startsWith('.')) text = `0${text}`
  if (!DECIMAL.test(text)) return null
  const [whole, frac = ''] = text.split('.')
  return `${whole}.${frac.padEnd(2, '0')}`
}

export const MoneySchema = z
  .union([z.string(), z.number(), z.null()])
  .optional()
  .transform((v, ctx) => {
    const out = normaliseMoney(v ?? '0')
    if (out === null) {
      ctx.addIssue({ code: 'custom', message: `expected a decimal amount, got ${JSON.stringify(v)}` })
      return z.NEVER
    }
    return out
  })

const DATE = /^\d{4}-\d{2}-\d{2}$/
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?$/

function dateOrNull(pattern: RegExp, what: string) {
  return z
    .union([z.string(), z.null()])
    .optional()
    .transform((v, ctx) => {
      if (v === null || v === undefined) return null
      const t = v.trim()
      if (t === '' || t.startsWith('0000-00-00')) return null
      if (!pattern.test(t)) {
        ctx.addIssue({ code: 'custom', message: `expected ${what}, got ${JSON.stringify(v)}` })
        return z.NEVER
      }
      return t
    })
}

/** `YYYY-MM-DD`, or null for `0000-00-00`, empty or missing. */
export const WhmcsDateSchema = dateOrNull(DATE, 'YYYY-MM-DD')
/** `YYYY-MM-DD HH:MM:SS`, or null for the zero date. A bare date is accepted too. */
export const WhmcsDateTimeSchema = dateOrNull(new RegExp(`${DATE_TIME.source}|${DATE.source}`), 'a date-time')

/** A boolean from `true`, `1`, `"1"`, `"true"`, `"on"`, `"yes"` (and their negatives, `""`, missing). */
export const WhmcsBoolSchema = z
  .union([z.boolean(), z.number(), z.string(), z.null()])
  .optional()
  .transform((v) => {
    if (typeof v === 'boolean') return v
    if (typeof v === 'number') return v !== 0
    if (v === null || v === undefined) return false
    return /^(1|true|on|yes)$/i.test(v.trim())
  })

/** Text that may arrive as a number or null. */
export const TextSchema = z
  .union([z.string(), z.number(), z.null()])
  .optional()
  .transform((v) => (v === null || v === undefined ? '' : String(v)))

function unwrapList(singular: string) {
  return (value: unknown): unknown => {
    if (value === undefined || value === null || value === '') return []
    if (Array.isArray(value)) return value
    if (typeof value === 'object') {
      const inner = (value as Record<string, unknown>)[singular]
      if (inner === undefined || inner === null || inner === '') return []
      return Array.isArray(inner) ? inner : [inner]
    }
    return value
  }
}

/**
 * A WHMCS list (`{products: {product: [...]}}`) as a plain array. Every empty shape — a missing key,
 * `""`, `[]`, `{product: []}` — becomes `[]`.
 */
export function whmcsList<T extends z.ZodType>(singular: string, item: T) {
  return z.preprocess(unwrapList(singular), z.array(item))
}
