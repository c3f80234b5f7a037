import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { claimJobs, listJobs, releaseLeases } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { apiCaller, TEST_KEY } from './helpers.ts'
import { memoryPanelProduct, startWhmcs, type WhmcsWorld } from './whmcs.ts'

/** The sections without `whmcs` when the test runs the app without a WHMCS connection. */
function withoutWhmcs<T extends { whmcs: unknown }>(sections: T, drop: boolean): Omit<T, 'whmcs'> | T {
  if (!drop) return sections
  const { whmcs: _dropped, ...rest } = sections
  return rest
}

/**
 * Cancel, supersede and reconcile through the HTTP API (`POST /v1/cancel`, `GET|POST /v1/reconcile`):
 * the same engine functions as `provisioner cancel` and `provisioner reconcile`. An operator changes
 * the config by restarting the app on the same store with another file, as in production.
 */

const ADMIN = 'api-admin-token-0123456789'
const OPERATE = 'api-operate-token-0123456789'
const READ = 'api-read-token-0123456789ab'
const host = `api-operator-panel-${process.pid}`
let panel: MemoryPanel
let whmcs: WhmcsWorld
let dataDir = ''
let app: App | undefined
let api: ApiServer | undefined

const call = apiCaller(() => api?.url ?? '', ADMIN)

/** Starts the app and its API on the test's store with this Basic plan (what the operator's file says). */
async function startWith(
  basic: Record<string, unknown>,
  options: { whmcs?: boolean; panelPassword?: string } = {},
): Promise<App> {
  await stop()
  const { config, secrets } = parseConfig(
    {
      ...withoutWhmcs(memoryPanelProduct(whmcs, host, basic), options.whmcs === false),
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { dataDir, encryptionKey: '${KEY}' },
      http: {
        listen: '127.0.0.1:0',
        tokens: [
          ADMIN,
          { token: OPERATE, scopes: ['operate', 'read'], name: 'ops' },
          { token: READ, scopes: ['read'] },
        ],
      },
      worker: { maxAttempts: 2, backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, PANEL_PW: options.panelPassword ?? 'Panel-Pw-88', ...whmcs.env },
  )
  app = await createApp({
    config,
    secrets,
    logStream: null,
    connectors: [{ definition: memoryPanelConnector }],
  })
  api = await startApiServer(app)
  return app
}

async function stop(): Promise<void> {
  await api?.close()
  await app?.close()
  api = undefined
  app = undefined
}

const jobsOf = async (serviceId: string) => listJobs((app as App).store.db, { serviceId })
const work = () => (app as App).engine.runWorker({ untilIdle: true, pollMs: 5 })

beforeAll(async () => {
  panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Pw-88' }))
  whmcs = await startWhmcs()
  dataDir = mkdtempSync(join(tmpdir(), 'panelkit-api-operator-'))
})

afterAll(async () => {
  await stop()
  await whmcs.close()
  unregisterMemoryPanel(host)
  rmSync(dataDir, { recursive: true, force: true })
})

describe('HTTP API: cancel, supersede and reconcile', () => {
  let a = ''
  let b = ''
  let parkedA = 0

  it('cancels a parked job and refuses to cancel a running one; bad input changes nothing', async () => {
    // The server's password in the operator's environment is wrong: every create parks (AUTH).
    await startWith({ plan: 'basic' }, { panelPassword: 'Not-The-Panel-Pw' })
    a = whmcs.order({ password: 'Order-Pw-123' })
    expect((await call('POST', '/v1/sync', { serviceId: a })).status).toBe(200)
    await work()
    const [parked] = await jobsOf(a)
    expect(parked).toMatchObject({ operation: 'create', status: 'parked' })
    parkedA = parked?.id as number

    // A second service's create is held by another worker (claimed with a lease, running).
    b = whmcs.order({ password: 'Order-Pw-456' })
    await call('POST', '/v1/sync', { serviceId: b })
    const claimed = await claimJobs((app as App).store, 'another-worker', 10, 60_000)
    expect(claimed.map((j) => j.serviceId)).toEqual([b])
    const runningB = claimed[0]?.id as number

    const snapshot = async () => [...(await jobsOf(a)), ...(await jobsOf(b))]
    const before = await snapshot()
    const serviceA = await getService((app as App).store.db, a)

    // Refused while running: 409 with a typed code, for the job and for its service.
    for (const body of [{ jobId: runningB }, { serviceId: b }]) {
      const r = await call('POST', '/v1/cancel', body)
      expect(r.status).toBe(409)
      expect(r.body.error.code).toBe('PANELKIT_ERR_CONFLICT')
      expect(r.body.error.message).toMatch(/is running/)
    }
    // Bad input: typed 4xx naming the field.
    const bad = [
      await call('POST', '/v1/cancel', {}),
      await call('POST', '/v1/cancel', { jobId: 'one' }),
      await call('POST', '/v1/cancel', { jobId: parkedA, extra: true }),
      await call('POST', '/v1/cancel', { jobId: parkedA, reason: 'wrong\r\nX-Injected: 1' }),
      await call('POST', '/v1/cancel', { jobId: parkedA, resync: 'yes' }),
      await call('POST', '/v1/cancel', { serviceId: '../etc' }),
      await call('POST', '/v1/cancel', '{"jobId": '),
      await call('POST', '/v1/reconcile', { apply: 'yes' }),
      await call('POST', '/v1/reconcile', { serviceId: a, everything: true }),
      await call('GET', '/v1/reconcile?apply=true'),
    ]
    for (const r of bad) {
      expect(r.status).toBe(400)
      expect(r.body.error.code).toBe('PANELKIT_ERR_VALIDATION')
    }
    expect(bad[0]?.body.error.message).toMatch(/jobId.*serviceId/)
    expect(bad[1]?.body.error.issues[0].path).toBe('jobId')
    expect(bad[3]?.body.error.issues[0].path).toBe('reason')
    // Unknown job or service: 404. Cancelling a job that is not open: 400. Wrong method: 405.
    expect((await call('POST', '/v1/cancel', { jobId: 987654 })).body.error.code).toBe(
      'PANELKIT_ERR_NOT_FOUND',
    )
    expect((await call('POST', '/v1/cancel', { serviceId: '987654' })).status).toBe(404)
    expect((await call('POST', '/v1/reconcile', { serviceId: '987654' })).status).toBe(404)
    expect((await call('GET', '/v1/cancel')).status).toBe(405)
    expect((await call('DELETE', '/v1/reconcile')).status).toBe(405)
    // Scopes: cancel and applying reconcile need operate; the plan needs read.
    const readOnly = await call('POST', '/v1/cancel', { jobId: parkedA }, READ)
    expect(readOnly.status).toBe(403)
    expect(readOnly.body.error.code).toBe('PANELKIT_ERR_FORBIDDEN')
    expect((await call('POST', '/v1/reconcile', { apply: true }, READ)).status).toBe(403)
    expect((await call('GET', '/v1/reconcile', undefined, READ)).status).toBe(200)
    // Nothing changed by any of it.
    expect(await snapshot()).toEqual(before)
    expect(await getService((app as App).store.db, a)).toEqual(serviceA)

    // The parked job is cancelled (by an operate token): the service goes back to what was confirmed.
    const r = await call('POST', '/v1/cancel', { jobId: parkedA, reason: 'wrong plan settings' }, OPERATE)
    expect(r.status).toBe(200)
    expect(r.body.services).toEqual([a])
    expect(r.body.cancelled).toEqual([
      expect.objectContaining({ id: parkedA, operation: 'create', serviceId: a, status: 'cancelled' }),
    ])
    expect(r.text).not.toMatch(/secretEnc|pk1:|Order-Pw/)
    expect((await jobsOf(a))[0]).toMatchObject({
      status: 'cancelled',
      result: { cancelled: 'wrong plan settings' },
    })
    expect(await getService((app as App).store.db, a)).toMatchObject({ desired: 'none', lastError: null })
    // Not open any more: a second cancel is refused, and b's running job was untouched.
    const twice = await call('POST', '/v1/cancel', { jobId: parkedA })
    expect(twice.status).toBe(400)
    expect(twice.body.error.message).toMatch(/only queued or parked/)
    expect((await jobsOf(b))[0]).toMatchObject({ id: runningB, status: 'running' })

    // The other worker lets go; b's create runs here and parks like a's did.
    expect(await releaseLeases((app as App).store.db, 'another-worker')).toBe(1)
    await work()
    expect((await jobsOf(b))[0]).toMatchObject({ id: runningB, status: 'parked' })
  })

  it('supersedes: without WHMCS a resync is refused before anything is cancelled; with it, fresh jobs run', async () => {
    await startWith({ plan: 'basic' }, { whmcs: false })
    const refused = await call('POST', '/v1/cancel', { serviceId: b, resync: true })
    expect(refused.status).toBe(409)
    expect(refused.body.error.code).toBe('PANELKIT_ERR_NO_WHMCS')
    expect((await jobsOf(b))[0]?.status).toBe('parked')

    // The password is fixed; cancel with resync plans the service again from WHMCS at once.
    await startWith({ plan: 'basic' })
    const r = await call('POST', '/v1/cancel', { serviceId: b, resync: true })
    expect(r.status).toBe(200)
    expect(r.body.cancelled.map((j: { id: number }) => j.id)).toEqual([(await jobsOf(b))[0]?.id])
    expect(r.body.syncs).toEqual([
      { serviceId: b, summary: expect.objectContaining({ pass: 'service', jobsCreated: 1, errors: [] }) },
    ])
    // a was cancelled without resync: a service sync plans it.
    expect((await call('POST', '/v1/sync', { serviceId: a })).body.report.jobsCreated).toBe(1)
    await work()
    for (const id of [a, b]) {
      expect(panel.find(`svc${id}`)).toMatchObject({ plan: 'basic' })
      expect(await getService((app as App).store.db, id)).toMatchObject({
        actual: 'active',
        desired: 'active',
      })
      expect((await jobsOf(id)).map((j) => `${j.operation}:${j.status}`)).toContain('create:done')
    }
  })

  it('reconcile: GET shows the plan, POST without apply changes nothing, apply queues one changePackage each', async () => {
    // The operator moves the Basic plan to the panel's `enterprise` plan in the config and restarts.
    await startWith({ plan: 'enterprise' })
    const count = async () => (await listJobs((app as App).store.db, { limit: 1000 })).length
    const jobsBefore = await count()
    const plan = await call('GET', '/v1/reconcile', undefined, READ)
    expect(plan.status).toBe(200)
    expect(plan.body).toMatchObject({ applied: false, queued: 0 })
    expect(plan.body.entries.map((e: { serviceId: string }) => e.serviceId).sort()).toEqual([a, b].sort())
    for (const e of plan.body.entries) {
      expect(e.changes).toEqual([{ key: 'plan', from: 'basic', to: 'enterprise' }])
      expect(e.pendingJob).toBeUndefined()
    }
    const one = await call('GET', `/v1/reconcile?serviceId=${a}`)
    expect(one.body.entries.map((e: { serviceId: string }) => e.serviceId)).toEqual([a])
    const dry = await call('POST', '/v1/reconcile', { serviceId: b }, OPERATE)
    expect(dry.body).toMatchObject({ applied: false, queued: 0, entries: [{ serviceId: b }] })
    expect(await count()).toBe(jobsBefore)

    const applied = await call('POST', '/v1/reconcile', { apply: true }, OPERATE)
    expect(applied.status).toBe(200)
    expect(applied.body).toMatchObject({ applied: true, queued: 2 })
    for (const e of applied.body.entries) expect(e.pendingJob).toEqual(expect.any(Number))
    for (const id of [a, b]) {
      const open = (await jobsOf(id)).filter((j) => j.status === 'queued')
      expect(open.map((j) => j.operation)).toEqual(['changePackage'])
      expect(open[0]?.source).toBe('reconcile')
    }
    // Applying again while they are open queues nothing more.
    expect((await call('POST', '/v1/reconcile', { apply: true })).body.queued).toBe(0)
    await work()
    for (const id of [a, b]) expect(panel.find(`svc${id}`)).toMatchObject({ plan: 'enterprise' })
    expect((await call('GET', '/v1/reconcile')).body.entries).toEqual([])
  })

  it('describes both routes in /openapi.json', async () => {
    const doc = await call('GET', '/openapi.json')
    expect(doc.status).toBe(200)
    expect(Object.keys(doc.body.paths['/v1/cancel'])).toEqual(['post'])
    expect(doc.body.paths['/v1/cancel'].post.responses['409']).toBeDefined()
    expect(
      Object.keys(
        doc.body.paths['/v1/cancel'].post.requestBody.content['application/json'].schema.properties,
      ),
    ).toEqual(['jobId', 'serviceId', 'reason', 'resync'])
    expect(Object.keys(doc.body.paths['/v1/reconcile']).sort()).toEqual(['get', 'post'])
    expect(doc.body.paths['/v1/reconcile'].get.parameters.map((p: { name: string }) => p.name)).toEqual([
      'serviceId',
    ])
  })
})
