import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { generateTestCertificate } from '@panelkit/core/testing'
import { API_VERSIONS, apiVersionStatus, versionFromAccept } from '../api-versions.ts'
import { addDecimals, toDecimalString } from '../decimal.ts'
import { DEFAULT_BEHAVIOUR, type SimulatorBehaviour } from './behaviour.ts'
import { hashToXml, viewToXml } from './xml.ts'

/**
 * A stateful ComputeStacks controller (the admin API slice of 9.3) over HTTPS on 127.0.0.1:0, for
 * contract tests and demos. It behaves as the protocol notes describe — versions, Basic auth with
 * lock-out, envelopes, empty 404s, pagination headers, rate limits, SSO tokens — and injects faults.
 */

export interface SimUser {
  id: number
  fname: string
  lname: string
  email: string
  password: string
  active: boolean
  isAdmin: boolean
  /** Hidden from admin lookups, like ComputeStacks' own support accounts. */
  supportAdmin: boolean
  externalId: string | null
  currency: string
  companyName: string | null
  phone: string | null
  country: string
  address1: string
  address2: string
  city: string
  state: string
  zip: string
  locale: string
  labels: Record<string, unknown>
  userGroupId: number
  createdAt: string
  updatedAt: string
  confirmedAt: string | null
  lockedAt: number | null
  failedAttempts: number
  authToken: string | null
  authTokenExp: number | null
  /** Monthly run rate of active subscriptions; null when there are none. */
  runRate: string | null
  services: {
    deployments: number
    containers: number
    container_services: number
    container_images: number
    container_registries: number
    dns_zones: number
  }
}

export interface SimUserGroup {
  id: number
  name: string
  isDefault: boolean
  billingPlanId: number | null
  active: boolean
  qContainers: number
  qDnsZones: number
  qCr: number
  billSuspended: boolean
  createdAt: string
}

export interface SimUsage {
  id: number
  userId: number
  total: string
  qty: string
  rate: string
  processed: boolean
  productName: string
  periodStart: string
  periodEnd: string
}

export interface SimLocation {
  id: number
  name: string
}

export interface SimBillingPlan {
  id: number
  name: string
  prices: { id: number; currency: string; price: string; product: string }[]
}

export type FaultMatch = { method?: string; path?: string | RegExp }
export type SimFault = (
  | { type: 'status'; status: number; body?: unknown }
  | { type: 'delay'; ms: number }
  /** Closes the connection without an answer; with `afterHandling` the request is carried out first (a lost response). */
  | { type: 'drop'; afterHandling?: boolean }
  | { type: 'throttle'; retryAfterSeconds?: number }
) & { times?: number; match?: FaultMatch }

export interface SimRequestRecord {
  method: string
  path: string
  status: number
  apiVersion: number | undefined
  authorization: 'basic' | 'bearer' | 'none'
}

export interface ComputeStacksSimulatorOptions {
  /** API key and secret of the seeded admin. Generated when absent. */
  apiKey?: string
  apiSecret?: string
  /** An OAuth application for the token endpoint. Generated when absent. */
  oauthClientId?: string
  oauthClientSecret?: string
  /** Rack::Attack `req/ip`: 2,500 requests per 5 minutes by default. */
  rateLimit?: { limit: number; windowMs: number }
  /** Page size without `per_page` (will_paginate's default, 30). */
  defaultPerPage?: number
  /** Currencies that have billing prices; others fall back to `defaultCurrency`. */
  currencies?: string[]
  defaultCurrency?: string
  productVersion?: string
  /** Failed secrets before the owning user is locked (Devise lockable), and how long the lock lasts. */
  maxFailedAttempts?: number
  unlockInMs?: number
  ssoTokenLifetimeMs?: number
  behaviour?: Partial<SimulatorBehaviour>
  /**
   * ComputeStacks' `billing_address` setting (off by default): on create, country, address1, city and,
   * for US and CA, state must be present (`User#user_address`, CTL `app/models/user.rb`).
   */
  billingAddress?: boolean
  /** `billing_phone` (needs `billingAddress`): a phone of 7 to 16 characters is required on create. */
  billingPhone?: boolean
  /** Extra user groups to seed besides the default one. */
  userGroups?: string[]
  locations?: string[]
}

const SUPPORT_EMAILS = ['hello@computestacks.com', 'kris@computestacks.com']
const UNKNOWN_CALL = 'Unknown API Call. Please check the documentation.'
const CURRENCY_SYMBOLS: Record<string, string> = {
  USD: '$',
  EUR: '€',
  GBP: '£',
  CAD: '$',
  AUD: '$',
  JPY: '¥',
}
/** Devise 4.9.3's default `email_regexp` (the controller leaves `config.email_regexp` commented out). */
const EMAIL = /^[^@\s]+@[^@\s]+$/

class HttpReply {
  readonly status: number
  readonly body: unknown
  readonly headers: Record<string, string>
  /** `hash` for `render json:/xml: {...}` in a controller, `view` for a RABL template (its XML root differs). */
  readonly kind: 'hash' | 'view'
  constructor(
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
    kind: 'hash' | 'view' = 'view',
  ) {
    this.status = status
    this.body = body
    this.headers = headers
    this.kind = kind
  }
}

const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new HttpReply(status, body, headers)
/** `render json: {...}` / `render xml: {...}` from a controller (not a RABL view). */
const rendered = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  new HttpReply(status, body, headers, 'hash')
const errors = (status: number, ...messages: string[]) => rendered(status, { errors: messages })

/**
 * The format Rails picks for an API action from `Accept` (ActionDispatch `MimeNegotiation#formats` and
 * `respond_to :json, :xml`): JSON for JSON, any type or `application` with any subtype; XML for application/xml or
 * text/xml; none (→ 406) for anything else, for a missing header (Rails then assumes HTML) and for a
 * browser-like list that mixes the any-type wildcard with other types (`BROWSER_LIKE_ACCEPTS`, also taken as HTML).
 */
export function negotiateFormat(accept: string | undefined): 'json' | 'xml' | undefined {
  const header = accept?.trim() ?? ''
  if (header === '' || /,\s*\*\/\*|\*\/\*\s*,/.test(header)) return undefined
  for (const part of header.split(',')) {
    const type = part.split(';')[0]?.trim().toLowerCase() ?? ''
    if (type === 'application/json' || type === '*/*' || type === 'application/*') return 'json'
    if (type === 'application/xml' || type === 'text/xml') return 'xml'
  }
  return undefined
}
const notFound = () => reply(404)

export class ComputeStacksSimulator {
  readonly users = new Map<number, SimUser>()
  readonly userGroups = new Map<number, SimUserGroup>()
  readonly usages: SimUsage[] = []
  readonly locations: SimLocation[] = []
  readonly billingPlans: SimBillingPlan[] = []
  /** API key → credential. */
  readonly credentials = new Map<string, { id: number; userId: number; secret: string }>()
  readonly tokens = new Map<string, { userId: number | null; scopes: string[]; expiresAt: number }>()
  readonly behaviour: SimulatorBehaviour
  readonly apiKey: string
  readonly apiSecret: string
  readonly oauthClientId: string
  readonly oauthClientSecret: string
  readonly adminUserId: number
  /** Recent requests, newest last (bounded). */
  readonly requests: SimRequestRecord[] = []
  readonly ssoLogins: { userId: number; fromAdmin: boolean; at: number }[] = []
  requestCount = 0
  writeCount = 0
  /**
   * A crash point: counts down on every write, and the write that brings it to zero is carried out, then
   * answered by a closed connection (as if the caller crashed right after it). 0 turns it off.
   */
  dropAfterWrites = 0
  rateLimit: { limit: number; windowMs: number }
  defaultPerPage: number
  readonly currencies: string[]
  readonly defaultCurrency: string
  readonly productVersion: string
  readonly maxFailedAttempts: number
  readonly unlockInMs: number
  readonly ssoTokenLifetimeMs: number
  billingAddress: boolean
  billingPhone: boolean

  private faults: (SimFault & { left: number })[] = []
  private nextUserId = 1
  private nextGroupId = 1
  private nextUsageId = 1
  private nextCredentialId = 1
  private clockOffset = 0
  private sorted: SimUser[] | null = null
  private readonly byEmail = new Map<string, SimUser>()
  private readonly windows = new Map<string, number>()
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private origin = ''

  constructor(options: ComputeStacksSimulatorOptions = {}) {
    this.behaviour = { ...DEFAULT_BEHAVIOUR, ...options.behaviour }
    this.rateLimit = options.rateLimit ?? { limit: 2500, windowMs: 5 * 60_000 }
    this.defaultPerPage = options.defaultPerPage ?? 30
    this.currencies = options.currencies ?? ['USD', 'EUR', 'GBP']
    this.defaultCurrency = options.defaultCurrency ?? 'USD'
    this.productVersion = options.productVersion ?? '9.3.1'
    this.maxFailedAttempts = options.maxFailedAttempts ?? 5
    this.unlockInMs = options.unlockInMs ?? 4 * 3600_000
    this.ssoTokenLifetimeMs = options.ssoTokenLifetimeMs ?? 60_000
    this.billingAddress = options.billingAddress ?? false
    this.billingPhone = options.billingPhone ?? false
    this.apiKey = options.apiKey ?? randomBytes(14).toString('base64url')
    this.apiSecret = options.apiSecret ?? randomBytes(30).toString('base64')
    this.oauthClientId = options.oauthClientId ?? randomBytes(16).toString('hex')
    this.oauthClientSecret = options.oauthClientSecret ?? randomBytes(24).toString('base64url')

    const plan: SimBillingPlan = {
      id: 1,
      name: 'Default',
      prices: this.currencies.map((currency, i) => ({
        id: i + 1,
        currency,
        price: '0.0069',
        product: 'Memory (GB)',
      })),
    }
    this.billingPlans.push(plan)
    this.addUserGroup('default', { isDefault: true })
    for (const name of options.userGroups ?? []) this.addUserGroup(name)
    for (const [i, name] of (options.locations ?? ['Default']).entries())
      this.locations.push({ id: i + 1, name })
    const admin = this.addUser({
      email: 'admin@cs.example.test',
      fname: 'Site',
      lname: 'Admin',
      isAdmin: true,
    })
    this.adminUserId = admin.id
    this.credentials.set(this.apiKey, {
      id: this.nextCredentialId++,
      userId: admin.id,
      secret: this.apiSecret,
    })
    for (const email of SUPPORT_EMAILS) {
      const support = this.addUser({ email, fname: 'Support', lname: 'ComputeStacks', isAdmin: true })
      support.supportAdmin = true
    }
  }

  // ---- clock ---------------------------------------------------------------------------------------

  now(): number {
    return Date.now() + this.clockOffset
  }

  /** Moves the simulator's clock forward (SSO expiry, lock-outs, rate-limit windows, tokens). */
  advance(ms: number): void {
    this.clockOffset += ms
  }

  private iso(ms = this.now()): string {
    return new Date(ms).toISOString()
  }

  // ---- direct state access (fixtures) -------------------------------------------------------------

  addUserGroup(name: string, extra: Partial<SimUserGroup> = {}): SimUserGroup {
    const group: SimUserGroup = {
      id: this.nextGroupId++,
      name,
      isDefault: false,
      billingPlanId: 1,
      active: true,
      qContainers: 250,
      qDnsZones: 250,
      qCr: 20,
      billSuspended: true,
      createdAt: this.iso(),
      ...extra,
    }
    this.userGroups.set(group.id, group)
    return group
  }

  defaultGroup(): SimUserGroup {
    for (const g of this.userGroups.values()) if (g.isDefault) return g
    return this.userGroups.values().next().value as SimUserGroup
  }

  /** A user with every field at its default: active, unconfirmed, in the default group, no services. */
  private newUser(now: string): SimUser {
    return {
      id: -1,
      fname: '',
      lname: '',
      email: '',
      password: '',
      active: true,
      isAdmin: false,
      supportAdmin: false,
      externalId: null,
      currency: this.defaultCurrency,
      companyName: null,
      phone: null,
      country: '',
      address1: '',
      address2: '',
      city: '',
      state: '',
      zip: '',
      locale: 'en',
      labels: {},
      userGroupId: this.defaultGroup().id,
      createdAt: now,
      updatedAt: now,
      confirmedAt: null,
      lockedAt: null,
      failedAttempts: 0,
      authToken: null,
      authTokenExp: null,
      runRate: null,
      services: {
        deployments: 0,
        containers: 0,
        container_services: 0,
        container_images: 0,
        container_registries: 0,
        dns_zones: 0,
      },
    }
  }

  /** Adds a user straight into the state (no validation, no HTTP). */
  addUser(fields: Partial<Omit<SimUser, 'id'>> & { email: string }): SimUser {
    const now = this.iso()
    const user: SimUser = {
      ...this.newUser(now),
      fname: 'Test',
      lname: 'User',
      password: randomBytes(9).toString('base64'),
      confirmedAt: now,
      country: 'US',
      ...fields,
      id: this.nextUserId++,
    }
    user.email = user.email.trim().toLowerCase()
    this.users.set(user.id, user)
    this.byEmail.set(user.email, user)
    this.sorted = null
    return user
  }

  /** Adds many plain users quickly (benchmarks). */
  seedUsers(count: number, prefix = 'seed'): void {
    for (let i = 0; i < count; i++) {
      this.addUser({
        email: `${prefix}${i}@example.test`,
        fname: `First${i % 997}`,
        lname: `Last${i % 1009}`,
        externalId: String(1_000_000 + i),
        labels: { whmcs: { client_id: 1 + (i % 5000), service_id: 1_000_000 + i } },
      })
    }
  }

  removeUser(id: number): void {
    const user = this.users.get(id)
    if (!user) return
    this.users.delete(id)
    if (this.byEmail.get(user.email) === user) this.byEmail.delete(user.email)
    for (const [key, credential] of this.credentials)
      if (credential.userId === id) this.credentials.delete(key)
    this.sorted = null
  }

  userByEmail(email: string): SimUser | undefined {
    return this.byEmail.get(email)
  }

  /** Users whose `labels.whmcs.service_id` or `external_id` names this service. */
  usersForService(serviceId: string | number): SimUser[] {
    const id = String(serviceId)
    return [...this.users.values()].filter((u) => {
      const whmcs = u.labels.whmcs as Record<string, unknown> | undefined
      return (whmcs && String(whmcs.service_id) === id) || u.externalId === id
    })
  }

  addUsage(
    userId: number,
    fields: { total: string | number; processed?: boolean; productName?: string; qty?: string },
  ): SimUsage {
    const now = this.now()
    const usage: SimUsage = {
      id: this.nextUsageId++,
      userId,
      total: toDecimalString(fields.total),
      qty: fields.qty ?? '1.0',
      rate: toDecimalString(fields.total),
      processed: fields.processed ?? false,
      productName: fields.productName ?? 'Memory (GB)',
      periodStart: this.iso(now - 3 * 3600_000),
      periodEnd: this.iso(now),
    }
    this.usages.push(usage)
    return usage
  }

  /** Creates extra API credentials for a user; returns the key and the secret. */
  addCredential(userId: number): { apiKey: string; apiSecret: string } {
    const apiKey = randomBytes(14).toString('base64url')
    const apiSecret = randomBytes(30).toString('base64')
    this.credentials.set(apiKey, { id: this.nextCredentialId++, userId, secret: apiSecret })
    return { apiKey, apiSecret }
  }

  unlock(userId: number): void {
    const user = this.users.get(userId)
    if (user) {
      user.lockedAt = null
      user.failedAttempts = 0
    }
  }

  // ---- faults --------------------------------------------------------------------------------------

  /** Queues a fault for the next matching request(s): a status, a delay, a dropped connection or a 429. */
  inject(fault: SimFault): void {
    this.faults.push({ ...fault, left: fault.times ?? 1 })
  }

  clearFaults(): void {
    this.faults = []
  }

  private takeFault(method: string, path: string): SimFault | undefined {
    const index = this.faults.findIndex((f) => {
      if (f.left <= 0) return false
      const m = f.match
      if (m?.method && m.method.toUpperCase() !== method) return false
      if (m?.path !== undefined) {
        if (typeof m.path === 'string' ? !path.startsWith(m.path) : !m.path.test(path)) return false
      }
      return true
    })
    if (index < 0) return undefined
    const fault = this.faults[index] as SimFault & { left: number }
    fault.left--
    if (fault.left <= 0) this.faults.splice(index, 1)
    return fault
  }

  // ---- server --------------------------------------------------------------------------------------

  get url(): string {
    return this.origin
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0
  }

  /** `127.0.0.1:{port}`, the form the client's `host` option takes. */
  get host(): string {
    return `127.0.0.1:${this.port}`
  }

  /** @deprecated use `ca` */
  cert = ''

  /** The PEM certificate the simulator serves (self-signed): pass it as the client's `tls.ca`. */
  get ca(): string {
    return this.cert
  }

  /** The SHA-256 fingerprint of that certificate, for `tls.fingerprint`. */
  get fingerprint(): string {
    return this.certFingerprint
  }

  private certFingerprint = ''

  async listen(): Promise<this> {
    const certificate = await generateTestCertificate()
    this.cert = certificate.cert
    this.certFingerprint = certificate.fingerprint256
    const server = createServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'application/json; charset=utf-8' })
          res.end(JSON.stringify({ errors: [(error as Error).message] }))
        } else res.destroy()
      })
    })
    server.keepAliveTimeout = 5_000
    server.on('secureConnection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    this.server = server
    this.origin = `https://127.0.0.1:${this.port}`
    return this
  }

  async close(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  private record(entry: SimRequestRecord): void {
    this.requests.push(entry)
    if (this.requests.length > 2000) this.requests.splice(0, this.requests.length - 1000)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase()
    const url = new URL(req.url ?? '/', this.origin || 'https://127.0.0.1')
    const path = url.pathname
    this.requestCount++
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const rawBody = Buffer.concat(chunks).toString('utf8')

    const fault = this.takeFault(method, path)
    if (fault?.type === 'drop' && !fault.afterHandling) {
      req.socket.destroy()
      return
    }
    if (fault?.type === 'delay') await new Promise((r) => setTimeout(r, fault.ms))

    const apiVersion = versionFromAccept(req.headers.accept)
    const authHeader = req.headers.authorization ?? ''
    const format = negotiateFormat(req.headers.accept)
    const send = (out: HttpReply) => {
      this.record({
        method,
        path: `${path}${url.search}`,
        status: out.status,
        apiVersion,
        authorization: /^basic /i.test(authHeader)
          ? 'basic'
          : /^bearer /i.test(authHeader)
            ? 'bearer'
            : 'none',
      })
      const headers: Record<string, string> = { ...out.headers }
      let text = ''
      if (out.body !== undefined) {
        if (typeof out.body === 'string') {
          text = out.body
          // Rack::Attack's 429 is sent as the responder builds it, with no Content-Type.
          if (out.status !== 429) headers['content-type'] ??= 'text/plain; charset=utf-8'
        } else if (format === 'xml' && path.startsWith('/api/') && path !== '/api/oauth/token') {
          const body = out.body as Record<string, unknown>
          text = out.kind === 'hash' ? hashToXml(body) : viewToXml(body)
          headers['content-type'] = 'application/xml; charset=utf-8'
        } else {
          text = JSON.stringify(out.body)
          headers['content-type'] = 'application/json; charset=utf-8'
        }
      }
      headers['content-length'] = String(Buffer.byteLength(text))
      res.writeHead(out.status, headers)
      res.end(text)
    }

    if (fault?.type === 'status') {
      send(reply(fault.status, fault.body ?? { errors: [`Injected fault ${fault.status}`] }))
      return
    }
    const throttled = this.throttle(req, fault?.type === 'throttle' ? fault : undefined)
    if (throttled) {
      send(throttled)
      return
    }
    let crashed = false
    if (path.startsWith('/api/') && method !== 'GET' && method !== 'OPTIONS' && path !== '/api/oauth/token') {
      this.writeCount++
      if (this.dropAfterWrites > 0 && --this.dropAfterWrites === 0) crashed = true
    }
    const out = this.negotiated(
      method,
      path,
      req.headers.accept,
      this.route(method, url, req.headers, rawBody),
    )
    if (fault?.type === 'drop' || crashed) {
      req.socket.destroy()
      return
    }
    send(out)
  }

  /** Rack::Attack `req/ip`: a fixed window per IP; a throttled request gets `Throttled` and RateLimit headers. */
  private throttle(
    req: IncomingMessage,
    forced: { retryAfterSeconds?: number } | undefined,
  ): HttpReply | undefined {
    const now = this.now()
    const windowStart = Math.floor(now / this.rateLimit.windowMs) * this.rateLimit.windowMs
    const reset = Math.ceil((windowStart + this.rateLimit.windowMs) / 1000)
    const throttledReply = (retryAfterSeconds?: number) => {
      const headers: Record<string, string> = {
        'RateLimit-Limit': String(this.rateLimit.limit),
        'RateLimit-Remaining': '0',
        'RateLimit-Reset': String(reset),
      }
      if (retryAfterSeconds !== undefined) headers['Retry-After'] = String(retryAfterSeconds)
      else if (this.behaviour.retryAfterOn429)
        headers['Retry-After'] = String(Math.max(0, reset - Math.floor(now / 1000)))
      // The controller's own responder: no Content-Type, no Retry-After (CTL
      // `config/initializers/rack_attack.rb`; `throttled_response_retry_after_header` only affects
      // rack-attack's default responder, `lib/rack/attack/configuration.rb`).
      return reply(429, 'Throttled\n', headers)
    }
    if (forced) return throttledReply(forced.retryAfterSeconds)
    if ((req.url ?? '').startsWith('/assets')) return undefined
    const key = `${req.socket.remoteAddress}|${windowStart}`
    const count = (this.windows.get(key) ?? 0) + 1
    if (this.windows.size > 1000) this.windows.clear()
    this.windows.set(key, count)
    return count > this.rateLimit.limit ? throttledReply() : undefined
  }

  // ---- routing ---------------------------------------------------------------------------------------

  /**
   * An API answer for an `Accept` that is neither JSON nor XML. Every API action, and every before_action
   * that refuses (auth, admin, lookup), renders through `respond_to` with JSON and XML only; the
   * UnknownFormat this raises is rescued as a 406 in text/html (CTL
   * `app/controllers/concerns/api_missing_route.rb#unknown_format`). The action has run by then, so a
   * create or update is carried out all the same. Only the catch-all route has a `format.any`: a 404
   * whose text/html body is the message array as Ruby prints it (`api_missing_route.rb#unknown_route`).
   */
  private negotiated(method: string, path: string, accept: string | undefined, out: HttpReply): HttpReply {
    if (method === 'OPTIONS' || !path.startsWith('/api/') || path === '/api/oauth/token') return out
    if (negotiateFormat(accept) !== undefined) return out
    const html = { 'content-type': 'text/html; charset=utf-8' }
    const errorsOf = (out.body as { errors?: unknown } | undefined)?.errors
    if (out.status === 404 && Array.isArray(errorsOf) && errorsOf[0] === UNKNOWN_CALL)
      return reply(404, JSON.stringify([UNKNOWN_CALL]), { ...out.headers, ...html })
    return reply(406, 'Unknown format. Only JSON and XML are permitted.', { ...out.headers, ...html })
  }

  private route(method: string, url: URL, headers: IncomingMessage['headers'], rawBody: string): HttpReply {
    const path = url.pathname
    if (method === 'OPTIONS') return reply(200)
    if (path === '/' && method === 'GET') return this.ssoLogin(url)
    if (path === '/documentation/api')
      return reply(302, undefined, { location: 'https://docs.computestacks.com/user_api/' })
    if (!path.startsWith('/api/')) return reply(404, 'Not Found')

    let body: Record<string, unknown> = {}
    if (rawBody.trim() !== '') {
      try {
        const parsed = /application\/x-www-form-urlencoded/.test(headers['content-type'] ?? '')
          ? Object.fromEntries(new URLSearchParams(rawBody))
          : JSON.parse(rawBody)
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
          throw new Error('not an object')
        body = parsed as Record<string, unknown>
      } catch {
        return errors(422, 'There was a problem in the JSON you submitted')
      }
    }
    if (path === '/api/oauth/token' && method === 'POST') return this.oauthToken(headers.authorization, body)

    const requested = versionFromAccept(headers.accept)
    const version = requested ?? API_VERSIONS.default
    const status = apiVersionStatus(version)
    if (status === 'unsupported') {
      return reply(
        422,
        { errors: [`You requested an unsupported version (${version})`] },
        { 'API-Version-Supported': 'false' },
      )
    }
    const versionHeaders: Record<string, string> = status === 'deprecated' ? { 'API-Deprecated': 'true' } : {}
    const withVersion = (out: HttpReply) =>
      new HttpReply(out.status, out.body, { ...versionHeaders, ...out.headers }, out.kind)
    if (path === '/api/auth' && method === 'POST') {
      return withVersion(
        errors(
          400,
          'this authentication method has been replaced with oauth2.',
          'Please see the api documentation: /documentation/api',
        ),
      )
    }
    if (path === '/api/version' && method === 'GET' && !this.behaviour.versionNeedsAuth) {
      return withVersion(rendered(200, this.versionBody()))
    }
    const caller = this.authenticate(headers.authorization)
    // `auth_request!` (ApiAuth, included first) halts before `include_deprecation` (ApiVersion) runs, so a
    // failed authentication carries no API-Deprecated header (CTL `api/application_controller.rb`).
    if (!caller) return errors(401, 'Not Authorized')
    if (path === '/api/version' && method === 'GET') return withVersion(rendered(200, this.versionBody()))

    if (path.startsWith('/api/admin/')) {
      const user = caller.userId === null ? undefined : this.users.get(caller.userId)
      if (!user?.isAdmin) return withVersion(errors(401, 'Not Authorized'))
      const segments = path
        .slice('/api/admin/'.length)
        .split('/')
        .filter((s) => s !== '')
        .map((s) => decodeURIComponent(s))
      return withVersion(this.admin(method, segments, url, body))
    }
    return withVersion(errors(404, UNKNOWN_CALL))
  }

  private versionBody() {
    const [major = '0', minor = '0'] = this.productVersion.split('.')
    return {
      version: this.productVersion,
      api_latest_version: Number(`${major}${minor}`),
      api_available_versions: [...API_VERSIONS.deprecated, ...API_VERSIONS.supported],
    }
  }

  /** Basic (API key and secret, with Devise lock-out) or a bearer token. Returns the caller or undefined. */
  private authenticate(header: string | undefined): { userId: number | null } | undefined {
    if (!header) return undefined
    const basic = /^Basic\s+(.+)$/i.exec(header)
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon < 0) return undefined
      const key = decoded.slice(0, colon)
      const secret = decoded.slice(colon + 1)
      const credential = this.credentials.get(key)
      if (!credential) return undefined
      const owner = this.users.get(credential.userId)
      if (!owner) return undefined
      if (owner.lockedAt !== null && this.now() - owner.lockedAt >= this.unlockInMs) this.unlock(owner.id)
      if (owner.lockedAt !== null) return undefined
      if (!safeEqual(secret, credential.secret)) {
        owner.failedAttempts++
        if (owner.failedAttempts >= this.maxFailedAttempts) owner.lockedAt = this.now()
        return undefined
      }
      owner.failedAttempts = 0
      if (!owner.active && !this.behaviour.suspendedCredentialsWork) return undefined
      return { userId: owner.id }
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(header)
    if (bearer?.[1]) {
      const token = this.tokens.get(bearer[1].trim())
      if (!token || token.expiresAt <= this.now()) return undefined
      return { userId: token.userId }
    }
    return undefined
  }

  /** Doorkeeper's token endpoint: client_credentials (no user) and password (API key and secret). */
  private oauthToken(authorization: string | undefined, body: Record<string, unknown>): HttpReply {
    let clientId = typeof body.client_id === 'string' ? body.client_id : undefined
    let clientSecret = typeof body.client_secret === 'string' ? body.client_secret : undefined
    const basic = /^Basic\s+(.+)$/i.exec(authorization ?? '')
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1].replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      clientId = decoded.slice(0, colon)
      clientSecret = decoded.slice(colon + 1)
    }
    if (clientId !== this.oauthClientId || !safeEqual(clientSecret ?? '', this.oauthClientSecret)) {
      return reply(401, {
        error: 'invalid_client',
        error_description:
          'Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.',
      })
    }
    const scopes = String(body.scope ?? 'public')
      .split(/\s+/)
      .filter((s) => s !== '')
    let userId: number | null = null
    if (body.grant_type === 'client_credentials') {
      if (scopes.some((s) => s !== 'public' && s !== 'register')) {
        return reply(403, {
          error: 'unauthorized_client',
          error_description: 'Tokens without a user may only carry the public and register scopes.',
        })
      }
    } else if (body.grant_type === 'password') {
      const credential = this.credentials.get(String(body.username ?? ''))
      if (!credential || !safeEqual(String(body.password ?? ''), credential.secret)) {
        return reply(400, {
          error: 'invalid_grant',
          error_description:
            'The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.',
        })
      }
      const user = this.users.get(credential.userId)
      if (scopes.some((s) => s.startsWith('admin_')) && !user?.isAdmin) {
        return reply(403, {
          error: 'unauthorized_client',
          error_description: 'Admin scopes need an admin user.',
        })
      }
      userId = credential.userId
    } else {
      return reply(400, {
        error: 'unsupported_grant_type',
        error_description: 'The authorization grant type is not supported by the authorization server.',
      })
    }
    const token = randomBytes(32).toString('base64url')
    const lifetime = this.behaviour.oauthTokenLifetimeSeconds
    this.tokens.set(token, { userId, scopes, expiresAt: this.now() + lifetime * 1000 })
    return reply(200, {
      access_token: token,
      token_type: 'Bearer',
      expires_in: lifetime,
      scope: scopes.join(' '),
      created_at: Math.floor(this.now() / 1000),
    })
  }

  /** `GET /?username=&token=`: the web app's token sign-in (exact email, constant-time token, expiry). */
  private ssoLogin(url: URL): HttpReply {
    const username = url.searchParams.get('username')
    const token = url.searchParams.get('token')
    if (username === null || token === null)
      return reply(200, '<html>portal</html>', { 'content-type': 'text/html' })
    const user = this.byEmail.get(username)
    const ok =
      user !== undefined &&
      user.authToken !== null &&
      user.authTokenExp !== null &&
      user.authTokenExp > this.now() &&
      safeEqual(token, user.authToken)
    // The token is not cleared after use (CTL `app/controllers/application_controller.rb#auth_from_token!`
    // only compares it and its expiry), so it signs in again until its minute is over.
    if (!ok || !user) return reply(302, undefined, { location: '/login?sso=invalid' })
    // Devise confirmable with `allow_unconfirmed_access_for = 0.days` (CTL `config/initializers/devise.rb`):
    // the session `auth_from_token!` stores is refused by Devise's activatable hook on the very next
    // request, so an unconfirmed user ends on the login page, not signed in.
    if (user.confirmedAt === null) return reply(302, undefined, { location: '/login?unconfirmed=true' })
    const fromAdmin = url.searchParams.get('from_admin') === 'true'
    this.ssoLogins.push({ userId: user.id, fromAdmin, at: this.now() })
    const target = fromAdmin || user.services.deployments > 0 ? '/deployments' : '/deployments/orders'
    return reply(302, undefined, {
      location: target,
      'set-cookie': `_cs_session=${randomBytes(16).toString('hex')}; path=/; secure; HttpOnly`,
    })
  }

  // ---- admin API -------------------------------------------------------------------------------------

  private admin(method: string, segments: string[], url: URL, body: Record<string, unknown>): HttpReply {
    const [resource, id, sub, subId] = segments
    if (resource === 'users') {
      if (id === undefined) {
        if (method === 'GET') return this.listUsers(url)
        if (method === 'POST') return this.createUser(body)
        return this.unknown()
      }
      if (sub === 'billing_usages' && method === 'GET' && subId === undefined) {
        // `Subscriptions::BaseController#load_parent` finds the user by primary key only (no find_by_*,
        // no support-admin check) and answers `api_obj_missing(["Unknown User"])`.
        const owner = /^\s*[+-]?\d/.test(id) ? this.users.get(Number.parseInt(id, 10)) : undefined
        if (!owner) return rendered(404, { errors: ['Unknown User'] })
        const rows = this.usages.filter((u) => u.userId === owner.id)
        return this.paginate(url, rows, 'billing_usages', (u) => this.renderUsage(u, owner))
      }
      const user = this.locateUser(id, url)
      if (!user) return notFound()
      if (sub === undefined) {
        if (method === 'GET')
          return reply(200, {
            user: this.renderUser(user, 'show', url.searchParams.get('include') === 'balance'),
          })
        if (method === 'PATCH' || method === 'PUT') return this.updateUser(user, body)
        if (method === 'DELETE') {
          this.removeUser(user.id)
          return reply(204)
        }
        return this.unknown()
      }
      if (sub === 'suspension' && subId === undefined) {
        if (method === 'POST' || method === 'DELETE') {
          this.setActive(user, method === 'DELETE')
          return rendered(202, {})
        }
      }
      if (sub === 'user_sso' && method === 'POST' && subId === undefined) {
        user.authToken = randomBytes(24).toString('base64url')
        user.authTokenExp = this.now() + this.ssoTokenLifetimeMs
        user.updatedAt = this.iso()
        return rendered(201, {
          username: user.email,
          token: user.authToken,
          expires: this.iso(user.authTokenExp),
        })
      }
      if (sub === 'api_credentials' && method === 'POST' && subId === undefined) {
        const created = this.addCredential(user.id)
        const credential = this.credentials.get(created.apiKey)
        return reply(201, {
          api_credential: { id: credential?.id, username: created.apiKey, password: created.apiSecret },
        })
      }
      return this.unknown()
    }
    if (resource === 'user_groups') return this.userGroupsRoute(method, id, url, body)
    if (resource === 'locations') {
      if (method === 'GET' && id === undefined) {
        return reply(200, { locations: this.locations.map((l) => this.renderLocation(l)) })
      }
      if (method === 'GET' && id !== undefined) {
        const location = this.locations.find((l) => String(l.id) === id)
        return location ? reply(200, { location: this.renderLocation(location) }) : notFound()
      }
      return this.unknown()
    }
    if (resource === 'billing_plans') {
      if (method === 'GET' && id === undefined) {
        return this.paginate(url, this.billingPlans, 'billing_plans', (p) => this.renderPlan(p, false))
      }
      if (method === 'GET' && sub === undefined) {
        const plan = this.billingPlans.find((p) => String(p.id) === id)
        return plan ? reply(200, { billing_plan: this.renderPlan(plan, true) }) : notFound()
      }
      return this.unknown()
    }
    return this.unknown()
  }

  private unknown(): HttpReply {
    return errors(404, UNKNOWN_CALL)
  }

  /** `locate_user`: by id, or `find_by_label` / `find_by_email` (base64, exact) / `find_by_external_id`. */
  private locateUser(id: string, url: URL): SimUser | undefined {
    const params = url.searchParams
    let user: SimUser | undefined
    const label = params.get('find_by_label')
    if (label === 'whmcs_service_id' || label === 'whmcs_client_id') {
      const wanted = Number.parseInt(id, 10) || 0
      const key = label === 'whmcs_service_id' ? 'service_id' : 'client_id'
      user = this.firstUser((u) => {
        const whmcs = u.labels.whmcs as Record<string, unknown> | undefined
        // JSONB containment is type-sensitive: only a JSON number matches.
        return typeof whmcs?.[key] === 'number' && whmcs[key] === wanted
      })
    } else if (params.has('find_by_email')) {
      const email = Buffer.from(id, 'base64').toString('utf8')
      user = this.byEmail.get(email)
    } else if (params.has('find_by_external_id')) {
      user = this.firstUser((u) => u.externalId === id)
    } else if (/^\d+$/.test(id)) {
      user = this.users.get(Number(id))
    }
    return user?.supportAdmin ? undefined : user
  }

  private firstUser(predicate: (u: SimUser) => boolean): SimUser | undefined {
    for (const u of this.users.values()) if (predicate(u)) return u
    return undefined
  }

  private sortedUsers(): SimUser[] {
    if (!this.sorted) {
      // `User.sorted` has no filter (CTL `users_controller.rb#index`): the support admins are hidden from
      // single lookups only (`api_admin_find_user.rb#locate_user`).
      this.sorted = [...this.users.values()].sort((a, b) => {
        const l = a.lname.toLowerCase().localeCompare(b.lname.toLowerCase())
        if (l !== 0) return l
        const f = a.fname.toLowerCase().localeCompare(b.fname.toLowerCase())
        return f !== 0 ? f : a.id - b.id
      })
    }
    return this.sorted
  }

  private listUsers(url: URL): HttpReply {
    const balance = url.searchParams.get('include') === 'balance'
    return this.paginate(url, this.sortedUsers(), 'users', (u) => this.renderUser(u, 'index', balance))
  }

  /** api-pagination over will_paginate: `page`, `per_page`, and `Link`, `Total`, `Per-Page` headers. */
  private paginate<T>(url: URL, all: readonly T[], key: string, render: (item: T) => unknown): HttpReply {
    const page = Math.max(1, Number.parseInt(url.searchParams.get('page') ?? '1', 10) || 1)
    const perPage = Math.max(
      1,
      Number.parseInt(url.searchParams.get('per_page') ?? '', 10) || this.defaultPerPage,
    )
    const total = all.length
    const last = Math.max(1, Math.ceil(total / perPage))
    const slice = all.slice((page - 1) * perPage, page * perPage)
    // api-pagination merges `page` into the request's own query and Rails' to_param sorts the keys.
    const link = (p: number) => {
      const params = new URLSearchParams(url.searchParams)
      params.set('page', String(p))
      params.sort()
      return `${url.origin}${url.pathname}?${params.toString()}`
    }
    const links: string[] = []
    if (page > 1) {
      links.push(`<${link(1)}>; rel="first"`)
      links.push(`<${link(Math.min(page - 1, last))}>; rel="prev"`)
    }
    if (page < last) {
      links.push(`<${link(last)}>; rel="last"`)
      links.push(`<${link(page + 1)}>; rel="next"`)
    }
    const headers: Record<string, string> = { Total: String(total), 'Per-Page': String(perPage) }
    if (links.length > 0) headers.Link = links.join(', ')
    return reply(200, { [key]: slice.map(render) }, headers)
  }

  private unprocessedUsage(userId: number): string {
    let sum = '0.0'
    for (const u of this.usages) if (u.userId === userId && !u.processed) sum = addDecimals(sum, u.total)
    return sum
  }

  renderUser(user: SimUser, view: 'index' | 'show' | 'create', balance = false): Record<string, unknown> {
    const group = this.userGroups.get(user.userGroupId)
    const plan = this.billingPlans.find((p) => p.id === group?.billingPlanId)
    const out: Record<string, unknown> = {
      id: user.id,
      fname: user.fname,
      lname: user.lname,
      email: user.email,
      active: user.active,
      is_admin: user.isAdmin,
      api_key: null,
      api_version: 0,
      external_id: user.externalId,
      currency: user.currency,
      confirmed_at: user.confirmedAt,
      confirmation_sent_at: user.confirmedAt ? null : user.createdAt,
      last_request_at: null,
      last_sign_in_at: null,
      current_sign_in_at: null,
      sign_in_count: 0,
      reset_password_sent_at: null,
      locked_at: user.lockedAt === null ? null : this.iso(user.lockedAt),
      failed_attempts: user.failedAttempts,
      address1: user.address1,
      address2: user.address2,
      city: user.city,
      state: user.state,
      zip: user.zip,
      country: user.country,
      vat: null,
      labels: user.labels,
      created_at: user.createdAt,
      updated_at: user.updatedAt,
      currency_symbol: CURRENCY_SYMBOLS[user.currency] ?? '',
      current_sign_in_ip: '',
      last_sign_in_ip: '',
    }
    if (view === 'create') {
      out.company_name = user.companyName
      out.user_group_id = user.userGroupId
      out.auth_token = user.authToken
      out.auth_token_exp = user.authTokenExp === null ? null : this.iso(user.authTokenExp)
      return out
    }
    if (balance) out.unprocessed_usage = this.unprocessedUsage(user.id)
    out.security_keys = []
    out.billing_plan = plan ? { id: plan.id, name: plan.name } : null
    out.user_group = group ? { id: group.id, name: group.name } : null
    out.external_integrations = []
    if (view === 'show') {
      out.phone = user.phone
      out.company_name = user.companyName
      out.run_rate = user.runRate ?? (this.behaviour.runRateWithoutSubscriptions === 'number' ? 0 : '0.0')
      out.services = { ...user.services }
    }
    return out
  }

  private renderUsage(u: SimUsage, user: SimUser) {
    return {
      id: u.id,
      period_start: u.periodStart,
      period_end: u.periodEnd,
      external_id: null,
      rate: u.rate,
      qty: u.qty,
      qty_total: u.qty,
      total: u.total,
      processed: u.processed,
      processed_on: null,
      created_at: u.periodEnd,
      updated_at: u.periodEnd,
      subscription_product: { id: u.id, product: { id: 1, name: u.productName } },
      user: {
        id: user.id,
        full_name: `${user.fname} ${user.lname}`,
        email: user.email,
        external_id: user.externalId,
        labels: user.labels,
      },
    }
  }

  private renderLocation(l: SimLocation) {
    return {
      id: l.id,
      name: l.name,
      fill_strategy: 'least',
      fill_by_qty: true,
      overcommit_memory: true,
      overcommit_cpu: true,
      created_at: this.iso(0),
      updated_at: this.iso(0),
      links: { regions: `/api/admin/locations/${l.id}/regions` },
    }
  }

  private renderGroup(g: SimUserGroup) {
    return {
      id: g.id,
      name: g.name,
      is_default: g.isDefault,
      billing_plan_id: g.billingPlanId,
      active: g.active,
      q_containers: g.qContainers,
      q_dns_zones: g.qDnsZones,
      q_cr: g.qCr,
      allow_local_volume: false,
      bill_offline: true,
      bill_suspended: g.billSuspended,
      remove_stopped: false,
      created_at: g.createdAt,
      updated_at: g.createdAt,
      locations: this.locations.map((l) => ({ id: l.id, name: l.name })),
      regions: [],
    }
  }

  private renderPlan(p: SimBillingPlan, full: boolean) {
    const groups = [...this.userGroups.values()]
      .filter((g) => g.billingPlanId === p.id)
      .map((g) => ({ id: g.id, name: g.name }))
    const base: Record<string, unknown> = {
      id: p.id,
      name: p.name,
      created_at: this.iso(0),
      updated_at: this.iso(0),
      user_groups: groups,
      links: { billing_resources: `/api/admin/billing_plans/${p.id}/billing_resources` },
    }
    if (full) {
      base.billing_resources = [
        {
          id: 1,
          product: { id: 1, name: p.prices[0]?.product ?? 'Memory (GB)' },
          billing_phases: [
            {
              id: 1,
              phase_type: 'final',
              // Rails renders BigDecimal as a string; one price is sent as a number to exercise both forms.
              prices: p.prices.map((price, i) => ({
                id: price.id,
                currency: price.currency,
                max_qty: null,
                price: i === 0 ? price.price : Number(price.price),
                regions: [],
              })),
            },
          ],
        },
      ]
    }
    return base
  }

  private userGroupsRoute(
    method: string,
    id: string | undefined,
    url: URL,
    body: Record<string, unknown>,
  ): HttpReply {
    if (id === undefined) {
      if (method === 'GET') {
        const groups = [...this.userGroups.values()].sort(
          (a, b) => a.name.localeCompare(b.name) || a.id - b.id,
        )
        return this.paginate(url, groups, 'user_groups', (g) => this.renderGroup(g))
      }
      if (method === 'POST') {
        const input = body.user_group as Record<string, unknown> | undefined
        if (!input || typeof input !== 'object') return errors(422, 'Missing user group')
        const name = typeof input.name === 'string' ? input.name.trim() : ''
        if (name === '') return errors(422, "Name can't be blank")
        const group = this.addUserGroup(name, {
          ...(typeof input.billing_plan_id === 'number' ? { billingPlanId: input.billing_plan_id } : {}),
        })
        if (input.is_default === true) this.makeDefault(group)
        return reply(201, { user_group: this.renderGroup(group) })
      }
      return this.unknown()
    }
    const group = this.userGroups.get(Number(id))
    if (!group) return notFound()
    if (method === 'GET') return reply(200, { user_group: this.renderGroup(group) })
    if (method === 'PATCH' || method === 'PUT') {
      const input = (body.user_group ?? {}) as Record<string, unknown>
      if (typeof input.name === 'string' && input.name.trim() !== '') group.name = input.name.trim()
      if (input.is_default === true) this.makeDefault(group)
      return reply(200, { user_group: this.renderGroup(group) })
    }
    if (method === 'DELETE') {
      if ([...this.users.values()].some((u) => u.userGroupId === group.id)) {
        return errors(422, 'Cannot delete a user group that has users')
      }
      this.userGroups.delete(group.id)
      return reply(204)
    }
    return this.unknown()
  }

  private makeDefault(group: SimUserGroup): void {
    for (const g of this.userGroups.values()) g.isDefault = g === group
  }

  private setActive(user: SimUser, active: boolean): void {
    if (user.active !== active) {
      user.active = active
      user.updatedAt = this.iso()
    }
  }

  /** Validation as the model, Devise and UserValidator do it, in their full-message wording. */
  private validate(user: SimUser, input: Record<string, unknown>, creating: boolean): string[] {
    const messages: string[] = []
    if (user.fname.trim() === '') messages.push("Fname can't be blank")
    if (user.lname.trim() === '') messages.push("Lname can't be blank")
    if (user.email === '') messages.push("Email can't be blank")
    else if (!EMAIL.test(user.email)) messages.push('Email is invalid')
    else {
      const other = this.byEmail.get(user.email)
      if (other && other.id !== user.id) {
        for (let i = 0; i < this.behaviour.duplicateEmailMessages; i++)
          messages.push('Email has already been taken')
      }
    }
    if (input.password !== undefined) {
      const password = String(input.password ?? '')
      const confirmation = String(input.password_confirmation ?? password)
      if (password.length < 8) messages.push('Password is too short (minimum is 8 characters)')
      if (password.length > 128) messages.push('Password is too long (maximum is 128 characters)')
      if (confirmation !== password) messages.push("Password confirmation doesn't match Password")
    } else if (creating && user.password === '') messages.push("Password can't be blank")
    if (!this.userGroups.has(user.userGroupId)) messages.push('User group must exist')
    // `validate :user_address, on: :create` (CTL `app/models/user.rb#user_address`).
    if (creating && this.billingAddress && !SUPPORT_EMAILS.includes(user.email)) {
      if (user.country.trim() === '') messages.push('Country must be present')
      if (user.state.trim() === '' && ['US', 'CA'].includes(user.country))
        messages.push('State must be present')
      if (user.address1.trim() === '') messages.push('Address1 must be present')
      if (user.city.trim() === '') messages.push('City must be present')
      if (this.billingPhone) {
        const phone = user.phone ?? ''
        if (phone.trim() === '') messages.push('Phone must be present')
        else if (phone.length < 7 || phone.length > 16) messages.push('Phone must be between 8 and 15 digits')
      }
    } else if (creating && user.country.trim() === '') user.country = 'US'
    return messages
  }

  private applyFields(user: SimUser, input: Record<string, unknown>): Record<string, unknown> | string {
    const str = (v: unknown) => (v === null || v === undefined ? '' : String(v))
    if (input.fname !== undefined) user.fname = str(input.fname)
    if (input.lname !== undefined) user.lname = str(input.lname)
    if (input.email !== undefined) user.email = str(input.email).trim().toLowerCase()
    if (input.external_id !== undefined)
      user.externalId = input.external_id === null ? null : str(input.external_id)
    if (input.company_name !== undefined)
      user.companyName = input.company_name === null ? null : str(input.company_name)
    if (input.phone !== undefined) user.phone = input.phone === null ? null : str(input.phone)
    if (input.country !== undefined) user.country = str(input.country)
    // Permitted address fields (CTL `users_controller.rb#user_params`).
    if (input.address1 !== undefined) user.address1 = str(input.address1)
    if (input.address2 !== undefined) user.address2 = str(input.address2)
    if (input.city !== undefined) user.city = str(input.city)
    if (input.state !== undefined) user.state = str(input.state)
    if (input.zip !== undefined) user.zip = str(input.zip)
    if (input.locale !== undefined && str(input.locale) !== '') user.locale = str(input.locale)
    if (input.active !== undefined) user.active = input.active === true || input.active === 'true'
    if (input.is_admin !== undefined) user.isAdmin = input.is_admin === true || input.is_admin === 'true'
    if (input.currency !== undefined) {
      // set_currency runs before the upcase callback: anything but a priced code falls back to the default.
      const code = str(input.currency)
      user.currency = this.currencies.includes(code) ? code : this.defaultCurrency
    }
    if (input.user_group_id !== undefined && input.user_group_id !== null && input.user_group_id !== '') {
      user.userGroupId = Number(input.user_group_id)
    }
    // `permit(merge_labels: {})` keeps only a hash: an array (as ComputeStacks' docs show it) or a scalar is
    // an unpermitted parameter, dropped without an error (CTL `users_controller.rb#user_params`).
    if (
      input.merge_labels !== undefined &&
      input.merge_labels !== null &&
      typeof input.merge_labels === 'object' &&
      !Array.isArray(input.merge_labels)
    ) {
      // Top-level keys replace; there is no deep merge (`User#combine_labels`).
      user.labels = { ...user.labels, ...(input.merge_labels as Record<string, unknown>) }
    }
    return input
  }

  private createUser(body: Record<string, unknown>): HttpReply {
    const input = body.user
    if (!input || typeof input !== 'object' || Array.isArray(input)) return errors(422, 'Missing User Object')
    const fields = { ...(input as Record<string, unknown>) }
    const now = this.iso()
    const draft: SimUser = {
      ...this.newUser(now),
      confirmedAt: fields.skip_email_confirm ? now : null,
      authToken: randomBytes(24).toString('base64url'),
      authTokenExp: this.now() + 10 * 60_000,
    }
    if (fields.password === undefined || fields.password === null || fields.password === '') {
      fields.password = randomBytes(9).toString('base64').replace(/=/g, '')
    }
    const applied = this.applyFields(draft, fields)
    if (typeof applied === 'string') return errors(422, applied)
    const messages = this.validate(draft, fields, true)
    if (messages.length > 0) return errors(422, ...messages)
    draft.password = String(fields.password)
    const { id: _ignored, ...rest } = draft
    const user = this.addUser(rest)
    return reply(201, { user: this.renderUser(user, 'create') })
  }

  private updateUser(user: SimUser, body: Record<string, unknown>): HttpReply {
    const input = body.user
    if (!input || typeof input !== 'object' || Array.isArray(input)) {
      return reply(this.behaviour.missingUserRootStatus, {
        status: this.behaviour.missingUserRootStatus,
        error: 'Bad Request',
      })
    }
    const fields = { ...(input as Record<string, unknown>) }
    if (fields.password === '' || fields.password === null) {
      delete fields.password
      delete fields.password_confirmation
    }
    const draft: SimUser = { ...user, labels: { ...user.labels }, services: { ...user.services } }
    const applied = this.applyFields(draft, fields)
    if (typeof applied === 'string') return errors(422, applied)
    const messages = this.validate(draft, fields, false)
    if (messages.length > 0) return errors(422, ...messages)
    if (fields.password !== undefined) draft.password = String(fields.password)
    const emailChanged = draft.email !== user.email
    const nameChanged = draft.fname !== user.fname || draft.lname !== user.lname
    if (emailChanged && this.byEmail.get(user.email) === user) this.byEmail.delete(user.email)
    Object.assign(user, draft, { updatedAt: this.iso() })
    if (emailChanged) this.byEmail.set(user.email, user)
    if (nameChanged) this.sorted = null
    return reply(200, { user: this.renderUser(user, 'show') })
  }
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

/** Starts a simulator on 127.0.0.1 with a fresh self-signed certificate. */
export async function startComputeStacksSimulator(
  options: ComputeStacksSimulatorOptions = {},
): Promise<ComputeStacksSimulator> {
  return new ComputeStacksSimulator(options).listen()
}
