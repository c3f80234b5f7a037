import { createHash } from 'node:crypto'
import {
  type CallRecorder,
  ConflictError,
  defineConnector,
  definePipeline,
  isPanelkitError,
  NotFoundError,
  type OptionChoice,
  type Server,
  type ServiceContext,
  type SettingsOf,
  setting,
  ValidationError,
} from '@panelkit/core'
import { createTlsAgent, type TlsOptions } from '@panelkit/core/http'
import type { Agent, Dispatcher } from 'undici'
import { z } from 'zod'
import { createOAuth2TokenCache, type OAuth2TokenCache } from '../auth.ts'
import { type ComputeStacksClient, createComputeStacksClient } from '../client.ts'
import { addDecimals, roundDecimal, toDecimalString } from '../decimal.ts'
import { buildAccountEmail, isAccountEmail } from '../email.ts'
import type { User } from '../schemas.ts'

/**
 * The ComputeStacks account product: one billing service = one ComputeStacks user, tied to the service
 * by `labels.whmcs.service_id` (a JSON number, so `find_by_label` can find it) and `external_id`.
 * Every operation finds the account through that tie first, so a repeated create finds the account it
 * made instead of failing on "Email has already been taken" as ComputeStacks' own module does.
 */

/** Transport options a server may carry in `server.options`. */
export const ServerOptionsSchema = z.object({
  /** PEM CA certificate to trust (self-signed portals). */
  ca: z.string().optional(),
  /** SHA-256 fingerprint of the portal's certificate: only that certificate is trusted. */
  fingerprint: z.string().optional(),
  /** Accept any certificate (a test portal only; warns once). */
  insecure: z
    .union([z.boolean(), z.enum(['true', '1', 'false', '0', ''])])
    .optional()
    .transform((v) => v === true || v === 'true' || v === '1'),
  apiVersion: z.coerce.number().int().positive().optional(),
  /** `basic` (API key and secret, the default) or `oauth2`. */
  auth: z.enum(['basic', 'oauth2']).default('basic'),
  oauthClientId: z.string().optional(),
  oauthClientSecret: z.string().optional(),
  /** `password` (API key and secret as the user; admin endpoints work) or `client_credentials`. */
  oauthGrant: z.enum(['password', 'client_credentials']).default('password'),
  timeoutMs: z.coerce.number().int().positive().optional(),
  perPage: z.coerce.number().int().min(1).max(1000).optional(),
})

interface Resources {
  dispatchers: Map<string, Agent>
  /** OAuth2 tokens per server and credential set, so invocations reuse a token until it nearly expires. */
  tokens: Map<string, OAuth2TokenCache>
}

const settings = {
  userGroup: setting.dropdown({
    label: 'User Group',
    description:
      'The ComputeStacks user group (and so billing plan) for accounts of this product; empty means the default group',
    loader: (ctx) => loadUserGroupChoices(ctx),
  }),
  applyCredit: setting.yesNo({
    label: 'Apply Credit',
    description:
      "Turn the order's one-time fee into account credit when it is paid (done on the billing side)",
    default: true,
  }),
  terminateAction: setting.dropdown({
    label: 'On terminate',
    description: 'ComputeStacks documents suspend-only terminations; delete removes the user and its data',
    options: [
      { value: 'suspend', label: 'Suspend the account' },
      { value: 'delete', label: 'Delete the account' },
    ],
    default: 'suspend',
  }),
  emailDomain: setting.text({
    label: 'Account email domain',
    description:
      'When the service username is not an email, accounts get {name}{client}-{service}@this domain (default: the server host name)',
    pattern: /^[A-Za-z0-9.-]+$/,
    maxLength: 253,
  }),
}

export type ComputeStacksAccountSettings = SettingsOf<typeof settings>

function parseServerOptions(server: Server) {
  const parsed = ServerOptionsSchema.safeParse(server.options ?? {})
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: ['server', 'options', ...i.path.map(String)].join('.'),
      message: i.message,
    }))
    throw new ValidationError(
      `Invalid server options: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    )
  }
  return parsed.data
}

function tlsOf(options: z.infer<typeof ServerOptionsSchema>): TlsOptions {
  const tls: TlsOptions = {}
  if (options.ca) tls.ca = options.ca
  if (options.fingerprint) tls.fingerprint = options.fingerprint
  if (options.insecure) tls.insecure = true
  return tls
}

function dispatcherFor(
  resources: Resources | undefined,
  server: Server,
  tls: TlsOptions,
): Dispatcher | undefined {
  if (!resources) return undefined
  const key = `${server.hostname}:${server.port ?? 443}:${JSON.stringify(tls)}`
  let agent = resources.dispatchers.get(key)
  if (!agent) {
    agent = createTlsAgent(tls, { system: 'ComputeStacks', keepAliveTimeoutMs: 10_000, connections: 8 })
    resources.dispatchers.set(key, agent)
  }
  return agent
}

/** A client for one invocation, speaking through the invocation's recorder and the instance's pooled dispatcher. */
export function clientForServer(
  server: Server,
  calls: CallRecorder,
  resources?: Resources,
  extra: { onDeprecated?: (info: { apiVersion: number; path: string }) => void } = {},
): ComputeStacksClient {
  const options = parseServerOptions(server)
  if (!server.username || !server.password) {
    throw new ValidationError('The server needs the API key as username and the API secret as password', [
      { path: server.username ? 'server.password' : 'server.username', message: 'is required' },
    ])
  }
  if (options.auth === 'oauth2' && (!options.oauthClientId || !options.oauthClientSecret)) {
    throw new ValidationError('OAuth2 needs server.options.oauthClientId and oauthClientSecret', [
      { path: 'server.options.oauthClientId', message: 'is required for OAuth2' },
    ])
  }
  if (options.oauthClientSecret) calls.redactor.addValue(options.oauthClientSecret)
  const tls = tlsOf(options)
  const dispatcher = dispatcherFor(resources, server, tls)
  let tokenCache: OAuth2TokenCache | undefined
  if (options.auth === 'oauth2' && resources) {
    // Keyed by a digest, so the map holds no secret in the clear.
    const key = createHash('sha256')
      .update(
        JSON.stringify([
          server.hostname,
          server.port ?? 443,
          options.oauthClientId,
          options.oauthClientSecret,
          options.oauthGrant,
          server.username,
          server.password,
        ]),
      )
      .digest('hex')
    tokenCache = resources.tokens.get(key)
    if (!tokenCache) {
      tokenCache = createOAuth2TokenCache()
      resources.tokens.set(key, tokenCache)
    }
  }
  return createComputeStacksClient({
    host: server.hostname,
    ...(server.port !== undefined ? { port: server.port } : {}),
    ...(server.secure === false ? { secure: false } : {}),
    auth:
      options.auth === 'oauth2'
        ? {
            type: 'oauth2',
            clientId: options.oauthClientId as string,
            clientSecret: options.oauthClientSecret as string,
            grant: options.oauthGrant,
            apiKey: server.username,
            apiSecret: server.password,
            ...(tokenCache ? { tokenCache } : {}),
          }
        : { type: 'basic', apiKey: server.username, apiSecret: server.password },
    recorder: calls,
    ...(dispatcher ? { dispatcher } : { tls }),
    ...(options.apiVersion !== undefined ? { apiVersion: options.apiVersion } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.perPage !== undefined ? { perPage: options.perPage } : {}),
    ...(extra.onDeprecated ? { onDeprecated: extra.onDeprecated } : {}),
  })
}

type Service = ServiceContext<ComputeStacksAccountSettings>

/**
 * The account's email: the service username when ComputeStacks takes it as an email (as its own module
 * does), otherwise `{name}{clientId}-{serviceId}@{emailDomain or server host}` (see `buildAccountEmail`).
 */
export function accountEmail(service: Service, server: Server): string {
  return buildAccountEmail({
    username: service.username,
    clientEmail: service.client.email,
    clientId: service.clientId,
    serviceId: service.serviceId,
    emailDomain: service.settings.emailDomain,
    serverHost: server.hostname,
  })
}

/** `external_id` as a tie: null and `""` (the value ComputeStacks' docs show for untied users) mean none. */
function externalTie(user: User): string | undefined {
  const value = user.externalId?.trim() ?? ''
  return value === '' ? undefined : value
}

/**
 * Who an account belongs to, as far as it says: its `labels.whmcs.service_id`, or nothing. `external_id`
 * alone names no owner: it is a free, non-unique text field, and ComputeStacks' own v1 module stored the
 * WHMCS *client* id there (protocol notes 5.1), so a service id equal to an old client id proves nothing.
 */
export function labelledService(user: User): string | undefined {
  return user.whmcs.serviceId
}

/**
 * True only when the account is proven to be this service's:
 * - its `labels.whmcs.service_id` is the service id (the tie create and `linkAccount` write, and the one
 *   ComputeStacks' own v2/v3 module writes), or
 * - it carries no WHMCS label, its `external_id` is the service id **and** its email is the service's
 *   account email (an account made for this service by a module that wrote only `external_id`).
 */
export function ownedBy(user: User, serviceId: string, email: string): boolean {
  const labelled = labelledService(user)
  if (labelled !== undefined) return labelled === serviceId
  return externalTie(user) === serviceId && user.email.toLowerCase() === email.trim().toLowerCase()
}

export interface Located {
  user?: User
  /** An account with the service's email that is not proven to be the service's. */
  foreign?: User
}

/**
 * Finds the service's account and proves it is the service's: by WHMCS label (`find_by_label`, which
 * only matches the JSON number create writes), then by the service's email with `ownedBy`. There is no
 * lookup by `find_by_external_id`: that field proves nothing on its own (see `labelledService`).
 */
export async function locateAccount(
  client: ComputeStacksClient,
  service: Service,
  email: string,
  options: { balance?: boolean; signal?: AbortSignal } = {},
): Promise<Located> {
  const serviceId = service.serviceId
  if (/^\d{1,15}$/.test(serviceId)) {
    const byLabel = await client.users.find({ whmcsServiceId: serviceId }, options)
    if (byLabel && ownedBy(byLabel, serviceId, email)) return { user: byLabel }
  }
  const byEmail = await client.users.findByEmail(email, options)
  if (byEmail) return ownedBy(byEmail, serviceId, email) ? { user: byEmail } : { foreign: byEmail }
  return {}
}

/** Who the foreign account says it belongs to, for messages. */
function ownerOf(user: User): string {
  const labelled = labelledService(user)
  if (labelled !== undefined) return `service ${labelled}`
  const external = externalTie(user)
  return external !== undefined
    ? `nothing proven (external_id ${JSON.stringify(external)} alone is no tie)`
    : 'no service'
}

/** The CONFLICT every operation gives for an account that has the service's email but is not its own. */
function notTiedError(found: User, service: Service, verb: string): ConflictError {
  const labelled = labelledService(found)
  const external = externalTie(found)
  const replace =
    external !== undefined && external !== service.serviceId ? ', "replaceExternalId": true' : ''
  const wayOut =
    labelled === undefined
      ? ` If it is this service's account, tie it with the linkAccount action ({ "accountId": ${found.id}${replace} }) and ${verb} again.`
      : ''
  return new ConflictError(
    `The ComputeStacks account ${found.email} (user ${found.id}) is not tied to service ${service.serviceId}: it belongs to ${ownerOf(found)}.${wayOut}`,
    {
      details: {
        userId: found.id,
        ownerServiceId: labelled ?? null,
        externalId: found.externalId,
        ...(labelled === undefined ? { wayOut: 'linkAccount' } : {}),
      },
    },
  )
}

async function requireAccount(
  client: ComputeStacksClient,
  service: Service,
  email: string,
  verb: string,
  options: { balance?: boolean; signal?: AbortSignal } = {},
): Promise<User> {
  const found = await locateAccount(client, service, email, options)
  if (found.user) return found.user
  if (found.foreign) throw notTiedError(found.foreign, service, verb)
  throw new NotFoundError(`No ComputeStacks account for service ${service.serviceId} (${email})`)
}

/** Resolves the User Group setting (an id from the dropdown, or a group name) to a group id. */
async function resolveUserGroup(
  client: ComputeStacksClient,
  value: string | undefined,
  signal?: AbortSignal,
): Promise<number | undefined> {
  const wanted = value?.trim() ?? ''
  if (wanted === '') return undefined
  if (/^\d+$/.test(wanted)) return Number(wanted)
  for await (const group of client.userGroups.list({ signal: signal as AbortSignal })) {
    if (group.name.toLowerCase() === wanted.toLowerCase()) return group.id
  }
  throw new ValidationError(`There is no ComputeStacks user group named ${JSON.stringify(wanted)}`, [
    { path: 'service.settings.userGroup', message: 'names no user group on the server' },
  ])
}

async function defaultUserGroup(
  client: ComputeStacksClient,
  signal?: AbortSignal,
): Promise<number | undefined> {
  for await (const group of client.userGroups.list(signal ? { signal } : {}))
    if (group.isDefault) return group.id
  return undefined
}

/** Checks what ComputeStacks would refuse, before anything is sent. */
function checkServiceForCreate(service: Service): void {
  const issues: { path: string; message: string }[] = []
  if (service.client.firstName.trim() === '')
    issues.push({ path: 'service.client.firstName', message: 'is required by ComputeStacks' })
  if (service.client.lastName.trim() === '')
    issues.push({ path: 'service.client.lastName', message: 'is required by ComputeStacks' })
  checkPassword(service.password, issues, false)
  if (issues.length > 0) {
    throw new ValidationError(
      `Invalid input: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
      issues,
    )
  }
}

function checkPassword(
  password: string | undefined,
  issues: { path: string; message: string }[],
  required: boolean,
) {
  if (password === undefined || password === '') {
    if (required) issues.push({ path: 'service.password', message: 'is required' })
    return
  }
  if (password.length < 8) issues.push({ path: 'service.password', message: 'must be at least 8 characters' })
  if (password.length > 128)
    issues.push({ path: 'service.password', message: 'must be at most 128 characters' })
}

/** The labels that tie an account to its service (numbers where the ids are numeric). */
function tie(service: Service) {
  return { clientId: service.clientId, serviceId: service.serviceId }
}

interface CreateData extends Record<string, unknown> {
  email: string
  accountId?: string
  created?: boolean
  userGroupId?: number | null
}

interface CreateContext {
  client: ComputeStacksClient
  service: Service
  wantedGroup: number | undefined
  signal: AbortSignal
}

/** Create as a resumable pipeline; each step re-reads the server, so a resumed run repeats nothing harmful. */
const createPipeline = definePipeline<CreateData, CreateContext>({
  name: 'computestacks-create-account',
  title: 'Create ComputeStacks account',
  initialState: 'new',
  steps: [
    {
      name: 'create-account',
      label: 'Find or create the account',
      state: 'account-exists',
      async run({ data, context }) {
        const { client, service, wantedGroup, signal } = context
        const found = await locateAccount(client, service, data.email, { signal })
        if (found.user) {
          return {
            status: 'skipped',
            reason: 'the service already has its account',
            data: {
              accountId: String(found.user.id),
              created: false,
              userGroupId: found.user.userGroupId,
              email: found.user.email,
            },
          }
        }
        if (found.foreign) throw notTiedError(found.foreign, service, 'create')
        const client_ = service.client
        try {
          const user = await client.users.create(
            {
              email: data.email,
              firstName: client_.firstName,
              lastName: client_.lastName,
              ...(service.password ? { password: service.password } : {}),
              externalId: service.serviceId,
              ...(client_.currency ? { currency: client_.currency } : {}),
              ...(client_.company ? { companyName: client_.company } : {}),
              ...(client_.phone ? { phone: client_.phone } : {}),
              ...(client_.country ? { country: client_.country } : {}),
              // ComputeStacks' `billing_address` setting makes address1, city, country (and state in
              // the US and Canada) required on create (`User#user_address`); send whatever we have.
              ...(client_.address1 ? { address1: client_.address1 } : {}),
              ...(client_.address2 ? { address2: client_.address2 } : {}),
              ...(client_.city ? { city: client_.city } : {}),
              ...(client_.state ? { state: client_.state } : {}),
              ...(client_.postcode ? { zip: client_.postcode } : {}),
              ...(wantedGroup !== undefined ? { userGroupId: wantedGroup } : {}),
              whmcs: tie(service),
              skipEmailConfirm: true,
            },
            { signal },
          )
          return {
            status: 'done',
            data: {
              accountId: String(user.id),
              created: true,
              userGroupId: user.userGroupId,
              email: user.email,
            },
          }
        } catch (error) {
          // Someone created it between our lookup and our create: decide again who owns it.
          if (isPanelkitError(error) && error.kind === 'CONFLICT') {
            const again = await locateAccount(client, service, data.email, { signal })
            if (again.user) {
              return {
                status: 'skipped',
                reason: 'created concurrently for this service',
                data: {
                  accountId: String(again.user.id),
                  created: false,
                  userGroupId: again.user.userGroupId,
                },
              }
            }
          }
          throw error
        }
      },
    },
    {
      name: 'apply-user-group',
      label: 'Put the account in the product user group',
      state: 'grouped',
      async run({ data, context }) {
        const { client, wantedGroup, signal } = context
        if (wantedGroup === undefined || data.userGroupId === wantedGroup || data.accountId === undefined) {
          return {
            status: 'skipped',
            reason:
              wantedGroup === undefined
                ? 'the product names no user group'
                : 'already in the product user group',
          }
        }
        await client.users.update(Number(data.accountId), { userGroupId: wantedGroup }, { signal })
        return { status: 'done', data: { userGroupId: wantedGroup } }
      },
    },
  ],
})

/**
 * The service's account read with its balance: lookups by label or external id do not carry the
 * balance, so the account is read once more with it.
 */
async function accountWithBalance(ctx: {
  server: Server
  calls: CallRecorder
  resources: Resources
  service: Service
  signal: AbortSignal
}) {
  const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
  const user = await requireAccount(client, ctx.service, accountEmail(ctx.service, ctx.server), 'try', {
    signal: ctx.signal,
  })
  const full = await client.users.get(user.id, { balance: true, signal: ctx.signal })
  return { client, full }
}

async function setActive(
  ctx: { server: Server; calls: CallRecorder; resources: Resources; service: Service; signal: AbortSignal },
  active: boolean,
) {
  const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
  const user = await requireAccount(
    client,
    ctx.service,
    accountEmail(ctx.service, ctx.server),
    active ? 'unsuspend' : 'suspend',
    {
      signal: ctx.signal,
    },
  )
  if (user.active === active) return { changed: false, details: { userId: user.id } }
  // The same PATCH ComputeStacks' module sends, re-stating the tie so an imported account stays linked.
  await client.users.update(
    user.id,
    { active, externalId: ctx.service.serviceId, whmcs: tie(ctx.service) },
    { signal: ctx.signal },
  )
  return { changed: true, details: { userId: user.id } }
}

/** ISO time → WHMCS's `Y-m-d H:i:s` (UTC), the `created` form Server Sync imports. */
export function whmcsDateTime(iso: string | null): string | null {
  if (iso === null) return null
  const at = new Date(iso)
  if (Number.isNaN(at.getTime())) return null
  return at.toISOString().slice(0, 19).replace('T', ' ')
}

function currencyName(code: string, symbol: string | null): string {
  if (code === '') return symbol ?? ''
  return symbol && symbol !== code ? `${code} (${symbol})` : code
}

/** `$12.50` as ComputeStacks' module shows money (`currency_symbol` and two decimals); the code without a symbol. */
function money(value: string, symbol: string | null, code: string): string {
  const amount = roundDecimal(value, 2)
  if (symbol) return amount.startsWith('-') ? `-${symbol}${amount.slice(1)}` : `${symbol}${amount}`
  return code ? `${amount} ${code}` : amount
}

/**
 * The label under which panelkit records deposits credited for this account (`recordDeposit`): one top
 * level key of its own, because the server's `merge_labels` replaces top-level keys (`User#combine_labels`)
 * and must never touch `whmcs`.
 */
export const DEPOSIT_LABEL = 'panelkit_deposits'

/** The deposits recorded on the account: reference → exact amount, and their sum. */
function depositLabel(user: User): { amount: string; entries: Record<string, string> } | undefined {
  const raw = user.labels[DEPOSIT_LABEL]
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return undefined
  const entries: Record<string, string> = {}
  let amount = '0'
  for (const [reference, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string' && typeof value !== 'number') continue
    try {
      const exact = toDecimalString(value)
      entries[reference] = exact
      amount = addDecimals(amount, exact)
    } catch {
      // Not a number: someone else's data under our key; shown as nothing rather than guessed.
    }
  }
  return Object.keys(entries).length > 0 ? { amount, entries } : undefined
}

const RecordDepositParamsSchema = z.object({
  /** What makes the deposit unique (the ledger's deposit id, e.g. `whmcs-order-42`). */
  reference: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a plain id'),
  /** The amount credited for this service, an exact decimal. */
  amount: z.string().regex(/^\d{1,12}(\.\d{1,6})?$/, 'must be a decimal amount like 12.50'),
})

/**
 * Records on the account that a deposit was credited (on the billing side: ComputeStacks itself never
 * learns of the credit, as with its own module), so the client area can show it. Idempotent.
 */
async function recordDeposit(
  ctx: { server: Server; calls: CallRecorder; resources: Resources; service: Service; signal: AbortSignal },
  params: z.output<typeof RecordDepositParamsSchema>,
) {
  const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
  const user = await requireAccount(
    client,
    ctx.service,
    accountEmail(ctx.service, ctx.server),
    'record the deposit',
    { signal: ctx.signal },
  )
  const amount = toDecimalString(params.amount)
  const current = depositLabel(user)?.entries ?? {}
  if (current[params.reference] === amount) {
    return {
      message: `Deposit ${params.reference} was already recorded`,
      data: { changed: false, userId: user.id },
    }
  }
  await client.users.update(
    user.id,
    { mergeLabels: { [DEPOSIT_LABEL]: { ...current, [params.reference]: amount } } },
    { signal: ctx.signal },
  )
  return {
    message: `Recorded deposit ${params.reference} (${amount}) on account ${user.email}`,
    data: { changed: true, userId: user.id },
  }
}

/** Dropdown choices for the User Group setting: every group on every page. */
export async function loadUserGroupChoices(ctx: {
  server: Server
  signal: AbortSignal
  calls: CallRecorder
}): Promise<OptionChoice[]> {
  const client = clientForServer(ctx.server, ctx.calls)
  try {
    const choices: OptionChoice[] = []
    for await (const group of client.userGroups.list({ signal: ctx.signal })) {
      const name = group.name.charAt(0).toUpperCase() + group.name.slice(1)
      choices.push({ value: String(group.id), label: group.isDefault ? `${name} (default)` : name })
    }
    return choices
  } finally {
    await client.close()
  }
}

const LinkParamsSchema = z
  .object({
    /** The ComputeStacks user id, as `listAccounts` gives it in `accountId`. */
    accountId: z
      .union([z.string().regex(/^\d+$/, 'must be a user id'), z.number().int().positive()])
      .optional(),
    /** Or the account's email (looked up lower-cased first, as ComputeStacks stores it). */
    email: z
      .string()
      .refine(isAccountEmail, 'must be an email ComputeStacks accepts (one @, no spaces)')
      .optional(),
    /**
     * The account carries another, unlabelled `external_id` (for example a WHMCS client id written by
     * ComputeStacks' v1 module): replace it. Without this, such an account is a CONFLICT.
     */
    replaceExternalId: z.boolean().optional(),
  })
  .refine((p) => p.accountId !== undefined || p.email !== undefined, 'give accountId or email')

/**
 * Ties an imported account (one `listAccounts` returned without a service id) to this service: sets
 * `external_id` and `labels.whmcs`, the same tie create writes, so every later operation finds it.
 */
async function linkAccount(
  ctx: { server: Server; calls: CallRecorder; resources: Resources; service: Service; signal: AbortSignal },
  params: z.output<typeof LinkParamsSchema>,
) {
  const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
  const serviceId = ctx.service.serviceId
  const user =
    params.accountId !== undefined
      ? await client.users.find(Number(params.accountId), { signal: ctx.signal })
      : await client.users.findByEmail(params.email as string, { signal: ctx.signal })
  if (!user) {
    throw new NotFoundError(
      `There is no ComputeStacks account ${params.accountId !== undefined ? `with id ${params.accountId}` : params.email}`,
    )
  }
  if (user.isAdmin) {
    throw new ConflictError(`ComputeStacks user ${user.id} is an admin; admins are not tied to services`)
  }
  const labelled = labelledService(user)
  if (labelled !== undefined && labelled !== serviceId) {
    throw new ConflictError(
      `The ComputeStacks account ${user.email} (user ${user.id}) is tied to service ${labelled}, not ${serviceId}`,
      { details: { userId: user.id, ownerServiceId: labelled } },
    )
  }
  const external = externalTie(user)
  if (
    labelled === undefined &&
    external !== undefined &&
    external !== serviceId &&
    !params.replaceExternalId
  ) {
    throw new ConflictError(
      `The ComputeStacks account ${user.email} (user ${user.id}) carries external_id ${JSON.stringify(external)} (another service, or a WHMCS client id written by ComputeStacks' v1 module); link it with replaceExternalId: true if it is this service's account`,
      { details: { userId: user.id, externalId: external } },
    )
  }
  // One account per service: another account already tied to it would make lookups ambiguous.
  const current = await locateAccount(client, ctx.service, accountEmail(ctx.service, ctx.server), {
    signal: ctx.signal,
  })
  if (current.user && current.user.id !== user.id) {
    throw new ConflictError(
      `Service ${serviceId} already has the ComputeStacks account ${current.user.email} (user ${current.user.id})`,
      { details: { userId: current.user.id } },
    )
  }
  const tied =
    user.whmcs.serviceId === serviceId &&
    user.externalId === serviceId &&
    user.whmcs.clientId === String(ctx.service.clientId)
  if (!tied) {
    await client.users.update(
      user.id,
      { externalId: serviceId, whmcs: tie(ctx.service) },
      { signal: ctx.signal },
    )
  }
  return {
    message: tied
      ? `Account ${user.email} was already linked to service ${serviceId}`
      : `Linked account ${user.email} (user ${user.id}) to service ${serviceId}`,
    data: { accountId: String(user.id), username: user.email, changed: !tied },
  }
}

/** One billing service = one ComputeStacks user (id `computestacks-account`). */
export const computeStacksAccountConnector = defineConnector({
  id: 'computestacks-account',
  metadata: {
    displayName: 'ComputeStacks Account',
    system: 'computestacks',
    description: 'One ComputeStacks user per service, in the user group of the product',
    defaultSecurePort: 443,
  },
  settings,
  secretKeys: ['api_secret', 'oauthClientSecret', 'password_confirmation', 'auth_token'],
  resources: (): Resources => ({ dispatchers: new Map(), tokens: new Map() }),
  async dispose(resources) {
    await Promise.all([...resources.dispatchers.values()].map((a) => a.close()))
    resources.dispatchers.clear()
    resources.tokens.clear()
  },
  actions: {
    recordDeposit: {
      label: 'Record a credited deposit on the account (shown in the client area)',
      audience: ['admin'],
      access: 'write',
      params: RecordDepositParamsSchema,
      run: (ctx, params) => recordDeposit(ctx, params as z.output<typeof RecordDepositParamsSchema>),
    },
    linkAccount: {
      label: 'Link an imported ComputeStacks account to this service',
      audience: ['admin'],
      access: 'write',
      params: LinkParamsSchema,
      run: (ctx, params) => linkAccount(ctx, params as z.output<typeof LinkParamsSchema>),
    },
  },
  operations: {
    async create(ctx) {
      checkServiceForCreate(ctx.service)
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const wantedGroup = await resolveUserGroup(client, ctx.settings.userGroup, ctx.signal)
      const email = accountEmail(ctx.service, ctx.server)
      const run = await ctx.runPipeline(createPipeline, {
        data: { email },
        context: { client, service: ctx.service, wantedGroup, signal: ctx.signal },
      })
      const data = run.checkpoint.data
      return {
        accountId: data.accountId ?? '',
        created: data.created ?? false,
        username: data.email,
        serverId: ctx.server.id ?? ctx.server.hostname,
        details: { email: data.email, userGroupId: data.userGroupId ?? null },
      }
    },
    suspend: (ctx) => setActive(ctx, false),
    unsuspend: (ctx) => setActive(ctx, true),
    async terminate(ctx) {
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const found = await locateAccount(client, ctx.service, accountEmail(ctx.service, ctx.server), {
        signal: ctx.signal,
      })
      const mode = ctx.settings.terminateAction
      // An account with the service's email that is not proven ours is a CONFLICT, as for suspend: it is
      // neither terminated nor reported as gone.
      if (found.foreign) throw notTiedError(found.foreign, ctx.service, 'terminate')
      if (!found.user) return { changed: false, details: { mode } }
      const user = found.user
      if (mode === 'delete') {
        try {
          await client.users.delete(user.id, { signal: ctx.signal })
        } catch (error) {
          if (isPanelkitError(error) && error.kind === 'NOT_FOUND')
            return { changed: false, details: { mode } }
          throw error
        }
        return { changed: true, details: { mode, userId: user.id } }
      }
      if (!user.active) return { changed: false, details: { mode, userId: user.id } }
      await client.users.update(user.id, { active: false }, { signal: ctx.signal })
      return { changed: true, details: { mode, userId: user.id } }
    },
    async changePassword(ctx) {
      const issues: { path: string; message: string }[] = []
      checkPassword(ctx.service.password, issues, true)
      if (issues.length > 0) {
        throw new ValidationError(
          `Invalid input: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
          issues,
        )
      }
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const user = await requireAccount(
        client,
        ctx.service,
        accountEmail(ctx.service, ctx.server),
        'change the password',
        {
          signal: ctx.signal,
        },
      )
      await client.users.update(
        user.id,
        {
          password: ctx.service.password as string,
          externalId: ctx.service.serviceId,
          whmcs: tie(ctx.service),
        },
        { signal: ctx.signal },
      )
      return { changed: true, details: { userId: user.id } }
    },
    async changePackage(ctx) {
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const user = await requireAccount(
        client,
        ctx.service,
        accountEmail(ctx.service, ctx.server),
        'change the package',
        {
          signal: ctx.signal,
        },
      )
      const wanted =
        (await resolveUserGroup(client, ctx.settings.userGroup, ctx.signal)) ??
        (await defaultUserGroup(client, ctx.signal))
      if (wanted === undefined || user.userGroupId === wanted) {
        return { changed: false, applied: [], details: { userId: user.id, userGroupId: user.userGroupId } }
      }
      await client.users.update(user.id, { userGroupId: wanted }, { signal: ctx.signal })
      return {
        changed: true,
        applied: ['userGroup'],
        details: { userId: user.id, from: user.userGroupId, to: wanted },
      }
    },
    async sso(ctx) {
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const user = await requireAccount(
        client,
        ctx.service,
        accountEmail(ctx.service, ctx.server),
        'sign in',
        {
          signal: ctx.signal,
        },
      )
      const token = await client.users.ssoToken(user.id, { signal: ctx.signal })
      ctx.redactor.addValue(token.token)
      const result: { url: string; expiresAt?: string } = {
        url: client.loginUrl(token, { admin: ctx.audience === 'admin' }),
      }
      if (token.expires) result.expiresAt = token.expires
      return result
    },
    async clientArea(ctx) {
      const { client, full } = await accountWithBalance(ctx)
      const currency = full.currency ?? ''
      const services = full.services
      const usage = full.unprocessedUsage ?? '0'
      const runRate = full.runRate ?? '0'
      const deposit = depositLabel(full)
      return {
        fields: [
          { key: 'status', label: 'Status', value: full.active ? 'active' : 'suspended' },
          { key: 'email', label: 'Login', value: full.email },
          { key: 'userGroup', label: 'Plan', value: full.userGroup?.name ?? null },
          { key: 'currency', label: 'Currency', value: currencyName(currency, full.currencySymbol) },
          { key: 'balance', label: 'Current usage', value: usage, unit: currency },
          // As ComputeStacks' module shows them: the currency symbol and two decimals.
          {
            key: 'balanceDisplay',
            label: 'Current usage',
            value: money(usage, full.currencySymbol, currency),
          },
          { key: 'runRate', label: 'Run rate', value: runRate, unit: `${currency}/month` },
          {
            key: 'runRateDisplay',
            label: 'Estimated monthly',
            value: money(runRate, full.currencySymbol, currency),
          },
          ...(deposit
            ? [
                {
                  key: 'depositCredit',
                  label: 'Deposit credited',
                  value: money(deposit.amount, full.currencySymbol, currency),
                },
              ]
            : []),
          { key: 'projects', label: 'Projects', value: services?.deployments ?? 0 },
          { key: 'services', label: 'Services', value: services?.containerServices ?? 0 },
          { key: 'containers', label: 'Containers', value: services?.containers ?? 0 },
        ],
        links: [{ label: 'Open the control panel', url: `${client.origin}/` }],
      }
    },
    async usage(ctx) {
      const { full } = await accountWithBalance(ctx)
      const currency = full.currency ?? ''
      const services = full.services
      return {
        collectedAt: new Date().toISOString(),
        metrics: [
          { name: 'unprocessed_usage', value: full.unprocessedUsage ?? '0', unit: currency },
          { name: 'run_rate', value: full.runRate ?? '0', unit: `${currency}/month` },
          { name: 'deployments', value: services?.deployments ?? 0, unit: 'count' },
          { name: 'container_services', value: services?.containerServices ?? 0, unit: 'count' },
          { name: 'containers', value: services?.containers ?? 0, unit: 'count' },
          { name: 'dns_zones', value: services?.dnsZones ?? 0, unit: 'count' },
        ],
      }
    },
    async listAccounts(ctx) {
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources)
      const seen = new Set<number>()
      const accounts = []
      for await (const user of client.users.list({ signal: ctx.signal })) {
        // Offset pagination can repeat a row when users are added while we walk the pages.
        if (user.isAdmin || seen.has(user.id)) continue
        seen.add(user.id)
        // Only the WHMCS label ties an account to a service; external_id alone proves nothing.
        const serviceId = labelledService(user)
        accounts.push({
          accountId: String(user.id),
          username: user.email,
          email: user.email,
          ...(serviceId !== undefined ? { serviceId } : {}),
          status: user.active ? ('active' as const) : ('suspended' as const),
          details: {
            // What WHMCS's Server Sync maps, named as ComputeStacks' module returns them from
            // ListAccounts: `product` is the user group id (matched against the product's User Group
            // setting) and `created` is `Y-m-d H:i:s`.
            product: user.userGroupId === null ? null : String(user.userGroupId),
            created: whmcsDateTime(user.createdAt),
            userGroupId: user.userGroupId,
            userGroup: user.userGroup?.name ?? null,
            createdAt: user.createdAt,
            clientId: user.whmcs.clientId ?? null,
            externalId: externalTie(user) ?? null,
            currency: user.currency,
            currencySymbol: user.currencySymbol,
          },
        })
      }
      return { accounts }
    },
    async testConnection(ctx) {
      const started = performance.now()
      let deprecated = false
      const client = clientForServer(ctx.server, ctx.calls, ctx.resources, {
        onDeprecated: () => {
          deprecated = true
        },
      })
      const version = await client.version({ signal: ctx.signal })
      // Locations need an admin credential: this is what proves the key and secret are fit for provisioning.
      const locations = await client.locations.list({ signal: ctx.signal })
      return {
        version: version.version,
        latencyMs: performance.now() - started,
        details: {
          apiVersion: client.apiVersion,
          apiVersionDeprecated: deprecated,
          apiAvailableVersions: version.apiAvailableVersions,
          locations: locations.map((l) => l.name),
        },
      }
    },
  },
})

/** @deprecated use `computeStacksAccountConnector` */
export const computestacksAccountConnector: typeof computeStacksAccountConnector =
  computeStacksAccountConnector

export type { Resources as ComputeStacksResources, Service as ComputeStacksService }
export { ownedBy as isTiedToService }
