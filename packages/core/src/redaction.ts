/**
 * Secrets are declared once — by key name and by value — and masked everywhere they could travel:
 * nested structures, error messages, URLs and query strings, form bodies, header values and CLI
 * command lines. Connectors add every secret value they handle (service password, server password,
 * API secret, tickets, SSO tokens) to the redactor before the first external call.
 */

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

export interface RedactorOptions {
  /** Extra key names to mask (normalised like the defaults). */
  keys?: readonly string[]
  /** Secret values known up front. */
  values?: readonly string[]
  /** The mask text; defaults to `[redacted]`. */
  mask?: string
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
  /** A redactor that knows everything this one knows plus more; this one is unchanged. */
  child(options?: Omit<RedactorOptions, 'mask'>): Redactor
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

class RedactorImpl implements Redactor {
  readonly mask: string
  private readonly keys: Set<string>
  // ES-private so that neither util.inspect (even with showHidden) nor JSON.stringify can reach them.
  readonly #values: Set<string>
  #pattern: RegExp | null = null
  private keyPattern: RegExp | null = null

  constructor(mask: string, keys: Iterable<string>, values: Iterable<string>) {
    this.mask = mask
    this.keys = new Set([...keys].map(normaliseKey).filter((k) => k.length > 0))
    this.#values = new Set()
    for (const v of values) this.addValue(v)
  }

  /** A user who logs a client prints its recorder and this redactor: show counts, never the secrets. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString()
  }

  toJSON(): { mask: string; secretKeys: number; secretValues: number } {
    return { mask: this.mask, secretKeys: this.keys.size, secretValues: this.#values.size }
  }

  toString(): string {
    return `Redactor { ${this.keys.size} secret keys, ${this.#values.size} secret values }`
  }

  addValue(value: string | undefined | null): void {
    if (typeof value !== 'string' || value.length === 0) return
    const before = this.#values.size
    for (const form of encodedForms(value)) this.#values.add(form)
    if (this.#values.size !== before) this.#pattern = null
  }

  addKey(key: string): void {
    const k = normaliseKey(key)
    if (k.length > 0 && !this.keys.has(k)) {
      this.keys.add(k)
      this.keyPattern = null
    }
  }

  /** A key is secret when, normalised, it ends with a secret name (`serverPassword`, `X-Api-Key`). */
  isSecretKey(key: string): boolean {
    const k = normaliseKey(key)
    if (this.keys.has(k)) return true
    for (const name of this.keys) if (k.endsWith(name)) return true
    return false
  }

  child(options: Omit<RedactorOptions, 'mask'> = {}): Redactor {
    return new RedactorImpl(
      this.mask,
      [...this.keys, ...(options.keys ?? [])],
      [...this.#values, ...(options.values ?? [])],
    )
  }

  private valuePattern(): RegExp | null {
    if (this.#values.size === 0) return null
    if (this.#pattern === null) {
      // Longest first so that a secret containing another secret is masked whole.
      const alternatives = [...this.#values].sort((a, b) => b.length - a.length).map(escapeRegExp)
      this.#pattern = new RegExp(alternatives.join('|'), 'g')
    }
    return this.#pattern
  }

  /**
   * `key=value` (query strings, form bodies), `key: value` (headers, YAML-like text) and
   * `"key":"value"` (JSON text) for every secret key. A key matches when it ends with a secret name, so
   * `server_password`, `X-Api-Key` and `customfields[password]` are all caught.
   */
  private secretKeyPattern(): RegExp {
    if (this.keyPattern === null) {
      const loose = [...this.keys]
        .sort((a, b) => b.length - a.length)
        .map((k) => [...k].map(escapeRegExp).join('[_\\-]?'))
        .join('|')
      const keyChars = 'A-Za-z0-9_.\\-\\['
      // A key never follows a `/`: `POST /access/ticket: reason` is a path and its error text.
      this.keyPattern = new RegExp(
        `(["']?)((?<![${keyChars}/])[${keyChars}]*?(?:${loose})(?![A-Za-z0-9_])\\]?)\\1(\\s*[=:]\\s*)` +
          `("(?:[^"\\\\]|\\\\.)*"|'[^']*'|(?:(?:Basic|Bearer|Digest|Token|PVEAPIToken)\\s+)?[^\\s&,;}"']+)`,
        'gi',
      )
    }
    return this.keyPattern
  }

  redactString(input: string): string {
    let out = input
    const pattern = this.valuePattern()
    if (pattern !== null) out = out.replace(pattern, this.mask)
    out = out.replace(
      this.secretKeyPattern(),
      (whole, quote: string, key: string, sep: string, value: string) => {
        if (value === this.mask || value === `"${this.mask}"` || value === `'${this.mask}'`) return whole
        const masked = value.startsWith('"')
          ? `"${this.mask}"`
          : value.startsWith("'")
            ? `'${this.mask}'`
            : this.mask
        return `${quote}${key}${quote}${sep}${masked}`
      },
    )
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

export function createRedactor(options: RedactorOptions = {}): Redactor {
  return new RedactorImpl(
    options.mask ?? REDACTED,
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
