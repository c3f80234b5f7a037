import { z } from 'zod'

/**
 * The service context: the typed, validated equivalent of the `$params` array WHMCS hands a module.
 * The service id is the primary key every connector ties its remote account to.
 */

const CONTROL = /[\u0000-\u001f\u007f]/

/** A string without control characters (CR, LF, NUL, …), which no identifier or secret may hold. */
export const SafeStringSchema = z
  .string()
  .refine((s) => !CONTROL.test(s), 'must not contain control characters')

export const IdSchema = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a plain identifier'),
  ])
  .transform((v) => String(v))

const PortSchema = z.coerce.number().int().min(1).max(65535)

export const ServerSchema = z.object({
  /** The server's id in the billing system or the app's config. */
  id: IdSchema.optional(),
  name: SafeStringSchema.optional(),
  hostname: SafeStringSchema.pipe(z.string().min(1, 'is required').max(253)),
  ip: SafeStringSchema.optional(),
  port: PortSchema.optional(),
  /** Use TLS. Defaults to true: plain text must be asked for. */
  secure: z.boolean().default(true),
  username: SafeStringSchema.optional(),
  password: SafeStringSchema.optional(),
  /** Some panels take an access hash (an API token) instead of a password. */
  accessHash: SafeStringSchema.optional(),
  /** Connector-specific transport options (CA, fingerprint, insecure, timeouts). */
  options: z.record(z.string(), z.unknown()).default({}),
})
export type ServerInput = z.input<typeof ServerSchema>
export type Server = z.output<typeof ServerSchema>

export const ClientDetailsSchema = z.object({
  id: IdSchema.optional(),
  email: z.email(),
  firstName: SafeStringSchema.default(''),
  lastName: SafeStringSchema.default(''),
  company: SafeStringSchema.optional(),
  country: z
    .string()
    .regex(/^[A-Z]{2}$/, 'must be a two-letter country code')
    .optional(),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, 'must be a three-letter currency code')
    .optional(),
  phone: SafeStringSchema.optional(),
  /** Postal address, named as WHMCS names it (GetClientsDetails); panels that require one get it. */
  address1: SafeStringSchema.optional(),
  address2: SafeStringSchema.optional(),
  city: SafeStringSchema.optional(),
  /** State, region or province, free text. */
  state: SafeStringSchema.optional(),
  postcode: SafeStringSchema.optional(),
})
export type ClientDetails = z.output<typeof ClientDetailsSchema>

export const ServiceContextSchema = z.object({
  serviceId: IdSchema,
  clientId: IdSchema,
  username: SafeStringSchema.optional(),
  password: SafeStringSchema.optional(),
  domain: SafeStringSchema.optional(),
  server: ServerSchema.optional(),
  /** Named product settings; validated again against the connector's declaration. */
  settings: z.record(z.string(), z.unknown()).default({}),
  /** Configurable options chosen at order time (name → value). */
  configOptions: z.record(z.string(), z.union([z.string(), z.number()])).default({}),
  /** Custom fields (name → value). Free text, so line breaks are allowed here. */
  customFields: z.record(z.string(), z.string()).default({}),
  client: ClientDetailsSchema,
  /** Billing status, when the caller knows it (`Active`, `Suspended`, …). */
  status: SafeStringSchema.optional(),
})
export type ServiceContextInput = z.input<typeof ServiceContextSchema>
export type ServiceContextData = z.output<typeof ServiceContextSchema>

/** A validated service context with the connector's typed settings. */
export type ServiceContext<S = Record<string, unknown>> = Omit<ServiceContextData, 'settings'> & {
  settings: S
}

/**
 * Builds a service context input from a WHMCS-style `$params` object (`serviceid`, `clientsdetails`,
 * `serverhostname`, `configoption1..24`, …). Positional options are mapped by `settingNames`.
 */
export function serviceContextFromWhmcsParams(
  params: Record<string, unknown>,
  settingNames: readonly string[] = [],
): Record<string, unknown> {
  const str = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : String(v))
  const client = (params.clientsdetails ?? {}) as Record<string, unknown>
  const settings: Record<string, unknown> = {}
  settingNames.forEach((name, i) => {
    const v = params[`configoption${i + 1}`]
    if (v !== undefined) settings[name] = v
  })
  const server =
    (str(params.serverhostname) ?? str(params.serverip))
      ? {
          hostname: str(params.serverhostname) ?? str(params.serverip),
          ip: str(params.serverip),
          port: str(params.serverport),
          secure: params.serversecure === true || params.serversecure === 'on' || params.serversecure === '1',
          username: str(params.serverusername),
          password: str(params.serverpassword),
          accessHash: str(params.serveraccesshash),
        }
      : undefined
  const drop = <T extends Record<string, unknown>>(o: T) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T
  return drop({
    serviceId: params.serviceid,
    clientId: params.userid ?? client.userid ?? client.id,
    username: str(params.username),
    password: str(params.password),
    domain: str(params.domain),
    server: server ? drop(server) : undefined,
    settings,
    configOptions: (params.configoptions as Record<string, string>) ?? {},
    customFields: (params.customfields as Record<string, string>) ?? {},
    client: drop({
      email: client.email,
      firstName: str(client.firstname) ?? '',
      lastName: str(client.lastname) ?? '',
      company: str(client.companyname),
      country: str(client.countrycode ?? client.country),
      currency: str(client.currency_code),
      phone: str(client.phonenumber),
    }),
  })
}
