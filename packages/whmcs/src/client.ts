import {
  type CallRecorder,
  createCallRecorder,
  isPanelkitError,
  type RetryPolicy,
  ValidationError,
} from '@panelkit/core'
import { createHttpTransport, retryRequest, type TlsOptions } from '@panelkit/core/http'
import type { Dispatcher } from 'undici'
import type { z } from 'zod'
import { protocolError } from './errors.ts'
import { isNotSent, type SendOptions, type WhmcsAuth, WhmcsTransport } from './http.ts'
import { type LogShapeOptions, logRequest, summarizeResponse } from './log-shape.ts'
import { type Page, paginate } from './pagination.ts'
import { type FormValue, PhpArray } from './protocol/form.ts'
import type { PhpValue } from './protocol/php-serialize.ts'
import {
  AddBillableItemSchema,
  AddClientSchema,
  AddCreditSchema,
  type AddOrderResponse,
  AddOrderSchema,
  type ClientSummary,
  type GetClientsDetailsResponse,
  GetClientsDetailsSchema,
  type GetClientsProductsResponse,
  GetClientsProductsSchema,
  GetClientsProductsSyncSchema,
  type GetClientsResponse,
  GetClientsSchema,
  type GetCreditsResponse,
  GetCreditsSchema,
  GetHealthStatusSchema,
  type GetInvoicesResponse,
  GetInvoicesSchema,
  type GetOrdersResponse,
  GetOrdersSchema,
  type GetProductsResponse,
  GetProductsSchema,
  type GetUsersResponse,
  GetUsersSchema,
  ResultOnlySchema,
  UpdateClientProductSchema,
  UpdateClientSchema,
  WhmcsDetailsSchema,
  type WhmcsInvoice,
  type WhmcsOrder,
  type WhmcsService,
  type WhmcsSyncService,
  type WhmcsUser,
} from './protocol/schemas.ts'

export interface WhmcsClientOptions {
  /** The WHMCS root (`https://billing.example.com/`) or the full `…/includes/api.php` address. */
  url: string | URL
  /** API credential identifier (Setup → Staff Management → Manage API Credentials). */
  identifier?: string
  /** API credential secret. */
  secret?: string
  /** `$api_access_key` from configuration.php, for callers outside the IP allow-list. */
  accessKey?: string
  /**
   * Use the legacy admin login instead of API credentials (sends an MD5 of the admin password on
   * every call; WHMCS keeps it only for old integrations). A warning is emitted when chosen.
   */
  legacyAdminLogin?: { username: string; password: string }
  /** undici dispatcher (an Agent with a CA, a ProxyAgent, a MockAgent in unit tests). */
  dispatcher?: Dispatcher
  /** Certificate trust when no dispatcher is given: `ca`, `fingerprint` (pinning) or `insecure` (warns once). */
  tls?: TlsOptions
  /** @deprecated Use `tls.ca`. */
  ca?: string | Buffer
  /** Connections kept to WHMCS (when the client builds its own dispatcher). Default twice `pageConcurrency`, at least 4. */
  connections?: number
  recorder?: CallRecorder
  /** Time limit for one request, from sending to the last body byte. Default 30 000 ms. */
  timeoutMs?: number
  /** Time to wait for the response headers. Default `timeoutMs`. */
  headersTimeoutMs?: number
  /** Longest pause between body chunks. Default `timeoutMs`. */
  bodyTimeoutMs?: number
  /** Largest answer read before giving up with a PROTOCOL error. Default 64 MiB. */
  maxResponseBytes?: number
  /** Retries of reads on connection errors, timeouts and 5xx. Writes are never retried. */
  retry?: Partial<RetryPolicy> | false
  /** Rows per page for the iterators. Default 250. */
  pageSize?: number
  /** Pages fetched at once once the total is known. Default 4. */
  pageConcurrency?: number
  /** After WHMCS refuses our credentials or IP (403), calls fail fast for this long. Default 5 min. */
  authFailureCooldownMs?: number
  /** Custom-field names whose values are secrets in logs (names with "pass", "secret", … always are). */
  secretFieldNames?: readonly string[]
  userAgent?: string
  /** Where the one-time security warnings go (legacy login, insecure TLS, plain HTTP). Default `process.emitWarning`. */
  warn?: (message: string) => void
  /** @deprecated Use `warn`. */
  onWarning?: (message: string) => void
  now?: () => number
}

export type WhmcsParams = Record<string, FormValue>

export interface CallOptions<T> {
  /** Reads go through under dry-run; writes are recorded and not sent. Defaults: `Get*` read, else write. */
  access?: 'read' | 'write'
  /** Validates and normalises the answer. Without it the raw answer is returned. */
  schema?: z.ZodType<T>
  /** The pretended answer under dry-run. */
  dryRunResult?: Record<string, unknown>
  signal?: AbortSignal
  /** Log target (a service id, a client id). */
  target?: string
  /**
   * Whether the call may be sent again after a 5xx, a reset or a time-out (WHMCS may have acted).
   * Default: reads yes, writes no. A write WHMCS never received (connection refused) is not resent either.
   */
  idempotent?: boolean
}

export interface PageOptions {
  pageSize?: number
  concurrency?: number
  signal?: AbortSignal
  /** The offset to start at (default 0), e.g. to resume after a page failed. */
  startAt?: number
}

/** Values WHMCS takes as `base64(serialize(...))`: `{fieldId: value}` or `{optionId: subOptionId}`. */
export type PhpMap = Record<string, PhpValue>

type Id = string | number

export interface GetClientsParams {
  search?: string
  status?: 'Active' | 'Inactive' | 'Closed'
  orderby?: string
  sorting?: 'ASC' | 'DESC'
  limitstart?: number
  limitnum?: number
}
export interface GetClientsProductsParams {
  clientid?: Id
  serviceid?: Id
  pid?: Id
  domain?: string
  username2?: string
  limitstart?: number
  limitnum?: number
}
export interface GetInvoicesParams {
  userid?: Id
  status?: string
  orderby?: string
  order?: 'asc' | 'desc'
  limitstart?: number
  limitnum?: number
}
export interface GetOrdersParams {
  id?: Id
  userid?: Id
  requestor_id?: Id
  status?: string
  limitstart?: number
  limitnum?: number
}
export interface GetUsersParams {
  search?: string
  limitstart?: number
  limitnum?: number
}
export interface AddBillableItemParams {
  clientid: Id
  description: string
  amount: string | number
  /** `hours` or `quantity` (required since WHMCS 8.2). */
  unit?: 'hours' | 'quantity'
  quantity?: string | number
  invoiceaction?: 'noinvoice' | 'nextcron' | 'nextinvoice' | 'duedate' | 'recur'
  recur?: number
  recurcycle?: 'Days' | 'Weeks' | 'Months' | 'Years'
  recurfor?: number
  duedate?: string | Date
}
export interface UpdateClientProductParams {
  serviceid: Id
  pid?: Id
  serverid?: Id
  nextduedate?: string | Date
  domain?: string
  status?: string
  notes?: string
  serviceusername?: string
  servicepassword?: string
  dedicatedip?: string
  /** One address per element; sent newline-separated as WHMCS stores them. */
  assignedips?: readonly string[] | string
  suspendreason?: string
  customfields?: PhpMap
  configoptions?: PhpMap
  [extra: string]: FormValue | PhpMap | readonly string[]
}
export interface AddClientParams {
  firstname: string
  lastname: string
  email: string
  address1: string
  city: string
  state: string
  postcode: string
  country: string
  phonenumber: string
  companyname?: string
  owner_user_id?: Id
  password2?: string
  currency?: Id
  groupid?: Id
  customfields?: PhpMap
  noemail?: boolean
  skipvalidation?: boolean
  [extra: string]: FormValue | PhpMap
}
export interface AddOrderItem {
  pid: Id
  billingcycle?: string
  domain?: string
  qty?: number
  customfields?: PhpMap
  configoptions?: PhpMap
  priceoverride?: string | number
}
export interface AddOrderParams {
  clientid: Id
  paymentmethod: string
  items: readonly AddOrderItem[]
  promocode?: string
  noinvoice?: boolean
  noinvoiceemail?: boolean
  noemail?: boolean
}
export interface AcceptOrderParams {
  orderid: Id
  serverid?: Id
  serviceusername?: string
  servicepassword?: string
  autosetup?: boolean
  sendemail?: boolean
}
export interface UpdateClientParams {
  clientid?: Id
  clientemail?: string
  customfields?: PhpMap
  [extra: string]: FormValue | PhpMap
}
export interface AddCreditParams {
  clientid: Id
  description: string
  amount: string | number
  date?: string | Date
  adminid?: Id
  type?: 'add' | 'remove'
}

const SERVICE_PAGE_KEYS = { list: 'products', schema: GetClientsProductsSchema } as const

function isPhpMap(value: unknown): value is PhpMap {
  return value !== null && typeof value === 'object' && !(value instanceof Date) && !Array.isArray(value)
}

function requireId(action: string, name: string, value: unknown): void {
  const ok =
    (typeof value === 'number' && Number.isInteger(value) && value > 0) ||
    (typeof value === 'string' && /^[0-9]+$/.test(value) && value !== '0')
  if (!ok)
    throw new ValidationError(`WHMCS ${action}: ${name} must be a positive id`, [
      { path: name, message: 'must be a positive id' },
    ])
}

function requireText(action: string, name: string, value: unknown): void {
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(value)
  )
    throw new ValidationError(`WHMCS ${action}: ${name} is required`, [
      { path: name, message: 'is required' },
    ])
}

function requireAmount(action: string, name: string, value: unknown): void {
  const text = typeof value === 'number' ? String(value) : value
  if (typeof text !== 'string' || !/^-?\d+(\.\d+)?$/.test(text))
    throw new ValidationError(`WHMCS ${action}: ${name} must be a decimal amount`, [
      { path: name, message: 'must be a decimal amount' },
    ])
}

const EMAIL = /^[^\s@\u0000-\u001f]+@[^\s@\u0000-\u001f]+\.[^\s@\u0000-\u001f]+$/

function requireEmail(action: string, name: string, value: unknown): void {
  requireText(action, name, value)
  if (!EMAIL.test(value as string))
    throw new ValidationError(`WHMCS ${action}: ${name} must be an email address`, [
      { path: name, message: 'must be an email address' },
    ])
}

function requireDate(action: string, name: string, value: unknown): void {
  if (value === undefined) return
  if (value instanceof Date) {
    if (!Number.isNaN(value.getTime())) return
    throw new ValidationError(`WHMCS ${action}: ${name} is an invalid Date`, [
      { path: name, message: 'is an invalid Date' },
    ])
  }
  if (typeof value !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(value))
    throw new ValidationError(`WHMCS ${action}: ${name} must be YYYY-MM-DD`, [
      { path: name, message: 'must be YYYY-MM-DD' },
    ])
}

/** Turns `{customfields: {...}}` style maps into their base64-serialized wire form. */
function withPhpArrays(params: Record<string, unknown>, keys: readonly string[]): WhmcsParams {
  const out: WhmcsParams = {}
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue
    out[k] = keys.includes(k) && isPhpMap(v) ? new PhpArray(v) : (v as FormValue)
  }
  return out
}

const READ_PREFIX = /^(Get|Validate|Decrypt|WhmcsDetails$|GetHealthStatus$)/

export interface WhmcsClient {
  readonly recorder: CallRecorder
  /** Rows per page the iterators ask for (the `pageSize` option). */
  readonly pageSize?: number
  /** The typed escape hatch: any action, validated by `schema` when given. */
  call<T = Record<string, unknown>>(
    action: string,
    params?: WhmcsParams,
    options?: CallOptions<T>,
  ): Promise<T>
  /** Every page of any list action, in order, with bounded parallel fetches. */
  pages<T>(
    action: string,
    params: WhmcsParams,
    list: {
      key: string
      schema: z.ZodType<
        { totalresults: number; startnumber: number; numreturned: number } & Record<string, unknown>
      >
    },
    options?: PageOptions,
  ): AsyncGenerator<Page<T>>

  getClients(params?: GetClientsParams, options?: { signal?: AbortSignal }): Promise<GetClientsResponse>
  iterateClients(
    params?: Omit<GetClientsParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<ClientSummary>
  getClientsDetails(
    lookup: { clientid: Id } | { email: string },
    options?: { stats?: boolean; signal?: AbortSignal },
  ): Promise<GetClientsDetailsResponse>
  getClientsProducts(
    params?: GetClientsProductsParams,
    options?: { signal?: AbortSignal },
  ): Promise<GetClientsProductsResponse>
  iterateClientsProducts(
    params?: Omit<GetClientsProductsParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<WhmcsService>
  /** Pages of services, for consumers that work a page at a time. */
  clientsProductsPages(
    params?: Omit<GetClientsProductsParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<Page<WhmcsService>>
  /** Pages of services with only the fields reverse sync reads (cheaper for 100 000 services). */
  syncServicePages(
    params?: Omit<GetClientsProductsParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<Page<WhmcsSyncService>>
  getProducts(
    params?: { pid?: Id | readonly Id[]; gid?: Id; module?: string },
    options?: { signal?: AbortSignal },
  ): Promise<GetProductsResponse>
  getInvoices(params?: GetInvoicesParams, options?: { signal?: AbortSignal }): Promise<GetInvoicesResponse>
  iterateInvoices(
    params?: Omit<GetInvoicesParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<WhmcsInvoice>
  getOrders(params?: GetOrdersParams, options?: { signal?: AbortSignal }): Promise<GetOrdersResponse>
  iterateOrders(
    params?: Omit<GetOrdersParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<WhmcsOrder>
  getUsers(params?: GetUsersParams, options?: { signal?: AbortSignal }): Promise<GetUsersResponse>
  iterateUsers(
    params?: Omit<GetUsersParams, 'limitstart' | 'limitnum'>,
    options?: PageOptions,
  ): AsyncGenerator<WhmcsUser>
  getCredits(clientid: Id, options?: { signal?: AbortSignal }): Promise<GetCreditsResponse>
  getHealthStatus(options?: { fetchStatus?: boolean; signal?: AbortSignal }): Promise<Record<string, unknown>>
  whmcsDetails(options?: {
    signal?: AbortSignal
  }): Promise<{ version: string; canonicalversion: string | undefined }>

  addBillableItem(
    params: AddBillableItemParams,
    options?: { signal?: AbortSignal },
  ): Promise<{ billableid: string }>
  updateClientProduct(
    params: UpdateClientProductParams,
    options?: { signal?: AbortSignal },
  ): Promise<{ serviceid: string }>
  addClient(params: AddClientParams, options?: { signal?: AbortSignal }): Promise<{ clientid: string }>
  updateClient(params: UpdateClientParams, options?: { signal?: AbortSignal }): Promise<{ clientid: string }>
  addOrder(params: AddOrderParams, options?: { signal?: AbortSignal }): Promise<AddOrderResponse>
  acceptOrder(params: AcceptOrderParams, options?: { signal?: AbortSignal }): Promise<void>
  addCredit(params: AddCreditParams, options?: { signal?: AbortSignal }): Promise<{ newbalance: string }>
  moduleCreate(serviceid: Id, options?: { signal?: AbortSignal }): Promise<void>
  moduleSuspend(serviceid: Id, options?: { reason?: string; signal?: AbortSignal }): Promise<void>
  moduleUnsuspend(serviceid: Id, options?: { signal?: AbortSignal }): Promise<void>
  moduleTerminate(serviceid: Id, options?: { signal?: AbortSignal }): Promise<void>
  moduleChangePw(serviceid: Id, password: string, options?: { signal?: AbortSignal }): Promise<void>
  moduleChangePackage(serviceid: Id, options?: { signal?: AbortSignal }): Promise<void>

  /** Until when calls fail fast after an authentication refusal (undefined when not blocked). */
  readonly authBlockedUntil: number | undefined
  resetAuthFailure(): void
  close(): Promise<void>
}

export function resolveEndpoint(url: string | URL): URL {
  const base = new URL(url)
  if (base.search !== '' || base.username !== '' || base.password !== '')
    throw new ValidationError(
      'WHMCS url must not carry a query string or credentials (secrets never go in URLs)',
      [{ path: 'url', message: 'must not carry a query string or credentials' }],
    )
  if (base.pathname.endsWith('/includes/api.php')) return base
  const path = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`
  return new URL(`${path}includes/api.php`, base)
}

export function createWhmcsClient(options: WhmcsClientOptions): WhmcsClient {
  const endpoint = resolveEndpoint(options.url)
  const onWarning = options.warn ?? options.onWarning
  let auth: WhmcsAuth
  if (options.legacyAdminLogin) {
    auth = { type: 'legacy-admin', ...options.legacyAdminLogin }
    const warn =
      onWarning ?? ((message: string) => process.emitWarning(message, { code: 'PANELKIT_WHMCS_LEGACY_AUTH' }))
    warn(
      'WHMCS legacy admin login chosen: it sends an MD5 of the admin password on every call and may be removed by WHMCS; create API credentials with a role instead',
    )
  } else {
    if (!options.identifier || !options.secret)
      throw new ValidationError('WHMCS identifier and secret are required', [
        { path: options.identifier ? 'secret' : 'identifier', message: 'is required' },
      ])
    auth = { type: 'credentials', identifier: options.identifier, secret: options.secret }
  }
  const recorder = options.recorder ?? createCallRecorder({ connector: 'whmcs-client' })
  for (const key of ['servicepassword', 'password2', 'rootpw', 'accesskey']) recorder.redactor.addKey(key)
  const tls: TlsOptions =
    options.ca !== undefined && options.tls?.ca === undefined
      ? { ...options.tls, ca: options.ca }
      : (options.tls ?? {})
  // Core's shared transport warns once when the URL is plain HTTP (the API secret would travel in clear).
  const http = createHttpTransport({
    origin: endpoint.origin,
    system: 'WHMCS',
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
    tls,
    keepAliveTimeoutMs: 10_000,
    connections: options.connections ?? Math.max(4, (options.pageConcurrency ?? 4) * 2),
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.headersTimeoutMs !== undefined ? { headersTimeoutMs: options.headersTimeoutMs } : {}),
    ...(options.bodyTimeoutMs !== undefined ? { bodyTimeoutMs: options.bodyTimeoutMs } : {}),
    maxResponseBytes: options.maxResponseBytes ?? 64 * 1024 * 1024,
    ...(onWarning ? { warn: onWarning } : {}),
  })
  const now = options.now ?? Date.now
  const transport = new WhmcsTransport({
    http,
    endpoint,
    auth,
    accessKey: options.accessKey,
    recorder,
    userAgent: options.userAgent ?? 'panelkit-whmcs/0.1',
    authFailureCooldownMs: options.authFailureCooldownMs ?? 5 * 60_000,
    now,
  })
  const logShape: LogShapeOptions = { secretFieldNames: new Set(options.secretFieldNames ?? []) }
  const retryPolicy =
    options.retry === false ? { maxAttempts: 1 } : { maxAttempts: 3, initialDelayMs: 200, ...options.retry }
  const pageSize = options.pageSize ?? 250
  const pageConcurrency = options.pageConcurrency ?? 4
  const successOnly = () => ({ result: 'success' })
  const summarizeForLog = (response: Record<string, unknown>) => summarizeResponse(response, logShape)

  async function call<T>(
    action: string,
    params: WhmcsParams = {},
    callOptions: CallOptions<T> = {},
  ): Promise<T> {
    if (typeof action !== 'string' || !/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(action))
      throw new ValidationError('WHMCS action must be an action name such as GetClients', [
        { path: 'action', message: 'must be an action name' },
      ])
    for (const key of [
      'action',
      'identifier',
      'secret',
      'username',
      'password',
      'accesskey',
      'responsetype',
    ]) {
      if (key in params)
        throw new ValidationError(`WHMCS ${action}: ${key} is set by the client, not by parameters`, [
          { path: key, message: 'is reserved' },
        ])
    }
    const access = callOptions.access ?? (READ_PREFIX.test(action) ? 'read' : 'write')
    const schema = callOptions.schema
    // Built once per call, not per attempt; the shared functions are hoisted out of `call` because a
    // closure per call is measurable next to a sub-millisecond request.
    const sendOptions: SendOptions = {
      access,
      signal: callOptions.signal,
      target: callOptions.target,
      logRequest: logRequest(params),
      dryRunResult: callOptions.dryRunResult
        ? () => ({ result: 'success', ...callOptions.dryRunResult })
        : successOnly,
      summarize: summarizeForLog,
    }
    const attempt = () => transport.send(action, params, sendOptions)
    // Reads are repeated after a 5xx, a reset or a time-out; writes are sent once unless the caller says
    // the call is idempotent.
    const raw =
      (callOptions.idempotent ?? access === 'read')
        ? await retryRequest(attempt, {
            policy: retryPolicy,
            idempotent: true,
            signal: callOptions.signal,
          })
        : await attempt()
    if (!schema) return raw as T
    const parsed = schema.safeParse(raw)
    if (!parsed.success) {
      const issues = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')
      throw protocolError(action, `unexpected answer (${issues})`, parsed.error)
    }
    return parsed.data
  }

  function pages<T>(
    action: string,
    params: WhmcsParams,
    list: {
      key: string
      schema: z.ZodType<
        { totalresults: number; startnumber: number; numreturned: number } & Record<string, unknown>
      >
    },
    pageOptions: PageOptions = {},
  ): AsyncGenerator<Page<T>> {
    return paginate<T>(
      async (limitstart, limitnum, signal) => {
        const response = await call(
          action,
          { ...params, limitstart, limitnum },
          { schema: list.schema, access: 'read', signal },
        )
        const items = (response[list.key] ?? []) as T[]
        return {
          items,
          totalresults: response.totalresults,
          // Some versions echo nothing useful here; the offset asked for is the truth.
          startnumber: limitstart,
          numreturned: items.length,
        }
      },
      {
        pageSize: pageOptions.pageSize ?? pageSize,
        concurrency: pageOptions.concurrency ?? pageConcurrency,
        signal: pageOptions.signal,
        start: pageOptions.startAt,
      },
    )
  }

  async function* items<T>(source: AsyncGenerator<Page<T>>): AsyncGenerator<T> {
    for await (const page of source) yield* page.items
  }

  const sig = (o?: { signal?: AbortSignal }) => (o?.signal ? { signal: o.signal } : {})

  async function moduleCommand(
    action: string,
    serviceid: Id,
    extra: WhmcsParams,
    o?: { signal?: AbortSignal },
  ) {
    requireId(action, 'serviceid', serviceid)
    await call(
      action,
      { serviceid, ...extra },
      { access: 'write', schema: ResultOnlySchema, target: String(serviceid), ...sig(o) },
    )
  }

  const client: WhmcsClient = {
    recorder,
    pageSize,
    call,
    pages,
    getClients: (params = {}, o) =>
      call('GetClients', { ...params }, { schema: GetClientsSchema, ...sig(o) }),
    iterateClients: (params = {}, o) =>
      items(
        pages<ClientSummary>('GetClients', { ...params }, { key: 'clients', schema: GetClientsSchema }, o),
      ),
    // async: a refused input rejects the promise like any other failure instead of throwing at the call.
    getClientsDetails: async (lookup, o = {}) => {
      if ('clientid' in lookup) requireId('GetClientsDetails', 'clientid', lookup.clientid)
      else requireEmail('GetClientsDetails', 'email', lookup.email)
      return call(
        'GetClientsDetails',
        { ...lookup, ...(o.stats ? { stats: true } : {}) },
        { schema: GetClientsDetailsSchema, ...sig(o) },
      )
    },
    getClientsProducts: (params = {}, o) =>
      call('GetClientsProducts', { ...params }, { schema: GetClientsProductsSchema, ...sig(o) }),
    clientsProductsPages: (params = {}, o) =>
      pages<WhmcsService>(
        'GetClientsProducts',
        { ...params },
        { key: SERVICE_PAGE_KEYS.list, schema: SERVICE_PAGE_KEYS.schema },
        o,
      ),
    syncServicePages: (params = {}, o) =>
      pages<WhmcsSyncService>(
        'GetClientsProducts',
        { ...params },
        { key: 'products', schema: GetClientsProductsSyncSchema },
        o,
      ),
    iterateClientsProducts: (params = {}, o) => items(client.clientsProductsPages(params, o)),
    getProducts: (params = {}, o) => {
      const { pid, ...rest } = params
      const wire: WhmcsParams = { ...rest }
      if (pid !== undefined) wire.pid = Array.isArray(pid) ? pid.join(',') : (pid as Id)
      return call('GetProducts', wire, { schema: GetProductsSchema, ...sig(o) })
    },
    getInvoices: (params = {}, o) =>
      call('GetInvoices', { ...params }, { schema: GetInvoicesSchema, ...sig(o) }),
    iterateInvoices: (params = {}, o) =>
      items(
        pages<WhmcsInvoice>('GetInvoices', { ...params }, { key: 'invoices', schema: GetInvoicesSchema }, o),
      ),
    getOrders: (params = {}, o) => call('GetOrders', { ...params }, { schema: GetOrdersSchema, ...sig(o) }),
    iterateOrders: (params = {}, o) =>
      items(pages<WhmcsOrder>('GetOrders', { ...params }, { key: 'orders', schema: GetOrdersSchema }, o)),
    getUsers: (params = {}, o) => call('GetUsers', { ...params }, { schema: GetUsersSchema, ...sig(o) }),
    iterateUsers: (params = {}, o) =>
      items(pages<WhmcsUser>('GetUsers', { ...params }, { key: 'users', schema: GetUsersSchema }, o)),
    getCredits: async (clientid, o) => {
      requireId('GetCredits', 'clientid', clientid)
      return call('GetCredits', { clientid }, { schema: GetCreditsSchema, ...sig(o) })
    },
    getHealthStatus: (o = {}) =>
      call('GetHealthStatus', o.fetchStatus ? { fetchStatus: true } : {}, {
        schema: GetHealthStatusSchema,
        ...sig(o),
      }),
    whmcsDetails: async (o) => {
      const r = await call('WhmcsDetails', {}, { schema: WhmcsDetailsSchema, ...sig(o) })
      return { version: r.whmcs.version, canonicalversion: r.whmcs.canonicalversion }
    },
    addBillableItem: async (params, o) => {
      const A = 'AddBillableItem'
      requireId(A, 'clientid', params.clientid)
      requireText(A, 'description', params.description)
      requireAmount(A, 'amount', params.amount)
      requireDate(A, 'duedate', params.duedate)
      if (params.quantity !== undefined) requireAmount(A, 'quantity', params.quantity)
      const r = await call(
        A,
        { unit: 'quantity', ...params },
        {
          access: 'write',
          schema: AddBillableItemSchema,
          dryRunResult: { billableid: '0' },
          target: String(params.clientid),
          ...sig(o),
        },
      )
      return { billableid: r.billableid }
    },
    updateClientProduct: async (params, o) => {
      const A = 'UpdateClientProduct'
      requireId(A, 'serviceid', params.serviceid)
      requireDate(A, 'nextduedate', params.nextduedate)
      const { assignedips, ...rest } = params
      const wire = withPhpArrays(rest, ['customfields', 'configoptions'])
      if (assignedips !== undefined)
        wire.assignedips = Array.isArray(assignedips) ? assignedips.join('\n') : (assignedips as string)
      if (typeof params.servicepassword === 'string') recorder.redactor.addValue(params.servicepassword)
      const r = await call(A, wire, {
        access: 'write',
        schema: UpdateClientProductSchema,
        dryRunResult: { serviceid: String(params.serviceid) },
        target: String(params.serviceid),
        ...sig(o),
      })
      return { serviceid: r.serviceid }
    },
    addClient: async (params, o) => {
      const A = 'AddClient'
      for (const f of [
        'firstname',
        'lastname',
        'email',
        'address1',
        'city',
        'state',
        'postcode',
        'country',
        'phonenumber',
      ] as const)
        requireText(A, f, params[f])
      requireEmail(A, 'email', params.email)
      if (typeof params.password2 === 'string') recorder.redactor.addValue(params.password2)
      const r = await call(A, withPhpArrays(params, ['customfields']), {
        access: 'write',
        schema: AddClientSchema,
        dryRunResult: { clientid: '0' },
        ...sig(o),
      })
      return { clientid: r.clientid }
    },
    updateClient: async (params, o) => {
      const A = 'UpdateClient'
      if (params.clientid !== undefined) requireId(A, 'clientid', params.clientid)
      else requireEmail(A, 'clientemail', params.clientemail)
      if (params.email !== undefined) requireEmail(A, 'email', params.email)
      const r = await call(A, withPhpArrays(params, ['customfields']), {
        access: 'write',
        schema: UpdateClientSchema,
        dryRunResult: { clientid: String(params.clientid ?? '0') },
        ...sig(o),
      })
      return { clientid: r.clientid }
    },
    addOrder: async (params, o) => {
      const A = 'AddOrder'
      requireId(A, 'clientid', params.clientid)
      requireText(A, 'paymentmethod', params.paymentmethod)
      if (params.items.length === 0)
        throw new ValidationError('WHMCS AddOrder: at least one item is required', [
          { path: 'items', message: 'is empty' },
        ])
      params.items.forEach((item, i) => {
        requireId(A, `items.${i}.pid`, item.pid)
      })
      // Every per-item parameter is an array indexed by item, so `pid[1]` and `billingcycle[1]`
      // describe the same product. An item without a value still gets an empty slot.
      const column = <K extends keyof AddOrderItem>(
        key: K,
        map?: (v: NonNullable<AddOrderItem[K]>) => FormValue,
      ) =>
        params.items.some((item) => item[key] !== undefined)
          ? params.items.map((item) => {
              const v = item[key]
              return v === undefined ? '' : map ? map(v as NonNullable<AddOrderItem[K]>) : (v as FormValue)
            })
          : undefined
      const wire: WhmcsParams = {
        clientid: params.clientid,
        paymentmethod: params.paymentmethod,
        pid: params.items.map((i) => i.pid),
        billingcycle: column('billingcycle'),
        domain: column('domain'),
        qty: column('qty'),
        priceoverride: column('priceoverride'),
        customfields: column('customfields', (v) => new PhpArray(v)),
        configoptions: column('configoptions', (v) => new PhpArray(v)),
        promocode: params.promocode,
        noinvoice: params.noinvoice,
        noinvoiceemail: params.noinvoiceemail,
        noemail: params.noemail,
      }
      return call(A, wire, {
        access: 'write',
        schema: AddOrderSchema,
        dryRunResult: { orderid: '0', serviceids: '' },
        ...sig(o),
      })
    },
    acceptOrder: async (params, o) => {
      requireId('AcceptOrder', 'orderid', params.orderid)
      if (typeof params.servicepassword === 'string') recorder.redactor.addValue(params.servicepassword)
      await call(
        'AcceptOrder',
        { ...params },
        { access: 'write', schema: ResultOnlySchema, target: String(params.orderid), ...sig(o) },
      )
    },
    addCredit: async (params, o) => {
      const A = 'AddCredit'
      requireId(A, 'clientid', params.clientid)
      requireText(A, 'description', params.description)
      requireAmount(A, 'amount', params.amount)
      requireDate(A, 'date', params.date)
      const r = await call(
        A,
        { ...params },
        {
          access: 'write',
          schema: AddCreditSchema,
          dryRunResult: { newbalance: '0.00' },
          target: String(params.clientid),
          ...sig(o),
        },
      )
      return { newbalance: r.newbalance }
    },
    moduleCreate: (serviceid, o) => moduleCommand('ModuleCreate', serviceid, {}, o),
    moduleSuspend: (serviceid, o = {}) =>
      moduleCommand('ModuleSuspend', serviceid, o.reason ? { suspendreason: o.reason } : {}, o),
    moduleUnsuspend: (serviceid, o) => moduleCommand('ModuleUnsuspend', serviceid, {}, o),
    moduleTerminate: (serviceid, o) => moduleCommand('ModuleTerminate', serviceid, {}, o),
    moduleChangePw: async (serviceid, password, o) => {
      requireText('ModuleChangePw', 'servicepassword', password)
      recorder.redactor.addValue(password)
      return moduleCommand('ModuleChangePw', serviceid, { servicepassword: password }, o)
    },
    moduleChangePackage: (serviceid, o) => moduleCommand('ModuleChangePackage', serviceid, {}, o),
    get authBlockedUntil() {
      return transport.blockedUntil
    },
    resetAuthFailure: () => transport.resetAuthFailure(),
    async close() {
      await http.close()
    },
  }
  return client
}

export { isNotSent }
export function isWhmcsAuthFailure(error: unknown): boolean {
  return isPanelkitError(error) && error.kind === 'AUTH'
}
