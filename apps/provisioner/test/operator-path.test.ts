import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAxigenClient } from '@panelkit/axigen'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseDocument } from 'yaml'

/**
 * The operator's path, as the README's "Your first service" section gives it: the blocks marked
 * `<!-- operator-path: NAME -->` are read from README.md and run as written — the built
 * `bin/provisioner.js` in real processes, `sh` for the shell lines — in a scratch directory that
 * stands for `apps/provisioner` (its `bin` and `examples` linked in), so nothing lands in the
 * checkout. A step the README adds that this test does not know fails it, so the two cannot drift.
 */

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const repoRoot = join(appDir, '..', '..')
const readme = readFileSync(join(appDir, 'README.md'), 'utf8')

/** The code block that follows `<!-- operator-path: name -->` in the README. */
function readmeBlock(name: string): string {
  const m = new RegExp(`<!-- operator-path: ${name} -->\\n\`\`\`(\\w+)\\n([\\s\\S]*?)\\n\`\`\``).exec(readme)
  if (!m) throw new Error(`README.md has no block marked <!-- operator-path: ${name} -->`)
  return m[2] as string
}
/** Its command lines, without comments and blank lines. */
const commandLines = (block: string) =>
  block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'))

// Every TypeScript module the bin would load fails it: the operator's path runs the build.
const noTypeScript = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'
register('data:text/javascript,' + encodeURIComponent('export async function load(url, context, next) { if (/\\\\.ts$/.test(url)) throw new Error("loaded TypeScript: " + url); return next(url, context) }'))`)}`

/** An operator's shell: no test settings, no database URL, the built bin only. */
function operatorEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env))
    if (!/^(DATABASE_URL|PROVISIONER_|PANELKIT_|VITEST|NODE_OPTIONS$)/.test(k)) env[k] = v
  env.NODE_OPTIONS = `--import=${noTypeScript}`
  return env
}

/** Whether a source file of the app or of a package it imports is newer than the build. */
function buildIsStale(): string | undefined {
  const outputs = [
    join(appDir, 'dist', 'cli.js'),
    ...['core', 'whmcs', 'axigen', 'proxmox', 'computestacks'].map((p) =>
      join(repoRoot, 'packages', p, 'dist', 'index.js'),
    ),
  ]
  const missing = outputs.find((f) => !existsSync(f))
  if (missing) return `${missing} is missing`
  const built = Math.min(...outputs.map((f) => statSync(f).mtimeMs))
  const newest = (dir: string): [number, string] => {
    let best: [number, string] = [0, dir]
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (!e.isFile()) continue
      const file = join(e.parentPath, e.name)
      const t = statSync(file).mtimeMs
      if (t > best[0]) best = [t, file]
    }
    return best
  }
  for (const dir of [
    join(appDir, 'src'),
    ...['core', 'whmcs', 'axigen', 'proxmox', 'computestacks'].map((p) =>
      join(repoRoot, 'packages', p, 'src'),
    ),
  ]) {
    const [t, file] = newest(dir)
    if (t > built) return `${file} is newer than the build`
  }
  return undefined
}

interface Step {
  line: string
  code: number | null
  stdout: string
  stderr: string
  seconds: number
}

const timings: { step: string; seconds: number }[] = []
let work = ''
let simulators: (ChildProcess & { out: () => string; exited: Promise<number | null> }) | undefined

function sh(script: string, cwd: string, timeoutMs = 120_000): Promise<Step> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { cwd, env: operatorEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => {
      stdout += d
    })
    child.stderr.on('data', (d: Buffer) => {
      stderr += d
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`\`${script}\` did not finish in ${timeoutMs / 1000} s:\n${stdout}\n${stderr}`))
    }, timeoutMs)
    child.once('error', reject)
    child.once('exit', (code) => {
      clearTimeout(timer)
      const seconds = (performance.now() - started) / 1000
      resolve({ line: script.split('\n').at(-1) as string, code, stdout, stderr, seconds })
    })
  })
}

const readyTimeoutMs = 120_000

beforeAll(async () => {
  // ---- first terminal: install, build, `cd apps/provisioner`, start the simulators --------------------
  const build = commandLines(readmeBlock('build'))
  expect(build).toHaveLength(4)
  const [install, buildLine, cd, start] = build as [string, string, string, string]
  // The install already ran: these tests run inside that installation.
  expect(install).toMatch(/^npx --yes pnpm@[\d.]+ install$/)
  if (!existsSync(join(repoRoot, 'node_modules', '.pnpm')))
    throw new Error("the workspace is not installed: run the README's install line first")
  expect(buildLine).toMatch(/^npx --yes pnpm@[\d.]+ --filter "@panelkit\/provisioner\.\.\." run build$/)
  const stale = buildIsStale()
  if (stale) {
    // The build is part of the path: run the README's line (in CI `pnpm test` has built already).
    const t = performance.now()
    const r = spawnSync('sh', ['-c', buildLine], { cwd: repoRoot, encoding: 'utf8', timeout: 600_000 })
    timings.push({ step: `${buildLine} (${stale})`, seconds: (performance.now() - t) / 1000 })
    if (r.status !== 0) throw new Error(`the README's build line failed:\n${r.stdout}\n${r.stderr}`)
  }
  expect(buildIsStale()).toBeUndefined()
  expect(cd).toBe('cd apps/provisioner')
  // The scratch `apps/provisioner`: the checkout's bin/ (so dist/ next to it) and examples/.
  work = mkdtempSync(join(tmpdir(), 'provisioner-operator-path-'))
  symlinkSync(join(appDir, 'bin'), join(work, 'bin'))
  symlinkSync(join(appDir, 'examples'), join(work, 'examples'))
  expect(start).toBe('bin/provisioner.js simulators')
  const t = performance.now()
  const child = spawn('sh', ['-c', `exec ${start}`], {
    cwd: work,
    env: operatorEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { out: () => string; exited: Promise<number | null> }
  let out = ''
  child.stdout?.on('data', (d: Buffer) => {
    out += d
  })
  child.stderr?.on('data', (d: Buffer) => {
    out += d
  })
  child.out = () => out
  child.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)))
  simulators = child
  const deadline = Date.now() + readyTimeoutMs
  while (!/simulators: ready/.test(out)) {
    if (child.exitCode !== null) throw new Error(`\`${start}\` exited ${child.exitCode}:\n${out}`)
    if (Date.now() > deadline)
      throw new Error(`\`${start}\` was not ready in ${readyTimeoutMs / 1000} s:\n${out}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  timings.push({ step: `${start} (until ready)`, seconds: (performance.now() - t) / 1000 })
}, 900_000)

afterAll(async () => {
  if (simulators && simulators.exitCode === null) {
    simulators.kill('SIGTERM')
    const code = await simulators.exited
    expect(code).toBe(0)
    expect(simulators.out()).toMatch(/simulators: stopped \(SIGTERM\)/)
  }
  if (work) rmSync(work, { recursive: true, force: true })
  console.info(
    `operator path (built bin, real processes):\n${timings.map((s) => `  ${s.seconds.toFixed(2).padStart(7)} s  ${s.step}`).join('\n')}`,
  )
}, 60_000)

/** The keys the simulators told the operator to change: `path: value` lines. */
function printedEdits(output: string): [string, string][] {
  const section = output.split('In your copy of an example, change these keys')[1]
  if (!section) throw new Error(`the simulators printed no config changes:\n${output}`)
  return [...section.matchAll(/^ {2}([\w.[\]=-]+): (.*)$/gm)].map((m) => [m[1] as string, m[2] as string])
}

/** Makes the changes as an operator does in an editor: each key set, the rest of the file as it was. */
function edit(text: string, edits: [string, string][]): string {
  const doc = parseDocument(text)
  for (const [path, raw] of edits) {
    const value = parseDocument(raw).toJS()
    const byConnector = /^servers\[connector=([\w-]+)\]\.(.+)$/.exec(path)
    if (byConnector) {
      const servers = (doc.toJS().servers ?? []) as { connector: string }[]
      for (const [i, s] of servers.entries())
        if (s.connector === byConnector[1])
          doc.setIn(['servers', i, ...(byConnector[2] as string).split('.')], value)
    } else doc.setIn(path.split('.'), value)
  }
  return String(doc)
}

/** The file's content (ports differ at every start: the README shows other numbers). */
const content = (text: string) =>
  JSON.parse(
    JSON.stringify(parseDocument(text).toJS())
      .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
      .replace(/"port":\d+/g, '"port":"PORT"'),
  )

describe("the README's first service, followed literally with the built bin", () => {
  it('copies the example, changes the printed keys, and provisions the first service on the simulators', async () => {
    // ---- second terminal: copy the example --------------------------------------------------------------
    const copy = commandLines(readmeBlock('copy'))
    expect(copy).toEqual(['cp examples/minimal-sqlite.yaml provisioner.yaml'])
    for (const line of copy) expect((await sh(line, work)).code).toBe(0)
    const config = join(work, 'provisioner.yaml')
    expect(readFileSync(config, 'utf8')).toBe(
      readFileSync(join(appDir, 'examples', 'minimal-sqlite.yaml'), 'utf8'),
    )

    // ---- the keys the simulators printed, and nothing else ----------------------------------------------
    const edits = printedEdits(simulators?.out() ?? '')
    expect(edits.map(([k]) => k)).toEqual(
      expect.arrayContaining([
        'whmcs.url',
        'whmcs.ca',
        'servers[connector=axigen-account].port',
        'store.dataDir',
      ]),
    )
    writeFileSync(config, edit(readFileSync(config, 'utf8'), edits))
    // What the README shows the file to be after the edit.
    expect(content(readFileSync(config, 'utf8'))).toEqual(content(readmeBlock('edited')))

    // ---- the commands ------------------------------------------------------------------------------------
    const lines = commandLines(readmeBlock('run'))
    const session = lines.filter((l) => !l.startsWith('bin/provisioner.js '))
    const steps = lines.filter((l) => l.startsWith('bin/provisioner.js '))
    expect(session).toEqual(['set -a; . .data/simulators/simulators.env; set +a'])
    const store = join(work, '.data', 'provisioner', 'provisioner.sqlite')
    // What each step must print (a step the README adds that is not here fails the test).
    const expected: Record<string, RegExp[]> = {
      'check --offline': [/check: the file is valid/],
      check: [
        /server mail-1: ok \(axigen-account/,
        /whmcs: ok \(WHMCS [\d.]+, 1 services/,
        /check: everything ok/,
      ],
      migrate: [/migrate: \d+ applied; .*provisioner\.sqlite is up to date/],
      sync: [/1 WHMCS services read, 1 intents \(create 1\), 1 jobs queued/],
      'worker --once': [/Create complete: service=\d+/, /worker: 2 job runs/],
      status: [/^\d+\s+axigen-account\s+mail-1\s+active\s+active\s+-/m, /1 services, 0 parked jobs/],
      drift: [/^0 drifting$/m],
    }
    expect(steps.map((l) => l.replace('bin/provisioner.js ', ''))).toEqual(Object.keys(expected))
    for (const line of steps) {
      const r = await sh(`${session.join('\n')}\n${line}`, work)
      timings.push({ step: line, seconds: r.seconds })
      const args = line.replace('bin/provisioner.js ', '')
      expect(r.code, `\`${line}\` exited ${r.code}:\n${r.stdout}\n${r.stderr}`).toBe(0)
      // An operator meets no error: nothing at warn or error level on stderr (JSON lines: not a terminal).
      expect(r.stderr, line).not.toMatch(/"level":"(warn|error)"|loaded TypeScript|Error:/)
      for (const pattern of expected[args] ?? []) expect(r.stdout, line).toMatch(pattern)
      // `check` neither creates nor migrates the store; `migrate` creates it.
      if (args.startsWith('check')) expect(existsSync(store), line).toBe(false)
      if (args === 'migrate') expect(existsSync(store)).toBe(true)
    }

    // ---- the first service: confirmed active in the store, and there on the Axigen simulator --------------
    const status = await sh(`${session.join('\n')}\nbin/provisioner.js status --json`, work)
    expect(status.code).toBe(0)
    const json = JSON.parse(status.stdout) as {
      services: { serviceId: string; productId: string; desired: string; actual: string; username: string }[]
      openJobs: unknown[]
    }
    const ordered = /5 Mailbox \(one plan\) \(service (\d+);/.exec(simulators?.out() ?? '')?.[1]
    expect(json.services).toEqual([
      expect.objectContaining({ serviceId: ordered, productId: '5', desired: 'active', actual: 'active' }),
    ])
    expect(json.openJobs).toEqual([])
    const secrets = await sh('. .data/simulators/simulators.env; printf %s "$AXIGEN_PASSWORD"', work)
    const port = Number(edits.find(([k]) => k === 'servers[connector=axigen-account].port')?.[1])
    const axigen = createAxigenClient({
      host: '127.0.0.1',
      port,
      username: 'admin',
      password: secrets.stdout,
    })
    try {
      expect(await axigen.accounts.list('example.com')).toContain(json.services[0]?.username)
    } finally {
      await axigen.close()
    }
    expect(json.services[0]?.username).toBe('grace')
  }, 600_000)

  it('each other SQLite example, copied and changed the same way, provisions its service on the same simulators', async () => {
    const session = commandLines(readmeBlock('run')).filter((l) => !l.startsWith('bin/provisioner.js '))
    const edits = printedEdits(simulators?.out() ?? '')
    const examples = readdirSync(join(appDir, 'examples')).filter(
      (f) => f.endsWith('.yaml') && f !== 'minimal-sqlite.yaml' && !/postgres/.test(f),
    )
    expect(examples.sort()).toEqual([
      'axigen-account.yaml',
      'axigen-domain.yaml',
      'computestacks-account.yaml',
      'proxmox-kvm.yaml',
    ])
    for (const example of examples) {
      const pid = Number(
        parseDocument(readFileSync(join(appDir, 'examples', example), 'utf8')).getIn([
          'products',
          0,
          'whmcsProductId',
        ]),
      )
      const file = `try-${example}`
      expect((await sh(`cp examples/${example} ${file}`, work)).code).toBe(0)
      writeFileSync(join(work, file), edit(readFileSync(join(work, file), 'utf8'), edits))
      // A store of its own for each example (what the printed store.dataDir holds is the last one's).
      rmSync(join(work, '.data', 'provisioner'), { recursive: true, force: true })
      const r = await sh(
        `${session.join('\n')}\nset -e\nfor c in check sync "worker --once"; do bin/provisioner.js $c -c ${file}; done\nbin/provisioner.js status --json -c ${file}`,
        work,
        300_000,
      )
      timings.push({ step: `${example}: check, sync, worker --once, status --json`, seconds: r.seconds })
      expect(r.code, `${example}:\n${r.stdout}\n${r.stderr}`).toBe(0)
      expect(r.stdout, example).toMatch(/check: everything ok/)
      expect(r.stderr, example).not.toMatch(/"level":"(warn|error)"|loaded TypeScript/)
      const json = JSON.parse(r.stdout.slice(r.stdout.indexOf('{\n'))) as {
        services: { productId: string; desired: string; actual: string }[]
        openJobs: unknown[]
      }
      expect(json.services, example).toEqual([
        expect.objectContaining({ productId: String(pid), desired: 'active', actual: 'active' }),
      ])
      expect(json.openJobs, example).toEqual([])
    }
  }, 900_000)
})
