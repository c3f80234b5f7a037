import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * Console sessions: a login with one of the API's bearer tokens yields a random session id in an
 * HttpOnly, SameSite=Strict cookie (Secure over TLS or when configured), and a CSRF token bound to the
 * session that every action must echo in a form field. The token itself is kept only as a digest, to
 * end sessions whose token was removed from the config; it never reaches a page, a URL or a log.
 */

export const SESSION_COOKIE = 'pk_session'
export const LOGIN_COOKIE = 'pk_login'

export interface Session {
  id: string
  csrf: string
  tokenDigest: Buffer
  expires: number
  /** The outcome of the last action, shown once on the next page. */
  flash?: { kind: 'ok' | 'error'; text: string } | undefined
}

export function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest()
}

/** Equal strings, in time that does not depend on where they differ. */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

export function tokenMatches(given: string, tokens: readonly string[]): boolean {
  let ok = false
  for (const t of tokens) ok = sameSecret(given, t) || ok
  return ok
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url')
}

export function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=')
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim())
  }
  return out
}

export function isTls(req: IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true
}

export function cookie(name: string, value: string, options: { secure: boolean; maxAge?: number }): string {
  const parts = [`${name}=${value}`, 'Path=/console', 'HttpOnly', 'SameSite=Strict']
  if (options.secure) parts.push('Secure')
  if (options.maxAge !== undefined) parts.push(`Max-Age=${options.maxAge}`)
  return parts.join('; ')
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>()
  private readonly ttlMs: number
  constructor(ttlMinutes: number) {
    this.ttlMs = ttlMinutes * 60_000
  }

  create(token: string): Session {
    const s: Session = {
      id: newSecret(),
      csrf: newSecret(),
      tokenDigest: digest(token),
      expires: Date.now() + this.ttlMs,
    }
    this.sessions.set(s.id, s)
    return s
  }

  /** The live session of the request, extended; none when absent, expired or its token was removed. */
  get(req: IncomingMessage, tokens: readonly string[]): Session | undefined {
    const id = cookies(req).get(SESSION_COOKIE)
    if (!id) return undefined
    const s = this.sessions.get(id)
    if (!s) return undefined
    const stillValid = tokens.some((t) => timingSafeEqual(digest(t), s.tokenDigest))
    if (s.expires < Date.now() || !stillValid) {
      this.sessions.delete(id)
      return undefined
    }
    s.expires = Date.now() + this.ttlMs
    return s
  }

  end(id: string): void {
    this.sessions.delete(id)
  }
}

export function securityHeaders(res: ServerResponse): void {
  res.setHeader(
    'content-security-policy',
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  )
  res.setHeader('x-frame-options', 'DENY')
  res.setHeader('x-content-type-options', 'nosniff')
  res.setHeader('referrer-policy', 'no-referrer')
  res.setHeader('cache-control', 'no-store')
}
