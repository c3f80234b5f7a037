import { quote } from './encoder.ts'

/**
 * Parsers for what commands print before their status line, and the matching renderers the simulator
 * uses. The layouts are reconstructed from the offsets real clients use (the notes mark them inferred),
 * so the parsers lean on structure, never on wording or widths: a table is whatever follows the dashed
 * separator up to the first blank line, and each row is split into whitespace-separated tokens — the
 * row's name is its first token (notes §2.4: S1 reads `LIST Accounts` and `LIST Domains` that way).
 * Header positions are never used to cut cells: a name wider than its column, or tab-separated columns,
 * would otherwise come back truncated. SHOW output is every `key = value` line.
 */

// ---- tables -----------------------------------------------------------------------------------------

export interface Table {
  /** Header tokens (wording is not confirmed; informational only). */
  columns: string[]
  /** Rows as whitespace-separated tokens; the first token is the row's name. */
  cells: string[][]
}

const SEPARATOR = /^\s*-{3,}[-\s]*$/

export function parseTable(lines: readonly string[]): Table {
  const sep = lines.findIndex((l) => SEPARATOR.test(l))
  if (sep === -1) return { columns: [], cells: [] }
  const header = lines[sep - 1] ?? ''
  const columns = header
    .trim()
    .split(/\s+/)
    .filter((c) => c.length > 0)
  const cells: string[][] = []
  for (let i = sep + 1; i < lines.length; i++) {
    const line = lines[i] as string
    if (line.trim() === '') break
    cells.push(line.trim().split(/\s+/))
  }
  return { columns, cells }
}

/**
 * How the simulator lays a table out. The real widths are unknown (notes §2.4, §7.4), so it can print
 * every legal shape: columns padded to the widest cell (`aligned`), fixed columns as wide as their
 * header plus two spaces with wider cells overflowing by one space (`header-width`), or tabs.
 */
export type TableLayout = 'aligned' | 'header-width' | 'tabs'

/** Renders a table: title, two spacing lines, header, dashed separator, rows, one blank line. */
export function renderTable(
  title: string,
  columns: readonly string[],
  rows: readonly (readonly string[])[],
  layout: TableLayout = 'aligned',
): string[] {
  const widths = columns.map((c, i) =>
    layout === 'header-width'
      ? c.length + 1
      : Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)) + 3,
  )
  const fmt = (cells: readonly string[]) => {
    if (layout === 'tabs') return cells.join('\t')
    let out = ''
    cells.forEach((c, i) => {
      if (i + 1 === cells.length) out += c
      else out += c.length >= (widths[i] as number) ? `${c} ` : c.padEnd((widths[i] as number) + 1)
    })
    return out.trimEnd()
  }
  const total = widths.reduce((a, w) => a + w + 1, 0)
  return [title, '', '', fmt(columns), '-'.repeat(Math.max(3, total - 4)), ...rows.map(fmt), '']
}

// ---- SHOW -----------------------------------------------------------------------------------------

export type ShowValue = string | string[]

export interface ShowEntry {
  value: ShowValue
  /** The bracketed note after the value, e.g. `explicit, overrides inherited value: 1048576`. */
  note?: string
}

export type ShowOutput = Map<string, ShowEntry>

/** Reads the value part of `key = value [note]`. */
function parseShowValue(raw: string): ShowEntry {
  let rest = raw.trim()
  let value: ShowValue
  if (rest.startsWith('"')) {
    let out = ''
    let i = 1
    for (; i < rest.length; i++) {
      const c = rest[i]
      if (c === '\\' && i + 1 < rest.length) {
        out += rest[i + 1]
        i++
      } else if (c === '"') break
      else out += c
    }
    value = out
    rest = rest.slice(i + 1).trim()
  } else if (rest.startsWith('(')) {
    const close = rest.indexOf(')')
    const inner = close === -1 ? rest.slice(1) : rest.slice(1, close)
    value = inner.split(/\s+/).filter((s) => s.length > 0)
    rest = close === -1 ? '' : rest.slice(close + 1).trim()
  } else {
    const bracket = rest.search(/\s\[/)
    value = (bracket === -1 ? rest : rest.slice(0, bracket)).trim()
    rest = bracket === -1 ? '' : rest.slice(bracket).trim()
  }
  const entry: ShowEntry = { value }
  const note = /^\[(.*)\]$/.exec(rest)
  if (note?.[1] !== undefined) entry.note = note[1]
  return entry
}

export function parseShow(lines: readonly string[]): ShowOutput {
  const out: ShowOutput = new Map()
  for (const line of lines) {
    const at = line.indexOf(' = ')
    if (at <= 0) continue
    out.set(line.slice(0, at).trim(), parseShowValue(line.slice(at + 3)))
  }
  return out
}

/** A SHOW value as a string (lists joined by spaces), or undefined. */
export function showString(show: ShowOutput, key: string): string | undefined {
  const e = show.get(key)
  if (!e) return undefined
  return Array.isArray(e.value) ? e.value.join(' ') : e.value
}

export function showNumber(show: ShowOutput, key: string): number | undefined {
  const s = showString(show, key)
  if (s === undefined || s === '') return undefined
  const n = Number(s.replace(/[^0-9.-]/g, ''))
  return Number.isFinite(n) ? n : undefined
}

export type RenderValue = string | number | boolean | readonly string[]

export interface RenderEntry {
  key: string
  value: RenderValue
  note?: string
}

/** Strings are printed double-quoted (as real servers print names), numbers and yes/no bare. */
export function renderShowValue(v: RenderValue): string {
  if (typeof v === 'number') return String(v)
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (typeof v === 'string') return quote(v)
  return `(${v.join(' ')})`
}

export function renderShow(title: string, entries: readonly RenderEntry[]): string[] {
  return [
    title,
    '',
    ...entries.map((e) => `${e.key} = ${renderShowValue(e.value)}${e.note ? ` [${e.note}]` : ''}`),
    '',
  ]
}

/** `Key = value` lines with unquoted values (registry information). */
export function renderKeyValues(title: string, entries: readonly [string, string | number][]): string[] {
  return [title, '', ...entries.map(([k, v]) => `${k} = ${v}`), '']
}

// ---- version --------------------------------------------------------------------------------------

export interface VersionInfo {
  /** `10.6.30`; developer builds report `0.0.0.0`. */
  version: string
  os: string
  platform: string
  raw: string
}

/** Parses `10.6.30|Linux|x86_64` (or the older `7.0.0, (FreeBSD/i386)|FreeBSD|i386`). */
export function parseVersion(line: string): VersionInfo | undefined {
  const parts = line.trim().split('|')
  if (parts.length < 2) return undefined
  const version = (parts[0] ?? '').trim().split(/[\s,]+/)[0] ?? ''
  if (!/^\d+(\.\d+)*$/.test(version)) return undefined
  return { version, os: (parts[1] ?? '').trim(), platform: (parts[2] ?? '').trim(), raw: line.trim() }
}
