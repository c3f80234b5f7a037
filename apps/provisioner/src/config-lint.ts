import { isIP } from 'node:net'
import { AxigenServerOptionsSchema, axigenAccountConnector, axigenDomainConnector } from '@panelkit/axigen'
import { computeStacksAccountConnector } from '@panelkit/computestacks'
import { type ConnectorDefinition, settingsSchema } from '@panelkit/core'
import { normaliseFingerprint } from '@panelkit/core/http'
import { createProxmoxKvmConnector } from '@panelkit/proxmox'
import { closest, distance } from 'fastest-levenshtein'
import { z } from 'zod'

/**
 * The strict half of config validation, kept apart from the schema itself: unknown keys (with a
 * "did you mean" hint), values the schema takes as plain strings but that must parse (addresses,
 * listen address, certificate fingerprints), server options per connector, and — once the connectors
 * are known — each product's and each plan's settings against that connector's own declaration.
 */

/** One problem with a configuration, and where it is (a dotted path). */
export interface ConfigIssue {
  path: string
  message: string
}

type Path = readonly PropertyKey[]

export function pathText(path: Path): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('')
}

/** ` (did you mean x?)` when a known name is close to the unknown one, else ''. */
export function didYouMean(unknown: string, known: readonly string[]): string {
  if (known.length === 0) return ''
  const best = closest(unknown, [...known])
  const d = distance(unknown.toLowerCase(), best.toLowerCase())
  return d <= Math.max(2, Math.floor(best.length / 3)) ? ` (did you mean ${best}?)` : ''
}

function unknownKey(path: Path, key: string, known: readonly string[], what = 'key'): ConfigIssue {
  return {
    path: pathText([...path, key]),
    message: didYouMean(key, known)
      ? `unknown ${what}${didYouMean(key, known)}`
      : `unknown ${what}; known: ${[...known].sort().join(', ')}`,
  }
}

interface Def {
  type: string
  shape?: Record<string, z.ZodType>
  innerType?: z.ZodType
  in?: z.ZodType
  element?: z.ZodType
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def

/** The object or array schema under wrappers (optional, default, prefault, pipe, …). */
function unwrap(schema: z.ZodType): z.ZodType {
  let s = schema
  for (let i = 0; i < 10; i++) {
    const d = defOf(s)
    if (d.innerType) s = d.innerType
    else if (d.type === 'pipe' && d.in) s = d.in
    else break
  }
  return s
}

/**
 * Keys the schema does not know, anywhere in `value`. Records (settings, options, plan values) are not
 * walked: their keys are checked against the connector that owns them.
 */
export function unknownKeyIssues(schema: z.ZodType, value: unknown, path: Path = []): ConfigIssue[] {
  const s = unwrap(schema)
  const d = defOf(s)
  const out: ConfigIssue[] = []
  if (
    d.type === 'object' &&
    d.shape &&
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value)
  ) {
    const known = Object.keys(d.shape)
    for (const [k, v] of Object.entries(value)) {
      const child = d.shape[k]
      if (!child) out.push(unknownKey(path, k, known))
      else out.push(...unknownKeyIssues(child, v, [...path, k]))
    }
  } else if (d.type === 'array' && d.element && Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push(...unknownKeyIssues(d.element as z.ZodType, v, [...path, i]))
    })
  }
  return out
}

type Loose = Record<string, unknown>
const list = (v: unknown): Loose[] =>
  Array.isArray(v) ? v.map((x) => (x !== null && typeof x === 'object' ? (x as Loose) : {})) : []

/** One pool entry: an IPv4 or IPv6 address, or an IPv4 range `a.b.c.d-e`. */
export function addressProblem(entry: string): string | undefined {
  const range = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(entry)
  if (range) {
    const from = Number(range[2])
    const to = Number(range[3])
    if (isIP(`${range[1]}${from}`) !== 4) return `${entry} does not start with an IPv4 address`
    if (to > 255) return `range end ${to} is above 255`
    if (to < from) return `range ${entry} ends before it starts`
    return undefined
  }
  if (isIP(entry) === 0)
    return `${JSON.stringify(entry)} is not an IP address or a range such as 203.0.113.10-200`
  return undefined
}

/** Server options each built-in connector reads, checked here rather than at the first job. */
const SERVER_OPTIONS: Record<string, z.ZodType> = {
  'axigen-domain': AxigenServerOptionsSchema.strict(),
  'axigen-account': AxigenServerOptionsSchema.strict(),
  'proxmox-kvm': z.strictObject({
    fingerprint: z
      .union([z.string(), z.array(z.string())])
      .superRefine((v, ctx) => {
        for (const fp of Array.isArray(v) ? v : [v]) {
          try {
            normaliseFingerprint(fp)
          } catch (error) {
            ctx.addIssue({
              code: 'custom',
              message: `${(error as Error).message} (a SHA-256 fingerprint is 32 bytes: AB:CD:… 64 hex digits)`,
            })
          }
        }
      })
      .optional(),
    ca: z.string().optional(),
    insecure: z.union([z.boolean(), z.enum(['true', 'false', '1', '0'])]).optional(),
  }),
  'computestacks-account': z.strictObject({
    ca: z.string().optional(),
    apiVersion: z.coerce.number().int().positive().optional(),
    auth: z.enum(['basic', 'oauth2']).optional(),
    oauthClientId: z.string().optional(),
    oauthClientSecret: z.string().optional(),
    oauthGrant: z.enum(['password', 'client_credentials']).optional(),
    timeoutMs: z.coerce.number().int().positive().optional(),
    perPage: z.coerce.number().int().min(1).max(1000).optional(),
  }),
}

/**
 * Checks that need no connector: the listen address, every pool address, plan defaults, the IP pool a
 * product names, and the options of servers of the built-in connectors.
 */
export function lintConfig(config: unknown): ConfigIssue[] {
  if (config === null || typeof config !== 'object') return []
  const c = config as Loose
  const issues: ConfigIssue[] = []
  const http = c.http as Loose | undefined
  if (http && typeof http.listen === 'string') {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(http.listen)
    if (!m || Number(m[2]) > 65535)
      issues.push({
        path: 'http.listen',
        message: `must be host:port, such as 127.0.0.1:8080, 0.0.0.0:8080 or [::]:8080 (got ${JSON.stringify(http.listen)})`,
      })
  }
  const pools = list(c.ipPools)
  pools.forEach((pool, i) => {
    ;(Array.isArray(pool.addresses) ? (pool.addresses as unknown[]) : []).forEach((a, j) => {
      if (typeof a !== 'string') return
      const problem = addressProblem(a)
      if (problem) issues.push({ path: pathText(['ipPools', i, 'addresses', j]), message: problem })
    })
    for (const [key, family] of [
      ['gateway', 4],
      ['gateway6', 6],
    ] as const) {
      const g = pool[key]
      if (typeof g === 'string' && isIP(g) !== family)
        issues.push({ path: pathText(['ipPools', i, key]), message: `must be an IPv${family} address` })
    }
  })
  const poolIds = pools.map((p) => String(p.id))
  list(c.products).forEach((p, i) => {
    const plans = p.plans as Loose | undefined
    const values = plans?.values as Loose | undefined
    if (plans && typeof plans.default === 'string' && values && !(plans.default in values))
      issues.push({
        path: pathText(['products', i, 'plans', 'default']),
        message: `no plan ${plans.default} in plans.values${didYouMean(plans.default, Object.keys(values))}`,
      })
    const blocks: [Path, unknown][] = [[['products', i, 'settings'], p.settings]]
    for (const [name, v] of Object.entries(values ?? {}))
      blocks.push([['products', i, 'plans', 'values', name], v])
    for (const [path, block] of blocks) {
      const pool = (block as Loose | undefined)?.ipPool
      if (typeof pool === 'string' && pool !== '' && !poolIds.includes(pool))
        issues.push({
          path: pathText([...path, 'ipPool']),
          message: `no IP pool ${pool}${didYouMean(pool, poolIds)} (ipPools: ${poolIds.join(', ') || 'none'})`,
        })
    }
  })
  list(c.servers).forEach((s, i) => {
    const schema = typeof s.connector === 'string' ? SERVER_OPTIONS[s.connector] : undefined
    if (!schema || s.options === undefined) return
    const parsed = schema.safeParse(s.options)
    if (parsed.success) return
    const known = Object.keys(defOf(unwrap(schema)).shape ?? {})
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys)
          issues.push(unknownKey(['servers', i, 'options', ...issue.path], key, known, 'server option'))
      } else issues.push({ path: pathText(['servers', i, 'options', ...issue.path]), message: issue.message })
    }
  })
  issues.push(...smtpIssues(c))
  return issues
}

/**
 * The e-mail notification block: a port that speaks the other kind of TLS than the one configured
 * (465 is TLS from the first byte, 587 and 25 upgrade with STARTTLS), and credentials sent in plain
 * text. Each would otherwise show only at the first notification, which then is lost.
 */
function smtpIssues(c: Loose): ConfigIssue[] {
  const email = ((c.console as Loose | undefined)?.notify as Loose | undefined)?.email as Loose | undefined
  if (!email || typeof email !== 'object') return []
  const issues: ConfigIssue[] = []
  const base = ['console', 'notify', 'email']
  const port = typeof email.port === 'number' ? email.port : 587
  if (email.secure === true && (port === 587 || port === 25))
    issues.push({
      path: pathText([...base, 'secure']),
      message: `port ${port} starts in plain text and upgrades with STARTTLS: set secure: false (starttls: required), or use port 465`,
    })
  if (email.secure !== true && port === 465)
    issues.push({
      path: pathText([...base, 'port']),
      message: 'port 465 is TLS from the first byte (SMTPS): set secure: true',
    })
  if (email.secure !== true && email.starttls === 'never' && email.auth !== undefined)
    issues.push({
      path: pathText([...base, 'starttls']),
      message: 'with starttls: never the SMTP password would cross the network in plain text: use required',
    })
  return issues
}

/**
 * The SMTP password comes from the environment (`pass: ${NAME}`), never from the configuration file
 * itself, which is copied and pasted into tickets. Checked on the file as written (before references
 * are resolved).
 */
export function smtpPasswordSource(raw: unknown): ConfigIssue[] {
  const pass = (
    (((raw as Loose | null)?.console as Loose | undefined)?.notify as Loose | undefined)?.email as
      | Loose
      | undefined
  )?.auth as Loose | undefined
  const value = pass?.pass
  if (typeof value !== 'string' || /^\s*\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*$/.test(value)) return []
  return [
    {
      path: 'console.notify.email.auth.pass',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows an environment reference
      message: 'must not be written in the configuration file: use a ${NAME} environment reference',
    },
  ]
}

// biome-ignore lint/suspicious/noExplicitAny: definitions of any settings shape are accepted
type AnyDefinition = ConnectorDefinition<any, any>

let builtins: Map<string, AnyDefinition> | undefined
/** The built-in connectors' declarations (their settings), for checking a file without a store. */
export function builtinDefinitions(): ReadonlyMap<string, AnyDefinition> {
  builtins ??= new Map<string, AnyDefinition>(
    [
      axigenDomainConnector,
      axigenAccountConnector,
      computeStacksAccountConnector,
      createProxmoxKvmConnector(),
    ].map((d) => [d.id, d as AnyDefinition]),
  )
  return builtins
}

/** The products of an unvalidated config, read defensively, for `productSettingsIssues`. */
export function looseProducts(config: unknown): Parameters<typeof productSettingsIssues>[0] {
  const products = list((config as Loose | null)?.products)
  const obj = (v: unknown): Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {}
  return products.map((p) => {
    const plans = obj(p.plans)
    const out: Parameters<typeof productSettingsIssues>[0][number] = {
      connector: String(p.connector),
      settings: obj(p.settings),
    }
    if (p.plans !== undefined)
      out.plans = {
        values: Object.fromEntries(Object.entries(obj(plans.values)).map(([k, v]) => [k, obj(v)])),
      }
    return out
  })
}

/**
 * Each product's settings, and each plan's settings merged over them, validated by the connector's own
 * declaration: unknown settings (with a hint), wrong types, out-of-range numbers, missing required
 * settings. An error in a plan's own value is reported at the plan; one in the product's settings at
 * the product, once.
 */
export function productSettingsIssues(
  products: readonly {
    connector: string
    settings: Record<string, unknown>
    plans?: { values: Record<string, Record<string, unknown>> } | undefined
  }[],
  definitions: ReadonlyMap<string, AnyDefinition>,
  options: { skipUnknownConnectors?: boolean } = {},
): ConfigIssue[] {
  const issues: ConfigIssue[] = []
  const seen = new Set<string>()
  const add = (issue: ConfigIssue) => {
    const k = `${issue.path}\n${issue.message}`
    if (seen.has(k)) return
    seen.add(k)
    issues.push(issue)
  }
  products.forEach((p, i) => {
    const definition = definitions.get(p.connector)
    if (!definition && options.skipUnknownConnectors) return
    if (!definition) {
      add({
        path: pathText(['products', i, 'connector']),
        message: `no connector ${p.connector} in this provisioner${didYouMean(p.connector, [...definitions.keys()])} (available: ${[...definitions.keys()].join(', ')})`,
      })
      return
    }
    const known = Object.keys(definition.settings)
    const base: Path = ['products', i, 'settings']
    for (const k of Object.keys(p.settings))
      if (!known.includes(k)) add(unknownKey(base, k, known, `setting of ${p.connector}`))
    const schema = settingsSchema(definition.settings)
    const variants: [Path | undefined, Record<string, unknown>][] = p.plans
      ? Object.entries(p.plans.values).map(([name, v]) => [['products', i, 'plans', 'values', name], v])
      : [[undefined, {}]]
    for (const [planPath, planValues] of variants) {
      if (planPath)
        for (const k of Object.keys(planValues))
          if (!known.includes(k)) add(unknownKey(planPath, k, known, `setting of ${p.connector}`))
      const parsed = schema.safeParse({ ...p.settings, ...planValues })
      if (parsed.success) continue
      for (const issue of parsed.error.issues) {
        const key = issue.path[0]
        const inPlan = planPath && typeof key === 'string' && key in planValues
        const where = inPlan ? planPath : base
        const missing = typeof key === 'string' && !(key in p.settings) && !inPlan
        add({
          path: pathText([...where, ...issue.path]),
          message: !missing
            ? issue.message
            : planPath
              ? `is required by ${p.connector} (in the product's settings, or in every plan)`
              : `is required by ${p.connector}`,
        })
      }
    }
  })
  return issues
}
