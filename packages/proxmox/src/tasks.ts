import {
  CommandError,
  type PanelkitErrorOptions,
  ProtocolError,
  sleep,
  TimeoutError,
  throwIfAborted,
} from '@panelkit/core'
import { classifyPveMessage, PveFailureKind } from './errors.ts'

/** A task id: `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`. */
export interface Upid {
  raw: string
  node: string
  pid: number
  pstart: number
  /** Epoch seconds. */
  starttime: number
  type: string
  /** Usually the VMID; may be empty. */
  id: string
  /** `user@realm` or `user@realm!tokenid`. */
  user: string
}

const UPID_PATTERN =
  /^UPID:([a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/

export function parseUpid(raw: string): Upid {
  const m = UPID_PATTERN.exec(raw)
  if (!m) throw new ProtocolError(`Not a task id (UPID): ${JSON.stringify(raw.slice(0, 120))}`)
  return {
    raw,
    node: m[1] as string,
    pid: Number.parseInt(m[2] as string, 16),
    pstart: Number.parseInt(m[3] as string, 16),
    starttime: Number.parseInt(m[4] as string, 16),
    type: m[5] as string,
    id: m[6] as string,
    user: m[7] as string,
  }
}

export function isUpid(value: unknown): value is string {
  return typeof value === 'string' && UPID_PATTERN.test(value)
}

const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0')

export function formatUpid(u: Omit<Upid, 'raw'>): string {
  return `UPID:${u.node}:${hex(u.pid, 8)}:${hex(u.pstart, 8)}:${hex(u.starttime, 8)}:${u.type}:${u.id}:${u.user}:`
}

/** The UPID a dry-run write pretends to return; waiting for it succeeds at once. */
export function dryRunUpid(type: string, id = ''): string {
  return formatUpid({
    node: 'dryrun',
    pid: 0,
    pstart: 0,
    starttime: Math.floor(Date.now() / 1000),
    type,
    id,
    user: 'dry-run@pve',
  })
}

export function isDryRunUpid(upid: string): boolean {
  return upid.startsWith('UPID:dryrun:00000000:')
}

export interface TaskStatus {
  upid: string
  node: string
  status: 'running' | 'stopped'
  exitstatus?: string
  type?: string
  id?: string
  user?: string
  starttime?: number
}

export interface TaskLogLine {
  n: number
  t: string
}

export interface TaskResult {
  upid: Upid
  exitstatus: string
  /** The `n` of `WARNINGS: n`, else 0. */
  warnings: number
}

/** A task that ended with an error: the server's text is in the message and `exitstatus`. */
export class TaskFailedError extends CommandError {
  readonly upid: string
  readonly exitstatus: string
  readonly pveFailure: PveFailureKind
  constructor(upid: Upid, exitstatus: string, options: PanelkitErrorOptions = {}) {
    const failure = classifyPveMessage(exitstatus)
    super(`Task ${upid.type}${upid.id ? ` ${upid.id}` : ''} on ${upid.node} failed: ${exitstatus}`, {
      ...options,
      retryable: options.retryable ?? (failure === PveFailureKind.LOCK || failure === PveFailureKind.DIGEST),
      details: { upid: upid.raw, exitstatus, ...(options.details ?? {}) },
    })
    this.name = 'TaskFailedError'
    this.upid = upid.raw
    this.exitstatus = exitstatus
    this.pveFailure = failure
  }
}

/** `OK` and `WARNINGS: n` are success; anything else is the error text. */
export function exitStatusIsOk(exitstatus: string): boolean {
  return exitstatus === 'OK' || /^WARNINGS: \d+$/.test(exitstatus)
}

export interface WaitForTaskOptions {
  signal?: AbortSignal
  /** Give up after this long (default 10 minutes). */
  timeoutMs?: number
  /** First poll delay; doubles up to `maxPollMs`. */
  pollMs?: number
  maxPollMs?: number
  now?: () => number
}

/** Polls a task's status on its own node until it stops, then checks the exit status. */
export async function waitForTask(
  upidText: string,
  readStatus: (node: string, upid: string, signal?: AbortSignal) => Promise<TaskStatus>,
  options: WaitForTaskOptions = {},
): Promise<TaskResult> {
  const upid = parseUpid(upidText)
  if (isDryRunUpid(upidText)) return { upid, exitstatus: 'OK', warnings: 0 }
  const now = options.now ?? Date.now
  const deadline = now() + (options.timeoutMs ?? 600_000)
  let delay = options.pollMs ?? 100
  const maxDelay = options.maxPollMs ?? 1000
  for (;;) {
    throwIfAborted(options.signal)
    const status = await readStatus(upid.node, upid.raw, options.signal)
    if (status.status === 'stopped') {
      const exitstatus = status.exitstatus ?? 'unexpected status'
      if (!exitStatusIsOk(exitstatus)) throw new TaskFailedError(upid, exitstatus)
      const w = /^WARNINGS: (\d+)$/.exec(exitstatus)
      return { upid, exitstatus, warnings: w ? Number(w[1]) : 0 }
    }
    if (now() + delay > deadline) {
      throw new TimeoutError(
        `Task ${upid.type} ${upid.id} on ${upid.node} still running after ${options.timeoutMs ?? 600_000} ms`,
        {
          details: { upid: upid.raw },
        },
      )
    }
    await sleep(delay, options.signal)
    delay = Math.min(maxDelay, delay * 2)
  }
}
