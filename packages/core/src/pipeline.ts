import { isPanelkitError, type PanelkitError, throwIfAborted, toPanelkitError } from './errors.ts'
import { type Failure, toFailure } from './result.ts'
import type { PipelineRunSummary, StepRecord } from './run-records.ts'

export type { StepRecord, StepRecordOutcome } from './run-records.ts'

/**
 * Resumable pipelines: an ordered list of named, idempotent steps. A run starts at the persisted
 * checkpoint, checkpoints after every step, records each step's outcome and duration, and stops at the
 * first failure with the state left at the last success — so the next run resumes exactly there.
 */

export type JsonObject = Record<string, unknown>

export interface StepContext<D extends JsonObject, C = unknown> {
  /** Data accumulated by earlier steps (and the initial input), as persisted. */
  readonly data: Readonly<D>
  readonly signal: AbortSignal
  /** Whatever the caller passed as `context` (clients, the service, …). */
  readonly context: C
  readonly step: { index: number; name: string; attempt: number }
}

/** What a step reports: done (optionally adding data) or skipped because nothing had to change. */
export type StepOutcome<D extends JsonObject> =
  | { status: 'done'; data?: Partial<D>; note?: string }
  | { status: 'skipped'; reason?: string; data?: Partial<D> }

export interface PipelineStep<D extends JsonObject, C = unknown> {
  /** Stable identifier, stored in checkpoints. */
  name: string
  /** What a person reads: `Migrate to target node`. */
  label: string
  /** The state reached when this step succeeds: `migrated`. */
  state: string
  run(ctx: StepContext<D, C>): Promise<StepOutcome<D> | undefined>
}

export interface PipelineDefinition<D extends JsonObject, C = unknown> {
  name: string
  /** Title for people: `Deploy`, `ChangePackage`. */
  title: string
  initialState: string
  steps: readonly PipelineStep<D, C>[]
}

export function definePipeline<D extends JsonObject, C = unknown>(
  definition: PipelineDefinition<D, C>,
): PipelineDefinition<D, C> {
  const names = new Set<string>()
  for (const step of definition.steps) {
    if (names.has(step.name)) throw new Error(`Pipeline ${definition.name}: duplicate step name ${step.name}`)
    names.add(step.name)
  }
  return definition
}

export interface Checkpoint<D extends JsonObject = JsonObject> {
  key: string
  pipeline: string
  state: string
  /** Index (0-based) of the next step to run; equals the step count when completed. */
  nextStep: number
  completed: boolean
  data: D
  /** Runs that ended in a failure since the last success. */
  failures: number
  lastError?: Failure
  history: StepRecord[]
  updatedAt: string
}

/** Where checkpoints live. The app supplies a durable store; tests use the in-memory one. */
export interface CheckpointStore {
  load(key: string): Promise<Checkpoint | undefined>
  save(checkpoint: Checkpoint): Promise<void>
  delete(key: string): Promise<void>
}

export class MemoryCheckpointStore implements CheckpointStore {
  private readonly map = new Map<string, string>()
  async load(key: string): Promise<Checkpoint | undefined> {
    const raw = this.map.get(key)
    return raw === undefined ? undefined : (JSON.parse(raw) as Checkpoint)
  }
  async save(checkpoint: Checkpoint): Promise<void> {
    // Stored as JSON so that what comes back is exactly what a durable store would return.
    this.map.set(checkpoint.key, JSON.stringify(checkpoint))
  }
  async delete(key: string): Promise<void> {
    this.map.delete(key)
  }
  keys(): string[] {
    return [...this.map.keys()]
  }
}

export interface RunPipelineOptions<D extends JsonObject, C> {
  key: string
  store: CheckpointStore
  /** Data for a fresh run; ignored when resuming (the checkpoint's data wins, then these fill gaps). */
  data?: D
  context?: C
  signal?: AbortSignal
  /** `return`: a completed checkpoint is returned as is (idempotent); `restart`: run again from the top. */
  onCompleted?: 'return' | 'restart'
  /** Called after each step with its record (progress bars, step lines). */
  onStep?: (record: StepRecord, checkpoint: Checkpoint<D>) => void
  /** Keep at most this many step records in the checkpoint history. */
  historyLimit?: number
  now?: () => number
}

export interface PipelineRun<D extends JsonObject = JsonObject> {
  pipeline: string
  title: string
  key: string
  status: 'completed' | 'failed'
  /** The state the run started from. */
  startedAt: string
  checkpoint: Checkpoint<D>
  /** Steps run in this run, in order. */
  steps: StepRecord[]
  durationMs: number
  error?: PanelkitError
}

export async function runPipeline<D extends JsonObject, C = unknown>(
  pipeline: PipelineDefinition<D, C>,
  options: RunPipelineOptions<D, C>,
): Promise<PipelineRun<D>> {
  const now = options.now ?? (() => performance.now())
  const started = now()
  const signal = options.signal ?? new AbortController().signal
  const historyLimit = options.historyLimit ?? 200
  let checkpoint = (await options.store.load(options.key)) as Checkpoint<D> | undefined
  if (checkpoint && checkpoint.pipeline !== pipeline.name) {
    throw new Error(
      `Checkpoint ${options.key} belongs to pipeline ${checkpoint.pipeline}, not ${pipeline.name}`,
    )
  }
  if (checkpoint?.completed && (options.onCompleted ?? 'return') === 'restart') checkpoint = undefined
  if (!checkpoint) {
    checkpoint = {
      key: options.key,
      pipeline: pipeline.name,
      state: pipeline.initialState,
      nextStep: 0,
      completed: pipeline.steps.length === 0,
      data: { ...(options.data ?? ({} as D)) },
      failures: 0,
      history: [],
      updatedAt: new Date().toISOString(),
    }
    await options.store.save(checkpoint as Checkpoint)
  } else if (options.data) {
    checkpoint.data = { ...options.data, ...checkpoint.data }
  }
  const run: PipelineRun<D> = {
    pipeline: pipeline.name,
    title: pipeline.title,
    key: options.key,
    status: 'completed',
    startedAt: checkpoint.state,
    checkpoint,
    steps: [],
    durationMs: 0,
  }
  while (checkpoint.nextStep < pipeline.steps.length) {
    const current: Checkpoint<D> = checkpoint
    const index: number = current.nextStep
    const step = pipeline.steps[index] as PipelineStep<D, C>
    const from = checkpoint.state
    const stepStarted = now()
    try {
      throwIfAborted(signal)
      const outcome: StepOutcome<D> =
        (await step.run({
          data: current.data,
          signal,
          context: options.context as C,
          step: { index: index + 1, name: step.name, attempt: current.failures + 1 },
        })) ?? ({ status: 'done' } as StepOutcome<D>)
      const record: StepRecord = {
        index: index + 1,
        name: step.name,
        label: step.label,
        outcome: outcome.status === 'skipped' ? 'skipped' : 'success',
        from,
        to: step.state,
        durationMs: now() - stepStarted,
        at: new Date().toISOString(),
      }
      if (outcome.status === 'skipped' && outcome.reason !== undefined) record.reason = outcome.reason
      if (outcome.status === 'done' && outcome.note !== undefined) record.reason = outcome.note
      checkpoint = {
        ...checkpoint,
        state: step.state,
        nextStep: index + 1,
        completed: index + 1 === pipeline.steps.length,
        data: { ...checkpoint.data, ...(outcome.data ?? {}) },
        failures: 0,
        history: [...checkpoint.history, record].slice(-historyLimit),
        updatedAt: new Date().toISOString(),
      }
      delete checkpoint.lastError
      await options.store.save(checkpoint as Checkpoint)
      run.steps.push(record)
      options.onStep?.(record, checkpoint)
    } catch (thrown) {
      const error = toPanelkitError(thrown, `Step ${index + 1} (${step.label}) failed`)
      const failure = toFailure(error)
      const record: StepRecord = {
        index: index + 1,
        name: step.name,
        label: step.label,
        outcome: 'failed',
        from,
        to: step.state,
        durationMs: now() - stepStarted,
        at: new Date().toISOString(),
        reason: isPanelkitError(thrown) ? thrown.message : failure.detail,
        retryable: error.retryable,
      }
      checkpoint = {
        ...checkpoint,
        failures: checkpoint.failures + 1,
        lastError: failure,
        history: [...checkpoint.history, record].slice(-historyLimit),
        updatedAt: new Date().toISOString(),
      }
      await options.store.save(checkpoint as Checkpoint)
      run.steps.push(record)
      options.onStep?.(record, checkpoint)
      run.status = 'failed'
      run.error = error
      break
    }
  }
  run.checkpoint = checkpoint
  run.durationMs = now() - started
  return run
}

function seconds(ms: number): string {
  return `[${(ms / 1000).toFixed(2)}s]`
}

/** The label as printed: a skipped step says why (`skip — no change` unless the step gave a reason). */
function displayLabel(record: StepRecord): string {
  return record.outcome === 'skipped'
    ? `${record.label} (skip — ${record.reason ?? 'no change'})`
    : record.label
}

/**
 * One step as a line, in the shape PUQ's cron output made familiar, on one line instead of two:
 * `[+]  1. Migrate to target node            success (clone -> migrated) [30.23s]`.
 */
export function formatStepLine(
  record: StepRecord,
  options: { labelWidth?: number; indexWidth?: number } = {},
): string {
  const mark = record.outcome === 'failed' ? '[!]' : record.outcome === 'skipped' ? '[=]' : '[+]'
  const index = `${String(record.index).padStart(options.indexWidth ?? 2)}.`
  const padded = displayLabel(record).padEnd(options.labelWidth ?? 36)
  if (record.outcome === 'failed') {
    const retry = record.retryable ? ' Will retry.' : ' Needs attention.'
    return `${mark} ${index} ${padded} failed: ${record.reason ?? 'unknown error'}.${retry} (${record.from} -> ${record.to}) ${seconds(record.durationMs)}`
  }
  return `${mark} ${index} ${padded} success (${record.from} -> ${record.to}) ${seconds(record.durationMs)}`
}

/** A whole run (or its summary in a result): header, one line per step, and where it ended. */
export function formatPipelineRun(
  run: PipelineRun | PipelineRunSummary,
  options: { subject?: string } = {},
): string {
  const endState = 'checkpoint' in run ? run.checkpoint.state : run.state
  const subject = options.subject ?? `key=${run.key}`
  const width = Math.max(20, ...run.steps.map((s) => displayLabel(s).length)) + 2
  const lines = [`--- ${run.title}: ${subject} status=${run.startedAt} ---`]
  for (const step of run.steps) lines.push(formatStepLine(step, { labelWidth: width }))
  if (run.status === 'completed') {
    lines.push(`--- ${run.title} complete: ${subject} status=${endState} ${seconds(run.durationMs)} ---`)
  } else {
    lines.push(`--- ${run.title} paused: waiting at (${endState}) ${seconds(run.durationMs)} ---`)
  }
  return lines.join('\n')
}
