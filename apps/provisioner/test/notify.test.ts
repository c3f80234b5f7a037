import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { startNotifier } from '../src/notify.ts'
import { TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

/** The webhook, received by a real local HTTP server: a parked job, an uncertain entry, a failed sync. */

const TOKEN = 'notify-token-0123456789abcdef'
const HOOK_SECRET = 'Hook-Secret-Header-1'
const host = `notify-panel-${process.pid}`
let app: App
let api: ApiServer
let whmcs: WhmcsWorld
let receiver: Server
const received: { body: Record<string, string | number>; headers: IncomingMessage['headers'] }[] = []

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')), headers: req.headers })
      res.writeHead(204)
      res.end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
  registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Notify-Panel-Pw-1' }))
  whmcs = await startWhmcs()
  const { config, secrets } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Notify-Panel-Pw-1' }],
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
      http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
      console: {
        publicUrl: 'https://provisioner.example.net',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        notify: { webhook: hook, headers: { authorization: 'Bearer ${HOOK}' } },
      },
    },
    { KEY: TEST_KEY, HOOK: HOOK_SECRET, ...whmcs.env },
  )
  whmcs.order({ password: 'Notify-Service-pw-1' })
  app = await createApp({
    config,
    secrets,
    logStream: null,
    store: { file: ':memory:' },
    connectors: [{ definition: memoryPanelConnector }],
  })
  api = await startApiServer(app)
})

afterAll(async () => {
  await api.close()
  await app.close()
  await whmcs.close()
  await new Promise((r) => receiver.close(r))
  unregisterMemoryPanel(host)
})

describe('notifications', () => {
  it('posts a parked job, an uncertain entry and a failed sync once each, with the reason and a console link', async () => {
    const notifier = startNotifier(app)
    if (!notifier) throw new Error('the notifier was not installed')
    await app.engine.sync()
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await notifier.idle()
    expect(received).toEqual([])

    whmcs.sim.injectFault({ kind: 'drop-after', action: 'AddBillableItem', times: 1 })
    await app.engine.scheduleUsage('2026-05')
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await notifier.idle()
    const [parked, uncertain] = received
    expect(received).toHaveLength(2)
    expect(parked?.body).toMatchObject({
      event: 'job-parked',
      operation: 'pushUsage',
      link: expect.stringMatching(/^https:\/\/provisioner\.example\.net\/console\/services\/\d+$/),
    })
    expect(String(parked?.body.reason)).toMatch(/AddBillableItem/)
    expect(uncertain?.body).toMatchObject({
      event: 'ledger-uncertain',
      link: 'https://provisioner.example.net/console/ledger',
      ledgerKey: expect.stringMatching(/^whmcs:usage:/),
    })
    expect(parked?.headers.authorization).toBe(`Bearer ${HOOK_SECRET}`)

    // Retried while still uncertain, it parks again: a new event for the job, not for the same entry.
    expect(await app.engine.retry()).toBe(1)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await notifier.idle()
    expect(received.map((r) => r.body.event)).toEqual(['job-parked', 'ledger-uncertain', 'job-parked'])

    // The same event key is sent at most once, however often it is raised.
    const again = await notifier.notify(
      `job-parked:${received[0]?.body.jobId}:x`,
      { event: 'job-parked', reason: 'test' },
      '/console/parked',
    )
    expect(again).toBe(true)
    expect(
      await notifier.notify(
        `job-parked:${received[0]?.body.jobId}:x`,
        { event: 'job-parked', reason: 'test' },
        '/console/parked',
      ),
    ).toBe(false)
    expect(received).toHaveLength(4)

    // A full pass that cannot read WHMCS.
    whmcs.sim.injectFault({ kind: 'status', status: 503, action: 'GetClientsProducts', times: 100 })
    const report = await app.engine.sync().catch((e: Error) => e)
    await notifier.idle()
    whmcs.sim.faults.length = 0
    const failed = received.filter((r) => r.body.event === 'sync-failed')
    expect(failed, JSON.stringify(report)).toHaveLength(1)
    expect(String(failed[0]?.body.link)).toMatch(/^https:\/\/provisioner\.example\.net\/console(\/drift)?$/)
    expect(String(failed[0]?.body.reason)).toMatch(/503|unavailable|HTTP/i)
    // Nothing secret in any notification.
    for (const r of received)
      for (const s of [TOKEN, 'Notify-Service-pw-1', TEST_KEY])
        expect(JSON.stringify(r.body)).not.toContain(s)
  })
})
