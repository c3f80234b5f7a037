// Start-up of a CLI command, from the TypeScript sources (through tsx) and from the build (dist/):
// `provisioner status` on an empty SQLite store and `provisioner --version`. Each row is the median
// of several runs; wall time depends on the machine's load, CPU time (user + system of the process)
// much less, so both are shown. Needs `pnpm build` first for the built rows.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = join(appDir, 'bin', 'provisioner.js')
const runs = Number(process.env.STARTUP_RUNS ?? 5)
const dir = mkdtempSync(join(tmpdir(), 'provisioner-startup-'))
const config = join(dir, 'provisioner.yaml')
writeFileSync(
  config,
  readFileSync(join(appDir, 'examples', 'minimal-sqlite.yaml'), 'utf8').replace('/var/lib/provisioner', dir),
)
const env = {
  ...process.env,
  WHMCS_SECRET: 'bench-secret',
  AXIGEN_PASSWORD: 'bench-password',
  PROVISIONER_KEY: Buffer.alloc(32, 7).toString('base64'),
}

/** Wall and CPU seconds of one run, from bash's `time` (it reports the child's user and system time). */
function once(args: string[], fromSource: boolean): { wall: number; cpu: number } {
  const command = ['node', bin, ...args].map((a) => `'${a}'`).join(' ')
  const out = execFileSync(
    'bash',
    ['-c', `TIMEFORMAT='%R %U %S'; { time ${command} >/dev/null 2>&1 ; } 2>&1`],
    {
      env: { ...env, PROVISIONER_FROM_SOURCE: fromSource ? '1' : '0' },
      encoding: 'utf8',
    },
  )
  const [wall, user, sys] = out.trim().split(/\s+/).map(Number) as [number, number, number]
  return { wall, cpu: user + sys }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number

function measure(args: string[], fromSource: boolean) {
  once(args, fromSource) // warm the file cache (and create the store on the first status)
  const samples = Array.from({ length: runs }, () => once(args, fromSource))
  return { wall: median(samples.map((s) => s.wall)), cpu: median(samples.map((s) => s.cpu)) }
}

const built = existsSync(join(appDir, 'dist', 'cli.js'))
const rows: string[] = []
for (const [label, args] of [
  ['status', ['status', '-c', config, '--log-format', 'json']],
  ['--version', ['--version']],
] as const) {
  const source = measure([...args], true)
  rows.push(`| \`${label}\` | source (tsx) | ${source.wall.toFixed(2)} | ${source.cpu.toFixed(2)} | 1.00× |`)
  if (built) {
    const dist = measure([...args], false)
    rows.push(
      `| \`${label}\` | built (dist) | ${dist.wall.toFixed(2)} | ${dist.cpu.toFixed(2)} | ${(source.cpu / dist.cpu).toFixed(2)}× less CPU |`,
    )
  }
}
rmSync(dir, { recursive: true, force: true })
console.log(
  `Start-up of one CLI command (median of ${runs} runs; ${cpus().length} cores, load average ${loadavg()[0]?.toFixed(1)})`,
)
console.log('| command | runs from | wall s | CPU s | vs source |')
console.log('|---|---|---:|---:|---:|')
for (const r of rows) console.log(r)
if (!built) console.log('(no dist/: run `pnpm build` for the built rows)')
