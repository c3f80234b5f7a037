#!/usr/bin/env node
// The `provisioner` command. It runs in this process — no child process to forward signals to, so a
// SIGTERM from Docker, systemd or a supervisor reaches the CLI's own handlers.
//
// - Built (`pnpm build` wrote dist/): plain JavaScript from dist/, with the panelkit packages from
//   their own dist/ folders.
// - From a source checkout (no dist/, or PROVISIONER_FROM_SOURCE=1): the TypeScript sources through
//   tsx, with the workspace's `@panelkit/source` condition so the panelkit packages resolve to their
//   sources too.
import { existsSync } from 'node:fs'

const built = new URL('../dist/cli.js', import.meta.url)
const fromSource = process.env.PROVISIONER_FROM_SOURCE === '1' || !existsSync(built)

if (!fromSource) {
  const { runProcess } = await import(built.href)
  await runProcess()
} else {
  const { register } = await import('node:module')
  const { register: registerTsx } = await import('tsx/esm/api')
  registerTsx()
  // Runs before tsx's resolver (hooks registered later run first): adds the source condition.
  const hook = `export async function resolve(specifier, context, next) {
    const conditions = context.conditions.includes('@panelkit/source') ? context.conditions : ['@panelkit/source', ...context.conditions]
    return next(specifier, { ...context, conditions })
  }`
  register(`data:text/javascript,${encodeURIComponent(hook)}`)
  const { runProcess } = await import(new URL('../src/cli.ts', import.meta.url).href)
  await runProcess()
}
