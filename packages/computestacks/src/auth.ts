import { AuthError, type CallRecorder, ProtocolError } from '@panelkit/core'
import { type Dispatcher, request } from 'undici'
import { z } from 'zod'
import type { Authenticator } from './http.ts'
import { SYSTEM } from './http.ts'

/** HTTP Basic with an API key (the username) and API secret, as ComputeStacks' WHMCS module uses. */
export interface BasicAuthOptions {
  type: 'basic'
  apiKey: string
  apiSecret: string
}

/**
 * OAuth2 against Doorkeeper at `/api/oauth/token`. `client_credentials` gives a token without a user,
 * which ComputeStacks only lets carry the `public`/`register` scopes, so admin endpoints refuse it;
 * the `password` grant with an API key and secret gives a token bound to that (admin) user.
 */
export interface OAuth2Options {
  type: 'oauth2'
  clientId: string
  clientSecret: string
  grant?: 'client_credentials' | 'password'
  /** API key and secret for the password grant. */
  apiKey?: string
  apiSecret?: string
  /** Space-separated scopes; defaults to `public` (client credentials) or `admin_read admin_write` (password). */
  scope?: string
  /**
   * Where the token lives. Pass one cache to every client made for the same server and credentials
   * (the connector keeps one per server), so a token is fetched once and reused until shortly before
   * it expires instead of once per client.
   */
  tokenCache?: OAuth2TokenCache
}

/** A token shared by the clients of one server and credential set; see `createOAuth2TokenCache`. */
export interface OAuth2TokenCache {
  current: { header: string; token: string; expiresAt: number; accepted: boolean } | undefined
  pending: Promise<string> | undefined
}

export function createOAuth2TokenCache(): OAuth2TokenCache {
  return { current: undefined, pending: undefined }
}

export type ComputeStacksAuth = BasicAuthOptions | OAuth2Options

export function basicHeader(user: string, secret: string): string {
  return `Basic ${Buffer.from(`${user}:${secret}`, 'utf8').toString('base64')}`
}

export function createBasicAuth(options: BasicAuthOptions): Authenticator {
  const header = basicHeader(options.apiKey, options.apiSecret)
  return {
    staticHeader: header,
    header: async () => header,
    secrets: () => [options.apiSecret, header, header.slice('Basic '.length)],
  }
}

const TokenSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: z.number().nullable().optional(),
  scope: z.string().optional(),
})

export interface OAuth2Context {
  origin: string
  dispatcher: Dispatcher
  recorder: CallRecorder
  timeoutMs: number
  userAgent: string
  now?: () => number
}

/** Fetches a token once, shares it between concurrent requests and renews it before it expires. */
export function createOAuth2Auth(options: OAuth2Options, ctx: OAuth2Context): Authenticator {
  const now = ctx.now ?? Date.now
  const grant = options.grant ?? 'client_credentials'
  const scope = options.scope ?? (grant === 'password' ? 'admin_read admin_write' : 'public')
  const clientHeader = basicHeader(options.clientId, options.clientSecret)
  const known = new Set<string>([options.clientSecret, clientHeader, clientHeader.slice(6)])
  if (options.apiSecret) known.add(options.apiSecret)
  const cache = options.tokenCache ?? createOAuth2TokenCache()

  async function fetchToken(signal?: AbortSignal): Promise<string> {
    const body: Record<string, string> = { grant_type: grant, scope }
    if (grant === 'password') {
      if (!options.apiKey || !options.apiSecret) {
        throw new AuthError('The OAuth2 password grant needs apiKey and apiSecret')
      }
      body.username = options.apiKey
      body.password = options.apiSecret
    }
    const started = now()
    const token = await ctx.recorder.call(
      {
        system: SYSTEM,
        action: 'POST /api/oauth/token',
        // Getting a token changes nothing remotely that matters; it must also work under dry-run.
        access: 'read',
        target: ctx.origin,
        request: { grant_type: grant, scope },
        summarize: (t: { expiresIn: number | undefined }) => ({ expiresIn: t.expiresIn }),
      },
      async () => {
        let status: number
        let text: string
        try {
          const response = await request(`${ctx.origin}/api/oauth/token`, {
            method: 'POST',
            dispatcher: ctx.dispatcher,
            headers: {
              authorization: clientHeader,
              'content-type': 'application/json',
              accept: 'application/json',
              'user-agent': ctx.userAgent,
            },
            body: JSON.stringify(body),
            headersTimeout: ctx.timeoutMs,
            bodyTimeout: ctx.timeoutMs,
            ...(signal ? { signal } : {}),
          })
          status = response.statusCode
          text = await response.body.text()
        } catch (error) {
          throw new AuthError(`ComputeStacks OAuth2 token request failed: ${(error as Error).message}`, {
            cause: error,
            retryable: true,
          })
        }
        let json: unknown
        try {
          json = text ? JSON.parse(text) : undefined
        } catch (error) {
          throw new ProtocolError(`ComputeStacks OAuth2 token endpoint answered ${status} with non-JSON`, {
            cause: error,
          })
        }
        if (status < 200 || status >= 300) {
          const said = (json as { error_description?: string; error?: string } | undefined) ?? {}
          throw new AuthError(
            `ComputeStacks OAuth2 token request refused: ${status} ${said.error ?? ''} ${said.error_description ?? ''}`.trim(),
            { details: { status, error: said.error } },
          )
        }
        const parsed = TokenSchema.safeParse(json)
        if (!parsed.success)
          throw new ProtocolError('ComputeStacks OAuth2 token response has no access_token')
        known.add(parsed.data.access_token)
        ctx.recorder.redactor.addValue(parsed.data.access_token)
        return { accessToken: parsed.data.access_token, expiresIn: parsed.data.expires_in ?? undefined }
      },
    )
    // Renew a little early so that a token never expires in flight; Doorkeeper's default life is 2 h.
    const life = (token.expiresIn ?? 7200) * 1000
    cache.current = {
      header: `Bearer ${token.accessToken}`,
      token: token.accessToken,
      expiresAt: started + Math.max(0, life - Math.min(60_000, life / 10)),
      accepted: false,
    }
    return cache.current.header
  }

  return {
    async header(signal) {
      const current = cache.current
      if (current && now() < current.expiresAt) {
        // A token fetched by another client of this cache: this client's log must mask it too.
        if (!known.has(current.token)) {
          known.add(current.token)
          ctx.recorder.redactor.addValue(current.token)
        }
        return current.header
      }
      cache.pending ??= fetchToken(signal).finally(() => {
        cache.pending = undefined
      })
      return cache.pending
    },
    accepted(header) {
      if (cache.current?.header === header) cache.current.accepted = true
    },
    invalidate(header) {
      const current = cache.current
      // Another request already renewed it: try again with the new one.
      if (current?.header !== header) return current !== undefined || cache.pending !== undefined
      // A token the server never accepted will not start working on a retry (a scope or user problem).
      const wasGood = current.accepted
      cache.current = undefined
      return wasGood
    },
    secrets: () => (cache.current ? [...known, cache.current.token] : [...known]),
  }
}
