import type { Reply } from '../protocol/framer.ts'
import { parseVersion, type VersionInfo } from '../protocol/output.ts'
import { type CliScript, replyAt, step } from './script.ts'

/** Takes no arguments, so it is built once (it is also the cheapest health check a caller can run). */
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

export const serverCommands = {
  version(): CliScript<VersionInfo | undefined> {
    return VERSION_SCRIPT
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
