import { z } from 'zod'

/**
 * Product settings: what WHMCS calls a module's ConfigOptions. A connector declares them once; the
 * declaration gives the admin form (labels, types, dropdown loaders), the zod schema that validates a
 * product's values, which settings are secrets, and the mapping from WHMCS's positional
 * `configoption1..24`.
 */

export interface OptionChoice {
  value: string
  label: string
}

export interface LoaderContext {
  server: import('./context.ts').Server
  signal: AbortSignal
  /** The product settings chosen so far (validated, possibly incomplete). */
  settings: Record<string, unknown>
}

/** Loads dropdown choices from the server (e.g. "domains on this server"). */
export type OptionLoader = (
  ctx: LoaderContext & { calls: import('./calls.ts').CallRecorder },
) => Promise<OptionChoice[]>

interface SettingBase {
  label: string
  description?: string
  /** A missing value is an error when true and there is no default. */
  required?: boolean
}

export interface TextSetting extends SettingBase {
  type: 'text'
  default?: string
  pattern?: RegExp
  maxLength?: number
}
export interface PasswordSetting extends SettingBase {
  type: 'password'
  default?: string
}
export interface NumberSetting extends SettingBase {
  type: 'number'
  default?: number
  min?: number
  max?: number
  integer?: boolean
  unit?: string
}
export interface YesNoSetting extends SettingBase {
  type: 'yesno'
  default?: boolean
}
export interface DropdownSetting extends SettingBase {
  type: 'dropdown'
  default?: string
  /** Fixed choices; when a `loader` is given these are only the fallback. */
  options?: readonly (string | OptionChoice)[]
  loader?: OptionLoader
}

export type SettingSpec = TextSetting | PasswordSetting | NumberSetting | YesNoSetting | DropdownSetting
export type SettingsSpec = Record<string, SettingSpec>

type Optionalise<S extends SettingBase & { default?: unknown }, T> = S extends { default: unknown }
  ? T
  : S extends { required: true }
    ? T
    : T | undefined

export type SettingValue<S extends SettingSpec> = S extends NumberSetting
  ? Optionalise<S, number>
  : S extends YesNoSetting
    ? boolean
    : Optionalise<S, string>

/** The typed values of a settings declaration. */
export type SettingsOf<S extends SettingsSpec> = { [K in keyof S]: SettingValue<S[K]> }

export const setting = {
  text: <const O extends Omit<TextSetting, 'type'>>(o: O) => ({ type: 'text', ...o }) as const,
  password: <const O extends Omit<PasswordSetting, 'type'>>(o: O) => ({ type: 'password', ...o }) as const,
  number: <const O extends Omit<NumberSetting, 'type'>>(o: O) => ({ type: 'number', ...o }) as const,
  yesNo: <const O extends Omit<YesNoSetting, 'type'>>(o: O) => ({ type: 'yesno', ...o }) as const,
  dropdown: <const O extends Omit<DropdownSetting, 'type'>>(o: O) => ({ type: 'dropdown', ...o }) as const,
}

function choiceValue(c: string | OptionChoice): string {
  return typeof c === 'string' ? c : c.value
}

const YES = new Set(['on', 'yes', 'true', '1', 'y'])
const NO = new Set(['', 'off', 'no', 'false', '0', 'n'])

function schemaFor(spec: SettingSpec): z.ZodType {
  let base: z.ZodType
  switch (spec.type) {
    case 'number': {
      let n = z.coerce.number({ error: `${spec.label} must be a number` })
      if (spec.integer) n = n.int(`${spec.label} must be a whole number`)
      if (spec.min !== undefined) n = n.min(spec.min, `${spec.label} must be at least ${spec.min}`)
      if (spec.max !== undefined) n = n.max(spec.max, `${spec.label} must be at most ${spec.max}`)
      base = z.preprocess((v) => (v === '' ? undefined : v), n)
      break
    }
    case 'yesno':
      // WHMCS sends yes/no options as "on" or "".
      base = z.union([
        z.boolean(),
        z
          .string()
          .refine(
            (s) => YES.has(s.toLowerCase()) || NO.has(s.toLowerCase()),
            `${spec.label} must be yes or no`,
          )
          .transform((s) => YES.has(s.toLowerCase())),
      ])
      break
    case 'dropdown': {
      const values = (spec.options ?? []).map(choiceValue)
      base =
        values.length > 0 && !spec.loader
          ? z.string().refine((v) => values.includes(v), `${spec.label} must be one of: ${values.join(', ')}`)
          : z.string()
      break
    }
    case 'text': {
      let s = z
        .string()
        .refine((v) => !/[\u0000-\u001f\u007f]/.test(v), `${spec.label} must not contain control characters`)
      if (spec.maxLength !== undefined)
        s = s.refine((v) => v.length <= (spec.maxLength as number), `${spec.label} is too long`)
      if (spec.pattern !== undefined) {
        const pattern = spec.pattern
        s = s.refine((v) => v === '' || pattern.test(v), `${spec.label} has an invalid format`)
      }
      base = s
      break
    }
    default:
      base = z.string()
  }
  if (spec.default !== undefined)
    return base.optional().transform((v) => (v === undefined ? spec.default : v))
  if (spec.type === 'yesno') return base.optional().transform((v) => v ?? false)
  if (spec.required) return base
  return base.optional()
}

/**
 * The zod schema that validates (and coerces) a product's settings against the declaration. With
 * `partial`, required settings may be missing (server-level checks such as testConnection).
 */
export function settingsSchema<S extends SettingsSpec>(
  spec: S,
  options: { partial?: boolean } = {},
): z.ZodType<SettingsOf<S>> {
  // A spec is declared once and a schema never changes: built once per spec (engines validate the
  // settings of every job), not on every call.
  const cached = schemaCache.get(spec)
  const hit = options.partial ? cached?.partial : cached?.full
  if (hit) return hit as z.ZodType<SettingsOf<S>>
  const built = buildSettingsSchema(spec, options)
  schemaCache.set(spec, { ...cached, [options.partial ? 'partial' : 'full']: built })
  return built
}

const schemaCache = new WeakMap<SettingsSpec, { full?: z.ZodType; partial?: z.ZodType }>()

function buildSettingsSchema<S extends SettingsSpec>(
  spec: S,
  options: { partial?: boolean },
): z.ZodType<SettingsOf<S>> {
  const shape: Record<string, z.ZodType> = {}
  for (const [key, s] of Object.entries(spec)) {
    shape[key] =
      options.partial && s.required && s.default === undefined
        ? schemaFor({ ...s, required: false })
        : schemaFor(s)
  }
  return z.object(shape).strip() as unknown as z.ZodType<SettingsOf<S>>
}

/** Names of the settings that hold secrets. */
export function secretSettingKeys(spec: SettingsSpec): string[] {
  return Object.entries(spec)
    .filter(([, s]) => s.type === 'password')
    .map(([k]) => k)
}

/**
 * Maps WHMCS's positional `configoption1..24` (in declaration order) to the named settings.
 * Named keys already present in `params` win; positions beyond the declaration are ignored.
 */
export function mapConfigOptions(
  spec: SettingsSpec,
  params: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  Object.keys(spec).forEach((name, i) => {
    if (i >= 24) return
    const positional = params[`configoption${i + 1}`]
    if (positional !== undefined) out[name] = positional
    if (params[name] !== undefined) out[name] = params[name]
  })
  return out
}

/** Static choices of a dropdown as `{ value, label }`. */
export function staticChoices(spec: DropdownSetting): OptionChoice[] {
  return (spec.options ?? []).map((c) => (typeof c === 'string' ? { value: c, label: c } : c))
}
