import { getEventListeners } from 'node:events'
import { createRedactor } from '@panelkit/core'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.ts'
import { Engine } from '../src/engine/engine.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { silentLogger } from '../src/logger.ts'
import type { Store } from '../src/store/store.ts'
import { openTestStore, STORE_KINDS, type StoreKind, TEST_KEY } from './helpers.ts'
import { memoryPanelProduct, startWhmcs, type WhmcsWorld } from './whmcs.ts'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

/**
 * One store and one WHMCS, and engines built on them from a plan's settings: a new engine on the same
 * store is what an operator gets by fixing the config and starting the worker again.
 */
async function setup(kind: StoreKind) {
  const host = `panel-${Math.random().toString(36).slice(2)}`
  const panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Secret-1' }))
  const whmcs: WhmcsWorld = await startWhmcs()
  const { store, cleanup } = await openTestStore(kind)
  const engines: Engine[] = []
  cleanups.push(async () => {
    for (const e of engines) await e.close()
    await cleanup()
    await whmcs.close()
    unregisterMemoryPanel(host)
  })
  function engineWith(basic: Record<string, unknown>): Engine {
    const { config } = parseConfig(
      {
        ...memoryPanelProduct(whmcs, host, basic),
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        store: { encryptionKey: '${KEY}' },
        worker: { concurrency: 2, leaseSeconds: 5, maxAttempts: 3, backoffMs: 5, maxBackoffMs: 20 },
      },
      { PANEL_PW: 'Panel-Secret-1', KEY: TEST_KEY, ...whmcs.env },
    )
    const redactor = createRedactor({ values: ['Panel-Secret-1'] })
    const engine = new Engine({
      store,
      config,
      connectors: [{ definition: memoryPanelConnector }],
      whmcs: whmcs.client(),
      redactor,
      logger: silentLogger(redactor),
      moduleLog: store.moduleLog(redactor),
    })
    engines.push(engine)
    return engine
  }
  const order = (plan = 'Basic') => whmcs.order({ plan, password: 'Order-Pw-123' })
  return { panel, store, whmcs, engineWith, order }
}

async function jobsOf(store: Store, serviceId: string) {
  return listJobs(store.db, { serviceId })
}

describe.each(STORE_KINDS)('an operator frees stuck work and applies config changes (%s)', (kind) => {
  it("a parked create runs with today's config after the fix and `retry`", async () => {
    const { panel, store, engineWith, order } = await setup(kind)
    const broken = engineWith({ plan: 'platinum' }) // not a plan the panel's connector offers
    const a = order()
    await broken.sync()
    await broken.runWorker({ untilIdle: true, pollMs: 5 })
    const [parked] = await jobsOf(store, a)
    expect(parked?.status).toBe('parked')
    expect(parked?.lastError?.code).toBe('VALIDATION')
    // The job keeps its intent (create, plan Basic), not a copy of the settings.
    expect(parked?.payload).toMatchObject({ plan: 'Basic' })
    expect(parked?.payload.settings).toBeUndefined()
    // Retried under the same config it fails the same way ...
    await broken.retry({ jobId: parked?.id as number })
    await broken.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await jobsOf(store, a))[0]?.status).toBe('parked')
    // ... fixed in the config and retried, it runs with the fix.
    const fixed = engineWith({ plan: 'basic', diskQuotaMb: 2048 })
    expect(await fixed.retry({ serviceId: a })).toBe(1)
    await fixed.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await jobsOf(store, a))[0]?.status).toBe('done')
    expect(panel.find(`svc${a}`)?.plan).toBe('basic')
    const service = await getService(store.db, a)
    expect(service?.actual).toBe('active')
    expect(service?.confirmedSettings).toMatchObject({ plan: 'basic', diskQuotaMb: 2048 })
  })

  it('`cancel` supersedes a parked job: the next sync plans the service again', async () => {
    const { panel, store, engineWith, order } = await setup(kind)
    const broken = engineWith({ plan: 'platinum' })
    const a = order()
    await broken.sync()
    await broken.runWorker({ untilIdle: true, pollMs: 5 })
    const [parked] = await jobsOf(store, a)
    expect(parked?.status).toBe('parked')
    // Nothing new is queued while the parked job stands for the intent.
    expect((await broken.sync()).jobsCreated).toBe(0)
    const out = await broken.cancel({ jobId: parked?.id as number }, 'wrong plan settings')
    expect(out.cancelled.map((j) => j.id)).toEqual([parked?.id])
    expect((await jobsOf(store, a))[0]).toMatchObject({ status: 'cancelled', secretEnc: null })
    expect(await getService(store.db, a)).toMatchObject({ desired: 'none', actual: 'none', lastError: null })
    // A cancelled job cannot be cancelled again, and a running one is refused.
    await expect(broken.cancel({ jobId: parked?.id as number })).rejects.toThrow(/only queued or parked/)
    const fixed = engineWith({ plan: 'basic' })
    const again = await fixed.sync()
    expect(again.intentsByKind).toEqual({ create: 1 })
    await fixed.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${a}`)?.plan).toBe('basic')
    expect((await getService(store.db, a))?.actual).toBe('active')
    expect((await fixed.drift()).entries).toEqual([])
  })

  it('a plan changed in the config is drift, and `reconcile --apply` queues the changePackage', async () => {
    const { panel, store, engineWith, order } = await setup(kind)
    const before = engineWith({ plan: 'basic' })
    const a = order()
    const b = order('Pro')
    await before.sync()
    await before.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await before.drift()).entries).toEqual([])
    // The operator raises the Basic plan's quota and upgrades it to the panel's `enterprise` plan.
    const after = engineWith({ plan: 'enterprise', diskQuotaMb: 4096 })
    // WHMCS did not change: sync has nothing to queue, but the drift report sees the difference.
    expect((await after.sync()).intents).toBe(0)
    const drift = (await after.drift()).entries
    expect(drift).toHaveLength(1)
    expect(drift[0]).toMatchObject({ serviceId: a, kind: 'settings-differ' })
    expect(drift[0]?.message).toMatch(/plan "basic" -> "enterprise".*diskQuotaMb 1024 -> 4096/)
    // Without --apply it only shows what it would do.
    const shown = await after.reconcile()
    expect(shown.queued).toBe(0)
    expect(shown.entries.map((e) => e.serviceId)).toEqual([a])
    expect(shown.entries[0]?.changes).toEqual([
      { key: 'plan', from: 'basic', to: 'enterprise' },
      { key: 'diskQuotaMb', from: 1024, to: 4096 },
    ])
    expect((await jobsOf(store, a)).filter((j) => j.operation === 'changePackage')).toEqual([])
    const applied = await after.reconcile({ apply: true })
    expect(applied.queued).toBe(1)
    // Applying twice queues nothing more while the job is open.
    expect((await after.reconcile({ apply: true })).queued).toBe(0)
    await after.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${a}`)?.plan).toBe('enterprise')
    expect(panel.find(`svc${b}`)?.plan).toBe('pro')
    expect((await getService(store.db, a))?.confirmedSettings).toMatchObject({
      plan: 'enterprise',
      diskQuotaMb: 4096,
    })
    expect((await after.reconcile()).entries).toEqual([])
    expect((await after.drift()).entries).toEqual([])
  })

  it("a worker runs at most `concurrency` jobs at once while each finish claims the worker's next job", async () => {
    const { store, engineWith, order } = await setup(kind)
    const engine = engineWith({ plan: 'basic' })
    const services = Array.from({ length: 24 }, () => order())
    await engine.sync()
    const running = new Set<number>()
    let most = 0
    let started = 0
    engine.on((event) => {
      if (!('job' in event)) return
      if (event.type === 'job-started') {
        started++
        running.add(event.job.id)
        most = Math.max(most, running.size)
      } else if (event.type !== 'step') running.delete(event.job.id)
    })
    // The worker's own claims. PostgreSQL: the claim's prepared statement. SQLite: every transaction
    // of the run but the finishes, one per job (the sync ran before; a job here writes nothing else).
    let claims = 0
    let transactions = 0
    const tx = store.tx.bind(store)
    const prepared = store.prepared.bind(store)
    store.tx = ((fn: Parameters<typeof tx>[0]) => {
      transactions++
      return tx(fn)
    }) as typeof store.tx
    store.prepared = ((name: string, text: string, values: unknown[]) => {
      if (name === 'panelkit_claim') claims++
      return prepared(name, text, values)
    }) as typeof store.prepared
    try {
      await engine.runWorker({ untilIdle: true, pollMs: 5, concurrency: 3 })
    } finally {
      store.tx = tx
      store.prepared = prepared
    }
    const jobs = await listJobs(store.db, { limit: 1000 })
    expect(jobs.filter((j) => j.status !== 'done')).toEqual([])
    // Each service's create and its write-back, each run once.
    expect(jobs).toHaveLength(services.length * 2)
    expect(jobs.every((j) => j.attempts === 1)).toBe(true)
    expect(started).toBe(jobs.length)
    expect(most).toBe(3)
    // A claim of its own before each job would be one per job; a finish that claims the next job
    // leaves the worker's own claims to the start and to jobs that became claimable since.
    if (kind === 'sqlite') claims = transactions - jobs.length
    expect(claims).toBeGreaterThan(0)
    expect(claims).toBeLessThan(jobs.length / 4)
  })

  it('a busy worker keeps at most one listener on its stop signal (no MaxListenersExceededWarning)', async () => {
    const { store, engineWith, order } = await setup(kind)
    const engine = engineWith({ plan: 'basic' })
    for (let i = 0; i < 30; i++) order()
    await engine.sync()
    const warnings: string[] = []
    const onWarning = (w: Error) => warnings.push(w.name)
    process.on('warning', onWarning)
    const stop = new AbortController()
    let most = 0
    const sample = setInterval(() => {
      most = Math.max(most, getEventListeners(stop.signal, 'abort').length)
    }, 1)
    try {
      // Each finished job wakes the loop; every turn used to leave its idle wait's listener behind.
      await engine.runWorker({ signal: stop.signal, untilIdle: true, concurrency: 4 })
    } finally {
      clearInterval(sample)
      process.off('warning', onWarning)
    }
    expect((await listJobs(store.db, { limit: 1000 })).filter((j) => j.status !== 'done')).toEqual([])
    expect(most).toBeGreaterThan(0)
    expect(most).toBeLessThanOrEqual(1)
    expect(getEventListeners(stop.signal, 'abort')).toHaveLength(0)
    expect(warnings).toEqual([])
  })
})
