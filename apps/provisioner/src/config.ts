import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import {
  builtinDefinitions,
  type ConfigIssue,
  lintConfig,
  looseProducts,
  productSettingsIssues,
  smtpPasswordSource,
  unknownKeyIssues,
} from './config-lint.ts'
import { ConsoleConfigSchema, SchedulesConfigSchema } from './console/config.ts'
import { parseSecretKey } from './secrets.ts'

/**
 * The provisioner's one configuration file (JSON or YAML). Secrets never live in the file: a value
 * `${NAME}` (whole string or part of one) is replaced by the environment variable NAME, and a missing
 * variable is an error that names both the variable and the path that wanted it.
 */

const Id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'must be a plain identifier')

export const ServerConfigSchema = z.object({
  id: Id,
  /** Connector id this server belongs to (`axigen-domain`, `proxmox-kvm`, …). */
  connector: z.string().min(1),
  name: z.string().optional(),
  hostname: z.string().min(1, 'is required'),
  port: z.number().int().min(1).max(65535).optional(),
  secure: z.boolean().default(true),
  username: z.string().optional(),
  password: z.string().optional(),
  accessHash: z.string().optional(),
  /** At most this many services are placed here. */
  maxAccounts: z.number().int().positive().optional(),
  /** This server's id in WHMCS (Setup → Servers): written back to each service placed here. */
  whmcsServerId: z.number().int().positive().optional(),
  enabled: z.boolean().default(true),
  options: z.record(z.string(), z.unknown()).default({}),
})
export type ServerConfig = z.infer<typeof ServerConfigSchema>

export const ServerGroupConfigSchema = z.object({
  id: Id,
  fillType: z.enum(['least-full', 'fill-until-full', 'round-robin']).default('least-full'),
  servers: z.array(Id).min(1, 'needs at least one server'),
})
export type ServerGroupConfig = z.infer<typeof ServerGroupConfigSchema>

export const ProductConfigSchema = z.object({
  /** The WHMCS product id (`pid`). */
  whmcsProductId: z.union([z.number().int().positive(), Id]).transform(String),
  connector: z.string().min(1),
  serverGroup: Id,
  /** Product settings for the connector (validated again by the connector's declaration). */
  settings: z.record(z.string(), z.unknown()).default({}),
  /**
   * Plans: the value of a configurable option (by name) selects extra settings, e.g.
   * `{ option: 'Plan', values: { Pro: { plan: 'pro' } } }`.
   */
  plans: z
    .object({
      option: z.string().min(1),
      values: z.record(z.string(), z.record(z.string(), z.unknown())),
      /** The plan when a service has no value for the option (else that is a sync error). */
      default: z.string().optional(),
    })
    .optional(),
  /** The custom field holding the service password the customer chose. */
  passwordField: z.string().optional(),
  /**
   * Overdue policy (off when absent): days after WHMCS's due date after which the service is suspended
   * even while WHMCS still says Active; shown as `overdue-past-grace` drift.
   */
  overdueGraceDays: z.number().int().min(0).max(3650).optional(),
  /** Bill one usage metric per period with `AddBillableItem` (pushed exactly once per period). */
  usageBilling: z
    .object({
      metric: z.string().min(1),
      unitPrice: z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal such as 0.05'),
      description: z.string().optional(),
    })
    .optional(),
})
export type ProductConfig = z.infer<typeof ProductConfigSchema>

export const IpPoolConfigSchema = z.object({
  id: Id,
  /** Plain addresses or IPv4 ranges `a.b.c.d-e`. */
  addresses: z.array(z.string().min(1)).min(1),
  gateway: z.string().optional(),
  /** IPv4 prefix length handed to VMs (default 24). */
  prefix: z.number().int().min(1).max(32).optional(),
  gateway6: z.string().optional(),
  /** IPv6 prefix length (default 64). */
  prefix6: z.number().int().min(1).max(128).optional(),
})
export type IpPoolConfig = z.infer<typeof IpPoolConfigSchema>

export const WhmcsConfigSchema = z.object({
  url: z.url({ error: 'must be a URL such as https://billing.example.com' }),
  identifier: z.string().min(1, 'is required'),
  secret: z.string().min(1, 'is required'),
  accessKey: z.string().optional(),
  /** PEM CA to trust for a WHMCS with a private certificate. */
  ca: z.string().optional(),
})

/**
 * What an API token may do (`README.md`, "Security"): `read` every GET; `operate` lifecycle actions
 * but terminate, sync, retry and client single sign-on; `billing` deposit credits and settling the
 * ledger; `admin` everything, terminate and admin single sign-on included.
 */
export const TOKEN_SCOPES = ['read', 'operate', 'billing', 'admin'] as const
export type TokenScope = (typeof TOKEN_SCOPES)[number]

const TokenValueSchema = z.string().min(16, 'must be at least 16 characters')

/**
 * An API token: a plain string (every scope, as before scopes existed) or `{ token, scopes, name? }`.
 */
export const ApiTokenSchema = z.union([
  TokenValueSchema,
  z
    .object({
      token: TokenValueSchema,
      scopes: z
        .array(z.enum(TOKEN_SCOPES))
        .min(1, 'needs at least one scope (read, operate, billing, admin)'),
      /** Shown in the operator log for requests made with it. */
      name: z.string().max(64).optional(),
    })
    .strict(),
])
export type ApiTokenConfig = z.infer<typeof ApiTokenSchema>

/** Every token with its scopes (a plain string token has them all). */
export function apiTokens(config: Config): { token: string; scopes: TokenScope[]; name: string }[] {
  return config.http.tokens.map((t, i) =>
    typeof t === 'string'
      ? { token: t, scopes: [...TOKEN_SCOPES], name: `tokens[${i}]` }
      : { token: t.token, scopes: t.scopes, name: t.name ?? `tokens[${i}]` },
  )
}

export const ConfigSchema = z
  .object({
    whmcs: WhmcsConfigSchema.optional(),
    products: z.array(ProductConfigSchema).default([]),
    servers: z.array(ServerConfigSchema).default([]),
    serverGroups: z.array(ServerGroupConfigSchema).default([]),
    ipPools: z.array(IpPoolConfigSchema).default([]),
    store: z
      .object({
        /** SQLite data directory (the database is `provisioner.sqlite` in it). */
        dataDir: z.string().default('.data'),
        /**
         * SQLite only: `normal` (default) survives a killed process but may lose the last commits on a
         * power loss; `full` flushes every commit to disk and survives that too, at a higher cost per
         * commit (see the README's benchmark for both).
         */
        synchronous: z.enum(['normal', 'full']).default('normal'),
        /** PostgreSQL URL; `DATABASE_URL` in the environment wins over this. */
        url: z.string().optional(),
        /** PostgreSQL schema (created when missing); the connection's default when absent. */
        schema: z
          .string()
          .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be lower-case letters, digits and _')
          .optional(),
        /**
         * The key service passwords are encrypted under (AES-256-GCM): 32 bytes as base64 or hex,
         * from the environment (`openssl rand -base64 32`). Losing it loses the stored passwords.
         */
        encryptionKey: z
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows an environment reference
          .string({ error: 'is required: a ${NAME} reference to a 32-byte key (openssl rand -base64 32)' })
          .refine((v) => parseSecretKey(v) !== undefined, {
            message: 'must be 32 bytes written as base64 (44 characters) or hex (64 characters)',
          }),
        /**
         * A file holding the key (a Docker or systemd secret, mode 0600), read at start-up, instead of
         * an environment reference. The key itself is never written in the configuration file.
         */
        encryptionKeyFile: z.string().min(1).optional(),
      })
      // Parsed even when absent, so a missing key is reported at store.encryptionKey.
      .prefault({} as { encryptionKey: string }),
    sync: z
      .object({
        intervalSeconds: z.number().int().min(5).default(300),
        /** Usage is pushed once per period of this many hours. */
        usagePeriodHours: z
          .number()
          .int()
          .min(1)
          .default(24 * 30),
      })
      .default({ intervalSeconds: 300, usagePeriodHours: 720 }),
    worker: z
      .object({
        concurrency: z.number().int().min(1).max(256).default(4),
        leaseSeconds: z.number().int().min(2).max(3600).default(30),
        maxAttempts: z.number().int().min(1).max(100).default(8),
        backoffMs: z.number().int().min(1).default(1000),
        maxBackoffMs: z.number().int().min(1).default(300_000),
        /**
         * No connector operation runs longer than this: a server that accepts and never answers gives
         * a retryable TIMEOUT instead of a job that holds its lease forever.
         */
        operationTimeoutSeconds: z.number().int().min(1).max(86_400).default(900),
      })
      .default({
        concurrency: 4,
        leaseSeconds: 30,
        maxAttempts: 8,
        backoffMs: 1000,
        maxBackoffMs: 300_000,
        operationTimeoutSeconds: 900,
      }),
    http: z
      .object({
        listen: z.string().default('127.0.0.1:8080'),
        tokens: z.array(ApiTokenSchema).default([]),
      })
      .default({ listen: '127.0.0.1:8080', tokens: [] }),
    /** The operator console and /metrics (src/console). */
    console: ConsoleConfigSchema.optional(),
    /** Timers for connectors' scheduled admin actions, per product (src/scheduler.ts). */
    schedules: SchedulesConfigSchema.default([]),
  })
  // Cross-references are checked even when other fields are wrong, so `check` lists every problem in
  // one go; the payload is then unvalidated, hence the defensive reading.
  .superRefine(
    checkReferences as never,
    {
      when: (payload: { value: unknown }) => payload.value !== null && typeof payload.value === 'object',
    } as never,
  )

type Loose = Record<string, unknown>
const arr = (v: unknown): Loose[] =>
  Array.isArray(v) ? v.map((x) => (x !== null && typeof x === 'object' ? (x as Loose) : {})) : []

function checkReferences(config: Loose, ctx: z.RefinementCtx): void {
  const serverList = arr(config.servers)
  const servers = new Map(serverList.map((s) => [String(s.id), s]))
  const seen = new Set<string>()
  serverList.forEach((s, i) => {
    if (seen.has(String(s.id)))
      ctx.addIssue({
        code: 'custom',
        path: ['servers', i, 'id'],
        message: `duplicate server id ${String(s.id)}`,
      })
    seen.add(String(s.id))
  })
  const groupList = arr(config.serverGroups)
  const groups = new Map(groupList.map((g) => [String(g.id), g]))
  groupList.forEach((g, i) => {
    ;(Array.isArray(g.servers) ? (g.servers as unknown[]) : []).forEach((id, j) => {
      if (!servers.has(String(id)))
        ctx.addIssue({
          code: 'custom',
          path: ['serverGroups', i, 'servers', j],
          message: `no server with id ${String(id)} (known: ${[...servers.keys()].join(', ') || 'none'})`,
        })
    })
  })
  const pids = new Set<string>()
  arr(config.products).forEach((p, i) => {
    const pid = String(p.whmcsProductId)
    if (pids.has(pid))
      ctx.addIssue({
        code: 'custom',
        path: ['products', i, 'whmcsProductId'],
        message: `product ${pid} is mapped twice`,
      })
    pids.add(pid)
    const group = groups.get(String(p.serverGroup))
    if (!group) {
      ctx.addIssue({
        code: 'custom',
        path: ['products', i, 'serverGroup'],
        message: `no server group with id ${String(p.serverGroup)}`,
      })
      return
    }
    for (const id of Array.isArray(group.servers) ? (group.servers as unknown[]) : []) {
      const server = servers.get(String(id))
      if (server && server.connector !== p.connector)
        ctx.addIssue({
          code: 'custom',
          path: ['products', i, 'serverGroup'],
          message: `server ${String(id)} in group ${String(group.id)} is for connector ${String(server.connector)}, not ${String(p.connector)}`,
        })
    }
  })
}
export type Config = z.infer<typeof ConfigSchema>
export type ConfigInput = z.input<typeof ConfigSchema>

export type { ConfigIssue } from './config-lint.ts'

/** A configuration that cannot be used, with every problem and where it is. */
export class ConfigError extends Error {
  readonly code = 'PANELKIT_ERR_CONFIG'
  readonly issues: readonly ConfigIssue[]
  constructor(source: string, issues: readonly ConfigIssue[]) {
    super(
      `Invalid configuration in ${source}:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
    )
    this.name = 'ConfigError'
    this.issues = issues
  }
}

function pathText(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('')
}

/** Replaces `${NAME}` references with environment values; records what is missing. */
export function resolveEnv(
  value: unknown,
  env: Record<string, string | undefined>,
  issues: ConfigIssue[],
  path: PropertyKey[] = [],
  secrets: string[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name]
      if (found === undefined || found === '') {
        issues.push({ path: pathText(path), message: `environment variable ${name} is not set` })
        return ''
      }
      secrets.push(found)
      return found
    })
  }
  if (Array.isArray(value)) return value.map((v, i) => resolveEnv(v, env, issues, [...path, i], secrets))
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, resolveEnv(v, env, issues, [...path, k], secrets)]),
    )
  }
  return value
}

export interface LoadedConfig {
  config: Config
  /** Every value that came from the environment: masked in every log. */
  secrets: string[]
}

/** Validates an already-parsed configuration object. Throws `ConfigError` with every issue. */
export function parseConfig(
  raw: unknown,
  env: Record<string, string | undefined> = process.env,
  source = 'configuration',
  baseDir = process.cwd(),
): LoadedConfig {
  const issues: ConfigIssue[] = []
  const secrets: string[] = []
  const resolved = resolveEnv(raw, env, issues, [], secrets)
  issues.push(...encryptionKeySource(raw, resolved, baseDir), ...smtpPasswordSource(raw))
  const parsed = ConfigSchema.safeParse(resolved)
  // Strictness lives apart from the schema (config-lint.ts): unknown keys with a hint, values that
  // must parse (addresses, listen, fingerprints), server options of the built-in connectors.
  issues.push(...unknownKeyIssues(ConfigSchema, resolved), ...lintConfig(resolved))
  // Products of the built-in connectors are checked against their declarations here, so one run
  // lists every problem; other connectors' products are checked when the app registers them.
  issues.push(
    ...productSettingsIssues(looseProducts(resolved), builtinDefinitions(), { skipUnknownConnectors: true }),
  )
  if (!parsed.success) {
    for (const issue of parsed.error.issues)
      issues.push({ path: pathText(issue.path), message: issue.message })
  }
  if (issues.length > 0 || !parsed.success) throw new ConfigError(source, issues)
  const config = parsed.data
  if (env.DATABASE_URL) config.store.url = env.DATABASE_URL
  for (const s of config.servers) {
    if (s.password) secrets.push(s.password)
    if (s.accessHash) secrets.push(s.accessHash)
  }
  if (config.whmcs) secrets.push(config.whmcs.secret)
  secrets.push(config.store.encryptionKey)
  secrets.push(...apiTokens(config).map((t) => t.token))
  const smtpPass = config.console?.notify?.email?.auth?.pass
  if (smtpPass) secrets.push(smtpPass)
  return { config, secrets: [...new Set(secrets)] }
}

const ENV_REFERENCE = /^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$/

/**
 * The store's encryption key comes from the environment (`encryptionKey: ${NAME}`) or from a file
 * (`encryptionKeyFile`), never from the configuration file itself: that file is copied, committed and
 * pasted into tickets, and with the key anyone holding a copy of the store reads every password.
 * Reads the key file into the resolved configuration; returns what is wrong.
 */
function encryptionKeySource(raw: unknown, resolved: unknown, baseDir: string): ConfigIssue[] {
  const store = (raw as { store?: unknown } | null)?.store
  if (store === null || typeof store !== 'object') return []
  const { encryptionKey: literal, encryptionKeyFile: file } = store as Record<string, unknown>
  const issues: ConfigIssue[] = []
  if (typeof literal === 'string' && !ENV_REFERENCE.test(literal)) {
    issues.push({
      path: 'store.encryptionKey',
      message:
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows an environment reference
        'must not be written in the configuration file: use a ${NAME} environment reference or store.encryptionKeyFile',
    })
  }
  if (typeof file === 'string' && file.length > 0) {
    if (literal !== undefined) {
      issues.push({
        path: 'store.encryptionKeyFile',
        message: 'give either store.encryptionKey or store.encryptionKeyFile, not both',
      })
      return issues
    }
    const target = (resolved as { store?: Record<string, unknown> }).store
    const path = resolve(
      baseDir,
      typeof target?.encryptionKeyFile === 'string' ? target.encryptionKeyFile : file,
    )
    try {
      const key = readFileSync(path, 'utf8').trim()
      if (target) target.encryptionKey = key
    } catch (error) {
      issues.push({
        path: 'store.encryptionKeyFile',
        message: `cannot read the key file: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`,
      })
    }
  }
  return issues
}

/** Reads a JSON or YAML file and validates it. */
export async function loadConfig(
  file: string,
  env: Record<string, string | undefined> = process.env,
): Promise<LoadedConfig> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (error) {
    throw new ConfigError(file, [
      {
        path: '',
        message: `cannot read the file: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      },
    ])
  }
  let raw: unknown
  try {
    raw = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (error) {
    throw new ConfigError(file, [
      {
        path: '',
        message: `not valid ${extname(file) === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
      },
    ])
  }
  return parseConfig(raw, env, file, dirname(resolve(file)))
}
