import { customerMessageFor, type ErrorKind, isPanelkitError, ValidationError } from './errors.ts'
import type { Redactor } from './redaction.ts'
import type { PipelineRunSummary } from './run-records.ts'

export type { PipelineRunSummary } from './run-records.ts'

/** A serialisable description of what went wrong, with secrets already masked. */
export interface FailureCause {
  name: string
  message: string
  code?: string
  stack?: string
}

export interface Failure {
  /** Stable code (`VALIDATION`, `CONFLICT`, `INTERNAL`, …). */
  code: ErrorKind
  /** Safe to show to a customer. */
  message: string
  /** For the operator: what failed and why, secrets masked. */
  detail: string
  retryable: boolean
  /** The offending input field for `VALIDATION`, as a dotted path. */
  field?: string
  /** Every offending field for `VALIDATION`. */
  issues?: { path: string; message: string }[]
  /** The underlying error, redacted; the stack is for operators only. */
  cause?: FailureCause
}

export interface RecordedWrite {
  system: string
  action: string
  target?: string
  request?: unknown
}

export interface OkResult<T> {
  ok: true
  operation: string
  data: T
  durationMs: number
  /** Present under dry-run: the writes that would have been sent. */
  dryRun?: { writes: RecordedWrite[] }
  /** Pipelines the operation ran. */
  runs?: PipelineRunSummary[]
}

export interface FailedResult {
  ok: false
  operation: string
  error: Failure
  durationMs: number
  dryRun?: { writes: RecordedWrite[] }
  runs?: PipelineRunSummary[]
}

export type Result<T> = OkResult<T> | FailedResult

export function ok<T>(operation: string, data: T, durationMs = 0): OkResult<T> {
  return { ok: true, operation, data, durationMs }
}

function describeCause(error: unknown, redactor: Redactor | undefined): FailureCause | undefined {
  if (error === undefined || error === null) return undefined
  const scrub = (s: string) => (redactor ? redactor.redactString(s) : s)
  if (error instanceof Error) {
    const cause: FailureCause = { name: error.name, message: scrub(error.message) }
    const code = (error as { code?: unknown }).code
    if (typeof code === 'string') cause.code = code
    if (error.stack !== undefined) cause.stack = scrub(error.stack)
    return cause
  }
  return { name: typeof error, message: scrub(String(error)) }
}

/** Turns anything thrown into a `Failure`, masking secrets on the way. */
export function toFailure(error: unknown, redactor?: Redactor): Failure {
  const scrub = (s: string) => (redactor ? redactor.redactString(s) : s)
  if (isPanelkitError(error)) {
    const failure: Failure = {
      code: error.kind,
      message: scrub(error.customerMessage),
      detail: scrub(error.message),
      retryable: error.retryable,
    }
    if (error instanceof ValidationError || error.kind === 'VALIDATION') {
      const issues = (error as ValidationError).issues ?? []
      if (issues.length > 0) {
        failure.issues = issues.map((i) => ({ path: i.path, message: scrub(i.message) }))
        failure.field = issues[0]?.path ?? ''
      }
    }
    const cause = describeCause(error.cause ?? error, redactor)
    if (cause) failure.cause = cause
    return failure
  }
  const failure: Failure = {
    code: 'INTERNAL',
    message: customerMessageFor('INTERNAL'),
    detail: scrub(`Unexpected error: ${error instanceof Error ? error.message : String(error)}`),
    retryable: false,
  }
  const cause = describeCause(error, redactor)
  if (cause) failure.cause = cause
  return failure
}

export function failed(operation: string, error: unknown, redactor?: Redactor, durationMs = 0): FailedResult {
  return { ok: false, operation, error: toFailure(error, redactor), durationMs }
}
