import { parseVersion, type VersionInfo } from '../protocol/output.ts'
import { type CliScript, replyAt, step } from './script.ts'

export const serverCommands = {
  version(): CliScript<VersionInfo | undefined> {
    return {
      action: 'GET VERSION',
      access: 'read',
      steps: [step('', 'GET', 'VERSION')],
      parse: (r) => {
        for (const l of replyAt(r, 0).lines) {
          const v = parseVersion(l)
          if (v) return v
        }
        return undefined
      },
    }
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
