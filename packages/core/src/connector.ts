import type { z } from 'zod'
import { type CallRecorder, createCallRecorder } from './calls.ts'
import type { Server, ServiceContext } from './context.ts'
import { AbortedError, InternalError, TimeoutError, UnsupportedError, ValidationError } from './errors.ts'
import type { ModuleLogSink } from './module-log.ts'
import {
  type ActionResult,
  type ChangePackageResult,
  type ClientAreaResult,
  type CreateResult,
  type ListAccountsResult,
  OPERATION_INPUT_SCHEMAS,
  OPERATION_RESULT_SCHEMAS,
  type Operation,
  type OperationInput,
  type OperationResult,
  type SsoResult,
  type StateChangeResult,
  type TestConnectionResult,
  type UsageResult,
} from './operations.ts'
import {
  type CheckpointStore,
  type JsonObject,
  MemoryCheckpointStore,
  type PipelineDefinition,
  type PipelineRun,
  runPipeline,
  type StepRecord,
} from './pipeline.ts'
import { createRedactor, type Redactor } from './redaction.ts'
import { type FailedResult, failed, type PipelineRunSummary, type Result } from './result.ts'
import {
  type OptionChoice,
  type SettingsOf,
  type SettingsSpec,
  secretSettingKeys,
  settingsSchema,
  staticChoices,
} from './settings.ts'

export interface ConnectorMetadata {
  /** What an admin reads: `Axigen Mail Domain`. */
  displayName: string
  /** The system spoken to: `axigen`, `proxmox`, … */
  system: string
  description?: string
  defaultPort?: number
  defaultSecurePort?: number
}

export interface ProgressEvent {
  connector: string
  operation: Operation
  serviceId?: string
  pipeline: string
  step: StepRecord
}

/** What every operation gets. */
export interface OperationContextBase<S, R> {
  readonly connector: string
  readonly operation: Operation
  readonly server: Server
  readonly calls: CallRecorder
  readonly redactor: Redactor
  readonly dryRun: boolean
  readonly signal: AbortSignal
  readonly resources: R
  readonly checkpoints: CheckpointStore
  readonly settings: S
  /**
   * Runs a resumable pipeline for this operation and service. It resumes an unfinished checkpoint;
   * a failed run throws the failing step's error (retryable or not) after checkpointing.
   */
  runPipeline<D extends JsonObject, C>(
    pipeline: PipelineDefinition<D, C>,
    options?: { data?: D; context?: C; key?: string },
  ): Promise<PipelineRun<D>>
}

export interface ServiceOperationContext<S, R> extends OperationContextBase<S, R> {
  readonly service: ServiceContext<S>
}

export interface ChangePackageContext<S, R> extends ServiceOperationContext<S, R> {
  /** The settings before the change, when the caller knew them. */
  readonly previousSettings: S | undefined
}

export interface SsoContext<S, R> extends ServiceOperationContext<S, R> {
  readonly audience: 'client' | 'admin'
  readonly destination: string | undefined
}

export type ServerOperationContext<S, R> = OperationContextBase<Partial<S>, R>

export interface ConnectorOperations<S, R> {
  create?(ctx: ServiceOperationContext<S, R>): Promise<CreateResult>
  suspend?(ctx: ServiceOperationContext<S, R>): Promise<StateChangeResult>
  unsuspend?(ctx: ServiceOperationContext<S, R>): Promise<StateChangeResult>
  terminate?(ctx: ServiceOperationContext<S, R>): Promise<StateChangeResult>
  changePassword?(ctx: ServiceOperationContext<S, R>): Promise<StateChangeResult>
  changePackage?(ctx: ChangePackageContext<S, R>): Promise<ChangePackageResult>
  usage?(ctx: ServiceOperationContext<S, R>): Promise<UsageResult>
  clientArea?(ctx: ServiceOperationContext<S, R>): Promise<ClientAreaResult>
  sso?(ctx: SsoContext<S, R>): Promise<SsoResult>
  testConnection?(ctx: ServerOperationContext<S, R>): Promise<TestConnectionResult>
  listAccounts?(ctx: ServerOperationContext<S, R>): Promise<ListAccountsResult>
}

/** A connector-declared button: an admin or client action beyond the lifecycle. */
export interface ActionDefinition<S, R> {
  label: string
  audience: readonly ('admin' | 'client')[]
  access: 'read' | 'write'
  params?: z.ZodType
  run(ctx: ServiceOperationContext<S, R>, params: Record<string, unknown>): Promise<ActionResult>
}

export interface ConnectorDefinition<Spec extends SettingsSpec, R> {
  /** Stable id used in config, logs and checkpoints: `axigen-domain`. */
  id: string
  metadata: ConnectorMetadata
  settings: Spec
  /** Extra key names whose values are secrets (beyond password settings and the defaults). */
  secretKeys?: readonly string[]
  /** Long-lived resources per instance (connection pools); created on first use. */
  resources?: () => R
  /** Releases the resources when the instance closes. */
  dispose?: (resources: R) => Promise<void>
  operations: ConnectorOperations<SettingsOf<Spec>, R>
  actions?: Record<string, ActionDefinition<SettingsOf<Spec>, R>>
}

/** Declares a connector. Pure: nothing runs until an instance invokes an operation. */
export function defineConnector<Spec extends SettingsSpec, R = undefined>(
  definition: ConnectorDefinition<Spec, R>,
): ConnectorDefinition<Spec, R> {
  if (!/^[a-z][a-z0-9-]{1,63}$/.test(definition.id)) {
    throw new Error(
      `Connector id ${JSON.stringify(definition.id)} must be lower-case letters, digits and dashes`,
    )
  }
  return definition
}

export interface ConnectorInstanceOptions {
  sink?: ModuleLogSink
  redactor?: Redactor
  checkpoints?: CheckpointStore
  /** Every invocation runs as a dry-run (reads go through, writes are recorded). */
  dryRun?: boolean
  /** Default time limit for one operation. */
  timeoutMs?: number
  onProgress?: (event: ProgressEvent) => void
}

export interface InvokeOptions {
  dryRun?: boolean
  signal?: AbortSignal
  timeoutMs?: number
  /**
   * Identifies one logical run (a job): pipelines of the same key resume and, once completed, are not
   * run again. Without it, an unfinished pipeline resumes and a finished one runs afresh.
   */
  runKey?: string
  onProgress?: (event: ProgressEvent) => void
}

export interface ConnectorInstance<Spec extends SettingsSpec = SettingsSpec, R = unknown> {
  readonly id: string
  readonly definition: ConnectorDefinition<Spec, R>
  /** The operations and actions this connector implements. */
  readonly capabilities: {
    operations: Operation[]
    actions: { name: string; label: string; audience: readonly string[] }[]
  }
  invoke<O extends Operation>(
    operation: O,
    input: OperationInput<O>,
    options?: InvokeOptions,
  ): Promise<Result<OperationResult<O>>>
  /** Dropdown choices for a setting, from its loader or its fixed list. */
  loadOptions(
    setting: string,
    server: import('./context.ts').ServerInput,
    options?: InvokeOptions & {
      /** The values chosen so far in the product form, for loaders that depend on them (classes of a domain). */
      settings?: Record<string, unknown>
    },
  ): Promise<Result<OptionChoice[]>>
  close(): Promise<void>
}

/** The declared secrets of one invocation, added to a fresh child redactor. */
function collectSecrets(redactor: Redactor, spec: SettingsSpec, input: Record<string, unknown>): void {
  const service = input.service as Record<string, unknown> | undefined
  const server = (input.server ?? service?.server) as Record<string, unknown> | undefined
  const add = (v: unknown) => {
    if (typeof v === 'string') redactor.addValue(v)
  }
  add(service?.password)
  add(server?.password)
  add(server?.accessHash)
  const settings = (input.settings ?? service?.settings ?? {}) as Record<string, unknown>
  for (const key of secretSettingKeys(spec)) add(settings[key])
  for (const [key, value] of Object.entries((service?.customFields ?? {}) as Record<string, unknown>)) {
    if (redactor.isSecretKey(key)) add(value)
  }
  for (const [key, value] of Object.entries((server?.options ?? {}) as Record<string, unknown>)) {
    if (redactor.isSecretKey(key)) add(value)
  }
}

function validationFromZod(error: z.ZodError, prefix = ''): ValidationError {
  const issues = error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter((p) => p !== '').join('.') || '(input)',
    message: i.message,
  }))
  const summary = issues
    .slice(0, 5)
    .map((i) => `${i.path}: ${i.message}`)
    .join('; ')
  return new ValidationError(`Invalid input: ${summary}`, issues)
}

function summarise(run: PipelineRun): PipelineRunSummary {
  return {
    pipeline: run.pipeline,
    title: run.title,
    key: run.key,
    status: run.status,
    startedAt: run.startedAt,
    state: run.checkpoint.state,
    steps: run.steps,
    durationMs: run.durationMs,
  }
}

/**
 * An SSO result exists to hand its one-time URL, token included, to the caller who redirects the
 * person: the token stays masked in the module log and in errors, but not in the URL returned.
 */
function keepSsoUrl<T>(operation: Operation, original: T, redacted: T): T {
  if (operation !== 'sso' || original === null || typeof original !== 'object') return redacted
  const url = (original as { url?: unknown }).url
  return typeof url === 'string' ? ({ ...redacted, url } as T) : redacted
}

export function createConnector<Spec extends SettingsSpec, R>(
  definition: ConnectorDefinition<Spec, R>,
  options: ConnectorInstanceOptions = {},
): ConnectorInstance<Spec, R> {
  const baseRedactor = options.redactor ?? createRedactor()
  for (const key of [...(definition.secretKeys ?? []), ...secretSettingKeys(definition.settings)])
    baseRedactor.addKey(key)
  const checkpoints = options.checkpoints ?? new MemoryCheckpointStore()
  const fullSettings = settingsSchema(definition.settings)
  const partialSettings = settingsSchema(definition.settings, { partial: true })
  let resources: R | undefined
  let resourcesMade = false
  const getResources = (): R => {
    if (!resourcesMade) {
      resources = definition.resources ? definition.resources() : (undefined as R)
      resourcesMade = true
    }
    return resources as R
  }

  const operations = (Object.keys(OPERATION_INPUT_SCHEMAS) as Operation[]).filter((op) =>
    op === 'action'
      ? Object.keys(definition.actions ?? {}).length > 0
      : typeof definition.operations[op as keyof ConnectorOperations<unknown, unknown>] === 'function',
  )
  const capabilities = {
    operations,
    actions: Object.entries(definition.actions ?? {}).map(([name, a]) => ({
      name,
      label: a.label,
      audience: a.audience,
    })),
  }

  async function execute(
    operation: Operation,
    rawInput: unknown,
    invokeOptions: InvokeOptions,
    redactor: Redactor,
    calls: CallRecorder,
    runs: PipelineRunSummary[],
    signal: AbortSignal,
  ): Promise<unknown> {
    const parsed = OPERATION_INPUT_SCHEMAS[operation].safeParse(rawInput)
    if (!parsed.success) throw validationFromZod(parsed.error)
    const input = parsed.data as Record<string, unknown>
    const service = input.service as ServiceContext<Record<string, unknown>> | undefined
    const server = (input.server ?? service?.server) as Server | undefined
    if (!server)
      throw new ValidationError('Invalid input: service.server: is required', [
        { path: 'service.server', message: 'is required' },
      ])
    const isServerOp = operation === 'testConnection' || operation === 'listAccounts'
    const rawSettings = (isServerOp ? input.settings : service?.settings) ?? {}
    const settingsResult = (isServerOp ? partialSettings : fullSettings).safeParse(rawSettings)
    if (!settingsResult.success)
      throw validationFromZod(settingsResult.error, isServerOp ? 'settings' : 'service.settings')
    const settings = settingsResult.data as SettingsOf<Spec>
    let previousSettings: SettingsOf<Spec> | undefined
    if (operation === 'changePackage' && input.previousSettings !== undefined) {
      const prev = fullSettings.safeParse(input.previousSettings)
      if (!prev.success) throw validationFromZod(prev.error, 'previousSettings')
      previousSettings = prev.data
    }
    const scopedCalls = calls
    const base: OperationContextBase<SettingsOf<Spec>, R> = {
      connector: definition.id,
      operation,
      server,
      calls: scopedCalls,
      redactor,
      dryRun: calls.dryRun,
      signal,
      resources: getResources(),
      checkpoints,
      settings,
      async runPipeline(pipeline, pipelineOptions = {}) {
        const key =
          pipelineOptions.key ??
          `${definition.id}:${service?.serviceId ?? server.hostname}:${operation}:${pipeline.name}${invokeOptions.runKey ? `:${invokeOptions.runKey}` : ''}`
        const onProgress = invokeOptions.onProgress ?? options.onProgress
        const run = await runPipeline(pipeline, {
          key,
          store: checkpoints,
          ...(pipelineOptions.data !== undefined ? { data: pipelineOptions.data } : {}),
          context: pipelineOptions.context,
          signal,
          onCompleted: invokeOptions.runKey ? 'return' : 'restart',
          onStep: (step) => {
            const event: ProgressEvent = {
              connector: definition.id,
              operation,
              pipeline: pipeline.name,
              step,
            }
            if (service) event.serviceId = service.serviceId
            onProgress?.(event)
          },
        })
        runs.push(summarise(run as PipelineRun))
        if (run.status === 'failed' && run.error) throw run.error
        return run
      },
    }
    if (operation === 'action') {
      const name = input.action as string
      const action = definition.actions?.[name]
      if (!action) throw new UnsupportedError(`Connector ${definition.id} has no action ${name}`)
      const audience = input.audience as 'admin' | 'client'
      if (!action.audience.includes(audience))
        throw new UnsupportedError(`Action ${name} is not available to ${audience}s`)
      let params = input.params as Record<string, unknown>
      if (action.params) {
        const p = action.params.safeParse(params)
        if (!p.success) throw validationFromZod(p.error, 'params')
        params = p.data as Record<string, unknown>
      }
      return action.run(
        {
          ...base,
          service: { ...(service as ServiceContext<unknown>), settings } as ServiceContext<SettingsOf<Spec>>,
        },
        params,
      )
    }
    const impl = definition.operations[operation as keyof ConnectorOperations<unknown, unknown>] as
      | ((ctx: unknown) => Promise<unknown>)
      | undefined
    if (!impl) throw new UnsupportedError(`Connector ${definition.id} does not implement ${operation}`)
    if (isServerOp) return impl.call(definition.operations, base)
    const ctx: Record<string, unknown> = { ...base, service: { ...(service as object), settings } }
    if (operation === 'changePackage') ctx.previousSettings = previousSettings
    if (operation === 'sso') {
      ctx.audience = input.audience
      ctx.destination = input.destination
    }
    return impl.call(definition.operations, ctx)
  }

  async function guarded<T>(
    operation: Operation,
    rawInput: unknown,
    invokeOptions: InvokeOptions,
    body: (
      redactor: Redactor,
      calls: CallRecorder,
      runs: PipelineRunSummary[],
      signal: AbortSignal,
    ) => Promise<T>,
  ): Promise<Result<T>> {
    const started = performance.now()
    const redactor = baseRedactor.child()
    const runs: PipelineRunSummary[] = []
    let calls: CallRecorder | undefined
    const controller = new AbortController()
    const timeoutMs = invokeOptions.timeoutMs ?? options.timeoutMs
    let timer: NodeJS.Timeout | undefined
    const onAbort = () => controller.abort(new AbortedError('The operation was aborted'))
    try {
      if (rawInput !== null && typeof rawInput === 'object')
        collectSecrets(redactor, definition.settings, rawInput as Record<string, unknown>)
      const service = (rawInput as { service?: { serviceId?: unknown } } | null)?.service
      const recorderOptions: Parameters<typeof createCallRecorder>[0] = {
        connector: definition.id,
        operation,
        redactor,
        dryRun: invokeOptions.dryRun ?? options.dryRun ?? false,
      }
      if (options.sink) recorderOptions.sink = options.sink
      if (service && (typeof service.serviceId === 'string' || typeof service.serviceId === 'number')) {
        recorderOptions.serviceId = String(service.serviceId)
      }
      calls = createCallRecorder(recorderOptions)
      if (invokeOptions.signal?.aborted) onAbort()
      invokeOptions.signal?.addEventListener('abort', onAbort, { once: true })
      const work = body(redactor, calls, runs, controller.signal)
      const data = await (timeoutMs === undefined
        ? work
        : Promise.race([
            work,
            new Promise<never>((_, reject) => {
              timer = setTimeout(() => {
                const error = new TimeoutError(
                  `${definition.id} ${operation} took longer than ${timeoutMs} ms`,
                )
                controller.abort(error)
                reject(error)
              }, timeoutMs)
            }),
          ]))
      const result: Result<T> = {
        ok: true,
        operation,
        data: keepSsoUrl(operation, data, redactor.redact(data)),
        durationMs: performance.now() - started,
      }
      if (calls.dryRun) result.dryRun = { writes: [...calls.writes] }
      if (runs.length > 0) result.runs = redactor.redact(runs)
      return result
    } catch (error) {
      const result: FailedResult = failed(operation, error, redactor, performance.now() - started)
      if (calls?.dryRun) result.dryRun = { writes: [...calls.writes] }
      if (runs.length > 0) result.runs = redactor.redact(runs)
      return result
    } finally {
      if (timer) clearTimeout(timer)
      invokeOptions.signal?.removeEventListener('abort', onAbort)
    }
  }

  return {
    id: definition.id,
    definition,
    capabilities,
    invoke(operation, input, invokeOptions = {}) {
      return guarded(operation, input, invokeOptions, async (redactor, calls, runs, signal) => {
        if (!Object.hasOwn(OPERATION_INPUT_SCHEMAS, operation)) {
          throw new UnsupportedError(`Unknown operation ${String(operation)}`)
        }
        const data = await execute(operation, input, invokeOptions, redactor, calls, runs, signal)
        const checked = OPERATION_RESULT_SCHEMAS[operation].safeParse(data)
        if (!checked.success) {
          throw new InternalError(
            `Connector ${definition.id} returned an invalid ${operation} result: ${checked.error.issues
              .map((i) => `${i.path.join('.')}: ${i.message}`)
              .join('; ')}`,
          )
        }
        return checked.data
      }) as Promise<Result<OperationResult<typeof operation>>>
    },
    loadOptions(settingKey, server, invokeOptions = {}) {
      const current = invokeOptions.settings ?? {}
      return guarded(
        'testConnection',
        { server, settings: current },
        invokeOptions,
        async (_redactor, calls, _runs, signal) => {
          const spec = definition.settings[settingKey]
          if (!spec)
            throw new ValidationError(`Unknown setting ${settingKey}`, [
              { path: 'setting', message: 'is not declared' },
            ])
          if (spec.type !== 'dropdown')
            throw new ValidationError(`Setting ${settingKey} is not a dropdown`, [
              { path: 'setting', message: 'is not a dropdown' },
            ])
          if (!spec.loader) return staticChoices(spec)
          const parsed = OPERATION_INPUT_SCHEMAS.testConnection.safeParse({ server, settings: current })
          if (!parsed.success) throw validationFromZod(parsed.error)
          const settings = partialSettings.safeParse(parsed.data.settings)
          if (!settings.success) throw validationFromZod(settings.error, 'settings')
          return spec.loader({
            server: parsed.data.server,
            signal,
            calls,
            settings: settings.data as Record<string, unknown>,
          })
        },
      )
    },
    async close() {
      if (resourcesMade && definition.dispose) await definition.dispose(resources as R)
      resourcesMade = false
      resources = undefined
    },
  }
}
