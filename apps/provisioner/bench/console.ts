// The console's overview with 10,000 services in the store (a benchmark, not a test): the time to
// render GET /console through the real server, against GET /health on the same server in the same run.
// SQLite always; PostgreSQL too when PANELKIT_TEST_PG_URL is set.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { consoleHandler } from '../src/console/handler.ts'
import { startApiServer } from '../src/http/server.ts'
import { generateSecretKey } from '../src/secrets.ts'

const SERVICES = Number(process.env.BENCH_SERVICES ?? 10_000)
const ROUNDS = 30
const TOKEN = 'bench-console-token-0123456789'
const PG_URL = process.env.PANELKIT_TEST_PG_URL

async function seed(db: Awaited<ReturnType<typeof createApp>>['store']['db']) {
  const now = Date.now()
  const connectors = ['axigen-domain', 'axigen-account', 'proxmox-kvm', 'computestacks-account']
  const states = ['active', 'active', 'active', 'suspended', 'terminated', 'none']
  for (let i = 0; i < SERVICES; i += 500) {
    const services = []
    const jobs = []
    const calls = []
    for (let j = i; j < Math.min(SERVICES, i + 500); j++) {
      const state = states[j % states.length] as string
      services.push({
        service_id: String(1000 + j),
        client_id: String(1 + (j % 2000)),
        product_id: String(1 + (j % 4)),
        connector: connectors[j % 4] as string,
        server_group: 'g',
        desired: state,
        version: 1,
        actual: state,
        settings_json: '{}',
        settings_hash: '',
        password_hash: '',
        context_json: '{}',
        server_id: 's1',
        account_id: String(j),
        username: `user${j}`,
        ips_json: null,
        last_job_id: null,
        last_step: 'ready',
        last_error: null,
        created_at: now,
        updated_at: now,
        plan: null,
        password_fp: null,
        password_enc: null,
        confirmed_plan: null,
        confirmed_password_fp: null,
        service_password_fp: null,
        confirmed_service_password_fp: null,
      })
      for (const op of ['create', 'writeBack'])
        jobs.push({
          key: `bench:${j}:${op}`,
          service_id: String(1000 + j),
          operation: op,
          payload_json: '{}',
          status: j % 97 === 0 && op === 'create' ? 'parked' : j % 13 === 0 ? 'queued' : 'done',
          attempts: 1,
          run_after: now,
          lease_owner: null,
          lease_until: null,
          last_error: null,
          result_json: null,
          steps_json: '[]',
          source: 'bench',
          created_at: now,
          updated_at: now,
          finished_at: now,
          secret_enc: null,
        })
      calls.push({
        entry_id: `e${j}`,
        time: new Date(now - (j % 3600) * 1000).toISOString(),
        connector: connectors[j % 4] as string,
        operation: 'create',
        service_id: String(1000 + j),
        system: 'sim',
        action: 'GET /x',
        access: 'read',
        outcome: j % 50 === 0 ? 'error' : 'ok',
        duration_ms: 5,
        error_code: null,
        entry_json: '{}',
      })
    }
    await db.insertInto('services').values(services).execute()
    await db.insertInto('jobs').values(jobs).execute()
    await db.insertInto('module_log').values(calls).execute()
  }
}

async function measure(kind: 'sqlite' | 'postgres') {
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-bench-console-'))
  const schema = `bench_console_${process.pid}`
  const { config } = parseConfig(
    {
      store:
        kind === 'postgres'
          ? { url: PG_URL, schema, encryptionKey: generateSecretKey() }
          : { dataDir: dir, encryptionKey: generateSecretKey() },
      http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
    },
    {},
  )
  const app = await createApp({ config, logStream: null, builtins: false })
  const api = await startApiServer(app)
  try {
    await seed(app.store.db)
    const session = await consoleHandler(app).sessions.create({
      token: TOKEN,
      name: 'bench',
      scopes: ['admin'],
    })
    const headers = { cookie: `pk_session=${session.id}` }
    const time = async (path: string, h: Record<string, string>) => {
      const samples: number[] = []
      for (let i = 0; i < ROUNDS; i++) {
        const t = performance.now()
        const res = await fetch(`${api.url}${path}`, { headers: h })
        const body = await res.text()
        if (res.status !== 200) throw new Error(`${path}: ${res.status} ${body.slice(0, 200)}`)
        samples.push(performance.now() - t)
      }
      samples.sort((a, b) => a - b)
      return {
        median: samples[Math.floor(ROUNDS / 2)] as number,
        p95: samples[Math.floor(ROUNDS * 0.95)] as number,
      }
    }
    await time('/console', headers) // warm-up
    const overview = await time('/console', headers)
    const health = await time('/health', {})
    return { kind, overview, health }
  } finally {
    await api.close()
    await app.close()
    rmSync(dir, { recursive: true, force: true })
    if (kind === 'postgres') {
      const c = new pg.Client({ connectionString: PG_URL })
      await c.connect()
      await c.query(`drop schema if exists ${schema} cascade`)
      await c.end()
    }
  }
}

const rows = [await measure('sqlite')]
if (PG_URL) rows.push(await measure('postgres'))
console.log(
  `Console overview (GET /console) with ${SERVICES} services, ${SERVICES * 2} jobs, ${SERVICES} module-log calls in the last hour`,
)
console.log(
  '| store | overview median ms | overview p95 ms | GET /health median ms | vs /health | target < 200 ms |',
)
console.log('|---|---:|---:|---:|---:|---|')
for (const r of rows)
  console.log(
    `| ${r.kind} | ${r.overview.median.toFixed(1)} | ${r.overview.p95.toFixed(1)} | ${r.health.median.toFixed(2)} | ${(r.overview.median / r.health.median).toFixed(0)}× | ${r.overview.p95 < 200 ? 'met' : 'NOT met'} |`,
  )
