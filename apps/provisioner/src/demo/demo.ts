import type { CliIo } from '../cli.ts'

export async function runDemo(options: { io: CliIo; keep: boolean }): Promise<number> {
  options.io.err('demo: not assembled yet')
  return 1
}
