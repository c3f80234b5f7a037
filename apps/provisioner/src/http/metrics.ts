import type { ModuleLogEntry } from '@panelkit/core'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { App } from '../app.ts'
import type { SyncSummary } from '../engine/engine.ts'

/**
 * Prometheus metrics for one app, on prom-client. Counts that live in the store (jobs by state,
 * services by state, parked jobs, uncertain ledger entries) are read from it at scrape time, so they
 * are right for every worker sharing the store; durations are observed in this process from the
 * engine's events, the module log's calls and the sync passes.
 */

export interface SyncObservation {
  at: number
  ok: boolean
  summary?: SyncSummary
  error?: string
}

export interface AppMetrics {
  registry: Registry
  /** The last sync pass this process ran (for the console's overview too). */
  lastSync(): SyncObservation | undefined
  render(): Promise<{ contentType: string; body: string }>
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

/** Connector of each job's service; deposits (`client:<id>`) and write-backs talk to WHMCS. */
function connectorLabel(connector: string | null | undefined, operation: string): string {
  if (operation === 'writeBack' || operation === 'pushUsage' || operation === 'creditDeposit') return 'whmcs'
  return connector ?? 'none'
}

export function createAppMetrics(app: App): AppMetrics {
  const registry = new Registry()
  const { store, engine } = app
  let last: SyncObservation | undefined
  let lastOkAt: number | undefined

  const storeLatency = new Gauge({
    name: 'provisioner_store_query_seconds',
    help: 'Time of the store round trip made at this scrape (one aggregate query)',
    registers: [registry],
  })
  const jobs = new Gauge({
    name: 'provisioner_jobs',
    help: 'Jobs in the store by state and connector',
    labelNames: ['state', 'connector'] as const,
    registers: [registry],
  })
  const parked = new Gauge({
    name: 'provisioner_parked_jobs',
    help: 'Jobs parked for an operator (fix, then retry)',
    registers: [registry],
  })
  const services = new Gauge({
    name: 'provisioner_services',
    help: 'Services by confirmed state and connector',
    labelNames: ['state', 'connector'] as const,
    registers: [registry],
  })
  const uncertain = new Gauge({
    name: 'provisioner_ledger_uncertain_entries',
    help: 'Usage pushes and credits whose outcome is unknown (an operator settles them)',
    registers: [registry],
  })
  const syncLag = new Gauge({
    name: 'provisioner_sync_lag_seconds',
    help: 'Seconds since the last successful sync pass of this process began (absent before the first)',
    registers: [registry],
  })
  const syncSeen = new Gauge({
    name: 'provisioner_sync_services_seen',
    help: 'WHMCS services read by the last sync pass',
    registers: [registry],
  })
  const syncDuration = new Histogram({
    name: 'provisioner_sync_pass_seconds',
    help: 'Duration of sync passes',
    labelNames: ['pass', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  })
  const jobDuration = new Histogram({
    name: 'provisioner_job_run_seconds',
    help: 'Duration of job runs by connector, operation and how the run ended (done, retry, parked)',
    labelNames: ['connector', 'operation', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  })
  const stepDuration = new Histogram({
    name: 'provisioner_pipeline_step_seconds',
    help: 'Duration of pipeline steps by connector, step and outcome',
    labelNames: ['connector', 'step', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  })
  const callDuration = new Histogram({
    name: 'provisioner_external_call_seconds',
    help: 'Latency of calls to external systems (the module log) by connector and operation',
    labelNames: ['connector', 'operation', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  })
  const callErrors = new Counter({
    name: 'provisioner_external_call_errors_total',
    help: 'Failed calls to external systems by connector and operation',
    labelNames: ['connector', 'operation'] as const,
    registers: [registry],
  })

  // ---- observed in this process ---------------------------------------------------------------------
  const started = new Map<number, { at: number; connector: string }>()
  engine.on((event) => {
    if (!('job' in event)) return // sync passes: below
    const op = event.job.operation
    if (event.type === 'job-started') {
      started.set(event.job.id, {
        at: performance.now(),
        connector: connectorLabel(event.service?.connector, op),
      })
      return
    }
    if (event.type === 'step') {
      const s = started.get(event.job.id)
      stepDuration.observe(
        { connector: s?.connector ?? 'none', step: event.step.name, outcome: event.step.outcome },
        event.step.durationMs / 1000,
      )
      return
    }
    const s = started.get(event.job.id)
    started.delete(event.job.id)
    if (!s) return
    const outcome = event.type === 'job-done' ? 'done' : event.type === 'job-retry' ? 'retry' : 'parked'
    jobDuration.observe({ connector: s.connector, operation: op, outcome }, (performance.now() - s.at) / 1000)
  })
  const sink = engine.moduleLog
  const write = sink.write.bind(sink)
  sink.write = (entry: ModuleLogEntry) => {
    const labels = { connector: entry.connector, operation: entry.operation ?? 'none' }
    callDuration.observe({ ...labels, outcome: entry.outcome }, entry.durationMs / 1000)
    if (entry.outcome === 'error') callErrors.inc(labels)
    write(entry)
  }
  engine.on((event) => {
    if (event.type !== 'sync-done' && event.type !== 'sync-failed') return
    const ok = event.type === 'sync-done' && event.summary.errors.length === 0
    const outcome = event.type === 'sync-failed' ? 'failed' : ok ? 'ok' : 'errors'
    syncDuration.observe({ pass: event.pass, outcome }, event.durationMs / 1000)
    if (event.pass !== 'full') return
    if (event.type === 'sync-done') {
      last = { at: event.startedAt, ok, summary: event.summary }
      if (ok) lastOkAt = event.startedAt
      syncSeen.set(event.summary.servicesSeen)
    } else {
      last = { at: event.startedAt, ok: false, error: String((event.error as Error)?.message ?? event.error) }
    }
  })

  // ---- read from the store at scrape time ----------------------------------------------------------
  async function collect(): Promise<void> {
    const t = performance.now()
    const rows = await store.db
      .selectFrom('jobs as j')
      .leftJoin('services as s', 's.service_id', 'j.service_id')
      .select(['j.status', 'j.operation', 's.connector', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['j.status', 'j.operation', 's.connector'])
      .execute()
    storeLatency.set((performance.now() - t) / 1000)
    jobs.reset()
    let parkedCount = 0
    for (const r of rows) {
      jobs.inc({ state: r.status, connector: connectorLabel(r.connector, r.operation) }, Number(r.n))
      if (r.status === 'parked') parkedCount += Number(r.n)
    }
    parked.set(parkedCount)
    const svc = await store.db
      .selectFrom('services')
      .select(['actual', 'connector', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['actual', 'connector'])
      .execute()
    services.reset()
    for (const r of svc) services.set({ state: r.actual, connector: r.connector }, Number(r.n))
    const u = await store.db
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('state', '=', 'uncertain')
      .executeTakeFirstOrThrow()
    uncertain.set(Number(u.n))
    if (lastOkAt !== undefined) syncLag.set((Date.now() - lastOkAt) / 1000)
  }

  return {
    registry,
    lastSync: () => last,
    async render() {
      await collect()
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  }
}
