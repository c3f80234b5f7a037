import { AuthError, type Redactor, ValidationError } from '@panelkit/core'

/**
 * Authentication state: an API token (stateless, no CSRF) or a ticket session (cookie plus the CSRF
 * token on writes), renewed after an hour by posting the ticket as the password — tickets live two
 * hours — and re-established once after any 401, whatever the reason text says (it changed in 9.1.5).
 */

export type ProxmoxCredentials =
  | {
      type: 'token'
      /** `user@realm!tokenid` */
      tokenId: string
      /** The token secret (a UUID). */
      secret: string
    }
  | {
      type: 'password'
      /** `root@pam`; a realm given separately is appended when the name has none. */
      username: string
      password: string
      realm?: string
      otp?: string
    }

export interface TicketGrant {
  username: string
  ticket: string
  CSRFPreventionToken: string
  clustername?: string
}

/** Posts `/access/ticket` (the client supplies it, so the call is logged and timed like any other). */
export type LoginFunction = (form: Record<string, string>) => Promise<TicketGrant>

export interface AuthState {
  readonly kind: 'token' | 'ticket'
  /** Headers for one request; logs in first if there is no valid session. */
  headers(method: string): Promise<Record<string, string>>
  /**
   * Called after a 401. Returns true when the request should be retried once with a fresh session
   * (ticket auth); false when nothing can change (token auth, or the login itself failed).
   */
  recover(): Promise<boolean>
  /** Forgets the session (next request logs in again). */
  reset(): void
  /** The current ticket's age in ms, for diagnostics. */
  ticketAgeMs(): number | undefined
}

export interface AuthOptions {
  credentials: ProxmoxCredentials
  login: LoginFunction
  redactor: Redactor
  /** Renew the ticket once it is this old (default one hour, as pve-apiclient and proxmoxer do). */
  renewAfterMs?: number
  now?: () => number
}

const TOKEN_ID = /^[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*$/

/** `PVE:<user>:<hex time>::<signature>` → the creation time in epoch ms, when the ticket is in that layout. */
export function ticketCreatedAt(ticket: string): number | undefined {
  const m = /^PVE:[^:]+:([0-9A-F]{8})::/.exec(ticket)
  return m ? Number.parseInt(m[1] as string, 16) * 1000 : undefined
}

export function createAuthState(options: AuthOptions): AuthState {
  const { credentials, redactor } = options
  const now = options.now ?? Date.now
  const renewAfter = options.renewAfterMs ?? 3_600_000

  if (credentials.type === 'token') {
    if (!TOKEN_ID.test(credentials.tokenId)) {
      throw new ValidationError('The API token id must look like user@realm!tokenid', [
        { path: 'credentials.tokenId', message: 'must look like user@realm!tokenid' },
      ])
    }
    const header = `PVEAPIToken=${credentials.tokenId}=${credentials.secret}`
    redactor.addValue(credentials.secret)
    redactor.addValue(header)
    return {
      kind: 'token',
      async headers() {
        return { authorization: header }
      },
      async recover() {
        return false
      },
      reset() {},
      ticketAgeMs: () => undefined,
    }
  }

  redactor.addValue(credentials.password)
  const username =
    credentials.realm && !credentials.username.includes('@')
      ? `${credentials.username}@${credentials.realm}`
      : credentials.username
  let session: { ticket: string; csrf: string; obtainedAt: number; cookie: string } | undefined
  let pending: Promise<void> | undefined

  const accept = (grant: TicketGrant) => {
    if (typeof grant?.ticket !== 'string' || typeof grant.CSRFPreventionToken !== 'string') {
      throw new AuthError('The login answer had no ticket', { retryable: false })
    }
    redactor.addValue(grant.ticket)
    redactor.addValue(grant.CSRFPreventionToken)
    const cookie = `PVEAuthCookie=${encodeURIComponent(grant.ticket)}`
    redactor.addValue(cookie)
    redactor.addValue(encodeURIComponent(grant.ticket))
    session = { ticket: grant.ticket, csrf: grant.CSRFPreventionToken, obtainedAt: now(), cookie }
  }

  const loginWithPassword = async () => {
    const form: Record<string, string> = { username, password: credentials.password }
    if (credentials.otp) form.otp = credentials.otp
    accept(await options.login(form))
  }

  const singleFlight = (work: () => Promise<void>): Promise<void> => {
    if (!pending) {
      pending = work().finally(() => {
        pending = undefined
      })
    }
    return pending
  }

  const ensure = async () => {
    if (!session) {
      await singleFlight(loginWithPassword)
      return
    }
    if (now() - session.obtainedAt >= renewAfter) {
      const current = session
      await singleFlight(async () => {
        if (session !== current) return
        try {
          // The current ticket is a valid password for its own user until it expires.
          accept(await options.login({ username, password: current.ticket }))
        } catch {
          session = undefined
          await loginWithPassword()
        }
      })
    }
  }

  return {
    kind: 'ticket',
    async headers(method) {
      await ensure()
      const s = session
      if (!s) throw new AuthError('No Proxmox session after login', { retryable: true })
      const h: Record<string, string> = { cookie: s.cookie }
      if (method !== 'GET') h.csrfpreventiontoken = s.csrf
      return h
    },
    async recover() {
      const stale = session
      try {
        await singleFlight(async () => {
          if (session !== stale) return
          session = undefined
          await loginWithPassword()
        })
        return true
      } catch {
        return false
      }
    },
    reset() {
      session = undefined
    },
    ticketAgeMs: () => (session ? now() - session.obtainedAt : undefined),
  }
}
