import { readFileSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import type { App, AppOptions } from './app.ts'
import type { CliIo } from './cli/output.ts'
import { onStopSignals } from './cli/shutdown.ts'
import type { LoadedConfig } from './config.ts'
import type { LogFormat, LogLevel } from './logger.ts'
import type { Store } from './store/store.ts'

// The app's modules are loaded when a command needs them, so `--help`, `--version` and a mistyped
// command answer without loading the connectors, the store drivers or the config schema.
const core = () => import('@panelkit/core')
const output = () => import('./cli/output.ts')

/** A configuration error (checked by its code, as every panelkit error). */
const isConfigError = (error: unknown): error is Error & { issues: unknown[] } =>
  (error as { code?: unknown } | null)?.code === 'PANELKIT_ERR_CONFIG'

/**
 * The `provisioner` command line, on commander: every command answers `--help` with its own options,
 * `--version` needs no config, an unknown command or option is refused before anything is opened,
 * and option values are checked (numbers, enumerations) before the config is read.
 *
 * Exit codes: 0 done; 1 the command ran and failed or found problems (an invalid config, a failed
 * check, sync errors, an error while working); 2 the command line is wrong (unknown command or
 * option, a bad or missing option value); 130 / 143 a second SIGINT / SIGTERM forced the exit.
 */

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const

export type { CliIo }

const defaultIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
}

/** Extra wiring for embedding (tests, the demo): connectors, a WHMCS client. */
export type CliExtras = Pick<AppOptions, 'connectors' | 'whmcs' | 'builtins'>

/** The app's version, read from its package.json (one level above both src/ and dist/). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  return pkg.version
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`)
    return Number(value)
  }
}

function plainId(name: string) {
  return (value: string): string => {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,253}$/.test(value))
      throw new InvalidArgumentError(`${name} must be a plain id (letters, digits, _ . : @ -)`)
    return value
  }
}

interface CommonOptions {
  config?: string
  logLevel: LogLevel
  logFormat: 'auto' | LogFormat
}

function common(cmd: Command): Command {
  return cmd
    .option(
      '-c, --config <file>',
      'configuration file (JSON or YAML); default $PROVISIONER_CONFIG or provisioner.yaml',
    )
    .addOption(
      new Option('--log-level <level>', 'structured log level')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('info'),
    )
    .addOption(
      new Option(
        '--log-format <format>',
        'logs on stderr: JSON lines, or readable lines (auto: readable on a terminal)',
      )
        .choices(['auto', 'json', 'pretty'])
        .default('auto'),
    )
}

export async function main(argv: string[], extras: CliExtras = {}, io: CliIo = defaultIo): Promise<number> {
  let code: number = EXIT.OK
  const trim = (s: string) => s.replace(/\n$/, '')
  const program = new Command('provisioner')
    .description('panelkit provisioner: WHMCS services into Axigen, Proxmox VE and ComputeStacks, durably')
    .version(version(), '-V, --version', 'print the version (needs no config)')
    .exitOverride()
    .showHelpAfterError('(add --help for the commands and their options)')
    .configureOutput({ writeOut: (s) => io.out(trim(s)), writeErr: (s) => io.err(trim(s)) })
    .addHelpText(
      'after',
      '\nExit codes: 0 done; 1 failed or found problems; 2 wrong command line; 130/143 a second SIGINT/SIGTERM.',
    )

  /** Loads the config and opens the app around `fn`; a config error is exit 1 with every issue. */
  async function withApp(
    opts: CommonOptions,
    fn: (app: App, loaded: LoadedConfig) => Promise<number>,
    appOptions: Partial<AppOptions> = {},
  ): Promise<number> {
    const loaded = await load(opts)
    if (!loaded) return EXIT.FAILED
    const { createApp } = await import('./app.ts')
    const { createRedactor, toFailure } = await core()
    let app: App | undefined
    try {
      app = await createApp({
        config: loaded.config,
        secrets: loaded.secrets,
        logLevel: opts.logLevel,
        logFormat: logFormat(opts),
        ...extras,
        ...appOptions,
      })
      return await fn(app, loaded)
    } catch (error) {
      if (isConfigError(error)) {
        io.err(error.message)
        return EXIT.FAILED
      }
      const redactor = app?.redactor ?? createRedactor({ values: loaded.secrets })
      const f = toFailure(error, redactor)
      io.err(`error: ${f.code}: ${f.detail}`)
      return EXIT.FAILED
    } finally {
      await app?.close()
    }
  }

  async function load(opts: CommonOptions): Promise<LoadedConfig | undefined> {
    const file = opts.config ?? process.env.PROVISIONER_CONFIG ?? 'provisioner.yaml'
    const { loadConfig } = await import('./config.ts')
    try {
      return await loadConfig(file)
    } catch (error) {
      if (isConfigError(error)) {
        io.err(error.message)
        return undefined
      }
      throw error
    }
  }

  const action =
    <T extends CommonOptions>(fn: (opts: T) => Promise<number>) =>
    async (opts: T) => {
      code = await fn(opts)
    }

  program
    .command('demo')
    .description('start every simulator with seeded orders and watch them converge (a temporary store)')
    .option('--keep', 'keep the store in .data/demo')
    .action(async (opts: { keep?: boolean }) => {
      const { runDemo } = await import('./demo/demo.ts')
      code = await runDemo({ io, keep: opts.keep === true })
    })

  program
    .command('simulators')
    .description(
      'WHMCS, Axigen, Proxmox VE and ComputeStacks simulators for trying a config copied from examples/: prints their addresses and the keys to change, writes their secrets to an environment file; runs until SIGINT/SIGTERM',
    )
    .option('--dir <dir>', 'where simulators.env (the secrets, mode 0600) is written', '.data/simulators')
    .action(async (opts: { dir: string }) => {
      const { startSimulators } = await import('./simulators.ts')
      const sims = await startSimulators({ dir: opts.dir })
      for (const line of sims.lines) io.out(line)
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        const stop = (s: NodeJS.Signals) => {
          process.off('SIGINT', stop)
          process.off('SIGTERM', stop)
          resolve(s)
        }
        process.on('SIGINT', stop)
        process.on('SIGTERM', stop)
      })
      await sims.close()
      io.out(`simulators: stopped (${signal})`)
      code = EXIT.OK
    })

  common(
    program
      .command('check')
      .description(
        'validate the config strictly (every error with its path); without --offline also look at the store (read-only) and test every server, loader and WHMCS',
      )
      .option('--offline', 'check the file alone: no store, no network'),
  ).action(action<CommonOptions & { offline?: boolean }>((opts) => check(opts)))

  common(
    program
      .command('sync')
      .description('reverse sync from WHMCS: queue what differs (everything, one client or one service)')
      .option('--client <id>', 'one WHMCS client', plainId('--client'))
      .option('--email <address>', 'one client by e-mail (the login hook)')
      .option('--service <id>', 'one WHMCS service', plainId('--service'))
      .option('--json', 'the report as JSON'),
  ).action(
    action<CommonOptions & { client?: string; email?: string; service?: string; json?: boolean }>((opts) => {
      if ([opts.client, opts.email, opts.service].filter((x) => x !== undefined).length > 1) {
        io.err('sync takes at most one of --client, --email, --service')
        return Promise.resolve(EXIT.USAGE)
      }
      return withApp(opts, (app) => sync(app, opts))
    }),
  )

  common(
    program
      .command('worker')
      .description('run jobs until stopped (SIGTERM/SIGINT: finish running jobs, release leases, exit 0)')
      .option('--once', 'stop when nothing is left to do')
      .option(
        '--concurrency <n>',
        'jobs at once (default: worker.concurrency)',
        integer('--concurrency', 1, 256),
      )
      .option(
        '--shutdown-grace <seconds>',
        'how long running jobs may finish after a stop signal',
        integer('--shutdown-grace', 0, 3600),
        20,
      ),
  ).action(
    action<CommonOptions & { once?: boolean; concurrency?: number; shutdownGrace: number }>(async (opts) => {
      const { batchedLines, narrate } = await output()
      const narration = batchedLines(io.out)
      return withApp(
        opts,
        async (app) => {
          const controller = new AbortController()
          const drainMs = opts.shutdownGrace * 1000
          const release = onStopSignals(() => controller.abort(), io.err, drainMs)
          if (opts.once !== true)
            io.out(`worker: running as ${app.engine.owner} (SIGTERM or Ctrl-C stops it)`)
          // Notifications, and the scheduler's timers for a worker that keeps running (src/background.ts).
          const { startBackground } = await import('./background.ts')
          startBackground(app, { scheduler: opts.once !== true })
          try {
            const { ran, released } = await app.engine.runWorker({
              signal: controller.signal,
              untilIdle: opts.once === true,
              drainMs,
              ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
            })
            narration.flush()
            io.out(`worker: ${ran} job runs${released ? `, ${released} lease(s) released` : ''}`)
          } finally {
            narration.flush()
            release()
          }
          return EXIT.OK
        },
        { onEvent: narrate(narration.line) },
      )
    }),
  )

  common(
    program
      .command('serve')
      .description('HTTP API + worker + periodic sync and usage pushes (SIGTERM/SIGINT: graceful stop)')
      .option(
        '--shutdown-grace <seconds>',
        'how long running jobs may finish after a stop signal',
        integer('--shutdown-grace', 0, 3600),
        20,
      ),
  ).action(
    action<CommonOptions & { shutdownGrace: number }>(async (opts) => {
      const { batchedLines, narrate } = await output()
      const narration = batchedLines(io.out)
      return withApp(
        opts,
        async (app) => {
          try {
            return await serve(app, opts.shutdownGrace * 1000)
          } finally {
            narration.flush()
          }
        },
        { onEvent: narrate(narration.line) },
      )
    }),
  )

  common(
    program.command('status').description('services, states, open jobs, errors').option('--json', 'as JSON'),
  ).action(
    action<CommonOptions & { json?: boolean }>((opts) =>
      withApp(opts, (app) => status(app, opts.json === true)),
    ),
  )

  common(
    program
      .command('retry')
      .description(
        "put parked jobs back in the queue (all, one job's or one service's); they run with today's config",
      )
      .option('--job <n>', 'one job', integer('--job', 1, Number.MAX_SAFE_INTEGER))
      .option('--service <id>', "one service's parked jobs", plainId('--service')),
  ).action(
    action<CommonOptions & { job?: number; service?: string }>((opts) =>
      withApp(opts, async (app) => {
        const n = await app.engine.retry({
          ...(opts.job !== undefined ? { jobId: opts.job } : {}),
          ...(opts.service !== undefined ? { serviceId: opts.service } : {}),
        })
        io.out(`retry: ${n} parked job(s) queued again`)
        return EXIT.OK
      }),
    ),
  )

  common(
    program
      .command('cancel')
      .description(
        "cancel a parked or queued job and the later open jobs of its service; the service's intended state goes back to what was confirmed, so the next sync plans it afresh",
      )
      .option('--job <n>', 'the job', integer('--job', 1, Number.MAX_SAFE_INTEGER))
      .option('--service <id>', 'every open job of the service', plainId('--service'))
      .option('--reason <text>', 'recorded with the cancelled jobs', 'cancelled by an operator')
      .option(
        '--sync',
        "supersede: then sync each service from WHMCS at once, so today's config plans it afresh",
      ),
  ).action(
    action<CommonOptions & { job?: number; service?: string; reason: string; sync?: boolean }>((opts) => {
      if (opts.job === undefined && opts.service === undefined) {
        io.err('cancel needs --job N or --service ID')
        return Promise.resolve(EXIT.USAGE)
      }
      return withApp(opts, async (app) => {
        const { cancelJobs } = await import('./engine/supersede.ts')
        const out = await cancelJobs(
          app.engine,
          {
            ...(opts.job !== undefined ? { jobId: opts.job } : {}),
            ...(opts.service !== undefined ? { serviceId: opts.service } : {}),
          },
          { reason: opts.reason, resync: opts.sync === true },
        )
        for (const j of out.cancelled)
          io.out(`cancelled job ${j.id} (${j.operation}, service ${j.serviceId})`)
        for (const s of out.syncs)
          io.out(
            `sync of service ${s.serviceId}: ${s.summary.intents} intents, ${s.summary.jobsCreated} jobs queued${s.summary.errors.length ? `, ${s.summary.errors.length} error(s): ${s.summary.errors.map((e) => `${e.code}: ${e.message}`).join('; ')}` : ''}`,
          )
        io.out(
          out.cancelled.length === 0
            ? 'cancel: no open job'
            : opts.sync
              ? `cancel: ${out.cancelled.length} job(s) cancelled and superseded by what WHMCS asks for now (run a worker)`
              : `cancel: ${out.cancelled.length} job(s); run \`provisioner sync --service ${out.services[0]}\` (or cancel with --sync) to plan the service again from WHMCS`,
        )
        return out.syncs.some((s) => s.summary.errors.length > 0) ? EXIT.FAILED : EXIT.OK
      })
    }),
  )

  common(
    program
      .command('reconcile')
      .description(
        'services whose settings differ from what the config now gives their plan; --apply queues a changePackage for each',
      )
      .option('--service <id>', 'one service', plainId('--service'))
      .option('--apply', 'queue the changePackage jobs (without it nothing changes)')
      .option('--json', 'as JSON'),
  ).action(
    action<CommonOptions & { service?: string; apply?: boolean; json?: boolean }>((opts) =>
      withApp(opts, async (app) => {
        const out = await app.engine.reconcile({
          apply: opts.apply === true,
          ...(opts.service !== undefined ? { serviceId: opts.service } : {}),
        })
        if (opts.json) {
          io.out(JSON.stringify(out, null, 2))
          return EXIT.OK
        }
        for (const e of out.entries) {
          io.out(
            `service ${e.serviceId} (product ${e.productId}${e.plan ? `, plan ${e.plan}` : ''}): ${e.changes
              .map((c) => `${c.key} ${JSON.stringify(c.from ?? null)} -> ${JSON.stringify(c.to ?? null)}`)
              .join(', ')}${e.pendingJob !== undefined ? ` [changePackage job ${e.pendingJob}]` : ''}`,
          )
        }
        io.out(
          out.entries.length === 0
            ? 'reconcile: every service has the settings the config gives it'
            : opts.apply
              ? `reconcile: ${out.queued} changePackage job(s) queued (run a worker)`
              : `reconcile: ${out.entries.length} service(s) differ; \`provisioner reconcile --apply\` queues a changePackage for each`,
        )
        return EXIT.OK
      }),
    ),
  )

  common(
    program
      .command('import')
      .description('adopt the existing accounts of a server for matching WHMCS services (no re-create)')
      .requiredOption('--server <id>', 'the server (servers[].id)', plainId('--server')),
  ).action(
    action<CommonOptions & { server: string }>((opts) =>
      withApp(opts, async (app) => {
        const { importAccounts } = await import('./engine/import.ts')
        const bar = (await output()).progressBar(process.stderr, 'import')
        const report = await importAccounts(app, opts.server, { onProgress: (d, t) => bar.update(d, t) })
        bar.done()
        io.out(
          `import: ${report.listed} accounts on ${opts.server}, ${report.adopted} adopted, ${report.already} already known, ${report.unmatched} without a WHMCS service, ${report.jobsQueued} follow-up jobs queued`,
        )
        return EXIT.OK
      }),
    ),
  )

  common(
    program
      .command('drift')
      .description(
        'WHMCS against what the servers confirmed, config changes not applied yet, and work under way',
      )
      .option('--client <id>', 'one WHMCS client', plainId('--client'))
      .option('--json', 'as JSON'),
  ).action(
    action<CommonOptions & { client?: string; json?: boolean }>((opts) =>
      withApp(opts, async (app) => {
        const report = await app.engine.drift(opts.client !== undefined ? { clientId: opts.client } : {})
        if (opts.json) {
          io.out(JSON.stringify(report, null, 2))
          return EXIT.OK
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
            d.message.slice(0, 90),
          ])
        io.out((await output()).table(rows))
        io.out(
          `${report.entries.length} drifting${report.complete ? '' : ' (WHMCS was not read completely)'}`,
        )
        for (const e of report.errors) io.out(`error (${e.stage}): ${e.code}: ${e.message}`)
        return EXIT.OK
      }),
    ),
  )

  common(
    program
      .command('settle')
      .description('decide an uncertain usage push or credit (see status)')
      .requiredOption('--key <key>', 'the ledger key')
      .addOption(
        new Option('--as <outcome>', 'done: it reached WHMCS; release: it did not (sent once more)')
          .choices(['done', 'release'])
          .makeOptionMandatory(),
      ),
  ).action(
    action<CommonOptions & { key: string; as: 'done' | 'release' }>((opts) =>
      withApp(opts, async (app) => {
        const out = await app.engine.settle(opts.key, opts.as)
        io.out(
          out.settled
            ? `settle: ${opts.key} ${opts.as === 'done' ? 'recorded as done' : 'released'}; ${out.retried} parked job(s) queued again`
            : `settle: ${opts.key} is not an open ledger entry`,
        )
        return out.settled ? EXIT.OK : EXIT.FAILED
      }),
    ),
  )

  common(
    program
      .command('credit')
      .description('queue AddCredit of a deposit, exactly once per deposit id')
      .requiredOption('--client <id>', 'WHMCS client', plainId('--client'))
      .requiredOption('--deposit <id>', 'deposit id (the idempotency key)', plainId('--deposit'))
      .requiredOption('--amount <decimal>', 'amount such as 12.50', (v: string) => {
        if (!/^\d{1,9}(\.\d{1,2})?$/.test(v))
          throw new InvalidArgumentError('--amount must be a decimal such as 12.50')
        return v
      })
      .option('--description <text>', 'shown in WHMCS'),
  ).action(
    action<CommonOptions & { client: string; deposit: string; amount: string; description?: string }>(
      (opts) =>
        withApp(opts, async (app) => {
          const out = await app.engine.creditDeposit(
            {
              clientId: opts.client,
              depositId: opts.deposit,
              amount: opts.amount,
              description: opts.description ?? `Deposit ${opts.deposit}`,
            },
            'cli',
          )
          io.out(`credit: job ${out.job.id} ${out.created ? 'queued' : 'already queued'} (run a worker)`)
          return EXIT.OK
        }),
    ),
  )

  common(
    program
      .command('log')
      .description('the module log (every external call, secrets masked)')
      .option('--service <id>', 'one service', plainId('--service'))
      .option('--connector <id>', 'one connector')
      .option('--operation <name>', 'one operation')
      .addOption(new Option('--outcome <outcome>', 'only these').choices(['ok', 'error', 'dry-run']))
      .option('--limit <n>', 'at most this many entries', integer('--limit', 1, 10_000), 50)
      .option('--json', 'one JSON object per line'),
  ).action(
    action<
      CommonOptions & {
        service?: string
        connector?: string
        operation?: string
        outcome?: string
        limit: number
        json?: boolean
      }
    >((opts) =>
      withApp(opts, async (app) => {
        const entries = await app.engine.moduleLog.query({
          ...(opts.service !== undefined ? { serviceId: opts.service } : {}),
          ...(opts.connector !== undefined ? { connector: opts.connector } : {}),
          ...(opts.operation !== undefined ? { operation: opts.operation } : {}),
          ...(opts.outcome !== undefined ? { outcome: opts.outcome } : {}),
          limit: opts.limit,
        })
        for (const e of entries)
          io.out(
            opts.json
              ? JSON.stringify(e)
              : `${e.time} ${e.outcome === 'ok' ? '+' : e.outcome === 'error' ? '!' : '~'} ${e.connector} ${e.operation ?? ''} service=${e.serviceId ?? '-'} ${e.system} ${e.action} ${e.durationMs.toFixed(1)}ms${e.error ? ` ${e.error.code}: ${e.error.message}` : ''}`,
          )
        return EXIT.OK
      }),
    ),
  )

  common(
    program
      .command('backup')
      .description(
        'SQLite: a consistent copy in one file (VACUUM INTO), safe while workers run; PostgreSQL: prints the pg_dump command',
      )
      .requiredOption('--to <file>', 'the backup file (must not exist)'),
  ).action(action<CommonOptions & { to: string }>((opts) => backup(opts)))

  common(
    program
      .command('migrate')
      .description('apply pending store migrations (every other command does it at start too)')
      .option('--status', 'list every migration and when it was applied; change nothing')
      .option('--dry-run', 'list what would be applied; change nothing'),
  ).action(action<CommonOptions & { status?: boolean; dryRun?: boolean }>((opts) => migrate(opts)))

  // ---- commands with more to them ---------------------------------------------------------------

  async function sync(app: App, opts: { client?: string; email?: string; service?: string; json?: boolean }) {
    const bar = (await output()).progressBar(process.stderr, 'sync')
    const report = await app.engine.sync({
      ...(opts.client !== undefined ? { clientId: opts.client } : {}),
      ...(opts.email !== undefined ? { email: opts.email } : {}),
      ...(opts.service !== undefined ? { serviceId: opts.service } : {}),
      onProgress: (d, t) => bar.update(d, t),
    })
    bar.done()
    if (opts.json) {
      io.out(JSON.stringify(report, null, 2))
      return report.errors.length === 0 ? EXIT.OK : EXIT.FAILED
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
    return report.errors.length === 0 ? EXIT.OK : EXIT.FAILED
  }

  async function serve(app: App, drainMs: number): Promise<number> {
    const { engine } = app
    const { startApiServer } = await import('./http/server.ts')
    const { toFailure } = await core()
    const { startBackground } = await import('./background.ts')
    startBackground(app)
    const api = await startApiServer(app)
    app.logger.info('HTTP API listening', { url: api.url })
    io.out(`provisioner: API on ${api.url}, store ${app.store.location}`)
    const controller = new AbortController()
    const release = onStopSignals(
      () => {
        controller.abort()
        // No new connections from here on; requests under way are answered.
        api.server.close()
        api.server.closeIdleConnections()
      },
      io.err,
      drainMs,
    )
    let ticking: Promise<void> = Promise.resolve()
    const tick = async () => {
      if (!engine.whmcs || controller.signal.aborted) return
      try {
        await engine.sync({ signal: controller.signal })
        const period = usagePeriod(app.config.sync.usagePeriodHours)
        await engine.scheduleUsage(period)
      } catch (error) {
        if (!controller.signal.aborted)
          app.logger.error('periodic sync failed', { error: toFailure(error, app.redactor) })
      }
    }
    ticking = tick()
    const timer = setInterval(() => {
      ticking = tick()
    }, app.config.sync.intervalSeconds * 1000)
    try {
      await engine.runWorker({ signal: controller.signal, drainMs })
    } finally {
      clearInterval(timer)
      release()
      await ticking
      await api.close()
    }
    return EXIT.OK
  }

  async function status(app: App, json: boolean): Promise<number> {
    const { store } = app
    const { listServices } = await import('./engine/services.ts')
    const { listJobs } = await import('./engine/jobs.ts')
    const services = await listServices(store.db)
    const open = await listJobs(store.db, { status: ['queued', 'running', 'parked'], limit: 100_000 })
    const uncertain = await store.ledger.list({ state: 'uncertain' })
    if (json) {
      io.out(
        JSON.stringify(
          { services, openJobs: open.map(({ secretEnc: _, ...j }) => j), uncertainLedger: uncertain },
          null,
          2,
        ),
      )
      return EXIT.OK
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
        mine.length ? mine.map((j) => `${j.id}:${j.operation}:${j.status}`).join(',') : '-',
        s.lastStep ?? '-',
        (s.lastError ?? '').slice(0, 60) || '-',
      ])
    }
    io.out((await output()).table(rows))
    io.out(`${services.length} services, ${open.filter((j) => j.status === 'parked').length} parked jobs`)
    if (uncertain.length > 0) {
      io.out('')
      io.out(
        `${uncertain.length} uncertain WHMCS write(s): check WHMCS, then \`provisioner settle --key KEY --as done|release\``,
      )
      for (const e of uncertain) io.out(`  ${e.key}  ${e.reason ?? ''}`)
    }
    return EXIT.OK
  }

  /** Opens the configured store without migrating it (read-only for SQLite). */
  async function openAsIs(loaded: LoadedConfig, writable = false): Promise<Store> {
    const c = loaded.config.store
    const { Store } = await import('./store/store.ts')
    const { parseSecretKey } = await import('./secrets.ts')
    return Store.open({
      url: c.url,
      dataDir: c.dataDir,
      synchronous: c.synchronous,
      ...(c.schema ? { schema: c.schema } : {}),
      encryptionKey: parseSecretKey(c.encryptionKey),
      // Writable (migrate): created when missing, migrated by the caller; else as it is, read-only.
      migrate: false,
      ...(writable ? { writable: true } : {}),
    })
  }

  async function backup(opts: CommonOptions & { to: string }): Promise<number> {
    const loaded = await load(opts)
    if (!loaded) return EXIT.FAILED
    const c = loaded.config.store
    if (c.url) {
      const url = new URL(c.url)
      const target = `postgresql://${url.username ? `${decodeURIComponent(url.username)}@` : ''}${url.host}${url.pathname}`
      io.out(
        'backup: the store is PostgreSQL; back it up with its own tool (the password from PGPASSWORD or ~/.pgpass):',
      )
      io.out(
        `  pg_dump --format=custom --no-owner${c.schema ? ` --schema=${c.schema}` : ''} --file=${shellQuote(opts.to)} ${shellQuote(target)}`,
      )
      io.out(
        `  restore: pg_restore --clean --if-exists --no-owner --dbname=${shellQuote(target)} ${shellQuote(opts.to)}`,
      )
      return EXIT.OK
    }
    let store: Store | undefined
    try {
      store = await openAsIs(loaded)
      const { bytes } = await store.backup(opts.to)
      io.out(`backup: ${store.location} -> ${opts.to} (${bytes} bytes); keep store.encryptionKey with it`)
      return EXIT.OK
    } catch (error) {
      io.err(`error: ${(error as Error).message}`)
      return EXIT.FAILED
    } finally {
      await store?.close()
    }
  }

  async function migrate(opts: CommonOptions & { status?: boolean; dryRun?: boolean }): Promise<number> {
    const loaded = await load(opts)
    if (!loaded) return EXIT.FAILED
    let store: Store | undefined
    try {
      if (opts.status || opts.dryRun) {
        let states: { name: string; executedAt: Date | undefined }[]
        try {
          store = await openAsIs(loaded)
          states = await store.migrationStatus()
        } catch (error) {
          if (!/No store at/.test((error as Error).message)) throw error
          io.out(`store: ${(error as Error).message}`)
          // Nothing applied yet: what this version would apply is the whole list.
          const { migrations } = await import('./store/migrations.ts')
          states = Object.keys(migrations(loaded.config.store.url ? 'postgres' : 'sqlite')).map((name) => ({
            name,
            executedAt: undefined,
          }))
        }
        const pending = states.filter((s) => !s.executedAt)
        if (opts.status)
          for (const s of states)
            io.out(`${s.name}  ${s.executedAt ? `applied ${s.executedAt.toISOString()}` : 'pending'}`)
        else for (const s of pending) io.out(`would apply ${s.name}`)
        io.out(`migrate: ${states.length - pending.length} applied, ${pending.length} pending`)
        return EXIT.OK
      }
      store = await openAsIs(loaded, true)
      const applied = await store.migrate()
      for (const name of applied) io.out(`applied ${name}`)
      io.out(`migrate: ${applied.length} applied; ${store.location} is up to date`)
      return EXIT.OK
    } catch (error) {
      const { createRedactor, toFailure } = await core()
      const f = toFailure(error, createRedactor({ values: loaded.secrets }))
      io.err(`error: ${f.code}: ${f.detail}`)
      return EXIT.FAILED
    } finally {
      await store?.close()
    }
  }

  async function check(opts: CommonOptions & { offline?: boolean }): Promise<number> {
    const loaded = await load(opts)
    if (!loaded) return EXIT.FAILED
    const { config } = loaded
    const { createApp } = await import('./app.ts')
    const { testServerConnection, checkDeadline } = await import('./check-connections.ts')
    const { toFailure } = await core()
    // The connectors are built against a throw-away in-memory store: `check` never creates, migrates
    // or writes the configured one. Product and plan settings are validated by createApp.
    let app: App
    try {
      app = await createApp({
        config,
        secrets: loaded.secrets,
        logStream: null,
        ...extras,
        store: { url: undefined, file: ':memory:' },
        seedPools: false,
      })
    } catch (error) {
      if (isConfigError(error)) {
        io.err(error.message)
        return EXIT.FAILED
      }
      throw error
    }
    try {
      io.out(
        `config: ok (${config.products.length} products, ${config.servers.length} servers, ${config.ipPools.length} IP pools; every product's and plan's settings valid for its connector)`,
      )
      if (opts.offline) {
        io.out('check: the file is valid (offline: no store, servers or WHMCS contacted)')
        return EXIT.OK
      }
      let failures = 0
      const problem = (line: string) => {
        failures++
        io.out(line)
      }
      let store: Store | undefined
      try {
        store = await openAsIs(loaded)
        const states = await store.migrationStatus()
        const pending = states.filter((s) => !s.executedAt).length
        io.out(
          `store: ${store.dialect} at ${store.location} (${pending === 0 ? 'up to date' : `${pending} migration(s) pending: the next start applies them, or \`provisioner migrate\``})`,
        )
      } catch (error) {
        const message = app.redactor.redactString((error as Error).message)
        if (/No store at/.test(message)) io.out(`store: ${message}`)
        else problem(`store: FAILED — ${message}`)
      } finally {
        await store?.close()
      }
      for (const server of config.servers) {
        const connector = app.engine.connector(server.connector)
        if (!connector) {
          problem(`server ${server.id}: FAILED — connector ${server.connector} is not available`)
          continue
        }
        const result = await testServerConnection(connector, server)
        if (result.ok) {
          const d = result.data
          io.out(
            `server ${server.id}: ok (${server.connector}${d.version ? ` ${d.version}` : ''}, ${d.latencyMs.toFixed(0)} ms)`,
          )
        } else problem(`server ${server.id}: FAILED — ${result.error.code}: ${result.error.detail}`)
      }
      failures += await checkLoaders(app, problem)
      if (app.engine.whmcs) {
        try {
          const deadline = checkDeadline()
          const details = await app.engine.whmcs.whmcsDetails(deadline)
          let services = 0
          for (const p of config.products) {
            const r = await app.engine.whmcs.getClientsProducts(
              { pid: p.whmcsProductId, limitnum: 1 },
              deadline,
            )
            services += Number(r.totalresults ?? 0)
          }
          io.out(`whmcs: ok (WHMCS ${details.version}, ${services} services of the mapped products)`)
        } catch (error) {
          const f = toFailure(error, app.redactor)
          problem(`whmcs: FAILED — ${f.code}: ${f.detail}`)
        }
      } else io.out('whmcs: not configured (no sync; the API and CLI can still queue work)')
      io.out(failures === 0 ? 'check: everything ok' : `check: ${failures} problem(s)`)
      return failures === 0 ? EXIT.OK : EXIT.FAILED
    } finally {
      await app.close()
    }
  }

  /**
   * Dropdown settings whose choices come from the server (templates, nodes, storages, domains, user
   * groups): each configured value is looked up on the first enabled server of the product's group.
   */
  async function checkLoaders(app: App, problem: (line: string) => void): Promise<number> {
    const { serverInput } = await import('./engine/engine.ts')
    let failures = 0
    const say = (line: string) => {
      failures++
      problem(line)
    }
    for (const [i, p] of app.config.products.entries()) {
      const definition = app.engine.definitions.get(p.connector)
      const instance = app.engine.connector(p.connector)
      if (!definition || !instance) continue
      const group = app.config.serverGroups.find((g) => g.id === p.serverGroup)
      const server = group?.servers.map((id) => app.engine.server(id)).find((s) => s?.enabled)
      if (!server) continue
      const blocks: [string, Record<string, unknown>][] = [[`products[${i}].settings`, p.settings]]
      for (const [name, v] of Object.entries(p.plans?.values ?? {}))
        blocks.push([`products[${i}].plans.values.${name}`, v])
      for (const [path, block] of blocks) {
        for (const [key, value] of Object.entries(block)) {
          const spec = (definition.settings as Record<string, { type: string; loader?: unknown }>)[key]
          if (spec?.type !== 'dropdown' || !spec.loader || typeof value !== 'string' || value === '') continue
          const choices = await instance.loadOptions(key, serverInput(server), {
            settings: { ...p.settings, ...block },
          })
          if (!choices.ok) {
            say(
              `${path}.${key}: cannot list the choices on ${server.id} — ${choices.error.code}: ${choices.error.detail}`,
            )
            continue
          }
          if (!choices.data.some((c) => c.value === value || c.label === value))
            say(
              `${path}.${key}: ${value} is not on ${server.id} (there: ${
                choices.data
                  .slice(0, 12)
                  .map((c) => c.value)
                  .join(', ') || 'none'
              }${choices.data.length > 12 ? ', …' : ''})`,
            )
        }
      }
    }
    return failures
  }

  try {
    if (argv.length === 0) {
      io.err(program.helpInformation().replace(/\n$/, ''))
      return EXIT.USAGE
    }
    await program.parseAsync(argv, { from: 'user' })
    return code
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      )
        return EXIT.OK
      return EXIT.USAGE
    }
    throw error
  }

  function logFormat(opts: CommonOptions): LogFormat {
    if (opts.logFormat === 'json' || opts.logFormat === 'pretty') return opts.logFormat
    return process.stderr.isTTY ? 'pretty' : 'json'
  }
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:@=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** The usage period a moment falls in: periods of `hours` counted from the Unix epoch. */
export function usagePeriod(hours: number, now = Date.now()): string {
  const n = Math.floor(now / (hours * 3_600_000))
  return new Date(n * hours * 3_600_000).toISOString().slice(0, 13)
}

/**
 * Runs the CLI as the process: `bin/provisioner.js` and `node src/cli.ts` come here. The exit code is
 * set, not forced; if something still holds the event loop a second later, the process exits anyway,
 * so a supervisor never waits on a process that has finished its work.
 */
export async function runProcess(argv = process.argv.slice(2)): Promise<void> {
  try {
    const code = await main(argv)
    process.exitCode = code
    setTimeout(() => process.exit(code), 1000).unref()
  } catch (error) {
    process.stderr.write(`fatal: ${error instanceof Error ? error.message : String(error)}\n`)
    process.exit(1)
  }
}

const isEntry = process.argv[1] !== undefined && /[\\/]cli\.(ts|js)$/.test(process.argv[1])
if (isEntry) void runProcess()
