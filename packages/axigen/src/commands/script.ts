import type { CallAccess } from '@panelkit/core'
import { type CliToken, encodeCommand } from '../protocol/encoder.ts'
import type { Reply } from '../protocol/framer.ts'
import type { ScriptStep } from '../session/session.ts'

/**
 * One logical CLI operation: the commands from the root back to the root, marked read or write as a
 * whole. A write script (context entry, edits and COMMITs) is one recorded call, so under dry-run none
 * of it is sent — the server is never left half-edited — and the log shows the whole (masked) script.
 */
export interface CliScript<T> {
  /** What the log shows: `ADD Account`, `LIST AllDomains`. */
  action: string
  access: CallAccess
  target?: string
  steps: ScriptStep[]
  parse: (replies: Reply[]) => T
  /** The value pretended under dry-run (writes). */
  dryRun?: () => T
}

export interface CliExecutor {
  run<T>(script: CliScript<T>, options?: { signal?: AbortSignal | undefined }): Promise<T>
}

/** A step that must leave the session in `expect` (`''` = root, `domain-account`, …). */
export function step(expect: string | undefined, ...tokens: CliToken[]): ScriptStep {
  const s: ScriptStep = { command: encodeCommand(...tokens) }
  if (expect !== undefined) s.expect = expect
  return s
}

/** The same step, with what to tell the operator if the server refuses it (an unconfirmed attribute). */
export function hinted(s: ScriptStep, hint: string): ScriptStep {
  return { ...s, hint }
}

export const yesNo = (b: boolean) => (b ? 'yes' : 'no')

/** The reply at `index`, which the script guarantees exists. */
export function replyAt(replies: readonly Reply[], index: number): Reply {
  const r = index < 0 ? replies[replies.length + index] : replies[index]
  if (!r) throw new Error(`script reply ${index} missing`)
  return r
}
