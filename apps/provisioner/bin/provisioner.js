#!/usr/bin/env node
// The app is not built: the CLI runs from its TypeScript source through tsx, with the workspace's
// source condition so the panelkit packages resolve to their sources too.
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
// Resolved from here, not from the caller's directory, so the command works from anywhere.
const tsx = import.meta.resolve('tsx')
const child = spawn(
  process.execPath,
  ['--conditions=@panelkit/source', '--import', tsx, join(root, 'src', 'cli.ts'), ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: process.cwd() },
)
child.on('exit', (code, signal) => {
  if (signal) process.kill(process.pid, signal)
  else process.exit(code ?? 1)
})
