import { z } from 'zod'
import { SafeStringSchema, ServerSchema, ServiceContextSchema } from './context.ts'

/** Every lifecycle operation, as data: a name, an input schema and a result schema. */

export const Operation = {
  CREATE: 'create',
  SUSPEND: 'suspend',
  UNSUSPEND: 'unsuspend',
  TERMINATE: 'terminate',
  CHANGE_PASSWORD: 'changePassword',
  CHANGE_PACKAGE: 'changePackage',
  TEST_CONNECTION: 'testConnection',
  USAGE: 'usage',
  CLIENT_AREA: 'clientArea',
  SSO: 'sso',
  LIST_ACCOUNTS: 'listAccounts',
  ACTION: 'action',
} as const
export type Operation = (typeof Operation)[keyof typeof Operation]

/** Operations that work on one service (the rest work on a server). */
export const SERVICE_OPERATIONS = [
  'create',
  'suspend',
  'unsuspend',
  'terminate',
  'changePassword',
  'changePackage',
  'usage',
  'clientArea',
  'sso',
  'action',
] as const satisfies readonly Operation[]

/** Operations that change something remotely (everything else only reads). */
export const WRITE_OPERATIONS = [
  'create',
  'suspend',
  'unsuspend',
  'terminate',
  'changePassword',
  'changePackage',
] as const satisfies readonly Operation[]

// ---- inputs ---------------------------------------------------------------------------------------

export const ServiceInputSchema = z.object({ service: ServiceContextSchema })
export const ChangePackageInputSchema = z.object({
  service: ServiceContextSchema,
  /** The settings before the change, when the caller knows them (lets connectors skip no-ops). */
  previousSettings: z.record(z.string(), z.unknown()).optional(),
})
export const SsoInputSchema = z.object({
  service: ServiceContextSchema,
  audience: z.enum(['client', 'admin']),
  /** Where in the panel to land, when the panel supports it. */
  destination: SafeStringSchema.optional(),
})
export const ServerInputSchema = z.object({
  server: ServerSchema,
  /** Product settings, when the check depends on them (e.g. a target domain). */
  settings: z.record(z.string(), z.unknown()).default({}),
})
export const ActionInputSchema = z.object({
  service: ServiceContextSchema,
  action: z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'must be an action name'),
  audience: z.enum(['client', 'admin']).default('admin'),
  params: z.record(z.string(), z.unknown()).default({}),
})

export const OPERATION_INPUT_SCHEMAS = {
  create: ServiceInputSchema,
  suspend: ServiceInputSchema,
  unsuspend: ServiceInputSchema,
  terminate: ServiceInputSchema,
  changePassword: ServiceInputSchema,
  changePackage: ChangePackageInputSchema,
  usage: ServiceInputSchema,
  clientArea: ServiceInputSchema,
  sso: SsoInputSchema,
  testConnection: ServerInputSchema,
  listAccounts: ServerInputSchema,
  action: ActionInputSchema,
} as const satisfies Record<Operation, z.ZodType>

export type OperationInput<O extends Operation> = z.input<(typeof OPERATION_INPUT_SCHEMAS)[O]>

// ---- results --------------------------------------------------------------------------------------

const Details = z.record(z.string(), z.unknown())

export const CreateResultSchema = z.object({
  /** The remote account's id (username, domain, VMID, user id). */
  accountId: z.string(),
  /** False when a matching account already existed (a repeated create). */
  created: z.boolean(),
  username: z.string().optional(),
  domain: z.string().optional(),
  serverId: z.string().optional(),
  /** Addresses the service got, for write-back (dedicated IP first). */
  ips: z.array(z.string()).optional(),
  details: Details.optional(),
})
export type CreateResult = z.infer<typeof CreateResultSchema>

export const StateChangeResultSchema = z.object({
  /** False when the account was already in the asked-for state. */
  changed: z.boolean(),
  details: Details.optional(),
})
export type StateChangeResult = z.infer<typeof StateChangeResultSchema>

export const ChangePackageResultSchema = z.object({
  changed: z.boolean(),
  /** What was applied, in order (`cpu`, `memory`, `quota`, …); skipped items are not listed. */
  applied: z.array(z.string()),
  details: Details.optional(),
})
export type ChangePackageResult = z.infer<typeof ChangePackageResultSchema>

export const TestConnectionResultSchema = z.object({
  version: z.string().optional(),
  latencyMs: z.number().nonnegative(),
  details: Details.default({}),
})
export type TestConnectionResult = z.input<typeof TestConnectionResultSchema>

export const UsageMetricSchema = z.object({
  name: z.string(),
  /** Numbers, or exact decimal strings for money and large counters. */
  value: z.union([z.number(), z.string()]),
  unit: z.string(),
  limit: z.union([z.number(), z.string()]).optional(),
})
export const UsageResultSchema = z.object({
  collectedAt: z.string(),
  metrics: z.array(UsageMetricSchema),
})
export type UsageResult = z.infer<typeof UsageResultSchema>
export type UsageMetric = z.infer<typeof UsageMetricSchema>

export const ClientAreaResultSchema = z.object({
  fields: z.array(
    z.object({
      key: z.string(),
      label: z.string(),
      value: z.union([z.string(), z.number(), z.boolean(), z.null()]),
      unit: z.string().optional(),
      limit: z.union([z.string(), z.number()]).optional(),
    }),
  ),
  links: z.array(z.object({ label: z.string(), url: z.string() })).default([]),
})
export type ClientAreaResult = z.input<typeof ClientAreaResultSchema>

export const SsoResultSchema = z.object({
  url: z.string(),
  expiresAt: z.string().optional(),
})
export type SsoResult = z.infer<typeof SsoResultSchema>

export const AccountStatusSchema = z.enum(['active', 'suspended', 'pending', 'unknown'])
export const RemoteAccountSchema = z.object({
  accountId: z.string(),
  username: z.string().optional(),
  domain: z.string().optional(),
  email: z.string().optional(),
  /** The billing service this account is tied to, when the connector can tell. */
  serviceId: z.string().optional(),
  status: AccountStatusSchema,
  details: Details.optional(),
})
export type RemoteAccount = z.infer<typeof RemoteAccountSchema>
export const ListAccountsResultSchema = z.object({ accounts: z.array(RemoteAccountSchema) })
export type ListAccountsResult = z.infer<typeof ListAccountsResultSchema>

export const ActionResultSchema = z.object({
  message: z.string().optional(),
  data: z.unknown().optional(),
})
export type ActionResult = z.infer<typeof ActionResultSchema>

export const OPERATION_RESULT_SCHEMAS = {
  create: CreateResultSchema,
  suspend: StateChangeResultSchema,
  unsuspend: StateChangeResultSchema,
  terminate: StateChangeResultSchema,
  changePassword: StateChangeResultSchema,
  changePackage: ChangePackageResultSchema,
  usage: UsageResultSchema,
  clientArea: ClientAreaResultSchema,
  sso: SsoResultSchema,
  testConnection: TestConnectionResultSchema,
  listAccounts: ListAccountsResultSchema,
  action: ActionResultSchema,
} as const satisfies Record<Operation, z.ZodType>

export type OperationResult<O extends Operation> = z.output<(typeof OPERATION_RESULT_SCHEMAS)[O]>
