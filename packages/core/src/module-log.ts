import type { Writable } from 'node:stream'
import type { Redactor } from './redaction.ts'

export type CallAccess = 'read' | 'write'
export type CallOutcome = 'ok' | 'error' | 'dry-run'

/** One external call, as the operator sees it in the module log. Always stored redacted. */
export interface ModuleLogEntry {
  id: string
  time: string
  /** The connector (`proxmox-kvm`) or client (`whmcs`) that made the call. */
  connector: string
  /** The lifecycle operation (`create`) or client action that caused it. */
  operation?: string
  serviceId?: string
  /** The system spoken to (`axigen`, `proxmox`, …). */
  system: string
  /** What was asked (`POST /nodes/{node}/qemu/{vmid}/clone`, `CREATE Domain`). */
  action: string
  access: CallAccess
  target?: string
  request?: unknown
  response?: unknown
  durationMs: number
  outcome: CallOutcome
  error?: { code: string; message: string }
}

export interface ModuleLogSink {
  write(entry: ModuleLogEntry): void
}

/** Keeps entries in memory, newest last; bounded so a long-running process does not grow forever. */
export class MemoryLogSink implements ModuleLogSink {
  readonly entries: ModuleLogEntry[] = []
  private readonly limit: number
  constructor(limit = 10_000) {
    this.limit = limit
  }
  write(entry: ModuleLogEntry): void {
    this.entries.push(entry)
    if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit)
  }
  clear(): void {
    this.entries.length = 0
  }
  filter(
    predicate: Partial<Pick<ModuleLogEntry, 'connector' | 'operation' | 'serviceId' | 'access' | 'outcome'>>,
  ) {
    return this.entries.filter((e) =>
      Object.entries(predicate).every(([k, v]) => (e as unknown as Record<string, unknown>)[k] === v),
    )
  }
}

/** One JSON document per line, for log shippers. */
export class JsonLinesLogSink implements ModuleLogSink {
  private readonly stream: Pick<Writable, 'write'>
  constructor(stream: Pick<Writable, 'write'>) {
    this.stream = stream
  }
  write(entry: ModuleLogEntry): void {
    this.stream.write(`${JSON.stringify(entry)}\n`)
  }
}

function short(value: unknown, max = 160): string {
  if (value === undefined) return ''
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  if (text === undefined) return ''
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** A line per call for people: time, outcome, system, action, duration, and the error if any. */
export class HumanLogSink implements ModuleLogSink {
  private readonly stream: Pick<Writable, 'write'>
  constructor(stream: Pick<Writable, 'write'>) {
    this.stream = stream
  }
  write(entry: ModuleLogEntry): void {
    const mark = entry.outcome === 'ok' ? '+' : entry.outcome === 'dry-run' ? '~' : '!'
    const who = [entry.connector, entry.operation, entry.serviceId ? `service=${entry.serviceId}` : undefined]
      .filter(Boolean)
      .join(' ')
    const tail = entry.error
      ? ` ${entry.error.code}: ${entry.error.message}`
      : entry.outcome === 'dry-run'
        ? ' (dry-run, not sent)'
        : ''
    const req = entry.request === undefined ? '' : ` ${short(entry.request)}`
    this.stream.write(
      `${entry.time} [${mark}] ${who} ${entry.system} ${entry.action}${req} ${entry.durationMs.toFixed(1)}ms${tail}\n`,
    )
  }
}

/** Sends every entry to several sinks. */
export class FanOutLogSink implements ModuleLogSink {
  private readonly sinks: readonly ModuleLogSink[]
  constructor(sinks: readonly ModuleLogSink[]) {
    this.sinks = sinks
  }
  write(entry: ModuleLogEntry): void {
    for (const sink of this.sinks) sink.write(entry)
  }
}

let counter = 0
export function nextLogId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER
  return `${Date.now().toString(36)}-${process.pid.toString(36)}-${counter.toString(36)}`
}

/** Redacts an entry; used by every path that writes to a sink. */
export function redactEntry(entry: ModuleLogEntry, redactor: Redactor): ModuleLogEntry {
  return redactor.redact(entry)
}
