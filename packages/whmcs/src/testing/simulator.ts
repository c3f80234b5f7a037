import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer as createHttpServer } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { generateTestCertificate } from '@panelkit/core/testing'
import { formList, type ParsedForm, parseForm } from '../protocol/form.ts'
import { decodePhpArray, type PhpValue } from '../protocol/php-serialize.ts'
import {
  addCycle,
  cents,
  isoDate,
  money,
  PRICE_COLUMNS,
  type PriceColumn,
  type SimBillableItem,
  type SimClient,
  type SimConfigOptionDef,
  type SimConfigSubOption,
  type SimCredit,
  type SimCustomFieldDef,
  type SimInvoice,
  type SimOrder,
  type SimProduct,
  type SimServer,
  type SimService,
  type SimServiceStatus,
  type SimUser,
} from './model.ts'

/**
 * A stateful WHMCS External API (`includes/api.php`) over HTTPS on 127.0.0.1, for contract tests,
 * demos and benchmarks. It reproduces what the protocol notes document and, where they say a fact is
 * unknown, makes the choice configurable through `quirks` (see the README's table).
 */

export interface SimulatorQuirks {
  /**
   * Actions whose ids and numbers come back as strings (legacy row fetches). Default: GetClientsProducts
   * and GetOrders, as documented; `'all'` or `'none'` to test a client against other versions.
   */
  stringNumbers: 'legacy-actions' | 'all' | 'none'
  /** `limitnum` when a GetClientsProducts request sends none: 25 (the docs) or 999999 (8.7.2 source). */
  clientsProductsDefaultLimit: number
  /** The largest page the server returns whatever `limitnum` says (unknown; default no cap). */
  maxPageSize: number
  /** HTTP status of "Invalid Permissions" / "Invalid API Action" (unknown; default 403). */
  permissionErrorStatus: 200 | 403
  /** Failed credentials from one IP before it is banned (WHMCS's admin login-failure rule). */
  banAfterFailures: number
  /** Empty-list shapes: `'documented'` (per-action as decoded) or one shape for every action. */
  emptyShape: 'documented' | 'missing' | 'empty-string' | 'empty-array'
  /** Escape `/` as `\/` in JSON, as PHP's json_encode does. */
  escapeSlashes: boolean
}

export const DEFAULT_QUIRKS: Readonly<SimulatorQuirks> = Object.freeze({
  stringNumbers: 'legacy-actions',
  clientsProductsDefaultLimit: 25,
  maxPageSize: Number.POSITIVE_INFINITY,
  permissionErrorStatus: 403,
  banAfterFailures: 5,
  emptyShape: 'documented',
  escapeSlashes: true,
})

export interface SimCredential {
  identifier: string
  secret: string
  /** Actions this credential's roles allow; `'*'` for all. */
  actions: readonly string[] | '*'
}

export interface SimulatorOptions {
  /** API credentials; one full-access credential is made when none is given. */
  credentials?: SimCredential[]
  /** Admin logins for the legacy auth (username → plain password; WHMCS compares MD5). */
  admins?: Record<string, string>
  /** API IP Access Restriction. Default: 127.0.0.1 and ::1. */
  allowedIps?: string[]
  /** `$api_access_key`; when set and sent, it replaces the IP check. */
  accessKey?: string
  quirks?: Partial<SimulatorQuirks>
  /** The simulator's "today" (YYYY-MM-DD); defaults to the real date. */
  today?: string
  version?: string
  /**
   * Serve HTTPS with a fresh certificate (default), or plain HTTP when `false` — for third-party
   * clients that cannot be given a CA (WHMCS itself is reached over HTTPS in production).
   */
  tls?: boolean
}

/**
 * `html`: an HTML page at 200 (the URL is not the API: a client-area page); `maintenance`: the
 * maintenance page a WHMCS under upgrade or a host's front end serves at 200 instead of the API.
 */
export type FaultKind = 'status' | 'slow' | 'drop' | 'drop-after' | 'html' | 'maintenance' | 'xml'

export interface Fault {
  kind: FaultKind
  /** Only requests for this action (default: any). */
  action?: string
  /** HTTP status for `status` (default 503). */
  status?: number
  /** Delay for `slow` (default 1000 ms). */
  delayMs?: number
  /** How many matching requests it hits (default 1). */
  times?: number
  /** A further condition on the parsed parameters (e.g. a page offset). */
  when?: (params: ParsedForm) => boolean
}

export interface RequestRecord {
  action: string
  ip: string
  status: number
  /** Parameter names that came in the URL query string (secrets must never). */
  queryKeys: string[]
  contentType: string
  limitstart?: number
}

class ApiError extends Error {
  readonly status: number
  constructor(message: string, status = 200) {
    super(message)
    this.status = status
  }
}

const LEGACY_STRING_ACTIONS = new Set(['GetClientsProducts', 'GetOrders'])
const BOOLEAN_PARAMS = new Set([
  'stats',
  'noemail',
  'noinvoice',
  'noinvoiceemail',
  'autosetup',
  'sendemail',
  'skipvalidation',
  'fetchStatus',
  'marketingoptin',
  'sendregistrar',
])

const STATUSES: readonly SimServiceStatus[] = [
  'Pending',
  'Active',
  'Completed',
  'Suspended',
  'Terminated',
  'Cancelled',
  'Fraud',
]

function normaliseIp(ip: string | undefined): string {
  if (!ip) return ''
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip
}

function str(v: string | ParsedForm | undefined): string {
  return typeof v === 'string' ? v : ''
}

/** PHP's `(int)` cast of a request value: leading digits, else 0. */
function phpInt(v: string | ParsedForm | undefined): number {
  const m = /^\s*([+-]?\d+)/.exec(str(v))
  return m ? Number(m[1]) : 0
}

function intParam(v: string | ParsedForm | undefined): number | undefined {
  const s = str(v).trim()
  if (s === '') return undefined
  return /^-?\d+$/.test(s) ? Number(s) : Number.NaN
}

/** PHP `!empty()`: "0" and "" are false, anything else (including "false") is true. */
function phpTruthy(v: string | ParsedForm | undefined): boolean {
  if (v === undefined) return false
  if (typeof v !== 'string') return Object.keys(v).length > 0
  return v !== '' && v !== '0'
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/

type ResponseFormat = 'json' | 'xml' | 'nvp'

/** WHMCS's own normalisation of `action`: lower case, letters and digits only (DEC `ActionFilter.php`). */
export function normaliseAction(action: string): string {
  return action.toLowerCase().replace(/[^0-9a-z]/g, '')
}

/** Legacy action names WHMCS still answers (DEC `ActionFilter.php` `resolveLegacyAction`). */
function resolveLegacyAction(action: string): string {
  if (action === 'adduser') return 'addclient'
  if (action === 'getclientsdata' || action === 'getclientsdatabyemail') return 'getclientsdetails'
  return action
}

/**
 * Actions whose answer is "highly structured": without `responsetype` they answer XML, and NVP is
 * refused (DEC `Route/Middleware/ActionResponseFormat.php`, the list copied as it is there).
 */
const HIGHLY_STRUCTURED = new Set([
  'domaingetwhoisinfo',
  'getactivitylog',
  'getaffiliates',
  'getannouncements',
  'getcancelledpackages',
  'getclientgroups',
  'getclients',
  'getclientsaddons',
  'getclientsdomains',
  'getclientsproducts',
  'getcontacts',
  'getcredits',
  'getcurrencies',
  'getemails',
  'getemailtemplates',
  'getinvoice',
  'getinvoices',
  'getmodulequeue',
  'getorders',
  'getorderstatuses',
  'getpaymentmethods',
  'getproducts',
  'getproject',
  'getprojects',
  'getpromotions',
  'getquotes',
  'getstaffonline',
  'getsupportdepartments',
  'getsupportstatuses',
  'getticket',
  'getticketnotes',
  'getticketpredefinedcats',
  'getticketpredefinedreplies',
  'gettickets',
  'gettodoitems',
  'gettodoitemstatuses',
  'gettransactions',
  'orderfraudcheck',
])

/** A PHP scalar as PHP prints it: `true` → `1`, `false` and `null` → ``. */
function phpString(v: unknown): string {
  if (v === true) return '1'
  if (v === false || v === null || v === undefined) return ''
  return String(v)
}

function isPhpArray(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object'
}

function isNumericKey(k: string): boolean {
  return /^-?\d+(\.\d+)?$/.test(k)
}

/**
 * WHMCS's array-to-XML conversion, ported step by step from DEC `Http/Message/XmlResponse.php`
 * (`convertToXml`): list items repeat the list's element name, empty arrays print nothing, text with
 * `&`, `<`, `>` or `"` goes in CDATA. Its quirks are kept (a map inside a map prints under the outer
 * name, so currency codes in `pricing` are not element names).
 */
function convertToXml(val: Record<string, unknown>, lastk = '', printed = false): string {
  let output = ''
  for (const [k, v] of Object.entries(val)) {
    if (isPhpArray(v)) {
      if (Object.keys(v).length === 0) continue
      if (lastk !== '' && isNumericKey(k)) {
        if (!printed) output += `<${lastk}>\n${convertToXml(v, lastk, true)}</${lastk}>\n`
        else output += convertToXml(v, lastk)
      } else if (lastk === '') {
        output += `<${k}>\n${convertToXml(v, k, true)}</${k}>\n`
      } else if (!printed) {
        output += `<${lastk}>\n${convertToXml(v, k, false)}</${lastk}>\n`
      } else {
        output += convertToXml(v, k)
      }
      continue
    }
    let text = phpString(v)
    if (!text.includes('<![CDATA[') && /[&<>"]/.test(text)) text = `<![CDATA[${text}]]>`
    const name = isNumericKey(k) ? lastk : k
    output += `<${name}>${text}</${name}>\n`
  }
  return output
}

function renderXml(data: Record<string, unknown>, version: string): string {
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    `<whmcsapi version="${version}">`,
    convertToXml(data).trim(),
    '</whmcsapi>',
  ].join('\n')
}

/** NVP: `key=value` joined by `;`, nested values printed as PHP prints an array. */
function renderNvp(data: Record<string, unknown>): string {
  return Object.entries(data)
    .map(([k, v]) => `${k}=${isPhpArray(v) ? 'Array' : phpString(v)}`)
    .join(';')
}

export class WhmcsSimulator {
  readonly options: SimulatorOptions
  readonly quirks: SimulatorQuirks
  readonly credentials: SimCredential[]
  readonly admins: Record<string, string>
  allowedIps: string[]
  accessKey: string | undefined
  today: string
  version: string

  readonly clients = new Map<number, SimClient>()
  readonly users = new Map<number, SimUser>()
  /** The users linked to each client (owner or granted), so GetClientsDetails need not scan them all. */
  private readonly userIdsByClient = new Map<number, number[]>()
  readonly products = new Map<number, SimProduct>()
  /** Services by id; `servicesByPid` and `servicesByClient` keep ids ascending. */
  readonly services = new Map<number, SimService>()
  readonly servicesByPid = new Map<number, number[]>()
  readonly servicesByClient = new Map<number, number[]>()
  readonly orders = new Map<number, SimOrder>()
  readonly invoices = new Map<number, SimInvoice>()
  readonly billableItems = new Map<number, SimBillableItem>()
  readonly credits = new Map<number, SimCredit>()
  readonly servers = new Map<number, SimServer>()
  /** Module commands that should fail for a service, with WHMCS's message. */
  readonly moduleFailures = new Map<number, string>()

  readonly faults: Fault[] = []
  /** The last 2 000 requests, oldest first. */
  readonly requests: RequestRecord[] = []
  /** Calls per action. */
  readonly calls = new Map<string, number>()
  /** Protocol misuse seen from clients: secrets in URLs, `"false"` booleans, lost array values. */
  readonly violations: string[] = []
  /** Failed authentication attempts per IP; reaching `banAfterFailures` bans the IP. */
  readonly authFailures = new Map<string, number>()
  readonly bannedIps = new Set<string>()

  private nextIds = {
    client: 1,
    user: 1,
    product: 1,
    service: 1,
    order: 1,
    invoice: 1,
    billable: 1,
    credit: 1,
    field: 1,
    option: 1,
    sub: 1,
  }
  private server: Server | ReturnType<typeof createHttpServer> | undefined
  private readonly sockets = new Set<Socket>()
  private port = 0
  /** The PEM certificate the simulator serves (self-signed): pass it as the client's `tls.ca`. */
  ca = ''
  /** @deprecated use `fingerprint` */
  fingerprint256 = ''

  /** The SHA-256 fingerprint of that certificate, for `tls.fingerprint`. */
  get fingerprint(): string {
    return this.fingerprint256
  }

  constructor(options: SimulatorOptions = {}) {
    this.options = options
    this.quirks = { ...DEFAULT_QUIRKS, ...options.quirks }
    this.credentials = options.credentials ?? [
      { identifier: 'sim-identifier', secret: 'sim-secret-0123456789', actions: '*' },
    ]
    this.admins = options.admins ?? {}
    this.allowedIps = options.allowedIps ?? ['127.0.0.1', '::1']
    this.accessKey = options.accessKey
    this.today = options.today ?? isoDate(new Date())
    this.version = options.version ?? '8.13.1'
    this.servers.set(1, { id: 1, name: 'sim-server-1', ip: '192.0.2.10', hostname: 'node1.example.net' })
  }

  // ---- lifecycle --------------------------------------------------------------------------------

  async start(): Promise<this> {
    let server: Server | ReturnType<typeof createHttpServer>
    if (this.options.tls === false) {
      server = createHttpServer({ keepAliveTimeout: 30_000 }, (req, res) => {
        this.handle(req, res)
      })
    } else {
      const cert = await generateTestCertificate()
      this.ca = cert.cert
      this.fingerprint256 = cert.fingerprint256
      server = createServer({ key: cert.key, cert: cert.cert, keepAliveTimeout: 30_000 }, (req, res) => {
        this.handle(req, res)
      })
    }
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    server.on('secureConnection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => resolve())
    })
    this.server = server
    this.port = (server.address() as AddressInfo).port
    return this
  }

  /** The WHMCS root URL (`https://127.0.0.1:<port>/`). */
  get url(): string {
    if (!this.server) throw new Error('WhmcsSimulator is not started')
    return `${this.options.tls === false ? 'http' : 'https'}://127.0.0.1:${this.port}/`
  }

  /** The first credential, for tests. */
  get credential(): SimCredential {
    return this.credentials[0] as SimCredential
  }

  async close(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    for (const s of this.sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  injectFault(fault: Fault): void {
    this.faults.push({ times: 1, ...fault })
  }

  callCount(action: string): number {
    return this.calls.get(action) ?? 0
  }

  // ---- HTTP -------------------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void this.respond(req, res, Buffer.concat(chunks)).catch((error: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain' })
          res.end(`simulator error: ${error instanceof Error ? error.message : String(error)}`)
        }
      })
    })
  }

  /**
   * Renders an answer in the format the request asked for, as WHMCS's ResponseFactory does (DEC
   * `Api/ApplicationSupport/Http/ResponseFactory.php`): JSON; XML with the action name first; NVP as
   * `key=value` pairs joined by `;` (a nested value prints as PHP's `Array`).
   */
  private send(
    res: ServerResponse,
    status: number,
    body: Record<string, unknown>,
    format: ResponseFormat,
    action: string,
  ): void {
    if (format === 'xml') {
      res.writeHead(status, { 'content-type': 'application/xml; charset=utf-8' })
      res.end(renderXml({ action, ...body }, body.result === 'error' ? '' : this.version))
      return
    }
    if (format === 'nvp') {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' })
      res.end(renderNvp(body))
      return
    }
    let text = JSON.stringify(body)
    if (this.quirks.escapeSlashes) text = text.replaceAll('/', '\\/')
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
    res.end(text)
  }

  private takeFault(action: string, params: ParsedForm): Fault | undefined {
    for (let i = 0; i < this.faults.length; i++) {
      const f = this.faults[i] as Fault
      if (f.action !== undefined && normaliseAction(f.action) !== normaliseAction(action)) continue
      if (f.when && !f.when(params)) continue
      f.times = (f.times ?? 1) - 1
      if (f.times <= 0) this.faults.splice(i, 1)
      return f
    }
    return undefined
  }

  private record(entry: RequestRecord): void {
    this.requests.push(entry)
    if (this.requests.length > 2000) this.requests.splice(0, this.requests.length - 2000)
  }

  /**
   * The request's parameters as PHP fills `$_REQUEST`: the query string, then the body on top (DEC
   * `HandleProcessor.php`). The body is read when urlencoded or `multipart/form-data` (PHP parses
   * both; `ServerRequestFactory::fromGlobals`); a JSON body is not parsed at all.
   */
  private async readParams(url: URL, contentType: string, body: Buffer): Promise<ParsedForm> {
    let entries: [string, string][] = []
    if (/application\/x-www-form-urlencoded/i.test(contentType)) {
      entries = [...new URLSearchParams(body.toString('utf8'))]
    } else if (/multipart\/form-data/i.test(contentType)) {
      let form: FormData
      try {
        form = await new Response(body, { headers: { 'content-type': contentType } }).formData()
      } catch {
        form = new FormData()
        this.violations.push('multipart body could not be parsed (PHP would see no parameters)')
      }
      for (const [k, v] of form) if (typeof v === 'string') entries.push([k, v])
    }
    const merged = new URLSearchParams()
    const inBody = new Set(entries.map(([k]) => k))
    for (const [k, v] of url.searchParams) if (!inBody.has(k)) merged.append(k, v)
    const seen = new Set<string>()
    for (const [k, v] of entries) {
      if (!k.includes('[') && seen.has(k))
        this.violations.push(`parameter "${k}" repeated without brackets: PHP keeps only the last value`)
      seen.add(k)
      merged.append(k, v)
    }
    return parseForm(merged)
  }

  private async respond(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const ip = normaliseIp(req.socket.remoteAddress)
    const url = new URL(req.url ?? '/', 'https://sim')
    const contentType = String(req.headers['content-type'] ?? '')
    const queryKeys = [...url.searchParams.keys()]
    if (url.pathname !== '/includes/api.php') {
      res.writeHead(404, { 'content-type': 'text/html' })
      res.end('<html><body>404 Not Found</body></html>')
      return
    }
    for (const k of ['secret', 'password', 'accesskey', 'identifier', 'username']) {
      if (queryKeys.includes(k)) this.violations.push(`credential "${k}" sent in the URL query string`)
    }
    const params = await this.readParams(url, contentType, body)
    for (const [k, v] of Object.entries(params)) {
      if (BOOLEAN_PARAMS.has(k) && typeof v === 'string' && /^(true|false)$/i.test(v))
        this.violations.push(
          `boolean "${k}" sent as the string "${v}" (PHP reads any non-empty string but "0" as true)`,
        )
    }
    // The action as WHMCS resolves it (DEC `Route/Middleware/ActionFilter.php`): lower-cased, every
    // character but letters and digits removed, legacy names mapped to their successors.
    const sentAction = str(params.action)
    const resolved = resolveLegacyAction(normaliseAction(sentAction))
    const action = this.actionNames.get(resolved) ?? resolved
    const requested = str(params.responsetype).toLowerCase()
    const rec: RequestRecord = { action, ip, status: 200, queryKeys, contentType }
    const ls = intParam(params.limitstart)
    if (ls !== undefined) rec.limitstart = ls
    this.calls.set(action, (this.calls.get(action) ?? 0) + 1)
    // Without `responsetype` a list action answers XML and any other NVP; NVP is refused for list
    // actions (DEC `Route/Middleware/ActionResponseFormat.php`). JSON is always accepted.
    let format: ResponseFormat = HIGHLY_STRUCTURED.has(resolved) ? 'xml' : 'nvp'
    let formatError: string | undefined
    if (requested === 'json' || requested === 'xml' || requested === 'nvp') {
      format = requested
      if (requested === 'nvp' && HIGHLY_STRUCTURED.has(resolved)) {
        format = 'xml'
        formatError = 'This API action only supports the XML or JSON response type formats'
      }
    } else if (requested !== '') {
      formatError = `Unsupported API response type format "${requested}". Supported formats include: json, xml, nvp`
    }

    const fault = this.takeFault(action, params)
    if (fault) {
      switch (fault.kind) {
        case 'slow':
          await new Promise((r) => setTimeout(r, fault.delayMs ?? 1000))
          break
        case 'drop':
          rec.status = 0
          this.record(rec)
          req.socket.destroy()
          return
        case 'status':
          rec.status = fault.status ?? 503
          this.record(rec)
          res.writeHead(rec.status, { 'content-type': 'text/html' })
          res.end('<html><body>Service Unavailable</body></html>')
          return
        case 'html':
          this.record(rec)
          res.writeHead(200, { 'content-type': 'text/html' })
          res.end('<!DOCTYPE html><html><head><title>Client Area</title></head><body>Login</body></html>')
          return
        case 'maintenance':
          this.record(rec)
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          res.end(
            '<!DOCTYPE html><html><head><title>Down for Maintenance</title></head><body><h1>Down for Maintenance</h1><p>We are currently performing maintenance and will be back shortly.</p></body></html>',
          )
          return
        case 'xml':
          this.record(rec)
          this.send(res, 200, { result: 'success' }, 'xml', resolved)
          return
        default:
          break
      }
    }

    let status = 200
    let payload: Record<string, unknown>
    try {
      this.checkAccess(ip, params)
      if (sentAction === '') throw new ApiError('Empty action request', 400)
      this.authenticate(ip, params)
      if (formatError !== undefined) throw new ApiError(formatError)
      this.authorize(resolved)
      payload = { result: 'success', ...this.dispatch(action, params) }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error
      status = error.status
      payload = { result: 'error', message: error.message }
    }
    rec.status = status
    this.record(rec)
    if (fault?.kind === 'drop-after') {
      // The action ran; the caller never hears back (the uncertain case for writes).
      req.socket.destroy()
      return
    }
    this.send(res, status, payload, format, resolved)
  }

  private checkAccess(ip: string, params: ParsedForm): void {
    if (this.bannedIps.has(ip)) throw new ApiError('IP Banned', 403)
    const sentKey = params.accesskey
    if (this.accessKey !== undefined && sentKey !== undefined) {
      if (!safeEqual(str(sentKey), this.accessKey)) throw new ApiError('Invalid Access Key', 403)
      return
    }
    if (!this.allowedIps.includes(ip)) throw new ApiError(`Invalid IP ${ip}`, 403)
  }

  /** One failed login for the IP (WHMCS's `failedLogin()`); reaching `banAfterFailures` bans it. */
  private countFailure(ip: string): void {
    const n = (this.authFailures.get(ip) ?? 0) + 1
    this.authFailures.set(ip, n)
    if (n >= this.quirks.banAfterFailures) this.bannedIps.add(ip)
  }

  private authFailed(ip: string, message: string): never {
    this.countFailure(ip)
    throw new ApiError(message, 403)
  }

  /** The credential the request authenticated with (undefined for a legacy admin login). */
  private current: SimCredential | undefined

  /**
   * WHMCS's order of credential checks (DEC `Route/Middleware/Authentication.php`). With `identifier`:
   * a missing identifier or secret, or an identifier no credential has, is `Invalid or missing
   * credentials` and not a failed login; a wrong secret is `Authentication Failed` and counts. Without
   * it, `username`/`password` are tried as a credential pair first (a wrong secret counts), then as an
   * admin login: an unknown admin counts, a password that is not an MD5 hash is `Invalid password
   * provided` (not counted), a wrong hash counts.
   */
  private authenticate(ip: string, params: ParsedForm): void {
    this.current = undefined
    const identifier = str(params.identifier)
    if (identifier !== '') {
      const secret = str(params.secret)
      const cred = this.credentials.find((c) => c.identifier === identifier)
      if (secret === '' || !cred) throw new ApiError('Invalid or missing credentials', 403)
      if (!safeEqual(secret, cred.secret)) this.authFailed(ip, 'Authentication Failed')
      this.current = cred
      return
    }
    const username = str(params.username)
    const password = str(params.password)
    const asCredential =
      username !== '' && password !== '' ? this.credentials.find((c) => c.identifier === username) : undefined
    if (asCredential) {
      if (safeEqual(password, asCredential.secret)) {
        this.current = asCredential
        return
      }
      this.countFailure(ip)
    }
    const admin = this.admins[username]
    if (admin === undefined) this.authFailed(ip, 'Authentication Failed')
    if (!/^[0-9a-f]{32}$/i.test(password)) throw new ApiError('Invalid password provided', 403)
    if (!safeEqual(password.toLowerCase(), createHash('md5').update(admin).digest('hex')))
      this.authFailed(ip, 'Authentication Failed')
  }

  private authorize(action: string): void {
    if (!this.actionNames.has(action))
      throw new ApiError(
        `Invalid API Action: "${action}" is not a valid API action`,
        this.quirks.permissionErrorStatus,
      )
    const cred = this.current
    if (cred && cred.actions !== '*' && !cred.actions.some((a) => normaliseAction(a) === action))
      throw new ApiError(
        `Invalid Permissions: API action "${action}" is not allowed`,
        this.quirks.permissionErrorStatus,
      )
  }

  /** Canonical action names by their resolved (lower-case, alphanumeric) form. */
  private get actionNames(): Map<string, string> {
    let names = this.actionNameCache
    if (!names) {
      names = new Map(Object.keys(this.handlers).map((name) => [normaliseAction(name), name]))
      this.actionNameCache = names
    }
    return names
  }
  private actionNameCache: Map<string, string> | undefined

  private dispatch(action: string, params: ParsedForm): Record<string, unknown> {
    const handler = this.handlers[action] as (this: WhmcsSimulator, p: ParsedForm) => Record<string, unknown>
    return handler.call(this, params)
  }

  // ---- rendering helpers ------------------------------------------------------------------------

  private numbersAsStrings(action: string): boolean {
    const q = this.quirks.stringNumbers
    return q === 'all' || (q === 'legacy-actions' && LEGACY_STRING_ACTIONS.has(action))
  }

  private n(action: string, v: number): number | string {
    return this.numbersAsStrings(action) ? String(v) : v
  }

  /**
   * The empty-list shape an action uses, or `undefined` for "leave the key out". GetClientsProducts
   * sets `products: ""` only when nothing matches at all; a page past the end of a non-empty result
   * leaves the key out (DEC `includes/api/getclientsproducts.php`).
   */
  private emptyList(action: string, total: number): unknown {
    switch (this.quirks.emptyShape) {
      case 'missing':
        return undefined
      case 'empty-string':
        return ''
      case 'empty-array':
        return []
      default:
        if (action === 'GetClientsProducts') return total === 0 ? '' : undefined
        if (action === 'GetClients' || action === 'GetOrders') return undefined
        return []
    }
  }

  private list(
    action: string,
    out: Record<string, unknown>,
    plural: string,
    singular: string,
    items: unknown[],
    total = items.length,
  ): void {
    if (items.length > 0) {
      out[plural] = { [singular]: items }
      return
    }
    const empty = this.emptyList(action, total)
    if (empty !== undefined) out[plural] = empty
  }

  /**
   * `limitstart`/`limitnum` as the list actions read them: PHP's `(int)` cast (a non-numeric value is
   * 0, `"10abc"` is 10), `limitnum` 0 or absent → the action's default, a negative offset reads from
   * the start but is echoed as sent, a negative `limitnum` sets no limit (Laravel's `offset`/`limit`;
   * DEC `getclients.php`, `getinvoices.php`, `getclientsproducts.php`).
   */
  private page(params: ParsedForm, defaultLimit = 25): { start: number; offset: number; num: number } {
    const start = phpInt(params.limitstart)
    let num = phpInt(params.limitnum)
    if (num === 0) num = defaultLimit
    if (num < 0) num = Number.POSITIVE_INFINITY
    return { start, offset: Math.max(0, start), num: Math.min(num, this.quirks.maxPageSize) }
  }

  /** One page; `startnumber` and `numreturned` are integers in every action (DEC). */
  private paged<T>(action: string, params: ParsedForm, all: readonly T[], defaultLimit = 25) {
    const { start, offset, num } = this.page(params, defaultLimit)
    const items = all.slice(offset, offset + num)
    return {
      meta: {
        totalresults: this.n(action, all.length),
        startnumber: start,
        numreturned: items.length,
      },
      items,
      total: all.length,
    }
  }

  private boolParam(params: ParsedForm, key: string): boolean {
    return phpTruthy(params[key])
  }

  private requireClient(
    idParam: string | ParsedForm | undefined,
    message = 'Client ID Not Found',
  ): SimClient {
    const id = intParam(idParam)
    const client = id === undefined ? undefined : this.clients.get(id)
    if (!client) throw new ApiError(message)
    return client
  }

  private requireService(params: ParsedForm, message = 'Service ID Not Found'): SimService {
    const raw = params.serviceid ?? params.accountid
    if (raw === undefined || str(raw) === '') throw new ApiError('Service ID is required')
    const service = this.services.get(intParam(raw) ?? -1)
    if (!service) throw new ApiError(message)
    return service
  }

  private renderService(action: string, s: SimService): Record<string, unknown> {
    const p = this.products.get(s.pid)
    const server = this.servers.get(s.serverId)
    const n = (v: number) => this.n(action, v)
    const customfields = (p?.customFields ?? []).map((f) => ({
      id: n(f.id),
      name: f.name,
      translated_name: f.name,
      value: s.customFields[f.id] ?? '',
    }))
    const configoptions = (p?.configOptions ?? []).map((o) => {
      const chosen = s.configChoices[o.id]
      const value =
        o.type === 'quantity' || o.type === 'yesno'
          ? String(chosen ?? 0)
          : (o.options.find((x) => x.id === chosen)?.name ?? '')
      return { id: n(o.id), option: o.name, type: o.type, value }
    })
    return {
      id: n(s.id),
      qty: n(1),
      clientid: n(s.clientId),
      orderid: n(s.orderId),
      ordernumber: String(1_000_000 + s.orderId),
      pid: n(s.pid),
      regdate: s.regdate,
      name: p?.name ?? '',
      translated_name: p?.name ?? '',
      groupname: p?.groupname ?? '',
      translated_groupname: p?.groupname ?? '',
      domain: s.domain,
      dedicatedip: s.dedicatedip,
      serverid: n(s.serverId),
      servername: server?.name ?? '',
      serverip: server?.ip ?? '',
      serverhostname: server?.hostname ?? '',
      suspensionreason: s.suspendreason,
      firstpaymentamount: money(s.firstPaymentCents),
      recurringamount: money(s.recurringCents),
      paymentmethod: s.paymentmethod,
      paymentmethodname: s.paymentmethod === 'mailin' ? 'Mail In Payment' : s.paymentmethod,
      billingcycle: s.billingcycle,
      nextduedate: s.nextduedate,
      status: s.status,
      username: s.username,
      password: s.password,
      subscriptionid: '',
      promoid: n(0),
      overideautosuspend: n(0),
      overidesuspenduntil: s.overidesuspenduntil,
      ns1: '',
      ns2: '',
      assignedips: s.assignedips,
      notes: s.notes,
      diskusage: n(0),
      disklimit: n(0),
      bwusage: n(0),
      bwlimit: n(0),
      lastupdate: s.lastupdate,
      customfields: { customfield: customfields },
      configoptions: { configoption: configoptions },
    }
  }

  private renderClientSummary(c: SimClient) {
    const n = (v: number) => this.n('GetClients', v)
    return {
      id: n(c.id),
      firstname: c.firstname,
      lastname: c.lastname,
      companyname: c.companyname,
      email: c.email,
      datecreated: c.datecreated,
      groupid: n(c.groupid),
      status: c.status,
    }
  }

  private applyCustomFields(
    target: Record<number, string>,
    raw: string | ParsedForm | undefined,
    what: string,
  ): void {
    if (raw === undefined || raw === '') return
    let decoded: PhpValue
    try {
      decoded = decodePhpArray(str(raw))
    } catch {
      throw new ApiError(`Invalid ${what}: expected base64 encoded serialized array`)
    }
    if (decoded === null || typeof decoded !== 'object')
      throw new ApiError(`Invalid ${what}: expected an array`)
    for (const [k, v] of Object.entries(decoded)) target[Number(k)] = v === null ? '' : String(v)
  }

  private applyConfigOptions(target: Record<number, number>, raw: string | ParsedForm | undefined): void {
    if (raw === undefined || raw === '') return
    let decoded: PhpValue
    try {
      decoded = decodePhpArray(str(raw))
    } catch {
      throw new ApiError('Invalid configoptions: expected base64 encoded serialized array')
    }
    if (decoded === null || typeof decoded !== 'object')
      throw new ApiError('Invalid configoptions: expected an array')
    for (const [k, v] of Object.entries(decoded)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
        target[Number(k)] = Number(
          (v as Record<string, PhpValue>).qty ?? (v as Record<string, PhpValue>).optionid ?? 0,
        )
      } else target[Number(k)] = Number(v)
    }
  }

  // ---- actions ----------------------------------------------------------------------------------

  private readonly handlers: Record<
    string,
    (this: WhmcsSimulator, p: ParsedForm) => Record<string, unknown>
  > = {
    GetHealthStatus() {
      return {
        checks: { success: [{ name: 'simulator', severityLevel: 'success' }], warning: [], danger: [] },
      }
    },
    WhmcsDetails() {
      return { whmcs: { version: this.version, canonicalversion: `${this.version}-release.1` } }
    },
    GetClients(p) {
      // `ucfirst(strtolower(status))`, so `active` works (DEC `includes/api/getclients.php`).
      const sent = str(p.status).toLowerCase()
      const status = sent === '' ? '' : sent[0]?.toUpperCase() + sent.slice(1)
      if (status !== '' && !['Active', 'Inactive', 'Closed'].includes(status))
        throw new ApiError(
          'Invalid client status supplied. Supported client statuses include: Active, Inactive, Closed',
        )
      const search = str(p.search).toLowerCase()
      let all = [...this.clients.values()]
      if (status) all = all.filter((c) => c.status === status)
      if (search)
        all = all.filter((c) =>
          [c.email, c.firstname, c.lastname, `${c.firstname} ${c.lastname}`, c.companyname].some((f) =>
            f.toLowerCase().startsWith(search),
          ),
        )
      const orderby = str(p.orderby) || 'lastname'
      const desc = str(p.sorting).toUpperCase() === 'DESC'
      all.sort((a, b) => {
        const x = (a as unknown as Record<string, string | number>)[orderby] ?? ''
        const y = (b as unknown as Record<string, string | number>)[orderby] ?? ''
        const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))
        return (desc ? -c : c) || a.id - b.id
      })
      const { meta, items } = this.paged('GetClients', p, all)
      const out: Record<string, unknown> = { ...meta }
      this.list(
        'GetClients',
        out,
        'clients',
        'client',
        items.map((c) => this.renderClientSummary(c)),
      )
      return out
    },
    GetClientsDetails(p) {
      let client: SimClient | undefined
      if (p.clientid !== undefined && str(p.clientid) !== '')
        client = this.clients.get(intParam(p.clientid) ?? -1)
      else if (str(p.email) !== '') {
        const email = str(p.email).toLowerCase()
        client = [...this.clients.values()].find((c) => c.email.toLowerCase() === email)
      } else throw new ApiError('Either clientid Or email Is Required')
      if (!client) throw new ApiError('Client Not Found')
      // By user id, as WHMCS lists them; from the index (a scan of every user per call made a pass over
      // a large seeded store quadratic).
      const users = [...(this.userIdsByClient.get(client.id) ?? [])]
        .sort((a, b) => a - b)
        .map((id) => this.users.get(id))
        .filter((u): u is SimUser => u?.clients.some((c) => c.id === client.id) === true)
        .map((u) => ({
          id: u.id,
          name: `${u.firstname} ${u.lastname}`,
          email: u.email,
          is_owner: u.clients.some((c) => c.id === client.id && c.isOwner),
        }))
      const phoneCc = CALLING_CODES[client.country]
      const phoneFormatted =
        client.phonenumber === '' || phoneCc === undefined
          ? client.phonenumber
          : `+${phoneCc}.${client.phonenumber.replace(/[^0-9]/g, '')}`
      const details = {
        userid: client.id,
        client_id: client.id,
        id: client.id,
        owner_user_id: client.ownerUserId,
        uuid: `00000000-0000-4000-8000-${String(client.id).padStart(12, '0')}`,
        firstname: client.firstname,
        lastname: client.lastname,
        fullname: `${client.firstname} ${client.lastname}`,
        companyname: client.companyname,
        email: client.email,
        address1: client.address1,
        address2: client.address2,
        city: client.city,
        fullstate: client.state,
        state: client.state,
        postcode: client.postcode,
        countrycode: client.country,
        country: client.country,
        countryname: COUNTRY_NAMES[client.country] ?? client.country,
        // The number with the country's calling code, `+CC.number` (DD `getclientsdetails.md`).
        phonecc: phoneCc,
        phonenumber: client.phonenumber,
        phonenumberformatted: phoneFormatted,
        telephoneNumber: phoneFormatted,
        status: client.status,
        credit: money(client.creditCents),
        taxexempt: false,
        allowSingleSignOn: 1,
        currency: client.currency,
        currency_code: 'USD',
        groupid: client.groupid,
        language: '',
        lastlogin: 'No Login Logged',
        email_preferences: {
          general: '1',
          invoice: '1',
          support: '1',
          product: '1',
          domain: '1',
          affiliate: '1',
        },
        customfields: Object.entries(client.customFields).map(([id, value]) => ({ id: Number(id), value })),
        users: { user: users },
      }
      const out: Record<string, unknown> = { client: details, ...details }
      if (this.boolParam(p, 'stats'))
        out.stats = { numactivehosting: 0, creditbalance: money(client.creditCents) }
      return out
    },
    GetClientsProducts(p) {
      const clientid = intParam(p.clientid)
      const serviceid = intParam(p.serviceid)
      const pid = intParam(p.pid)
      const domain = str(p.domain)
      const username2 = str(p.username2)
      let ids: readonly number[]
      if (serviceid !== undefined) ids = this.services.has(serviceid) ? [serviceid] : []
      else if (clientid !== undefined) ids = this.servicesByClient.get(clientid) ?? []
      else if (pid !== undefined) ids = this.servicesByPid.get(pid) ?? []
      else ids = [...this.services.keys()]
      const needsFilter =
        (serviceid !== undefined && (clientid !== undefined || pid !== undefined)) ||
        (clientid !== undefined && pid !== undefined) ||
        domain !== '' ||
        username2 !== ''
      if (needsFilter) {
        ids = ids.filter((id) => {
          const s = this.services.get(id) as SimService
          return (
            (clientid === undefined || s.clientId === clientid) &&
            (pid === undefined || s.pid === pid) &&
            (domain === '' || s.domain === domain) &&
            (username2 === '' || s.username === username2)
          )
        })
      }
      const { meta, items, total } = this.paged(
        'GetClientsProducts',
        p,
        ids,
        this.quirks.clientsProductsDefaultLimit,
      )
      const out: Record<string, unknown> = {
        clientid: p.clientid === undefined ? null : str(p.clientid),
        serviceid: p.serviceid === undefined ? null : str(p.serviceid),
        pid: p.pid === undefined ? null : str(p.pid),
        domain: p.domain === undefined ? null : domain,
        ...meta,
      }
      this.list(
        'GetClientsProducts',
        out,
        'products',
        'product',
        items.map((id) => this.renderService('GetClientsProducts', this.services.get(id) as SimService)),
        total,
      )
      return out
    },
    GetProducts(p) {
      const pids = str(p.pid)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map(Number)
      const gid = intParam(p.gid)
      const module = str(p.module)
      const all = [...this.products.values()].filter(
        (x) =>
          (pids.length === 0 || pids.includes(x.id)) &&
          (gid === undefined || x.gid === gid) &&
          (module === '' || x.module === module),
      )
      const rendered = all.map((x) => ({
        pid: x.id,
        gid: x.gid,
        type: x.type,
        name: x.name,
        slug: x.name.toLowerCase().replace(/[^a-z0-9]+/g, '-'),
        'product-url': `https://billing.example.com/store/${x.id}`,
        description: '',
        module: x.module,
        paytype: x.paytype,
        allowqty: 0,
        quantity_available: 0,
        pricing: { USD: { prefix: '$', suffix: ' USD', ...productPrices(x) } },
        customfields: {
          customfield: x.customFields
            .filter((f) => f.showOnOrder)
            .map((f) => ({
              id: f.id,
              name: f.name,
              description: f.description,
              required: f.required ? 'on' : '',
            })),
        },
        configoptions: {
          // `type` is WHMCS's option type number as a string: 1 dropdown, 2 radio, 3 yes/no,
          // 4 quantity (DD `getproducts.md` example; DEC `includes/api/getproducts.php`).
          configoption: x.configOptions.map((o) => ({
            id: o.id,
            name: o.name,
            type: OPTION_TYPE_NUMBERS[o.type],
            minqty: 0,
            maxqty: 0,
            options: {
              option: o.options.map((sub) => ({
                id: sub.id,
                name: sub.name,
                rawName: sub.name,
                recurring: 0,
                required: null,
                pricing: { USD: subOptionPrices(sub) },
              })),
            },
          })),
        },
      }))
      const out: Record<string, unknown> = { totalresults: rendered.length }
      this.list('GetProducts', out, 'products', 'product', rendered)
      return out
    },
    GetInvoices(p) {
      const userid = intParam(p.userid)
      const status = str(p.status)
      let all = [...this.invoices.values()].filter((i) => userid === undefined || i.userid === userid)
      if (status === 'Overdue') all = all.filter((i) => i.status === 'Unpaid' && i.duedate < this.today)
      else if (status !== '') all = all.filter((i) => i.status === status)
      const orderby = str(p.orderby)
      const desc = str(p.order).toLowerCase() === 'desc'
      all.sort((a, b) => {
        if (orderby === '')
          return b.status.localeCompare(a.status) || a.duedate.localeCompare(b.duedate) || a.id - b.id
        const x =
          (a as unknown as Record<string, string | number>)[orderby === 'invoicenumber' ? 'id' : orderby] ??
          ''
        const y =
          (b as unknown as Record<string, string | number>)[orderby === 'invoicenumber' ? 'id' : orderby] ??
          ''
        const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y))
        return desc ? -c : c
      })
      const { meta, items } = this.paged('GetInvoices', p, all)
      const out: Record<string, unknown> = { ...meta }
      this.list(
        'GetInvoices',
        out,
        'invoices',
        'invoice',
        items.map((i) => this.renderInvoice(i)),
      )
      return out
    },
    GetOrders(p) {
      const id = intParam(p.id)
      const userid = intParam(p.userid)
      const status = str(p.status)
      const all = [...this.orders.values()]
        .filter((o) => (id === undefined || o.id === id) && (userid === undefined || o.userid === userid))
        .filter((o) => status === '' || o.status === status)
        .sort((a, b) => b.id - a.id)
      const { meta, items } = this.paged('GetOrders', p, all)
      const out: Record<string, unknown> = { ...meta }
      const n = (v: number) => this.n('GetOrders', v)
      this.list(
        'GetOrders',
        out,
        'orders',
        'order',
        items.map((o) => ({
          id: n(o.id),
          ordernum: o.ordernum,
          userid: n(o.userid),
          contactid: n(0),
          date: o.date,
          amount: money(o.amountCents),
          paymentmethod: o.paymentmethod,
          invoiceid: n(o.invoiceId),
          status: o.status,
          ipaddress: o.ipaddress,
          paymentstatus: this.invoices.get(o.invoiceId)?.status ?? '',
          lineitems: {
            lineitem: o.serviceIds.map((sid) => {
              const s = this.services.get(sid)
              const product = this.products.get(s?.pid ?? 0)
              // The product type spelled out and the product as "Group - Name" (DD getorders.md
              // example; DEC includes/api/getorders.php).
              return {
                type: 'product',
                relid: n(sid),
                producttype: PRODUCT_TYPE_NAMES[product?.type ?? 'other'],
                product: product ? `${product.groupname} - ${product.name}` : '',
                domain: s?.domain ?? '',
                billingcycle: s?.billingcycle ?? '',
                amount: money(s?.firstPaymentCents ?? 0),
                status: s?.status ?? '',
              }
            }),
          },
        })),
      )
      return out
    },
    GetUsers(p) {
      const search = str(p.search).toLowerCase()
      const all = [...this.users.values()].filter(
        (u) =>
          search === '' ||
          u.email.toLowerCase().startsWith(search) ||
          `${u.firstname} ${u.lastname}`.toLowerCase().startsWith(search),
      )
      const { meta, items } = this.paged('GetUsers', p, all)
      return {
        ...meta,
        users: items.map((u) => ({
          id: u.id,
          firstname: u.firstname,
          lastname: u.lastname,
          email: u.email,
          datecreated: u.datecreated,
          validationdata: '',
          clients: u.clients.map((c) => ({ id: c.id, isOwner: c.isOwner })),
        })),
      }
    },
    GetCredits(p) {
      const client = this.requireClient(p.clientid)
      const credits = [...this.credits.values()].filter((c) => c.clientid === client.id)
      const out: Record<string, unknown> = { totalresults: credits.length, clientid: client.id }
      this.list(
        'GetCredits',
        out,
        'credits',
        'credit',
        credits.map((c) => ({
          id: c.id,
          date: c.date,
          description: c.description,
          amount: money(c.amountCents),
          relid: 0,
        })),
      )
      return out
    },
    /** Checks in WHMCS's order (DEC `includes/api/addbillableitem.php`; DD `addbillableitem.md`). */
    AddBillableItem(p) {
      const client = this.requireClient(p.clientid, 'Client ID not Found')
      const description = str(p.description)
      if (description === '') throw new ApiError('You must provide a description')
      const invoiceaction = str(p.invoiceaction).toLowerCase()
      if (
        invoiceaction !== '' &&
        !['noinvoice', 'nextcron', 'nextinvoice', 'duedate', 'recur'].includes(invoiceaction)
      )
        throw new ApiError('Invalid Invoice Action')
      const recur = phpInt(p.recur)
      const recurcycle = str(p.recurcycle)
      const recurfor = phpInt(p.recurfor)
      if (invoiceaction === 'recur' && ((recur === 0 && recurcycle === '') || recurfor === 0))
        throw new ApiError('Recurring must have a unit, cycle and limit')
      const duedate = str(p.duedate)
      if (invoiceaction === 'duedate' && duedate === '') throw new ApiError('Due date is required')
      if (duedate !== '' && !DATE_RE.test(duedate))
        throw new ApiError("Invalid Date Format - Expected: 'YYYY-mm-dd'")
      const unit = str(p.unit).toLowerCase()
      if (unit !== 'hours' && unit !== 'quantity')
        throw new ApiError("Invalid Unit, please specify either 'hours' or 'quantity'")
      const amount = str(p.amount)
      if (Number.isNaN(cents(amount || '0'))) throw new ApiError('Invalid amount')
      // Before 8.2 the quantity was `hours`; it is still read when `quantity` is absent.
      const quantity = str(p.quantity) || str(p.hours) || '0'
      const item: SimBillableItem = {
        id: this.nextIds.billable++,
        clientid: client.id,
        description,
        amount: money(cents(amount || '0')),
        quantity,
        unit,
        invoiceaction: invoiceaction || 'noinvoice',
        duedate: duedate || (invoiceaction === 'nextcron' ? this.today : ''),
        recur,
        recurcycle,
        recurfor,
      }
      this.billableItems.set(item.id, item)
      return { billableid: item.id }
    },
    /** Checks in WHMCS's order; the description is optional (DEC `includes/api/addcredit.php`). */
    AddCredit(p) {
      const type = str(p.type).toLowerCase() || 'add'
      if (type !== 'add' && type !== 'remove') throw new ApiError('Type can only be add or remove')
      const rawAmount = str(p.amount)
      if (rawAmount === '' || rawAmount === '0') throw new ApiError('No Amount Provided')
      const amount = cents(rawAmount)
      if (Number.isNaN(amount) || amount <= 0 || !/^\d+(\.\d{1,2})?$/.test(rawAmount.trim()))
        throw new ApiError('Amount must be in decimal format: ### or ###.##')
      const client = this.requireClient(p.clientid)
      const date = str(p.date)
      if (date !== '' && !DATE_RE.test(date)) throw new ApiError('Date Format is not Valid')
      if (type === 'remove' && client.creditCents < amount) throw new ApiError('Insufficient Credit Balance')
      const sign = type === 'remove' ? -1 : 1
      const credit: SimCredit = {
        id: this.nextIds.credit++,
        clientid: client.id,
        date: date || this.today,
        description: str(p.description),
        amountCents: sign * amount,
      }
      this.credits.set(credit.id, credit)
      client.creditCents += sign * amount
      return { newbalance: money(client.creditCents) }
    },
    UpdateClientProduct(p) {
      const s = this.requireService(p)
      if (p.pid !== undefined) {
        const pid = intParam(p.pid) ?? -1
        if (!this.products.has(pid)) throw new ApiError('Product ID Not Found')
        this.reindexPid(s, pid)
      }
      if (p.serverid !== undefined) s.serverId = intParam(p.serverid) ?? 0
      if (p.nextduedate !== undefined) {
        const d = str(p.nextduedate)
        if (!DATE_RE.test(d)) throw new ApiError("Invalid Date Format - Expected: 'YYYY-mm-dd'")
        s.nextduedate = d
      }
      if (p.status !== undefined) {
        const status = str(p.status) as SimServiceStatus
        if (!STATUSES.includes(status)) throw new ApiError('Invalid Status')
        s.status = status
      }
      const text: [string, keyof SimService][] = [
        ['domain', 'domain'],
        ['notes', 'notes'],
        ['serviceusername', 'username'],
        ['servicepassword', 'password'],
        ['dedicatedip', 'dedicatedip'],
        ['assignedips', 'assignedips'],
        ['suspendreason', 'suspendreason'],
        ['billingcycle', 'billingcycle'],
        ['paymentmethod', 'paymentmethod'],
      ]
      for (const [param, field] of text)
        if (p[param] !== undefined) (s as unknown as Record<string, string>)[field] = str(p[param])
      this.applyCustomFields(s.customFields, p.customfields, 'customfields')
      this.applyConfigOptions(s.configChoices, p.configoptions)
      for (const field of formList(p.unset)) {
        if (field === 'dedicatedip' || field === 'assignedips' || field === 'notes')
          (s as unknown as Record<string, string>)[field] = ''
      }
      s.lastupdate = `${this.today} 00:00:00`
      return { serviceid: String(s.id) }
    },
    ModuleCreate(p) {
      return this.moduleCommand(p, (s) => {
        s.status = 'Active'
      })
    },
    ModuleSuspend(p) {
      return this.moduleCommand(p, (s) => {
        s.status = 'Suspended'
        s.suspendreason = str(p.suspendreason)
      })
    },
    ModuleUnsuspend(p) {
      return this.moduleCommand(p, (s) => {
        s.status = 'Active'
        s.suspendreason = ''
      })
    },
    ModuleTerminate(p) {
      return this.moduleCommand(p, (s) => {
        s.status = 'Terminated'
      })
    },
    ModuleChangePw(p) {
      return this.moduleCommand(p, (s) => {
        if (p.servicepassword !== undefined) s.password = str(p.servicepassword)
      })
    },
    ModuleChangePackage(p) {
      return this.moduleCommand(p, () => {})
    },
    AddClient(p) {
      const required: [string, string][] = [
        ['firstname', 'You did not enter your first name'],
        ['lastname', 'You did not enter your last name'],
        ['email', 'You did not enter your email address'],
        ['address1', 'You did not enter your address (line 1)'],
        ['city', 'You did not enter your city'],
        ['state', 'You did not enter your state'],
        ['postcode', 'You did not enter your postcode'],
        ['phonenumber', 'You did not enter your phone number'],
      ]
      const skip = this.boolParam(p, 'skipvalidation')
      if (!skip) for (const [k, m] of required) if (str(p[k]).trim() === '') throw new ApiError(m)
      const email = str(p.email)
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
        throw new ApiError('The email address you entered was not valid')
      if (!/^[A-Z]{2}$/.test(str(p.country))) throw new ApiError('Valid country required')
      if ([...this.clients.values()].some((c) => c.email.toLowerCase() === email.toLowerCase()))
        throw new ApiError('A user already exists with that email address')
      let ownerUserId = intParam(p.owner_user_id)
      if (ownerUserId !== undefined && !this.users.has(ownerUserId))
        throw new ApiError('Invalid Owner User ID')
      const client = this.createClient({
        firstname: str(p.firstname),
        lastname: str(p.lastname),
        companyname: str(p.companyname),
        email,
        address1: str(p.address1),
        address2: str(p.address2),
        city: str(p.city),
        state: str(p.state),
        postcode: str(p.postcode),
        country: str(p.country),
        phonenumber: str(p.phonenumber),
        ...(ownerUserId !== undefined ? { ownerUserId } : {}),
      })
      ownerUserId = client.ownerUserId
      const fields: Record<number, string> = {}
      this.applyCustomFields(fields, p.customfields, 'customfields')
      for (const [k, v] of Object.entries(fields)) client.customFields[k] = v
      return { clientid: client.id, owner_id: ownerUserId }
    },
    UpdateClient(p) {
      let client: SimClient | undefined
      if (str(p.clientid) !== '') client = this.clients.get(intParam(p.clientid) ?? -1)
      else if (str(p.clientemail) !== '') {
        const e = str(p.clientemail).toLowerCase()
        client = [...this.clients.values()].find((c) => c.email.toLowerCase() === e)
      }
      if (!client) throw new ApiError('Client ID Not Found')
      if (p.email !== undefined) {
        const email = str(p.email)
        if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email))
          throw new ApiError('The email address entered is not valid')
        if (
          [...this.clients.values()].some(
            (c) => c !== client && c.email.toLowerCase() === email.toLowerCase(),
          )
        )
          throw new ApiError('Duplicate Email Address')
        client.email = email
      }
      if (p.status !== undefined) {
        const status = str(p.status)
        if (!['Active', 'Inactive', 'Closed'].includes(status)) throw new ApiError('Invalid client status')
        client.status = status as SimClient['status']
      }
      for (const k of [
        'firstname',
        'lastname',
        'companyname',
        'address1',
        'address2',
        'city',
        'state',
        'postcode',
        'phonenumber',
      ] as const)
        if (p[k] !== undefined) client[k] = str(p[k])
      if (p.country !== undefined) client.country = str(p.country)
      const fields: Record<number, string> = {}
      this.applyCustomFields(fields, p.customfields, 'customfields')
      for (const [k, v] of Object.entries(fields)) client.customFields[k] = v
      return { clientid: client.id }
    },
    AddOrder(p) {
      const client = this.requireClient(p.clientid)
      if (client.status === 'Closed') throw new ApiError('Unable to add order when client status is Closed')
      const method = str(p.paymentmethod)
      if (!['mailin', 'paypal', 'banktransfer', 'stripe'].includes(method))
        throw new ApiError('Invalid Payment Method. Valid options include mailin,paypal,banktransfer,stripe')
      for (const key of [
        'pid',
        'billingcycle',
        'domain',
        'customfields',
        'configoptions',
        'qty',
        'priceoverride',
      ]) {
        if (typeof p[key] === 'string') throw new ApiError(`Expecting parameter '${key}' to be an array`)
      }
      const pids = formList(p.pid)
      if (pids.length === 0) throw new ApiError('No items added to cart so order cannot proceed')
      const cycles = p.billingcycle as ParsedForm | undefined
      const domains = p.domain as ParsedForm | undefined
      const cfs = p.customfields as ParsedForm | undefined
      const cos = p.configoptions as ParsedForm | undefined
      const overrides = p.priceoverride as ParsedForm | undefined
      const orderId = this.nextIds.order++
      const serviceIds: number[] = []
      let total = 0
      pids.forEach((rawPid, i) => {
        const product = this.products.get(Number(str(rawPid)))
        if (!product) throw new ApiError(`Invalid Product ID: ${str(rawPid)}`)
        const key = Object.keys(p.pid as ParsedForm)[i] ?? String(i)
        const cycleText =
          str(cycles?.[key]) ||
          (product.paytype === 'recurring' ? 'monthly' : product.paytype === 'free' ? 'free' : 'onetime')
        const cycle = CYCLE_NAMES[cycleText.toLowerCase()] ?? 'Monthly'
        const override = str(overrides?.[key])
        const price =
          override !== '' ? cents(override) : product.paytype === 'free' ? 0 : product.monthlyCents
        const service = this.createService({
          clientId: client.id,
          pid: product.id,
          orderId,
          status: 'Pending',
          billingcycle: cycle,
          domain: str(domains?.[key]),
          recurringCents: cycle === 'One Time' || cycle === 'Free Account' ? 0 : price,
          firstPaymentCents: price,
          paymentmethod: method,
        })
        this.applyCustomFields(service.customFields, cfs?.[key], 'customfields')
        this.applyConfigOptions(service.configChoices, cos?.[key])
        serviceIds.push(service.id)
        total += price
      })
      let invoiceId = 0
      if (!this.boolParam(p, 'noinvoice')) {
        invoiceId = this.createInvoice(
          client.id,
          serviceIds.map((sid) => {
            const s = this.services.get(sid) as SimService
            return {
              type: 'Hosting',
              relid: sid,
              description: this.products.get(s.pid)?.name ?? 'Service',
              amountCents: s.firstPaymentCents,
            }
          }),
          method,
        ).id
      }
      const order: SimOrder = {
        id: orderId,
        ordernum: String(1_000_000 + orderId),
        userid: client.id,
        date: `${this.today} 00:00:00`,
        amountCents: total,
        paymentmethod: method,
        invoiceId,
        status: 'Pending',
        serviceIds,
        ipaddress: str(p.clientip),
      }
      this.orders.set(order.id, order)
      const ids = serviceIds.join(',')
      return {
        orderid: order.id,
        serviceids: ids,
        productids: ids,
        addonids: '',
        domainids: '',
        invoiceid: invoiceId,
      }
    },
    AcceptOrder(p) {
      const order = this.orders.get(intParam(p.orderid) ?? -1)
      if (order?.status !== 'Pending') throw new ApiError('Order ID not found or Status not Pending')
      order.status = 'Active'
      for (const sid of order.serviceIds) {
        const s = this.services.get(sid) as SimService
        if (p.serverid !== undefined) s.serverId = intParam(p.serverid) ?? 0
        if (p.serviceusername !== undefined) s.username = str(p.serviceusername)
        if (p.servicepassword !== undefined) s.password = str(p.servicepassword)
        if (this.boolParam(p, 'autosetup')) {
          const failure = this.moduleFailures.get(sid)
          if (failure) throw new ApiError(failure)
          s.status = 'Active'
        }
      }
      return {}
    },
  }

  private moduleCommand(p: ParsedForm, apply: (s: SimService) => void): Record<string, unknown> {
    const s = this.requireService(p, 'Service ID not found')
    const product = this.products.get(s.pid)
    if (!product || product.module === '') throw new ApiError('Service not assigned to a module')
    const failure = this.moduleFailures.get(s.id)
    if (failure) throw new ApiError(failure)
    apply(s)
    return {}
  }

  private renderInvoice(i: SimInvoice) {
    const client = this.clients.get(i.userid)
    const total = i.items.reduce((a, x) => a + x.amountCents, 0)
    return {
      id: i.id,
      userid: i.userid,
      firstname: client?.firstname ?? '',
      lastname: client?.lastname ?? '',
      companyname: client?.companyname ?? '',
      invoicenum: '',
      date: i.date,
      duedate: i.duedate,
      datepaid: i.datepaid,
      last_capture_attempt: '0000-00-00 00:00:00',
      date_refunded: '0000-00-00 00:00:00',
      date_cancelled: '0000-00-00 00:00:00',
      subtotal: money(total),
      credit: '0.00',
      tax: '0.00',
      tax2: '0.00',
      total: money(total),
      taxrate: '0.00',
      taxrate2: '0.00',
      status: i.status,
      paymentmethod: i.paymentmethod,
      paymethodid: null,
      notes: '',
      created_at: `${i.date} 00:00:00`,
      updated_at: `${i.date} 00:00:00`,
      currencycode: 'USD',
      currencyprefix: '$',
      currencysuffix: ' USD',
    }
  }

  // ---- direct state changes (admin operations and fixtures) -------------------------------------

  private reindexPid(s: SimService, pid: number): void {
    if (s.pid === pid) return
    const old = this.servicesByPid.get(s.pid)
    if (old) {
      const i = old.indexOf(s.id)
      if (i >= 0) old.splice(i, 1)
    }
    s.pid = pid
    insertSorted(this.servicesByPid, pid, s.id)
  }

  createClient(input: Partial<Omit<SimClient, 'id'>> & { email: string }): SimClient {
    const id = this.nextIds.client++
    let ownerUserId = input.ownerUserId ?? 0
    if (ownerUserId === 0) {
      const user = this.createUser({
        firstname: input.firstname ?? 'Client',
        lastname: input.lastname ?? String(id),
        email: input.email,
      })
      ownerUserId = user.id
    }
    const client: SimClient = {
      id,
      firstname: 'Client',
      lastname: String(id),
      companyname: '',
      address1: '1 Example Street',
      address2: '',
      city: 'Springfield',
      state: 'IL',
      postcode: '62701',
      country: 'US',
      phonenumber: '5550100',
      status: 'Active',
      datecreated: this.today,
      groupid: 0,
      creditCents: 0,
      currency: 1,
      customFields: {},
      ...input,
      ownerUserId,
    }
    this.clients.set(id, client)
    const owner = this.users.get(ownerUserId)
    if (owner && !owner.clients.some((c) => c.id === id)) {
      owner.clients.push({ id, isOwner: true })
      this.linkUserIndex(owner.id, id)
    }
    return client
  }

  createUser(input: { firstname: string; lastname: string; email: string }): SimUser {
    const user: SimUser = { id: this.nextIds.user++, datecreated: this.today, clients: [], ...input }
    this.users.set(user.id, user)
    return user
  }

  /** Gives a user (a login) access to another client account, as WHMCS 8 allows. */
  grantUserAccess(userId: number, clientId: number): void {
    const user = this.users.get(userId)
    if (!user) throw new Error(`No user ${userId}`)
    if (!user.clients.some((c) => c.id === clientId)) {
      user.clients.push({ id: clientId, isOwner: false })
      this.linkUserIndex(userId, clientId)
    }
  }

  private linkUserIndex(userId: number, clientId: number): void {
    const ids = this.userIdsByClient.get(clientId)
    if (!ids) this.userIdsByClient.set(clientId, [userId])
    else if (!ids.includes(userId)) ids.push(userId)
  }

  createProduct(
    input: Partial<Omit<SimProduct, 'id' | 'customFields' | 'configOptions'>> & {
      name: string
      customFields?: (Partial<Omit<SimCustomFieldDef, 'id'>> & { name: string })[]
      /** Option name → sub-option names (or names with prices). */
      configOptions?: (Partial<Omit<SimConfigOptionDef, 'id' | 'options'>> & {
        name: string
        options: (string | Omit<SimConfigSubOption, 'id'>)[]
      })[]
    },
  ): SimProduct {
    const product: SimProduct = {
      id: this.nextIds.product++,
      gid: 1,
      groupname: 'Hosting',
      type: 'other',
      module: 'autorelease',
      paytype: 'recurring',
      autoSetup: 'payment',
      monthlyCents: 1000,
      ...input,
      customFields: (input.customFields ?? []).map((f) => ({
        id: this.nextIds.field++,
        type: 'text',
        description: '',
        required: false,
        showOnOrder: true,
        ...f,
      })),
      configOptions: (input.configOptions ?? []).map((o) => ({
        id: this.nextIds.option++,
        type: 'dropdown',
        ...o,
        options: o.options.map((sub) =>
          typeof sub === 'string'
            ? { id: this.nextIds.sub++, name: sub }
            : { id: this.nextIds.sub++, ...sub },
        ),
      })),
    }
    this.products.set(product.id, product)
    return product
  }

  /** Adds a service directly (no order), e.g. for fixtures. `plan` picks a config option by names. */
  createService(
    input: Partial<Omit<SimService, 'id'>> & {
      clientId: number
      pid: number
      /** Option name → sub-option name, resolved against the product. */
      options?: Record<string, string>
      /** Custom field name → value. */
      fields?: Record<string, string>
    },
  ): SimService {
    const { options, fields, ...rest } = input
    const product = this.products.get(input.pid)
    if (!product) throw new Error(`No product ${input.pid}`)
    const id = this.nextIds.service++
    const service: SimService = {
      id,
      orderId: 0,
      regdate: this.today,
      domain: '',
      serverId: 1,
      status: 'Pending',
      billingcycle: 'Monthly',
      nextduedate: this.today,
      firstPaymentCents: product.monthlyCents,
      recurringCents: product.monthlyCents,
      paymentmethod: 'mailin',
      username: '',
      password: '',
      dedicatedip: '',
      assignedips: '',
      notes: '',
      suspendreason: '',
      overidesuspenduntil: '0000-00-00',
      lastupdate: '0000-00-00 00:00:00',
      customFields: {},
      configChoices: {},
      ...rest,
    }
    if (service.billingcycle === 'One Time' || service.billingcycle === 'Free Account')
      service.nextduedate = '0000-00-00'
    for (const [name, value] of Object.entries(fields ?? {})) {
      const f = product.customFields.find((x) => x.name === name)
      if (!f) throw new Error(`Product ${product.id} has no custom field ${name}`)
      service.customFields[f.id] = value
    }
    for (const [name, value] of Object.entries(options ?? {})) this.setOption(service, product, name, value)
    this.services.set(id, service)
    insertSorted(this.servicesByPid, service.pid, id)
    insertSorted(this.servicesByClient, service.clientId, id)
    return service
  }

  private setOption(service: SimService, product: SimProduct, name: string, value: string): void {
    const o = product.configOptions.find((x) => x.name === name)
    if (!o) throw new Error(`Product ${product.id} has no configurable option ${name}`)
    if (o.type === 'quantity' || o.type === 'yesno') {
      service.configChoices[o.id] = Number(value)
      return
    }
    const sub = o.options.find((x) => x.name === value)
    if (!sub) throw new Error(`Option ${name} has no choice ${value}`)
    service.configChoices[o.id] = sub.id
  }

  createInvoice(clientId: number, items: SimInvoiceItemInput[], paymentmethod = 'mailin'): SimInvoice {
    const invoice: SimInvoice = {
      id: this.nextIds.invoice++,
      userid: clientId,
      date: this.today,
      duedate: this.today,
      datepaid: '0000-00-00 00:00:00',
      status: 'Unpaid',
      paymentmethod,
      items,
    }
    this.invoices.set(invoice.id, invoice)
    return invoice
  }

  service(id: number): SimService {
    const s = this.services.get(id)
    if (!s) throw new Error(`No service ${id}`)
    return s
  }

  /** Admin: marks an invoice paid. Pending services on it are set up (auto-setup on payment) and renewals move the due date. */
  markInvoicePaid(invoiceId: number): void {
    const invoice = this.invoices.get(invoiceId)
    if (!invoice) throw new Error(`No invoice ${invoiceId}`)
    invoice.status = 'Paid'
    invoice.datepaid = `${this.today} 00:00:00`
    for (const item of invoice.items) {
      const s = this.services.get(item.relid)
      if (!s || item.type !== 'Hosting') continue
      const product = this.products.get(s.pid)
      const order = this.orders.get(s.orderId)
      if (s.status === 'Pending') {
        if (order && order.status === 'Pending') order.status = 'Active'
        if (product?.autoSetup === 'payment' || product?.autoSetup === 'order') s.status = 'Active'
      } else if (s.status === 'Suspended' && s.suspendreason === 'Overdue on Payment') {
        s.status = 'Active'
        s.suspendreason = ''
      }
      s.nextduedate = addCycle(s.nextduedate, s.billingcycle)
    }
  }

  /** Admin: a renewal invoice for a service (what the cron makes before the due date). */
  createRenewalInvoice(serviceId: number): SimInvoice {
    const s = this.service(serviceId)
    return this.createInvoice(s.clientId, [
      {
        type: 'Hosting',
        relid: s.id,
        description: this.products.get(s.pid)?.name ?? 'Service',
        amountCents: s.recurringCents,
      },
    ])
  }

  /** Admin / cron: suspends an overdue service. */
  suspendForNonPayment(serviceId: number): void {
    const s = this.service(serviceId)
    s.status = 'Suspended'
    s.suspendreason = 'Overdue on Payment'
  }

  unsuspend(serviceId: number): void {
    const s = this.service(serviceId)
    s.status = 'Active'
    s.suspendreason = ''
  }

  /** Admin: an upgrade or downgrade (product and/or configurable options by name). */
  upgrade(serviceId: number, change: { pid?: number; options?: Record<string, string> }): void {
    const s = this.service(serviceId)
    if (change.pid !== undefined) {
      if (!this.products.has(change.pid)) throw new Error(`No product ${change.pid}`)
      this.reindexPid(s, change.pid)
    }
    const product = this.products.get(s.pid) as SimProduct
    for (const [name, value] of Object.entries(change.options ?? {})) this.setOption(s, product, name, value)
  }

  cancel(serviceId: number): void {
    this.service(serviceId).status = 'Cancelled'
  }

  terminate(serviceId: number): void {
    this.service(serviceId).status = 'Terminated'
  }

  setStatus(serviceId: number, status: SimServiceStatus): void {
    this.service(serviceId).status = status
  }

  setServicePassword(serviceId: number, password: string): void {
    this.service(serviceId).password = password
  }

  /** Lifts a ban and forgets failed logins (what an admin does under Security → Banned IPs). */
  unban(ip = '127.0.0.1'): void {
    this.bannedIps.delete(ip)
    this.authFailures.delete(ip)
  }

  /** A checkout: an order for one product with a plan and a first password, optionally paid at once. */
  placeOrder(input: {
    clientId: number
    pid: number
    options?: Record<string, string>
    fields?: Record<string, string>
    billingcycle?: string
    paid?: boolean
  }): { order: SimOrder; service: SimService; invoice: SimInvoice } {
    const product = this.products.get(input.pid)
    if (!product) throw new Error(`No product ${input.pid}`)
    const orderId = this.nextIds.order++
    const service = this.createService({
      clientId: input.clientId,
      pid: input.pid,
      orderId,
      status: 'Pending',
      billingcycle: input.billingcycle ?? 'Monthly',
      ...(input.options ? { options: input.options } : {}),
      ...(input.fields ? { fields: input.fields } : {}),
    })
    const invoice = this.createInvoice(input.clientId, [
      {
        type: 'Hosting',
        relid: service.id,
        description: product.name,
        amountCents: service.firstPaymentCents,
      },
    ])
    const order: SimOrder = {
      id: orderId,
      ordernum: String(1_000_000 + orderId),
      userid: input.clientId,
      date: `${this.today} 00:00:00`,
      amountCents: service.firstPaymentCents,
      paymentmethod: 'mailin',
      invoiceId: invoice.id,
      status: 'Pending',
      serviceIds: [service.id],
      ipaddress: '',
    }
    this.orders.set(orderId, order)
    if (input.paid) this.markInvoicePaid(invoice.id)
    return { order, service, invoice }
  }
}

type SimInvoiceItemInput = SimInvoice['items'][number]

/** Calling codes of the countries the fixtures use; another country gets the bare number. */
const CALLING_CODES: Record<string, number> = {
  US: 1,
  CA: 1,
  GB: 44,
  DE: 49,
  FR: 33,
  NL: 31,
  BE: 32,
  ES: 34,
  IT: 39,
  PT: 351,
  BR: 55,
  AU: 61,
  IN: 91,
}

const COUNTRY_NAMES: Record<string, string> = {
  US: 'United States',
  CA: 'Canada',
  GB: 'United Kingdom',
  DE: 'Germany',
  FR: 'France',
  NL: 'Netherlands',
  BE: 'Belgium',
  ES: 'Spain',
  IT: 'Italy',
  PT: 'Portugal',
  BR: 'Brazil',
  AU: 'Australia',
  IN: 'India',
}

const PRODUCT_TYPE_NAMES: Record<SimProduct['type'], string> = {
  hostingaccount: 'Hosting Account',
  reselleraccount: 'Reseller Account',
  server: 'Dedicated/VPS Server',
  other: 'Other Product/Service',
}

const OPTION_TYPE_NUMBERS: Record<SimConfigOptionDef['type'], string> = {
  dropdown: '1',
  radio: '2',
  yesno: '3',
  quantity: '4',
}

/** A product's `tblpricing` row for one currency: every cycle and every setup fee. */
function productPrices(product: SimProduct): Record<PriceColumn, string> {
  const defaults: Partial<Record<PriceColumn, number>> =
    product.paytype === 'recurring'
      ? { monthly: product.monthlyCents, annually: product.monthlyCents * 12 }
      : product.paytype === 'onetime'
        ? { monthly: product.monthlyCents }
        : {}
  const out = {} as Record<PriceColumn, string>
  for (const column of PRICE_COLUMNS) {
    const c = product.prices?.[column] ?? defaults[column] ?? (column.endsWith('setupfee') ? 0 : -1)
    out[column] = c < 0 ? '-1.00' : money(c)
  }
  return out
}

/** A configurable sub-option's prices: columns not set are `0.00` (DD `getproducts.md`). */
function subOptionPrices(sub: SimConfigSubOption): Record<PriceColumn, string> {
  const out = {} as Record<PriceColumn, string>
  for (const column of PRICE_COLUMNS) out[column] = money(sub.prices?.[column] ?? 0)
  return out
}

const CYCLE_NAMES: Record<string, string> = {
  free: 'Free Account',
  onetime: 'One Time',
  monthly: 'Monthly',
  quarterly: 'Quarterly',
  semiannually: 'Semi-Annually',
  annually: 'Annually',
  biennially: 'Biennially',
  triennially: 'Triennially',
}

function insertSorted(index: Map<number, number[]>, key: number, id: number): void {
  let list = index.get(key)
  if (!list) {
    list = []
    index.set(key, list)
  }
  // Ids grow, so appending is the common case; an older id moved here is inserted in place.
  const last = list[list.length - 1]
  if (last === undefined || last < id) {
    list.push(id)
    return
  }
  let lo = 0
  let hi = list.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((list[mid] as number) < id) lo = mid + 1
    else hi = mid
  }
  list.splice(lo, 0, id)
}

/** Starts a simulator on 127.0.0.1 with a fresh certificate. */
export async function startWhmcsSimulator(options: SimulatorOptions = {}): Promise<WhmcsSimulator> {
  return new WhmcsSimulator(options).start()
}

/** @deprecated use `startWhmcsSimulator` */
export const createWhmcsSimulator: (options?: SimulatorOptions) => Promise<WhmcsSimulator> =
  startWhmcsSimulator
