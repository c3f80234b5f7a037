import { fork } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { KillPlan, KillReport } from './kill-child.ts'

/**
 * The parent side of the kill-between-steps case. The child's script is the fixture's module and the
 * runner bundled into one JavaScript file (esbuild, from source, once per suite): a bundle starts in
 * well under a second, where loading the TypeScript sources through tsx's loader takes several on a busy
 * two-core machine — and a bundle made from `src` can never be a stale build.
 */

export interface KillChildScript {
  file: string
  /** How long the bundle took to make, for the suite's timing line. */
  bundleMs: number
  dispose(): void
}

export async function bundleKillChild(module: string | URL): Promise<KillChildScript> {
  const started = performance.now()
  const target = module instanceof URL || module.startsWith('file:') ? fileURLToPath(module) : module
  let esbuild: typeof import('esbuild')
  try {
    esbuild = await import('esbuild')
  } catch (error) {
    throw new Error(
      `The kill-between-steps case bundles its child process with esbuild, which is not installed here (add it as a dev dependency): ${(error as Error).message}`,
    )
  }
  const dir = mkdtempSync(join(tmpdir(), 'panelkit-kill-'))
  const file = join(dir, 'child.mjs')
  // The runner next to this file: `kill-child.ts` in the sources, `kill-child.js` in the published build.
  const here = fileURLToPath(import.meta.url)
  const runner = join(dirname(here), `kill-child${extname(here)}`)
  try {
    await esbuild.build({
      stdin: {
        contents: [
          `import * as target from ${JSON.stringify(target)}`,
          `import { runKillChild } from ${JSON.stringify(runner)}`,
          'runKillChild(target)',
        ].join('\n'),
        resolveDir: dirname(target),
        sourcefile: 'kill-child-entry.ts',
        loader: 'ts',
      },
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: file,
      // Workspace packages from their TypeScript source, as the tests themselves resolve them.
      conditions: ['@panelkit/source'],
      // CommonJS dependencies (undici) call require() for Node's built-ins.
      banner: {
        js: "import { createRequire as __panelkitRequire } from 'node:module'; const require = __panelkitRequire(import.meta.url);",
      },
      logLevel: 'error',
    })
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
  return {
    file,
    bundleMs: performance.now() - started,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export interface KillChildRun {
  reports: KillReport[]
  /** `SIGKILL` when the child stopped itself at its kill point. */
  signal: NodeJS.Signals | null
  code: number | null
  stderr: string
  /** From fork to exit. */
  durationMs: number
}

/** Starts one child with its plan and waits for it to end (by itself, or killed at its kill point). */
export function spawnKillChild(
  script: KillChildScript,
  plan: KillPlan,
  timeoutMs: number,
): Promise<KillChildRun> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = fork(script.file, [], { execArgv: [], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
    const reports: KillReport[] = []
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on('message', (message) => {
      const report = (message as { report?: KillReport }).report
      if (report) reports.push(report)
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`kill-case child did not end within ${timeoutMs} ms; stderr: ${stderr.slice(-2000)}`))
    }, timeoutMs)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    // 'close' comes after the stdio pipes ended; the IPC channel's last messages are read before its
    // 'disconnect', so a report sent just before the kill is never lost to the race with 'exit'.
    child.on('close', (code, signal) => {
      const done = () => {
        clearTimeout(timer)
        resolve({ reports, signal, code, stderr, durationMs: performance.now() - started })
      }
      if (child.connected) child.once('disconnect', done)
      else done()
    })
    child.send(plan)
  })
}
