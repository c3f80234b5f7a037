/**
 * Secrets are declared once — by key name and by value — and masked everywhere they could travel:
 * nested structures, error messages, URLs and query strings, form bodies, header values and CLI
 * command lines. Connectors add every secret value they handle (service password, server password,
 * API secret, tickets, SSO tokens) to the redactor before the first external call.
 */

import { maskSpans, SecretMatcher } from './secret-matcher.ts'

export const REDACTED = '[redacted]'

/**
 * Key names whose values are always masked, compared case-insensitively after removing everything that
 * is not a letter or digit (`api_key`, `API-Key` and `apiKey` are the same key).
 */
export const DEFAULT_SECRET_KEYS: readonly string[] = [
  'password',
  'passwd',
  'pwd',
  'newpassword',
  'oldpassword',
  'secret',
  'apisecret',
  'clientsecret',
  'token',
  'accesstoken',
  'refreshtoken',
  'apitoken',
  'ticket',
  'csrfpreventiontoken',
  'pveauthcookie',
  'authorization',
  'proxyauthorization',
  'cookie',
  'setcookie',
  'accesshash',
  'serveraccesshash',
  'serverpassword',
  'apikey',
  'accesskey',
  'privatekey',
  'sshprivatekey',
  'cipassword',
]

/**
 * Secret values shorter than this are masked in free text only as whole words (not glued to a letter
 * or digit on either side), so a four-letter password cannot turn "Unexpected" into
 * "Une[redacted]ted"; they are still masked wherever they stand in a secret position (a secret key's
 * value, an Authorization header, a URL's password) and as a whole string value.
 */
export const SHORT_SECRET_LENGTH = 6

export interface RedactorOptions {
  /** Extra key names to mask (normalised like the defaults). */
  keys?: readonly string[]
  /** Secret values known up front. */
  values?: readonly string[]
  /** The mask text; defaults to `[redacted]`. */
  mask?: string
  /** Values shorter than this are masked in free text only as whole words (default 6). */
  shortSecretLength?: number
}

export interface Redactor {
  /** Declares another secret value; every later redaction masks it. Empty values are ignored. */
  addValue(value: string | undefined | null): void
  /** Declares another secret key name. */
  addKey(key: string): void
  isSecretKey(key: string): boolean
  /** Masks secret values and `key=value` / `key: value` secrets inside a string. */
  redactString(input: string): string
  /** Deep copy of `value` with every secret masked; handles cycles, errors, maps, sets, buffers, URLs. */
  redact<T>(value: T): T
  /**
   * A redactor that knows everything this one knows (now and later) plus more; this one is unchanged.
   * It holds only its own additions, so a child per job or per invocation costs nothing to make and
   * is dropped with its secrets when the work is done.
   */
  child(options?: Omit<RedactorOptions, 'mask' | 'shortSecretLength'>): Redactor
  readonly mask: string
}

function normaliseKey(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '')
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** The forms a secret value takes on the wire: raw, URL-encoded, form-encoded, JSON-escaped. */
function encodedForms(value: string): string[] {
  const forms = new Set<string>([value])
  try {
    const uri = encodeURIComponent(value)
    forms.add(uri)
    forms.add(uri.replace(/%20/g, '+'))
    forms.add(uri.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()))
    // application/x-www-form-urlencoded escapes more than encodeURIComponent (`!`, `'`, `(`, `)`, `~`).
    forms.add(new URLSearchParams({ v: value }).toString().slice(2))
  } catch {
    // lone surrogates cannot be URI-encoded; the raw form is still masked
  }
  const json = JSON.stringify(value).slice(1, -1)
  forms.add(json)
  return [...forms].filter((f) => f.length > 0)
}

/** Secret keys per compiled pattern: each RegExp stays small however many keys are declared. */
const KEYS_PER_PATTERN = 128

/** `scheme://user:password@` in free text: the password is a secret position whatever its length. */
const URL_CREDENTIALS = /\b([A-Za-z][A-Za-z0-9+.-]{0,31}:\/\/[^\s/?#@:]*):([^\s/?#@]+)@/g

function keyPattern(keys: readonly string[]): RegExp {
  const loose = keys.map((k) => [...k].map(escapeRegExp).join('[_\\-]?')).join('|')
  const keyChars = 'A-Za-z0-9_.\\-\\['
  // A key never follows a `/`: `POST /access/ticket: reason` is a path and its error text.
  return new RegExp(
    `(["']?)((?<![${keyChars}/])[${keyChars}]*?(?:${loose})(?![A-Za-z0-9_])\\]?)\\1(\\s*[=:]\\s*)` +
      `("(?:[^"\\\\]|\\\\.)*"|'[^']*'|(?:(?:Basic|Bearer|Digest|Token|PVEAPIToken)\\s+)?[^\\s&,;}"']+)`,
    'gi',
  )
}

class RedactorImpl implements Redactor {
  readonly mask: string
  readonly #parent: RedactorImpl | undefined
  readonly #shortLength: number
  // ES-private so that neither util.inspect (even with showHidden) nor JSON.stringify can reach them.
  readonly #keys = new Set<string>()
  /** This layer's secret forms, each with whether it counts only as a whole word. */
  readonly #values = new Map<string, boolean>()
  #matcher: SecretMatcher | null = null
  #keyChanges = 0
  #keyPatterns: { version: number; patterns: RegExp[] } | null = null

  constructor(
    mask: string,
    parent: RedactorImpl | undefined,
    shortLength: number,
    keys: Iterable<string>,
    values: Iterable<string>,
  ) {
    this.mask = mask
    this.#parent = parent
    this.#shortLength = shortLength
    for (const k of keys) this.addKey(k)
    for (const v of values) this.addValue(v)
  }

  /** A user who logs a client prints its recorder and this redactor: show counts, never the secrets. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString()
  }

  toJSON(): { mask: string; secretKeys: number; secretValues: number } {
    return { mask: this.mask, secretKeys: this.allKeys().size, secretValues: this.valueCount() }
  }

  toString(): string {
    return `Redactor { ${this.allKeys().size} secret keys, ${this.valueCount()} secret values }`
  }

  private valueCount(): number {
    return this.#values.size + (this.#parent?.valueCount() ?? 0)
  }

  private allKeys(): Set<string> {
    if (!this.#parent) return this.#keys
    const all = new Set(this.#parent.allKeys())
    for (const k of this.#keys) all.add(k)
    return all
  }

  private keysVersion(): number {
    return this.#keyChanges + (this.#parent?.keysVersion() ?? 0)
  }

  addValue(value: string | undefined | null): void {
    if (typeof value !== 'string' || value.length === 0) return
    const wholeWord = value.length < this.#shortLength
    for (const form of encodedForms(value)) {
      const known = this.#values.get(form)
      // A form declared both as a short value and inside a long one is masked anywhere.
      if (known === undefined || (known && !wholeWord)) {
        this.#values.set(form, wholeWord)
        this.#matcher = null
      }
    }
  }

  addKey(key: string): void {
    const k = normaliseKey(key)
    if (k.length > 0 && !this.#keys.has(k) && !this.#parent?.hasKey(k)) {
      this.#keys.add(k)
      this.#keyChanges++
    }
  }

  private hasKey(k: string): boolean {
    return this.#keys.has(k) || (this.#parent?.hasKey(k) ?? false)
  }

  /** A key is secret when, normalised, it ends with a secret name (`serverPassword`, `X-Api-Key`). */
  isSecretKey(key: string): boolean {
    const k = normaliseKey(key)
    for (let layer: RedactorImpl | undefined = this; layer; layer = layer.#parent) {
      if (layer.#keys.has(k)) return true
      for (const name of layer.#keys) if (k.endsWith(name)) return true
    }
    return false
  }

  /** Whether this is `other` or a layer over it (so it masks everything `other` masks, now and later). */
  coversAll(other: Redactor): boolean {
    for (let layer: RedactorImpl | undefined = this; layer; layer = layer.#parent)
      if (layer === other) return true
    return false
  }

  child(options: Omit<RedactorOptions, 'mask' | 'shortSecretLength'> = {}): Redactor {
    return new RedactorImpl(this.mask, this, this.#shortLength, options.keys ?? [], options.values ?? [])
  }

  private matcher(): SecretMatcher | null {
    if (this.#values.size === 0) return null
    this.#matcher ??= new SecretMatcher([...this.#values].map(([text, wholeWord]) => ({ text, wholeWord })))
    return this.#matcher
  }

  /**
   * `key=value` (query strings, form bodies), `key: value` (headers, YAML-like text) and
   * `"key":"value"` (JSON text) for every secret key. A key matches when it ends with a secret name, so
   * `server_password`, `X-Api-Key` and `customfields[password]` are all caught.
   */
  private secretKeyPatterns(): RegExp[] {
    if (this.#keys.size === 0 && this.#parent) return this.#parent.secretKeyPatterns()
    const version = this.keysVersion()
    if (this.#keyPatterns?.version !== version) {
      const keys = [...this.allKeys()].sort((a, b) => b.length - a.length)
      const patterns: RegExp[] = []
      for (let i = 0; i < keys.length; i += KEYS_PER_PATTERN)
        patterns.push(keyPattern(keys.slice(i, i + KEYS_PER_PATTERN)))
      this.#keyPatterns = { version, patterns }
    }
    return this.#keyPatterns.patterns
  }

  redactString(input: string): string {
    let out = input
    let spans: number[] | undefined
    for (let layer: RedactorImpl | undefined = this; layer; layer = layer.#parent) {
      const matcher = layer.matcher()
      if (matcher === null || out.length < matcher.minLength) continue
      spans ??= []
      matcher.scan(out, spans)
    }
    if (spans !== undefined && spans.length > 0) out = maskSpans(out, spans, this.mask)
    // Every key form needs a separator: text without `=` or `:` holds no `key=value` secret.
    if (out.includes('=') || out.includes(':')) {
      for (const pattern of this.secretKeyPatterns()) {
        out = out.replace(pattern, (whole, quote: string, key: string, sep: string, value: string) => {
          if (value === this.mask || value === `"${this.mask}"` || value === `'${this.mask}'`) return whole
          const masked = value.startsWith('"')
            ? `"${this.mask}"`
            : value.startsWith("'")
              ? `'${this.mask}'`
              : this.mask
          return `${quote}${key}${quote}${sep}${masked}`
        })
      }
      if (out.includes('://')) {
        out = out.replace(URL_CREDENTIALS, (whole, head: string, password: string) =>
          password === this.mask ? whole : `${head}:${this.mask}@`,
        )
      }
    }
    return out
  }

  redact<T>(value: T): T {
    return this.walk(value, new WeakMap()) as T
  }

  private walk(value: unknown, seen: WeakMap<object, unknown>): unknown {
    if (typeof value === 'string') return this.redactString(value)
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'function') return '[function]'
      if (typeof value === 'symbol') return value.toString()
      return value
    }
    const existing = seen.get(value)
    if (existing !== undefined) return existing
    if (value instanceof Date) return new Date(value.getTime())
    if (value instanceof URL) return this.redactUrl(value)
    if (value instanceof URLSearchParams) {
      const copy = new URLSearchParams()
      for (const [k, v] of value)
        copy.append(this.redactString(k), this.isSecretKey(k) ? this.mask : this.redactString(v))
      return copy.toString()
    }
    if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
      const bytes =
        value instanceof ArrayBuffer
          ? new Uint8Array(value)
          : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
      return this.redactString(Buffer.from(bytes).toString('utf8'))
    }
    if (value instanceof Error) {
      const out: Record<string, unknown> = {}
      seen.set(value, out)
      out.name = value.name
      out.message = this.redactString(value.message)
      if (value.stack !== undefined) out.stack = this.redactString(value.stack)
      for (const key of Object.keys(value)) {
        out[key] = this.isSecretKey(key)
          ? this.mask
          : this.walk((value as unknown as Record<string, unknown>)[key], seen)
      }
      if (value.cause !== undefined) out.cause = this.walk(value.cause, seen)
      return out
    }
    if (Array.isArray(value)) {
      const out: unknown[] = []
      seen.set(value, out)
      for (const item of value) out.push(this.walk(item, seen))
      return out
    }
    if (value instanceof Map) {
      const out: Record<string, unknown> = {}
      seen.set(value, out)
      for (const [k, v] of value) {
        const key = this.redactString(String(k))
        out[key] = this.isSecretKey(String(k)) ? this.mask : this.walk(v, seen)
      }
      return out
    }
    if (value instanceof Set) {
      const out: unknown[] = []
      seen.set(value, out)
      for (const item of value) out.push(this.walk(item, seen))
      return out
    }
    const out: Record<string, unknown> = {}
    seen.set(value, out)
    for (const [k, v] of Object.entries(value)) {
      const key = this.redactString(k)
      out[key] =
        this.isSecretKey(k) && v !== undefined && v !== null && v !== '' ? this.mask : this.walk(v, seen)
    }
    return out
  }

  private redactUrl(url: URL): string {
    const copy = new URL(url.href)
    if (copy.password) copy.password = 'redacted'
    for (const key of [...copy.searchParams.keys()]) {
      if (this.isSecretKey(key)) copy.searchParams.set(key, this.mask)
    }
    return this.redactString(copy.href)
  }
}

/** Values already redacted, with the redactor that did it (see `markRedacted`). */
const redactedBy = new WeakMap<object, Redactor>()

/** Records that `value` (a fresh object from `redact`) was redacted by `redactor`. */
export function markRedacted<T extends object>(value: T, redactor: Redactor): T {
  redactedBy.set(value, redactor)
  return value
}

/**
 * Whether `value` was redacted (and marked) by `redactor` or by a layer over it, so redacting it again
 * with `redactor` could not mask anything more: a sink that redacts what it is given may skip the walk.
 */
export function isRedactedFor(value: object, redactor: Redactor): boolean {
  const by = redactedBy.get(value)
  return by instanceof RedactorImpl && by.coversAll(redactor)
}

export function createRedactor(options: RedactorOptions = {}): Redactor {
  return new RedactorImpl(
    options.mask ?? REDACTED,
    undefined,
    options.shortSecretLength ?? SHORT_SECRET_LENGTH,
    [...DEFAULT_SECRET_KEYS, ...(options.keys ?? [])],
    options.values ?? [],
  )
}

/**
 * Masks secrets in a thrown error without replacing it: message, stack, every own enumerable field
 * (`body`, `details`, `issues`, …) and the whole `cause` chain. The instances stay the same, so callers
 * that check `kind`, `code` or a cause's identity keep working. Error fields are not secret keys, so
 * they keep their values unless a secret is inside them.
 */
export function redactErrorInPlace<E>(error: E, redactor: Redactor): E {
  scrubError(error, redactor, new Set())
  return error
}

function scrubError(error: unknown, redactor: Redactor, seen: Set<object>): void {
  if (!(error instanceof Error) || seen.has(error)) return
  seen.add(error)
  const target = error as unknown as Record<string, unknown>
  const assign = (key: string, value: unknown) => {
    try {
      target[key] = value
    } catch {
      // a frozen or getter-only field cannot hold a secret we put there; leave it
    }
  }
  const message = redactor.redactString(error.message)
  if (message !== error.message) assign('message', message)
  if (typeof error.stack === 'string') {
    const stack = redactor.redactString(error.stack)
    if (stack !== error.stack) assign('stack', stack)
  }
  for (const key of Object.keys(error)) {
    const value = target[key]
    if (value instanceof Error) scrubError(value, redactor, seen)
    else if (typeof value === 'string') {
      const safe = redactor.redactString(value)
      if (safe !== value) assign(key, safe)
    } else if (typeof value === 'object' && value !== null) assign(key, redactor.redact(value))
  }
  const cause = error.cause
  if (cause instanceof Error) scrubError(cause, redactor, seen)
  else if (cause !== undefined && cause !== null) assign('cause', redactor.redact(cause))
}
