import { parseArgs } from 'node:util'
import { createRedactor, toFailure } from '@panelkit/core'
import { type App, type AppOptions, createApp } from './app.ts'
import { checkDeadline, testServerConnection } from './check-connections.ts'
import { narrate, progressBar, table } from './cli/output.ts'
import { ConfigError, type LoadedConfig, loadConfig } from './config.ts'
import { listJobs } from './engine/jobs.ts'
import { listServices } from './engine/services.ts'
import { startApiServer } from './http/server.ts'

const USAGE = `provisioner <command> [options]

Commands:
  demo                 start every simulator with seeded orders and watch them converge
  check                validate the config (every error with its path) and test each server
  sync [--client ID | --email ADDR | --service ID]
                       reverse sync from WHMCS: queue what differs (everything, one client, one service)
  worker [--once]      run jobs (until stopped; --once: until nothing is queued)
  serve                HTTP API + worker + periodic sync
  status [--json]      services, states, last step, errors
  retry [--job N] [--service ID]   put parked jobs back in the queue (all when no filter)
  import --server ID   adopt the server's existing accounts for matching WHMCS services
  drift [--client ID] [--json]   WHMCS against what the servers confirmed, and work under way
  settle --key KEY --as done|release   decide an uncertain usage push or credit (see status)
  credit --client ID --deposit ID --amount 12.50 [--description TEXT]   AddCredit exactly once
  log [--service ID] [--connector C] [--outcome ok|error|dry-run] [--limit N]   the module log

Options:
  -c, --config FILE    configuration (JSON or YAML); default $PROVISIONER_CONFIG or provisioner.yaml
  --log-level LEVEL    debug | info | warn | error (structured JSON logs on stderr)
`

export interface CliIo {
  out: (line: string) => void
  err: (line: string) => void
}

const defaultIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** Extra wiring for embedding (tests, the demo): connectors, a WHMCS client. */
export type CliExtras = Pick<AppOptions, 'connectors' | 'whmcs' | 'builtins'>

export async function main(argv: string[], extras: CliExtras = {}, io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    io.out(USAGE)
    return command ? 0 : 2
  }
  let args: ReturnType<typeof parse>
  function parse(list: string[]) {
    return parseArgs({
      args: list,
      allowPositionals: false,
      options: {
        config: { type: 'string', short: 'c' },
        client: { type: 'string' },
        email: { type: 'string' },
        key: { type: 'string' },
        as: { type: 'string' },
        deposit: { type: 'string' },
        amount: { type: 'string' },
        description: { type: 'string' },
        once: { type: 'boolean' },
        json: { type: 'boolean' },
        job: { type: 'string' },
        service: { type: 'string' },
        server: { type: 'string' },
        connector: { type: 'string' },
        outcome: { type: 'string' },
        limit: { type: 'string' },
        'log-level': { type: 'string' },
        keep: { type: 'boolean' },
        quiet: { type: 'boolean' },
      },
    })
  }
  try {
    args = parse(rest)
  } catch (error) {
    io.err(`${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const v = args.values
  if (command === 'demo') {
    const { runDemo } = await import('./demo/demo.ts')
    return runDemo({ io, keep: v.keep === true })
  }
  const file = v.config ?? process.env.PROVISIONER_CONFIG ?? 'provisioner.yaml'
  let loaded: LoadedConfig
  try {
    loaded = await loadConfig(file)
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(error.message)
      return 1
    }
    throw error
  }
  const logLevel = (v['log-level'] ?? 'info') as 'info'
  let app: App | undefined
  try {
    app = await createApp({
      config: loaded.config,
      secrets: loaded.secrets,
      logLevel,
      ...extras,
      ...(command === 'worker' || command === 'serve' ? { onEvent: narrate(io.out) } : {}),
    })
    return await run(command, app, v, io)
  } catch (error) {
    const redactor = app?.redactor ?? createRedactor({ values: loaded.secrets })
    const f = toFailure(error, redactor)
    io.err(`error: ${f.code}: ${f.detail}`)
    return 1
  } finally {
    await app?.close()
  }
}

async function run(
  command: string,
  app: App,
  v: Record<string, string | boolean | undefined>,
  io: CliIo,
): Promise<number> {
  const { engine, store } = app
  switch (command) {
    case 'check':
      return check(app, io)
    case 'sync': {
      const bar = progressBar(process.stderr, 'sync')
      const report = await engine.sync({
        ...(typeof v.client === 'string' ? { clientId: v.client } : {}),
        ...(typeof v.email === 'string' ? { email: v.email } : {}),
        ...(typeof v.service === 'string' ? { serviceId: v.service } : {}),
        onProgress: (d, t) => bar.update(d, t),
      })
      bar.done()
      if (v.json) {
        io.out(JSON.stringify(report, null, 2))
        return report.errors.length === 0 ? 0 : 1
      }
      const kinds = Object.entries(report.intentsByKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
      io.out(
        `sync (${report.pass}${report.complete ? '' : ', incomplete'}): ${report.servicesSeen} WHMCS services read, ${report.intents} intents${kinds ? ` (${kinds})` : ''}, ${report.jobsCreated} jobs queued${report.stale ? `, ${report.stale} stale (next pass)` : ''} [${(report.durationMs / 1000).toFixed(2)}s]`,
      )
      if (report.primaryService)
        io.out(
          `      primary service: ${report.primaryService.serviceId} (product ${report.primaryService.productId}, ${report.primaryService.status})`,
        )
      for (const e of report.errors)
        io.out(
          `      error${e.serviceId ? ` service ${e.serviceId}` : ''} (${e.stage}): ${e.code}: ${e.message}`,
        )
      return report.errors.length === 0 ? 0 : 1
    }
    case 'drift': {
      const report = await engine.drift(typeof v.client === 'string' ? { clientId: v.client } : {})
      if (v.json) {
        io.out(JSON.stringify(report, null, 2))
        return 0
      }
      const rows = [['service', 'kind', 'WHMCS', 'queued', 'confirmed', 'jobs', 'message']]
      for (const d of report.entries)
        rows.push([
          d.serviceId,
          d.kind,
          d.whmcsStatus ?? '-',
          d.intended ?? '-',
          d.confirmed ?? '-',
          `${d.openJobs} open, ${d.parkedJobs} parked`,
          d.message.slice(0, 70),
        ])
      io.out(table(rows))
      io.out(`${report.entries.length} drifting${report.complete ? '' : ' (WHMCS was not read completely)'}`)
      for (const e of report.errors) io.out(`error (${e.stage}): ${e.code}: ${e.message}`)
      return 0
    }
    case 'settle': {
      if (typeof v.key !== 'string' || (v.as !== 'done' && v.as !== 'release')) {
        io.err('settle needs --key KEY and --as done|release')
        return 2
      }
      const out = await engine.settle(v.key, v.as)
      io.out(
        out.settled
          ? `settle: ${v.key} ${v.as === 'done' ? 'recorded as done' : 'released'}; ${out.retried} parked job(s) queued again`
          : `settle: ${v.key} is not an open ledger entry`,
      )
      return out.settled ? 0 : 1
    }
    case 'credit': {
      if (
        typeof v.client !== 'string' ||
        typeof v.deposit !== 'string' ||
        typeof v.amount !== 'string' ||
        !/^\d+(\.\d{1,2})?$/.test(v.amount)
      ) {
        io.err('credit needs --client ID, --deposit ID and --amount like 12.50')
        return 2
      }
      const out = await engine.creditDeposit(
        {
          clientId: v.client,
          depositId: v.deposit,
          amount: v.amount,
          description: typeof v.description === 'string' ? v.description : `Deposit ${v.deposit}`,
        },
        'cli',
      )
      io.out(`credit: job ${out.job.id} ${out.created ? 'queued' : 'already queued'} (run a worker)`)
      return 0
    }
    case 'worker': {
      const controller = new AbortController()
      const stop = () => controller.abort()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      const { ran } = await engine
        .runWorker({ signal: controller.signal, untilIdle: v.once === true })
        .finally(() => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
        })
      io.out(`worker: ${ran} job runs`)
      return 0
    }
    case 'serve': {
      const api = await startApiServer(app)
      app.logger.info('HTTP API listening', { url: api.url })
      io.out(`provisioner: API on ${api.url}, store ${store.location}`)
      const controller = new AbortController()
      const stop = () => controller.abort()
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      const syncEvery = app.config.sync.intervalSeconds * 1000
      const tick = async () => {
        if (!engine.whmcs) return
        try {
          await engine.sync()
          const period = usagePeriod(app.config.sync.usagePeriodHours)
          await engine.scheduleUsage(period)
        } catch (error) {
          app.logger.error('periodic sync failed', { error: toFailure(error, app.redactor) })
        }
      }
      void tick()
      const timer = setInterval(tick, syncEvery)
      try {
        await engine.runWorker({ signal: controller.signal })
      } finally {
        clearInterval(timer)
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        await api.close()
      }
      return 0
    }
    case 'status': {
      const services = await listServices(store.db)
      const open = await listJobs(store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
      const uncertain = await store.ledger.list({ state: 'uncertain' })
      if (v.json) {
        io.out(
          JSON.stringify(
            { services, openJobs: open.map(({ secretEnc: _, ...j }) => j), uncertainLedger: uncertain },
            null,
            2,
          ),
        )
        return 0
      }
      const rows = [['service', 'connector', 'server', 'desired', 'actual', 'jobs', 'last step', 'error']]
      for (const s of services) {
        const mine = open.filter((j) => j.serviceId === s.serviceId)
        rows.push([
          s.serviceId,
          s.connector,
          s.serverId ?? '-',
          s.desired,
          s.actual,
          mine.length ? mine.map((j) => `${j.operation}:${j.status}`).join(',') : '-',
          s.lastStep ?? '-',
          (s.lastError ?? '').slice(0, 60) || '-',
        ])
      }
      io.out(table(rows))
      io.out(`${services.length} services, ${open.filter((j) => j.status === 'parked').length} parked jobs`)
      if (uncertain.length > 0) {
        io.out('')
        io.out(
          `${uncertain.length} uncertain WHMCS write(s): check WHMCS, then \`provisioner settle --key KEY --as done|release\``,
        )
        for (const e of uncertain) io.out(`  ${e.key}  ${e.reason ?? ''}`)
      }
      return 0
    }
    case 'retry': {
      const filter: { jobId?: number; serviceId?: string } = {}
      if (typeof v.job === 'string') {
        if (!/^\d+$/.test(v.job)) {
          io.err('--job must be a job number')
          return 2
        }
        filter.jobId = Number(v.job)
      }
      if (typeof v.service === 'string') filter.serviceId = v.service
      const n = await engine.retry(filter)
      io.out(`retry: ${n} parked job(s) queued again`)
      return 0
    }
    case 'import': {
      if (typeof v.server !== 'string') {
        io.err('import needs --server ID')
        return 2
      }
      const { importAccounts } = await import('./engine/import.ts')
      const bar = progressBar(process.stderr, 'import')
      const report = await importAccounts(app, v.server, { onProgress: (d, t) => bar.update(d, t) })
      bar.done()
      io.out(
        `import: ${report.listed} accounts on ${v.server}, ${report.adopted} adopted, ${report.already} already known, ${report.unmatched} without a WHMCS service, ${report.jobsQueued} follow-up jobs queued`,
      )
      return 0
    }
    case 'log': {
      const entries = await engine.moduleLog.query({
        ...(typeof v.service === 'string' ? { serviceId: v.service } : {}),
        ...(typeof v.connector === 'string' ? { connector: v.connector } : {}),
        ...(typeof v.outcome === 'string' ? { outcome: v.outcome } : {}),
        limit: typeof v.limit === 'string' ? Number(v.limit) : 50,
      })
      for (const e of entries) {
        io.out(
          v.json
            ? JSON.stringify(e)
            : `${e.time} ${e.outcome === 'ok' ? '+' : e.outcome === 'error' ? '!' : '~'} ${e.connector} ${e.operation ?? ''} service=${e.serviceId ?? '-'} ${e.system} ${e.action} ${e.durationMs.toFixed(1)}ms${e.error ? ` ${e.error.code}: ${e.error.message}` : ''}`,
        )
      }
      return 0
    }
    default:
      io.err(`unknown command ${command}\n\n${USAGE}`)
      return 2
  }
}

/** The usage period a moment falls in: periods of `hours` counted from the Unix epoch. */
export function usagePeriod(hours: number, now = Date.now()): string {
  const n = Math.floor(now / (hours * 3_600_000))
  return new Date(n * hours * 3_600_000).toISOString().slice(0, 13)
}

async function check(app: App, io: CliIo): Promise<number> {
  io.out(`config: ok (${app.config.products.length} products, ${app.config.servers.length} servers)`)
  io.out(`store: ${app.store.dialect} at ${app.store.location} (migrated)`)
  let failures = 0
  for (const p of app.config.products) {
    if (!app.engine.connector(p.connector)) {
      failures++
      io.out(`product ${p.whmcsProductId}: connector ${p.connector} is not available in this build`)
    }
  }
  for (const server of app.config.servers) {
    const connector = app.engine.connector(server.connector)
    if (!connector) {
      failures++
      io.out(`server ${server.id}: FAILED — connector ${server.connector} is not available`)
      continue
    }
    const result = await testServerConnection(connector, server)
    if (result.ok) {
      const d = result.data
      io.out(
        `server ${server.id}: ok (${server.connector}${d.version ? ` ${d.version}` : ''}, ${d.latencyMs.toFixed(0)} ms)`,
      )
    } else {
      failures++
      io.out(`server ${server.id}: FAILED — ${result.error.code}: ${result.error.detail}`)
    }
  }
  if (app.engine.whmcs) {
    try {
      const deadline = checkDeadline()
      const details = await app.engine.whmcs.whmcsDetails(deadline)
      let services = 0
      for (const p of app.config.products) {
        const r = await app.engine.whmcs.getClientsProducts({ pid: p.whmcsProductId, limitnum: 1 }, deadline)
        services += Number(r.totalresults ?? 0)
      }
      io.out(`whmcs: ok (WHMCS ${details.version}, ${services} services of the mapped products)`)
    } catch (error) {
      failures++
      const f = toFailure(error, app.redactor)
      io.out(`whmcs: FAILED — ${f.code}: ${f.detail}`)
    }
  } else io.out('whmcs: not configured (no sync; the API and CLI can still queue work)')
  io.out(failures === 0 ? 'check: everything ok' : `check: ${failures} problem(s)`)
  return failures === 0 ? 0 : 1
}

const isEntry = process.argv[1] !== undefined && /[\\/]cli\.(ts|js)$/.test(process.argv[1])
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (error) => {
      process.stderr.write(`fatal: ${error instanceof Error ? error.message : String(error)}\n`)
      process.exitCode = 1
    },
  )
}
