import { z } from 'zod'
import { DecimalSchema, toDecimalString } from './decimal.ts'
import { isAccountEmail } from './email.ts'

/**
 * Response and request shapes of the admin API (ComputeStacks 9.3, the v51 user templates every
 * accepted version renders), validated at the edge and turned into camelCase objects.
 */

const nullableString = z
  .union([z.string(), z.number()])
  .nullable()
  .optional()
  .transform((v) => (v === undefined || v === null ? null : String(v)))
const IdRef = z.object({ id: z.number().int(), name: z.string().nullable().optional() }).transform((r) => ({
  id: r.id,
  name: r.name ?? '',
}))
const Labels = z
  .record(z.string(), z.unknown())
  .nullable()
  .optional()
  .transform((v) => v ?? {})

export const UserServicesSchema = z
  .object({
    deployments: z.number().int().optional(),
    containers: z.number().int().optional(),
    container_services: z.number().int().optional(),
    container_images: z.number().int().optional(),
    container_registries: z.number().int().optional(),
    dns_zones: z.number().int().optional(),
  })
  .transform((s) => ({
    deployments: s.deployments ?? 0,
    containers: s.containers ?? 0,
    containerServices: s.container_services ?? 0,
    containerImages: s.container_images ?? 0,
    containerRegistries: s.container_registries ?? 0,
    dnsZones: s.dns_zones ?? 0,
  }))
export type UserServices = z.output<typeof UserServicesSchema>

/** The WHMCS ids a user carries in `labels.whmcs`, as strings (they are stored as JSON numbers). */
export function whmcsLabels(labels: Record<string, unknown>): { clientId?: string; serviceId?: string } {
  const whmcs = labels.whmcs
  if (!whmcs || typeof whmcs !== 'object') return {}
  const out: { clientId?: string; serviceId?: string } = {}
  const { client_id: clientId, service_id: serviceId } = whmcs as Record<string, unknown>
  if (typeof clientId === 'number' || (typeof clientId === 'string' && clientId !== ''))
    out.clientId = String(clientId)
  if (typeof serviceId === 'number' || (typeof serviceId === 'string' && serviceId !== ''))
    out.serviceId = String(serviceId)
  return out
}

export const UserWireSchema = z.object({
  id: z.number().int(),
  fname: z.string().nullable().optional(),
  lname: z.string().nullable().optional(),
  email: z.string(),
  active: z.boolean(),
  is_admin: z.boolean().nullable().optional(),
  external_id: nullableString,
  currency: z.string().nullable().optional(),
  currency_symbol: z.string().nullable().optional(),
  company_name: z.string().nullable().optional(),
  phone: z.string().nullable().optional(),
  country: z.string().nullable().optional(),
  address1: z.string().nullable().optional(),
  address2: z.string().nullable().optional(),
  city: z.string().nullable().optional(),
  state: z.string().nullable().optional(),
  zip: z.string().nullable().optional(),
  locale: z.string().nullable().optional(),
  labels: Labels,
  user_group_id: z.number().int().nullable().optional(),
  user_group: IdRef.nullable().optional(),
  billing_plan: IdRef.nullable().optional(),
  locked_at: z.string().nullable().optional(),
  failed_attempts: z.number().int().nullable().optional(),
  confirmed_at: z.string().nullable().optional(),
  created_at: z.string().nullable().optional(),
  updated_at: z.string().nullable().optional(),
  run_rate: DecimalSchema.nullable().optional(),
  unprocessed_usage: DecimalSchema.nullable().optional(),
  services: UserServicesSchema.nullable().optional(),
})

export const UserSchema = UserWireSchema.transform((u) => {
  const user = {
    id: u.id,
    email: u.email,
    firstName: u.fname ?? '',
    lastName: u.lname ?? '',
    active: u.active,
    isAdmin: u.is_admin ?? false,
    externalId: u.external_id,
    currency: u.currency ?? null,
    currencySymbol: u.currency_symbol ?? null,
    companyName: u.company_name ?? null,
    phone: u.phone ?? null,
    country: u.country ?? null,
    address: {
      address1: u.address1 ?? null,
      address2: u.address2 ?? null,
      city: u.city ?? null,
      state: u.state ?? null,
      zip: u.zip ?? null,
    },
    labels: u.labels,
    whmcs: whmcsLabels(u.labels),
    userGroupId: u.user_group_id ?? u.user_group?.id ?? null,
    userGroup: u.user_group ?? null,
    billingPlan: u.billing_plan ?? null,
    lockedAt: u.locked_at ?? null,
    failedAttempts: u.failed_attempts ?? 0,
    confirmedAt: u.confirmed_at ?? null,
    createdAt: u.created_at ?? null,
    updatedAt: u.updated_at ?? null,
    /** Present on `show`: the monthly run rate of active subscriptions, exact decimal. */
    runRate: u.run_rate ?? null,
    /** Present with `include=balance`: the sum of unprocessed usage, exact decimal. */
    unprocessedUsage: u.unprocessed_usage ?? null,
    services: u.services ?? null,
  }
  return user
})
export type User = z.output<typeof UserSchema>

export const UserGroupSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    is_default: z.boolean().nullable().optional(),
    billing_plan_id: z.number().int().nullable().optional(),
    active: z.boolean().nullable().optional(),
    q_containers: z.number().int().nullable().optional(),
    q_dns_zones: z.number().int().nullable().optional(),
    q_cr: z.number().int().nullable().optional(),
    allow_local_volume: z.boolean().nullable().optional(),
    bill_offline: z.boolean().nullable().optional(),
    bill_suspended: z.boolean().nullable().optional(),
    remove_stopped: z.boolean().nullable().optional(),
    locations: z.array(IdRef).nullable().optional(),
    regions: z.array(IdRef).nullable().optional(),
    created_at: z.string().nullable().optional(),
  })
  .transform((g) => ({
    id: g.id,
    name: g.name,
    isDefault: g.is_default ?? false,
    billingPlanId: g.billing_plan_id ?? null,
    active: g.active ?? true,
    quotas: {
      containers: g.q_containers ?? null,
      dnsZones: g.q_dns_zones ?? null,
      registries: g.q_cr ?? null,
    },
    billSuspended: g.bill_suspended ?? null,
    locations: g.locations ?? [],
    regions: g.regions ?? [],
    createdAt: g.created_at ?? null,
  }))
export type UserGroup = z.output<typeof UserGroupSchema>

export const LocationSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    fill_strategy: z.string().nullable().optional(),
    fill_by_qty: z.boolean().nullable().optional(),
    overcommit_memory: z.boolean().nullable().optional(),
    overcommit_cpu: z.boolean().nullable().optional(),
  })
  .transform((l) => ({
    id: l.id,
    name: l.name,
    fillStrategy: l.fill_strategy ?? null,
    fillByQty: l.fill_by_qty ?? null,
    overcommitMemory: l.overcommit_memory ?? null,
    overcommitCpu: l.overcommit_cpu ?? null,
  }))
export type Location = z.output<typeof LocationSchema>

export const BillingPriceSchema = z
  .object({
    id: z.number().int(),
    currency: z.string(),
    max_qty: DecimalSchema.nullable().optional(),
    price: DecimalSchema,
  })
  .transform((p) => ({ id: p.id, currency: p.currency, maxQty: p.max_qty ?? null, price: p.price }))

export const BillingPlanSchema = z
  .object({
    id: z.number().int(),
    name: z.string(),
    created_at: z.string().nullable().optional(),
    user_groups: z.array(IdRef).nullable().optional(),
    billing_resources: z
      .array(
        z.object({
          id: z.number().int(),
          product: z.object({ id: z.number().int(), name: z.string() }).nullable().optional(),
          billing_phases: z
            .array(
              z.object({
                id: z.number().int(),
                phase_type: z.string().nullable().optional(),
                prices: z.array(BillingPriceSchema).nullable().optional(),
              }),
            )
            .nullable()
            .optional(),
        }),
      )
      .nullable()
      .optional(),
  })
  .transform((p) => ({
    id: p.id,
    name: p.name,
    createdAt: p.created_at ?? null,
    userGroups: p.user_groups ?? [],
    resources: (p.billing_resources ?? []).map((r) => ({
      id: r.id,
      product: r.product ?? null,
      phases: (r.billing_phases ?? []).map((ph) => ({
        id: ph.id,
        phaseType: ph.phase_type ?? null,
        prices: ph.prices ?? [],
      })),
    })),
  }))
export type BillingPlan = z.output<typeof BillingPlanSchema>

export const BillingUsageSchema = z
  .object({
    id: z.number().int(),
    period_start: z.string().nullable().optional(),
    period_end: z.string().nullable().optional(),
    external_id: nullableString,
    rate: DecimalSchema.nullable().optional(),
    qty: DecimalSchema.nullable().optional(),
    qty_total: DecimalSchema.nullable().optional(),
    total: DecimalSchema,
    processed: z.boolean(),
    processed_on: z.string().nullable().optional(),
    subscription_product: z
      .object({
        id: z.number().int(),
        product: z.object({ id: z.number().int(), name: z.string() }).nullable().optional(),
      })
      .nullable()
      .optional(),
  })
  .transform((u) => ({
    id: u.id,
    periodStart: u.period_start ?? null,
    periodEnd: u.period_end ?? null,
    externalId: u.external_id,
    rate: u.rate ?? null,
    qty: u.qty ?? null,
    qtyTotal: u.qty_total ?? null,
    total: u.total,
    processed: u.processed,
    processedOn: u.processed_on ?? null,
    product: u.subscription_product?.product ?? null,
  }))
export type BillingUsage = z.output<typeof BillingUsageSchema>

export const VersionSchema = z
  .object({
    version: z.string(),
    api_latest_version: z.union([z.string(), z.number()]).nullable().optional(),
    api_available_versions: z
      .array(z.union([z.string(), z.number()]))
      .nullable()
      .optional(),
  })
  .transform((v) => ({
    version: v.version,
    // The server computes this from the product version (9.3.1 → 93); it is not necessarily a real API version.
    apiLatestVersion:
      v.api_latest_version === null || v.api_latest_version === undefined
        ? null
        : Number(v.api_latest_version),
    apiAvailableVersions: (v.api_available_versions ?? []).map(Number),
  }))
export type ServerVersion = z.output<typeof VersionSchema>

export const SsoTokenSchema = z
  .object({ username: z.string(), token: z.string().min(1), expires: z.string().nullable().optional() })
  .transform((t) => ({ username: t.username, token: t.token, expires: t.expires ?? null }))
export type SsoToken = z.output<typeof SsoTokenSchema>

export const ApiCredentialSchema = z
  .object({ id: z.number().int(), username: z.string(), password: z.string().nullable().optional() })
  .transform((c) => ({ id: c.id, apiKey: c.username, apiSecret: c.password ?? null }))
export type ApiCredential = z.output<typeof ApiCredentialSchema>

// ---- inputs ----------------------------------------------------------------------------------------

const Currency = z.string().regex(/^[A-Z]{3}$/, 'must be a three-letter upper-case currency code')
const Password = z.string().min(8, 'must be at least 8 characters').max(128, 'must be at most 128 characters')
const Text = z.string().refine((s) => !/[\u0000-\u001f\u007f]/.test(s), 'must not contain control characters')

/** WHMCS ids go into labels as JSON numbers when they are numbers, because the server matches labels by type. */
export const LabelIdSchema = z
  .union([z.number().int().nonnegative(), z.string().min(1)])
  .transform((v) => (typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : v))

export const WhmcsLabelInputSchema = z.object({
  clientId: LabelIdSchema.optional(),
  serviceId: LabelIdSchema.optional(),
})

/** What the server takes as an email: Devise's format (see `isAccountEmail`). */
const Email = z
  .string()
  .refine(isAccountEmail, 'must be an email address (one @, no spaces or control characters)')

export const CreateUserInputSchema = z.object({
  email: Email,
  firstName: Text.min(1, 'is required'),
  lastName: Text.min(1, 'is required'),
  password: Password.optional(),
  externalId: z.union([z.string(), z.number()]).transform(String).optional(),
  currency: Currency.optional(),
  companyName: Text.optional(),
  phone: Text.optional(),
  country: z
    .string()
    .regex(/^[A-Z]{2}$/)
    .optional(),
  /** Postal address; required by the server when its `billing_address` setting is on (`User#user_address`). */
  address1: Text.optional(),
  address2: Text.optional(),
  city: Text.optional(),
  state: Text.optional(),
  /** Postal code (the API calls it `zip`). */
  zip: Text.optional(),
  locale: z.string().optional(),
  userGroupId: z.number().int().positive().optional(),
  /** Replaces these top-level label keys (the server does not deep-merge). */
  mergeLabels: z.record(z.string(), z.unknown()).optional(),
  whmcs: WhmcsLabelInputSchema.optional(),
  /** Skip the confirmation email; without it the user cannot sign in until confirmed. */
  skipEmailConfirm: z.boolean().default(true),
})
export type CreateUserInput = z.input<typeof CreateUserInputSchema>

export const UpdateUserInputSchema = z
  .object({
    email: Email.optional(),
    firstName: Text.min(1).optional(),
    lastName: Text.min(1).optional(),
    password: Password.optional(),
    active: z.boolean().optional(),
    externalId: z.union([z.string(), z.number()]).transform(String).optional(),
    currency: Currency.optional(),
    companyName: Text.optional(),
    phone: Text.optional(),
    userGroupId: z.number().int().positive().optional(),
    mergeLabels: z.record(z.string(), z.unknown()).optional(),
    whmcs: WhmcsLabelInputSchema.optional(),
  })
  .refine((o) => Object.values(o).some((v) => v !== undefined), 'nothing to update')
export type UpdateUserInput = z.input<typeof UpdateUserInputSchema>

type ParsedCreate = z.output<typeof CreateUserInputSchema>
type ParsedUpdate = z.output<typeof UpdateUserInputSchema>

/** camelCase input → the `{"user": {...}}` wire body. */
type WireInput = {
  [K in keyof ParsedCreate | keyof ParsedUpdate]?: (ParsedCreate & ParsedUpdate)[K] | undefined
}

export function userWireBody(input: WireInput): { user: Record<string, unknown> } {
  const user: Record<string, unknown> = {}
  const set = (key: string, value: unknown) => {
    if (value !== undefined) user[key] = value
  }
  set('skip_email_confirm', input.skipEmailConfirm)
  set('email', input.email)
  set('fname', input.firstName)
  set('lname', input.lastName)
  set('password', input.password)
  set('password_confirmation', input.password)
  set('external_id', input.externalId)
  set('currency', input.currency)
  set('company_name', input.companyName)
  set('phone', input.phone)
  set('country', input.country)
  set('address1', input.address1)
  set('address2', input.address2)
  set('city', input.city)
  set('state', input.state)
  set('zip', input.zip)
  set('locale', input.locale)
  set('user_group_id', input.userGroupId)
  set('active', input.active)
  const labels: Record<string, unknown> = { ...(input.mergeLabels ?? {}) }
  if (input.whmcs) {
    const whmcs: Record<string, unknown> = {}
    if (input.whmcs.clientId !== undefined) whmcs.client_id = input.whmcs.clientId
    if (input.whmcs.serviceId !== undefined) whmcs.service_id = input.whmcs.serviceId
    labels.whmcs = whmcs
  }
  if (Object.keys(labels).length > 0) user.merge_labels = labels
  return { user }
}

// ---- fast path -------------------------------------------------------------------------------------

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v)
const isOptString = (v: unknown) => v === undefined || v === null || typeof v === 'string'
const isOptInt = (v: unknown) => v === undefined || v === null || isInt(v)
const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v)

function fastIdRef(v: unknown): { id: number; name: string } | null | false {
  if (v === undefined || v === null) return null
  if (!isRecord(v) || !isInt(v.id) || !isOptString(v.name)) return false
  return { id: v.id, name: (v.name as string | null | undefined) ?? '' }
}

function fastDecimal(v: unknown): string | null | false {
  if (v === undefined || v === null) return null
  if (typeof v !== 'string' && (typeof v !== 'number' || !Number.isFinite(v))) return false
  try {
    return toDecimalString(v)
  } catch {
    return false
  }
}

function fastServices(v: unknown): UserServices | null | false {
  if (v === undefined || v === null) return null
  if (!isRecord(v)) return false
  const { deployments, containers, container_services, container_images, container_registries, dns_zones } = v
  for (const n of [
    deployments,
    containers,
    container_services,
    container_images,
    container_registries,
    dns_zones,
  ]) {
    if (n !== undefined && !isInt(n)) return false
  }
  return {
    deployments: (deployments as number | undefined) ?? 0,
    containers: (containers as number | undefined) ?? 0,
    containerServices: (container_services as number | undefined) ?? 0,
    containerImages: (container_images as number | undefined) ?? 0,
    containerRegistries: (container_registries as number | undefined) ?? 0,
    dnsZones: (dns_zones as number | undefined) ?? 0,
  }
}

const OPTIONAL_STRINGS = [
  'fname',
  'lname',
  'currency',
  'currency_symbol',
  'company_name',
  'phone',
  'country',
  'address1',
  'address2',
  'city',
  'state',
  'zip',
  'locale',
  'locked_at',
  'confirmed_at',
  'created_at',
  'updated_at',
] as const

/**
 * The user shape checked by hand, for the request path and for 50,000-user listings: one pass, one
 * output object, no intermediate copies. It accepts only what `UserSchema` accepts and returns the same
 * value (a property test holds the two together); anything unusual returns undefined and goes to zod,
 * which also gives the error messages.
 */
export function fastUser(raw: unknown): User | undefined {
  if (!isRecord(raw)) return undefined
  const u = raw
  if (!isInt(u.id) || typeof u.email !== 'string' || typeof u.active !== 'boolean') return undefined
  for (const key of OPTIONAL_STRINGS) if (!isOptString(u[key])) return undefined
  const isAdmin = u.is_admin
  if (isAdmin !== undefined && isAdmin !== null && typeof isAdmin !== 'boolean') return undefined
  const ext = u.external_id
  let externalId: string | null = null
  if (typeof ext === 'string') externalId = ext
  else if (typeof ext === 'number' && Number.isFinite(ext)) externalId = String(ext)
  else if (ext !== undefined && ext !== null) return undefined
  if (!isOptInt(u.user_group_id) || !isOptInt(u.failed_attempts)) return undefined
  let labels: Record<string, unknown> = {}
  if (u.labels !== undefined && u.labels !== null) {
    if (!isRecord(u.labels)) return undefined
    labels = u.labels
  }
  const userGroup = fastIdRef(u.user_group)
  const billingPlan = fastIdRef(u.billing_plan)
  const runRate = fastDecimal(u.run_rate)
  const unprocessedUsage = fastDecimal(u.unprocessed_usage)
  const services = fastServices(u.services)
  if (
    userGroup === false ||
    billingPlan === false ||
    runRate === false ||
    unprocessedUsage === false ||
    services === false
  )
    return undefined
  const s = (key: (typeof OPTIONAL_STRINGS)[number]) => (u[key] as string | null | undefined) ?? null
  return {
    id: u.id,
    email: u.email,
    firstName: s('fname') ?? '',
    lastName: s('lname') ?? '',
    active: u.active,
    isAdmin: (isAdmin as boolean | null | undefined) ?? false,
    externalId,
    currency: s('currency'),
    currencySymbol: s('currency_symbol'),
    companyName: s('company_name'),
    phone: s('phone'),
    country: s('country'),
    address: {
      address1: s('address1'),
      address2: s('address2'),
      city: s('city'),
      state: s('state'),
      zip: s('zip'),
    },
    labels,
    whmcs: whmcsLabels(labels),
    userGroupId: (u.user_group_id as number | null | undefined) ?? userGroup?.id ?? null,
    userGroup,
    billingPlan,
    lockedAt: s('locked_at'),
    failedAttempts: (u.failed_attempts as number | null | undefined) ?? 0,
    confirmedAt: s('confirmed_at'),
    createdAt: s('created_at'),
    updatedAt: s('updated_at'),
    runRate,
    unprocessedUsage,
    services,
  }
}

/** A user through the fast path, or through zod when the fast path declines (zod then names the problem). */
export function parseUser(raw: unknown): User {
  return fastUser(raw) ?? UserSchema.parse(raw)
}

/** `{"users": [...]}`, each through the fast path; zod reports the first bad one with its index. */
export function parseUsers(body: unknown): User[] {
  const list = isRecord(body) ? body.users : undefined
  if (Array.isArray(list)) {
    const out: User[] = new Array(list.length)
    let i = 0
    for (; i < list.length; i++) {
      const user = fastUser(list[i])
      if (user === undefined) break
      out[i] = user
    }
    if (i === list.length) return out
  }
  return UsersEnvelopeSchema.parse(body).users
}

const UsersEnvelopeSchema = z.object({ users: z.array(UserSchema) })
