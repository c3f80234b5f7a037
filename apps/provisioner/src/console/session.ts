import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Db } from '../store/store.ts'

/**
 * Console sessions: a login with one of the API's bearer tokens yields a random session id in an
 * HttpOnly, SameSite=Strict cookie (Secure over TLS or when configured), and a CSRF token bound to the
 * session that every action must echo in a form field. Sessions live in the store (table
 * `console_sessions`), so they survive a restart and work across several `serve` processes sharing it.
 * The store keeps the session id only as a SHA-256 digest (a copy of the store opens no session), the
 * token's name and scopes, and an HMAC of the token keyed by the session id, which tells whether the
 * token is still configured without keeping anything a token could be recovered or guessed from. The
 * token never reaches a page, a URL, a log or the store.
 */

export const SESSION_COOKIE = 'pk_session'
export const LOGIN_COOKIE = 'pk_login'

export interface Session {
  id: string
  csrf: string
  tokenName: string
  scopes: string[]
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

/** A token that may sign in to the console, as the config names it. */
export interface ConsoleToken {
  token: string
  name: string
  scopes: readonly string[]
}

function tokenCheck(sessionId: string, token: string): string {
  return createHmac('sha256', sessionId).update(token).digest('base64url')
}

function idHash(sessionId: string): string {
  return digest(sessionId).toString('base64url')
}

export class SessionStore {
  private readonly db: Db
  private readonly ttlMs: number
  private lastCleanup = 0
  constructor(db: Db, ttlMinutes: number) {
    this.db = db
    this.ttlMs = ttlMinutes * 60_000
  }

  async create(token: ConsoleToken): Promise<Session> {
    await this.cleanup(true)
    const now = Date.now()
    const s: Session = {
      id: newSecret(),
      csrf: newSecret(),
      tokenName: token.name,
      scopes: [...token.scopes],
      expires: now + this.ttlMs,
    }
    await this.db
      .insertInto('console_sessions')
      .values({
        id_hash: idHash(s.id),
        csrf: s.csrf,
        token_name: s.tokenName,
        token_scopes: JSON.stringify(s.scopes),
        token_check: tokenCheck(s.id, token.token),
        flash_json: null,
        created_at: now,
        expires_at: s.expires,
      })
      .execute()
    return s
  }

  /**
   * The live session of the request, its idle time extended; none when absent, expired, or its token
   * was removed from the config (or lost the admin scope). `extended` says the cookie should be
   * renewed too.
   */
  async get(
    req: IncomingMessage,
    tokens: readonly ConsoleToken[],
  ): Promise<(Session & { extended: boolean }) | undefined> {
    const id = cookies(req).get(SESSION_COOKIE)
    if (!id || id.length > 100) return undefined
    await this.cleanup(false)
    const key = idHash(id)
    const row = await this.db
      .selectFrom('console_sessions')
      .selectAll()
      .where('id_hash', '=', key)
      .executeTakeFirst()
    if (!row) return undefined
    const now = Date.now()
    let check = false
    for (const t of tokens) check = sameSecret(tokenCheck(id, t.token), row.token_check) || check
    if (Number(row.expires_at) < now || !check) {
      await this.db.deleteFrom('console_sessions').where('id_hash', '=', key).execute()
      return undefined
    }
    // Written at most once a minute, not on every poll of the live region.
    let expires = Number(row.expires_at)
    const extended = expires - now < this.ttlMs - 60_000
    if (extended) {
      expires = now + this.ttlMs
      await this.db
        .updateTable('console_sessions')
        .set({ expires_at: expires })
        .where('id_hash', '=', key)
        .execute()
    }
    return {
      id,
      csrf: row.csrf,
      tokenName: row.token_name,
      scopes: JSON.parse(row.token_scopes) as string[],
      expires,
      flash: row.flash_json ? (JSON.parse(row.flash_json) as Session['flash']) : undefined,
      extended,
    }
  }

  /** Keeps an action's outcome for the next page. */
  async setFlash(s: Session, flash: NonNullable<Session['flash']>): Promise<void> {
    s.flash = flash
    await this.db
      .updateTable('console_sessions')
      .set({ flash_json: JSON.stringify(flash) })
      .where('id_hash', '=', idHash(s.id))
      .execute()
  }

  /** The outcome kept for this page, cleared so it shows once. */
  async takeFlash(s: Session): Promise<Session['flash']> {
    const flash = s.flash
    if (!flash) return undefined
    s.flash = undefined
    await this.db
      .updateTable('console_sessions')
      .set({ flash_json: null })
      .where('id_hash', '=', idHash(s.id))
      .execute()
    return flash
  }

  async end(id: string): Promise<void> {
    await this.db.deleteFrom('console_sessions').where('id_hash', '=', idHash(id)).execute()
  }

  /** Deletes expired sessions: at every login, and at most every few minutes otherwise. */
  async cleanup(force: boolean): Promise<number> {
    const now = Date.now()
    if (!force && now - this.lastCleanup < 5 * 60_000) return 0
    this.lastCleanup = now
    const r = await this.db.deleteFrom('console_sessions').where('expires_at', '<', now).executeTakeFirst()
    return Number(r.numDeletedRows)
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
