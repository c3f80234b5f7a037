import type { Writable } from 'node:stream'
import { formatStepLine } from '@panelkit/core'
import type { EngineEvent } from '../engine/engine.ts'

/** Where the CLI (and the demo it runs) writes its lines. */
export interface CliIo {
  out: (line: string) => void
  err: (line: string) => void
}

/**
 * A progress bar on a terminal (a counter when the total is unknown); on anything else, a line every
 * two seconds. `done()` ends the line.
 */
export function progressBar(stream: Pick<Writable, 'write'> & { isTTY?: boolean }, label: string) {
  let lastLine = 0
  let drawn = false
  let last = ''
  return {
    update(done: number, total: number | undefined) {
      const width = 28
      if (total !== undefined && done > total) total = done
      last = total === undefined ? `${done}` : `${done}/${total}`
      if (stream.isTTY) {
        drawn = true
        if (total === undefined) stream.write(`\r${label} ${done} read`)
        else {
          const ratio = total === 0 ? 1 : done / total
          const filled = Math.round(ratio * width)
          stream.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`)
        }
      } else if (Date.now() - lastLine > 2000) {
        lastLine = Date.now()
        stream.write(`${label} ${last}\n`)
      }
    },
    done() {
      if (stream.isTTY && drawn) stream.write('\n')
      else if (!stream.isTTY && last !== '') stream.write(`${label} ${last} done\n`)
    },
  }
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = []
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length)
    })
  }
  return rows
    .map((r, ri) => {
      const line = r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')
      return ri === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line
    })
    .join('\n')
}

/** Buffers of `batchedLines` still to write when the process exits. */
const unflushed = new Set<() => void>()
let exitHook = false

/**
 * Lines handed to `write` together, at most `intervalMs` after the first of them: a busy worker narrates
 * a hundred jobs a second, and each write to a pipe is a system call. A buffer past 64 KB is written at
 * once; whatever is left is written by `flush()` and, at the latest, when the process exits.
 */
export function batchedLines(write: (text: string) => void, intervalMs = 100) {
  let lines: string[] = []
  let size = 0
  let timer: NodeJS.Timeout | undefined
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    unflushed.delete(flush)
    if (lines.length === 0) return
    const text = lines.join('\n')
    lines = []
    size = 0
    write(text)
  }
  if (!exitHook) {
    exitHook = true
    process.once('exit', () => {
      for (const f of [...unflushed]) f()
    })
  }
  return {
    line(line: string) {
      lines.push(line)
      size += line.length + 1
      unflushed.add(flush)
      if (size > 65_536) flush()
      else if (timer === undefined) {
        timer = setTimeout(flush, intervalMs)
        timer.unref()
      }
    },
    flush,
  }
}

const TITLES: Record<string, string> = {
  create: 'Create',
  suspend: 'Suspend',
  unsuspend: 'Unsuspend',
  terminate: 'Terminate',
  changePassword: 'ChangePassword',
  changePackage: 'ChangePackage',
  writeBack: 'WriteBack',
  pushUsage: 'PushUsage',
  creditDeposit: 'CreditDeposit',
}

/**
 * Step lines in the shape of PUQ's cron output (seed 003), through core's `formatStepLine`: a header per
 * job, one line per step with its transition and duration, and a footer that says where it ended.
 */
export function narrate(write: (line: string) => void, options: { showWriteBack?: boolean } = {}) {
  // Jobs of different services run at once; each job's lines are kept together and printed when it
  // reaches a resting state, so a block reads like one cron tick of one service.
  const blocks = new Map<number, string[]>()
  return (event: EngineEvent) => {
    if (!('job' in event)) return // sync passes are narrated by the sync command itself
    const job = event.job
    const title = TITLES[job.operation] ?? job.operation
    if (
      !options.showWriteBack &&
      (job.operation === 'writeBack' || job.operation === 'pushUsage' || job.operation === 'creditDeposit')
    ) {
      if (event.type === 'job-done') write(`    ${title} for service ${job.serviceId}: done`)
      return
    }
    const subject = `service=${job.serviceId}`
    const flush = (footer: string) => {
      // One write per block: a busy worker prints thousands of blocks, one system call each.
      write([...(blocks.get(job.id) ?? []), footer].join('\n'))
      blocks.delete(job.id)
    }
    switch (event.type) {
      case 'job-started':
        blocks.set(job.id, [
          `--- ${title}: ${subject} connector=${event.service?.connector ?? '?'} status=${event.service?.actual ?? '?'}${job.attempts > 1 ? ` attempt=${job.attempts}` : ''} ---`,
        ])
        return
      case 'step':
        blocks.get(job.id)?.push(formatStepLine(event.step, { labelWidth: 38 }))
        return
      case 'job-done':
        flush(`--- ${title} complete: ${subject} [${(event.durationMs / 1000).toFixed(2)}s] ---`)
        return
      case 'job-retry':
        flush(
          `--- ${title} paused: ${subject} ${event.error.code}: ${event.error.detail} (retry in ${Math.max(0, Math.round(event.runAfter - Date.now()))} ms) ---`,
        )
        return
      case 'job-parked':
        flush(
          `--- ${title} PARKED: ${subject} ${event.error.code}: ${event.error.detail} (fix, then \`provisioner retry --job ${job.id}\`) ---`,
        )
    }
  }
}
