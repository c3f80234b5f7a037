import { memoryPanelConnector } from '@panelkit/core/testing'
import { main } from '../src/cli.ts'

/**
 * Runs the `provisioner` CLI in this process with a config file, errors-only logging and the core
 * memory panel's connector added, and returns its exit code and everything it printed.
 */
export async function runCli(file: string, ...argv: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = []
  const code = await main(
    [...argv, '-c', file, '--log-level', 'error'],
    { connectors: [{ definition: memoryPanelConnector }] },
    { out: (l) => lines.push(l), err: (l) => lines.push(l) },
  )
  return { code, text: lines.join('\n') }
}
