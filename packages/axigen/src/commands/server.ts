import type { Reply } from '../protocol/framer.ts'
import { parseVersion, type VersionInfo } from '../protocol/output.ts'
import { type CliScript, replyAt, step } from './script.ts'

/**
 * `GET VERSION` at the root. The notes confirm it only at the `<login>` prompt (§1.4), so a server may
 * refuse it after login: the client reads the version before login instead (`server.version()`), and
 * this script is for callers who know their server answers it.
 */
const VERSION_SCRIPT: CliScript<VersionInfo | undefined> = Object.freeze({
  action: 'GET VERSION',
  access: 'read',
  steps: [step('', 'GET', 'VERSION')],
  parse: (r: Reply[]) => {
    for (const l of replyAt(r, 0).lines) {
      const v = parseVersion(l)
      if (v) return v
    }
    return undefined
  },
})

/** `HELP` exists in every context, the login context included (notes §1.4, §2.3; C: S3, S9). */
const HELP_SCRIPT: CliScript<void> = Object.freeze({
  action: 'HELP',
  access: 'read',
  steps: [step('', 'HELP')],
  parse: () => undefined,
})

export const serverCommands = {
  getVersion(): CliScript<VersionInfo | undefined> {
    return VERSION_SCRIPT
  },
  /** A round trip every server answers in every context (the pool's health check). */
  ping(): CliScript<void> {
    return HELP_SCRIPT
  },
  saveConfig(): CliScript<void> {
    return {
      action: 'SAVE CONFIG',
      access: 'write',
      steps: [step('', 'SAVE', 'CONFIG')],
      parse: () => undefined,
    }
  },
}
