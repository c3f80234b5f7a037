import { createRedactor, sleep } from '@panelkit/core'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { usageKey } from '@panelkit/whmcs'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.ts'
import { Engine } from '../src/engine/engine.ts'
import { claimJobs, countJobs, listJobs } from '../src/engine/jobs.ts'
import { silentLogger } from '../src/logger.ts'
import { openTestStore, STORE_KINDS, type StoreKind, TEST_KEY } from './helpers.ts'
import { startWhmcs } from './whmcs.ts'

/**
 * Usage pushes whose worker died at each point of the ledger's life: a worker "dies" by claiming the
 * job (with a lease that runs out at once) and the ledger key as the engine would, then doing nothing
 * more — exactly what `kill -9` leaves in the store — before a live worker runs.
 */
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(kind: StoreKind) {
  const host = `ledger-panel-${Math.random().toString(36).slice(2)}`
  registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Secret-1' }))
  const whmcs = await startWhmcs()
  const { config } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Panel-Secret-1' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [
        {
          whmcsProductId: whmcs.pid,
          connector: 'memory-panel',
          serverGroup: 'g1',
          usageBilling: { metric: 'disk', unitPrice: '0.10', description: 'Disk' },
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, ...whmcs.env },
  )
  const { store, cleanup } = await openTestStore(kind)
  const redactor = createRedactor()
  const engine = new Engine({
    store,
    config,
    connectors: [{ definition: memoryPanelConnector }],
    whmcs: whmcs.client(),
    redactor,
    logger: silentLogger(redactor),
    moduleLog: store.moduleLog(redactor),
  })
  cleanups.push(async () => {
    await engine.close()
    await cleanup()
    await whmcs.close()
    unregisterMemoryPanel(host)
  })
  const serviceId = whmcs.order({ password: 'Initial-pw-1' })
  await engine.sync()
  await engine.runWorker({ untilIdle: true, pollMs: 5 })
  const key = usageKey({ serviceId, period: '2026-05' })
  /** Queues the period's push and lets a worker claim it and the ledger key, then "die". */
  const dieHoldingThePush = async (upTo: 'claimed' | 'sending' | 'sent') => {
    expect(await engine.scheduleUsage('2026-05')).toBe(1)
    const [job] = await claimJobs(store, 'dead-worker', 10, 1)
    expect(job).toMatchObject({ operation: 'pushUsage', status: 'running' })
    const ledger = store.ledgerFor('dead-worker:attempt-1')
    expect(await ledger.claim(key)).toBeUndefined()
    if (upTo !== 'claimed') await ledger.beginSend(key)
    if (upTo === 'sent') {
      // The dead worker's request did reach WHMCS, and WHMCS answered before the kill.
      const item = await whmcs.client().addBillableItem({
        clientid: whmcs.sim.service(Number(serviceId)).clientId,
        description: 'Disk 2026-05',
        amount: '0.00',
      })
      await ledger.markSent(key, item.billableid)
    }
    await sleep(5) // the dead worker's lease runs out
    return ledger
  }
  const phase = async () => (await store.ledger.list()).find((e) => e.key === key)?.phase
  return { store, engine, whmcs, key, dieHoldingThePush, phase }
}

describe.each(STORE_KINDS)('usage pushes whose worker died (%s)', (kind) => {
  it('retries a push claimed before sending automatically, and bills it exactly once', async () => {
    const { store, engine, whmcs, key, dieHoldingThePush, phase } = await setup(kind)
    const dead = await dieHoldingThePush('claimed')
    expect(await phase()).toBe('claimed')
    expect(whmcs.sim.billableItems.size).toBe(0)
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(1)
    expect(await phase()).toBe('done')
    expect(await countJobs(store.db)).toMatchObject({ parked: 0, queued: 0, running: 0 })
    const push = (await listJobs(store.db, {})).find((j) => j.operation === 'pushUsage')
    expect(push).toMatchObject({ status: 'done', result: { key, sent: true } })
    // Had the dead attempt been merely slow, it could no longer send, nor free the new claim.
    await expect(dead.beginSend(key)).rejects.toMatchObject({ kind: 'CONFLICT' })
    await dead.release(key)
    expect(await phase()).toBe('done')
    // And the period is never pushed again.
    expect(await engine.scheduleUsage('2026-05')).toBe(0)
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(1)
    expect(await store.ledger.list({ state: 'uncertain' })).toEqual([])
  })

  it('parks a push whose worker died after sending began, listed as uncertain, until settled', async () => {
    const { store, engine, whmcs, key, dieHoldingThePush, phase } = await setup(kind)
    await dieHoldingThePush('sending')
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(0)
    expect((await countJobs(store.db)).parked).toBe(1)
    const uncertain = await store.ledger.list({ state: 'uncertain' })
    expect(uncertain).toMatchObject([{ key, phase: 'uncertain', reason: expect.stringMatching(/went out/) }])
    // The operator checked WHMCS: it is not there. Released, it is sent once.
    expect(await engine.settle(key, 'release')).toEqual({ settled: true, retried: 1 })
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(1)
    expect(await phase()).toBe('done')
    expect((await countJobs(store.db)).parked).toBe(0)
  })

  it('finishes a push whose answer arrived before the worker died, without sending again', async () => {
    const { store, engine, whmcs, dieHoldingThePush, phase } = await setup(kind)
    await dieHoldingThePush('sent')
    expect(await phase()).toBe('sent')
    expect(whmcs.sim.billableItems.size).toBe(1)
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(whmcs.sim.billableItems.size).toBe(1)
    expect(await phase()).toBe('done')
    expect(await countJobs(store.db)).toMatchObject({ parked: 0, queued: 0 })
    const push = (await listJobs(store.db, {})).find((j) => j.operation === 'pushUsage')
    expect(push).toMatchObject({ status: 'done', result: { sent: false } })
  })
})
