import { isPanelkitError } from './errors.ts'
import type { CallAccess, ModuleLogEntry, ModuleLogSink } from './module-log.ts'
import { nextLogId } from './module-log.ts'
import { createRedactor, markRedacted, type Redactor, redactErrorInPlace } from './redaction.ts'
import type { RecordedWrite } from './result.ts'

/** What a transport tells the recorder about one external call. */
export interface CallInfo<T> {
  system: string
  /** `GET /nodes/{node}/qemu`, `CREATE Domain`, `AddBillableItem`, … */
  action: string
  /** Reads always go through; writes are recorded and not sent under dry-run. */
  access: CallAccess
  target?: string
  request?: unknown
  /** The answer to pretend under dry-run, so the caller can carry on (`+OK`, `{ data: null }`). */
  dryRunResult?: () => T
  /** Shapes a response for the log (drop bulk, keep the facts). Defaults to the response itself. */
  summarize?: (response: T) => unknown
}

/**
 * The one door every external call of every transport goes through: it times the call, writes a
 * redacted module-log entry, and under dry-run keeps writes from being sent.
 */
export interface CallRecorder {
  readonly dryRun: boolean
  readonly redactor: Redactor
  /** Writes recorded (not sent) under dry-run, in order. */
  readonly writes: readonly RecordedWrite[]
  call<T>(info: CallInfo<T>, send: () => Promise<T>): Promise<T>
  /** A recorder for a narrower scope (an operation, a service) sharing sink, redactor and writes. */
  scoped(scope: { operation?: string; serviceId?: string; connector?: string }): CallRecorder
}

export interface CallRecorderOptions {
  connector: string
  operation?: string
  serviceId?: string
  sink?: ModuleLogSink
  redactor?: Redactor
  dryRun?: boolean
  now?: () => number
}

class Recorder implements CallRecorder {
  readonly dryRun: boolean
  readonly redactor: Redactor
  readonly writes: RecordedWrite[]
  private readonly options: CallRecorderOptions
  private readonly now: () => number

  constructor(options: CallRecorderOptions, writes: RecordedWrite[]) {
    this.options = options
    this.dryRun = options.dryRun ?? false
    this.redactor = options.redactor ?? createRedactor()
    this.writes = writes
    this.now = options.now ?? (() => performance.now())
  }

  scoped(scope: { operation?: string; serviceId?: string; connector?: string }): CallRecorder {
    return new Recorder({ ...this.options, ...scope, redactor: this.redactor }, this.writes)
  }

  private entry(info: CallInfo<unknown>, durationMs: number): ModuleLogEntry {
    const entry: ModuleLogEntry = {
      id: nextLogId(),
      time: new Date().toISOString(),
      connector: this.options.connector,
      system: info.system,
      action: info.action,
      access: info.access,
      durationMs: Math.round(durationMs * 1000) / 1000,
      outcome: 'ok',
    }
    if (this.options.operation !== undefined) entry.operation = this.options.operation
    if (this.options.serviceId !== undefined) entry.serviceId = this.options.serviceId
    if (info.target !== undefined) entry.target = info.target
    if (info.request !== undefined) entry.request = info.request
    return entry
  }

  private emit(entry: ModuleLogEntry): void {
    const sink = this.options.sink
    if (!sink) return
    // What came from outside (action and target text, request, response, error) is redacted; the id,
    // the time, the names of this connector and operation, the outcome and the duration are
    // this recorder's own and cannot hold a secret, so they are not walked.
    const out: ModuleLogEntry = { ...entry, action: this.redactor.redactString(entry.action) }
    if (entry.target !== undefined) out.target = this.redactor.redactString(entry.target)
    if (entry.serviceId !== undefined) out.serviceId = this.redactor.redactString(entry.serviceId)
    if (entry.request !== undefined) out.request = this.redactor.redact(entry.request)
    if (entry.response !== undefined) out.response = this.redactor.redact(entry.response)
    if (entry.error !== undefined) out.error = this.redactor.redact(entry.error)
    sink.write(markRedacted(out, this.redactor))
  }

  async call<T>(info: CallInfo<T>, send: () => Promise<T>): Promise<T> {
    if (this.dryRun && info.access === 'write') {
      const write: RecordedWrite = { system: info.system, action: info.action }
      if (info.target !== undefined) write.target = info.target
      if (info.request !== undefined) write.request = this.redactor.redact(info.request)
      this.writes.push(write)
      const entry = this.entry(info as CallInfo<unknown>, 0)
      entry.outcome = 'dry-run'
      this.emit(entry)
      return info.dryRunResult ? info.dryRunResult() : (undefined as T)
    }
    // Without a sink nobody reads an entry: building one (and summarising a large answer) would be pure
    // cost on every call.
    // Errors leave masked: a server or proxy may echo the request (form body, Authorization header) in
    // its error body, and a client's user logs what it throws.
    if (this.options.sink === undefined) {
      try {
        return await send()
      } catch (error) {
        throw redactErrorInPlace(error, this.redactor)
      }
    }
    const started = this.now()
    try {
      const response = await send()
      const entry = this.entry(info as CallInfo<unknown>, this.now() - started)
      entry.response = info.summarize ? info.summarize(response) : response
      this.emit(entry)
      return response
    } catch (caught) {
      const error = redactErrorInPlace(caught, this.redactor)
      const entry = this.entry(info as CallInfo<unknown>, this.now() - started)
      entry.outcome = 'error'
      entry.error = isPanelkitError(error)
        ? { code: error.code, message: error.message }
        : {
            code: (error as { code?: string })?.code ?? 'UNKNOWN',
            message: error instanceof Error ? error.message : String(error),
          }
      this.emit(entry)
      throw error
    }
  }
}

export function createCallRecorder(options: CallRecorderOptions): CallRecorder {
  return new Recorder(options, [])
}
