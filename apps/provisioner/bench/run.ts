// The provisioner's benchmark (not a test): lifecycle jobs per second end to end against the Axigen
// simulator on SQLite and PostgreSQL with 1, 2 and 4 workers, and the cost of a durable pipeline step
// against the store's own raw commit, measured in the same run. PostgreSQL needs PANELKIT_TEST_PG_URL.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { axigenAccountConnector } from '@panelkit/axigen'
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { definePipeline, runPipeline } from '@panelkit/core'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'
import pg from 'pg'
import { type App, createApp, whmcsFromConfig } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { Engine } from '../src/engine/engine.ts'
import { generateSecretKey } from '../src/secrets.ts'
import { Store } from '../src/store/store.ts'

const PG_URL = process.env.PANELKIT_TEST_PG_URL
const KEY = generateSecretKey()
const SERVICES = Number(process.env.BENCH_SERVICES ?? 150)
let peakRss = 0
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 20)

async function dropSchema(schema: string) {
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  await c.query(`drop schema if exists ${schema} cascade`)
  await c.end()
}

async function lifecycle(kind: 'sqlite' | 'postgres', workers: number) {
  const sim = await startAxigenSimulator({ admins: { admin: 'Bench-Admin-1' } })
  sim.addDomain('bench.example')
  const whmcs = await startWhmcsSimulator()
  const product = whmcs.createProduct({ name: 'Mailbox' })
  const customer = whmcs.createClient({ email: 'bench@example.com' })
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-'))
  const schema = `bench_${process.pid}_${workers}`
  const raw = {
    whmcs: {
      url: whmcs.url,
      identifier: whmcs.credential.identifier,
      secret: whmcs.credential.secret,
      ca: whmcs.ca,
    },
    servers: [
      {
        id: 'ax',
        connector: 'axigen-account',
        hostname: '127.0.0.1',
        port: sim.port,
        secure: false,
        username: 'admin',
        password: 'Bench-Admin-1',
      },
    ],
    serverGroups: [{ id: 'g', servers: ['ax'] }],
    products: [
      {
        whmcsProductId: product.id,
        connector: 'axigen-account',
        serverGroup: 'g',
        settings: { domain: 'bench.example' },
      },
    ],
    store:
      kind === 'postgres'
        ? { url: PG_URL, schema, encryptionKey: KEY }
        : { dataDir: dir, encryptionKey: KEY },
    worker: { concurrency: 4, leaseSeconds: 30 },
  }
  const { config, secrets } = parseConfig(raw, {})
  // PostgreSQL: each worker has its own store (connection pool), as separate machines would. SQLite:
  // workers in one process share one connection — better-sqlite3 is synchronous, so two connections
  // in one thread would wait on each other's lock with the event loop blocked. (Separate worker
  // processes on one SQLite file are fine; the crash test runs them.)
  const main = await createApp({
    config,
    secrets,
    logStream: null,
    builtins: false,
    connectors: [{ definition: axigenAccountConnector }],
  })
  const apps: App[] = [main]
  const engines: Engine[] = [main.engine]
  for (let i = 1; i < workers; i++) {
    if (kind === 'postgres') {
      const app = await createApp({
        config,
        secrets,
        logStream: null,
        builtins: false,
        connectors: [{ definition: axigenAccountConnector }],
      })
      apps.push(app)
      engines.push(app.engine)
    } else {
      engines.push(
        new Engine({
          store: main.store,
          config,
          connectors: [{ definition: axigenAccountConnector }],
          whmcs: whmcsFromConfig(config, main.redactor),
          redactor: main.redactor,
          logger: main.logger,
          moduleLog: main.store.moduleLog(main.redactor),
        }),
      )
    }
  }
  for (let i = 1; i <= SERVICES; i++) {
    whmcs.createService({
      clientId: customer.id,
      pid: product.id,
      status: 'Active',
      username: `box${i}`,
      password: `Box-${i}-password`,
    })
  }
  const started = performance.now()
  const setAll = (status: 'Suspended' | 'Active' | 'Terminated') => {
    for (const id of [...whmcs.services.keys()]) whmcs.setStatus(id, status)
  }
  for (const status of [undefined, 'Suspended', 'Active', 'Terminated'] as const) {
    if (status) setAll(status)
    await main.engine.sync()
    await Promise.all(engines.map((e) => e.runWorker({ untilIdle: true, pollMs: 5 })))
  }
  const seconds = (performance.now() - started) / 1000
  const jobs = await main.store.db
    .selectFrom('jobs')
    .select('operation')
    .where('status', '=', 'done')
    .execute()
  const lifecycleJobs = jobs.filter((j) => j.operation !== 'writeBack').length
  for (const a of apps) await a.close()
  await sim.close()
  await whmcs.close()
  rmSync(dir, { recursive: true, force: true })
  if (kind === 'postgres') await dropSchema(schema)
  return { lifecycleJobs, seconds, perSecond: lifecycleJobs / seconds }
}

async function commits(kind: 'sqlite' | 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-'))
  const schema = `bench_commit_${process.pid}`
  const store = await Store.open(kind === 'postgres' ? { url: PG_URL, schema } : { dataDir: dir })
  const n = kind === 'postgres' ? 1500 : 3000
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
  if (kind === 'postgres') await dropSchema(schema)
  return { raw, engine, ratio: raw / engine }
}

const kinds: ('sqlite' | 'postgres')[] = PG_URL ? ['sqlite', 'postgres'] : ['sqlite']
if (!PG_URL) console.log('(PANELKIT_TEST_PG_URL not set: PostgreSQL rows are left out)\n')
console.log(
  `Lifecycle jobs end to end (${SERVICES} mailboxes on the Axigen simulator: create, suspend, unsuspend, terminate)`,
)
console.log('| store | workers | jobs | seconds | jobs/s | vs 1 worker |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const kind of kinds) {
  let base = 0
  for (const workers of [1, 2, 4]) {
    const r = await lifecycle(kind, workers)
    if (workers === 1) base = r.perSecond
    console.log(
      `| ${kind} | ${workers} | ${r.lifecycleJobs} | ${r.seconds.toFixed(2)} | ${r.perSecond.toFixed(0)} | ${(r.perSecond / base).toFixed(2)}× |`,
    )
  }
}
console.log('')
console.log('Durable pipeline step commits against the store raw commit (same run)')
console.log('| store | raw commits/s | step commits/s | engine cost vs raw (target ≤ 2×) |')
console.log('|---|---:|---:|---:|')
for (const kind of kinds) {
  const r = await commits(kind)
  console.log(`| ${kind} | ${r.raw.toFixed(0)} | ${r.engine.toFixed(0)} | ${r.ratio.toFixed(2)}× |`)
}
clearInterval(sampler)
console.log('')
console.log(`Peak RSS: ${(peakRss / 1024 / 1024).toFixed(0)} MB`)
