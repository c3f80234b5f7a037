import { ValidationError } from '@panelkit/core'

/**
 * Builds command lines that cannot be injected into. Every value is written double-quoted with `\`
 * and `"` backslash-escaped (the bash-like rule the Axigen documentation describes; the notes mark the
 * double-quote escapes as inferred). Control characters (C0, DEL, C1, and the Unicode line and
 * paragraph separators) are refused with VALIDATION before anything is sent: a CR or LF would end the
 * command early and run the rest as a new command.
 */

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/
const KEYWORD = /^[A-Za-z][A-Za-z0-9-]*$/
/** List items (service names, permissions) are written bare, so they must be plain words. */
const LIST_ITEM = /^[A-Za-z0-9][A-Za-z0-9_.@+-]*$/

/** A value to be quoted; `secret` values are masked as `***` in the log form of the command. */
export interface CliValue {
  readonly kind: 'value'
  readonly value: string
  readonly secret: boolean
}

/** A parenthesised list such as `(imap pop3 smtp)`. */
export interface CliList {
  readonly kind: 'list'
  readonly items: readonly string[]
  /** Write an empty list as `( )` instead of `()` (the empty-list syntax is unknown, notes §7.6). */
  readonly spaced?: boolean
}

export type CliToken = string | number | CliValue | CliList

export interface EncodedCommand {
  /** The exact line sent, without CRLF. */
  line: string
  /** The same line with secret values replaced by `***`, for logs and errors. */
  masked: string
}

export function value(v: string | number, field = 'value'): CliValue {
  const s = String(v)
  assertSafe(s, field)
  return { kind: 'value', value: s, secret: false }
}

/** A name (domain, account, alias, list, group): non-empty, no whitespace, no control characters. */
export function identifier(v: string, field: string): CliValue {
  if (typeof v !== 'string' || v === '' || /\s/.test(v)) {
    throw new ValidationError(`${field} must be a non-empty name without spaces`, [
      { path: field, message: 'must be a non-empty name without spaces' },
    ])
  }
  return value(v, field)
}

/** A quota, limit or size: a whole number, zero or more. */
export function count(v: number, field: string): CliValue {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new ValidationError(`${field} must be a whole number, zero or more`, [
      { path: field, message: 'must be a whole number, zero or more' },
    ])
  }
  return value(v, field)
}

export function secret(v: string, field = 'password'): CliValue {
  assertSafe(v, field)
  return { kind: 'value', value: v, secret: true }
}

export function list(items: readonly string[], field = 'list', emptyForm: '()' | '( )' = '()'): CliList {
  for (const item of items) {
    assertSafe(item, field)
    if (!LIST_ITEM.test(item)) {
      throw new ValidationError(`${field}: ${JSON.stringify(item)} is not a plain word`, [
        { path: field, message: 'list items must be letters, digits and . _ @ + -' },
      ])
    }
  }
  return emptyForm === '( )' && items.length === 0
    ? { kind: 'list', items: [], spaced: true }
    : { kind: 'list', items: [...items] }
}

/** Refuses control characters; the message never echoes the value (it may be a password). */
export function assertSafe(v: string, field: string): void {
  if (CONTROL.test(v)) {
    throw new ValidationError(`${field} must not contain control characters (CR, LF, NUL, …)`, [
      { path: field, message: 'must not contain control characters' },
    ])
  }
}

export function quote(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`
}

/** Keywords already checked: scripts repeat the same few dozen, so each is tested once. */
const knownKeywords = new Set<string>()

function checkKeyword(token: string): void {
  if (!KEYWORD.test(token)) {
    throw new ValidationError(`Not a CLI keyword: ${JSON.stringify(token)}`, [
      { path: 'keyword', message: 'keywords are letters, digits and dashes; wrap data in value()' },
    ])
  }
  if (knownKeywords.size < 1024) knownKeywords.add(token)
}

/** Encodes a command from keywords (plain strings), numbers, values and lists. */
export function encodeCommand(...tokens: CliToken[]): EncodedCommand {
  const line: string[] = []
  const masked: string[] = []
  for (const token of tokens) {
    if (typeof token === 'number') {
      if (!Number.isFinite(token)) throw new ValidationError('numbers must be finite', [])
      const s = String(Math.trunc(token))
      line.push(s)
      masked.push(s)
    } else if (typeof token === 'string') {
      if (!knownKeywords.has(token)) checkKeyword(token)
      line.push(token)
      masked.push(token)
    } else if (token.kind === 'list') {
      const s = token.spaced && token.items.length === 0 ? '( )' : `(${token.items.join(' ')})`
      line.push(s)
      masked.push(s)
    } else {
      line.push(quote(token.value))
      masked.push(token.secret ? '***' : quote(token.value))
    }
  }
  return { line: line.join(' '), masked: masked.join(' ') }
}

/** The login password is sent as a bare line (no quoting), so only control characters are refused. */
export function encodePasswordLine(password: string): string {
  assertSafe(password, 'password')
  return password
}
