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
import { TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

/**
 * The module log says who caused each call (migration 0009): the reverse sync, the API, the CLI. (The
 * WHMCS server module's `whmcs-module` source is proven end to end by apps/whmcs-module's PHP tests.)
 */

const TOKEN = 'source-token-0123456789abcdef'
const host = `source-panel-${process.pid}`
let app: App
let api: ApiServer
let whmcs: WhmcsWorld

beforeAll(async () => {
  registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Source-Panel-Pw-1' }))
  whmcs = await startWhmcs()
  const { config, secrets } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Source-Panel-Pw-1' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [{ whmcsProductId: whmcs.pid, connector: 'memory-panel', serverGroup: 'g1' }],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, ...whmcs.env },
  )
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
  unregisterMemoryPanel(host)
})

async function log(query: string) {
  const r = await fetch(`${api.url}/v1/log?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } })
  expect(r.status).toBe(200)
  return ((await r.json()) as { entries: { connector: string; operation?: string; source?: string }[] })
    .entries
}

describe('the module log', () => {
  it('records the source of every call: sync, api, cli', async () => {
    const sid = whmcs.order({ password: 'Source-Service-Pw-1' })
    await app.engine.sync()
    await app.engine.runWorker({ untilIdle: true })
    const r = await fetch(`${api.url}/v1/services/${sid}/actions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'suspend' }),
    })
    expect(r.status).toBe(202)
    await app.engine.runWorker({ untilIdle: true })
    await app.engine.request(sid, { desired: 'active' }, 'cli')
    await app.engine.runWorker({ untilIdle: true })

    const sync = await log(`serviceId=${sid}&source=sync`)
    expect(sync.map((e) => e.operation)).toContain('create')
    expect(sync.every((e) => e.source === 'sync')).toBe(true)
    const fromApi = await log(`serviceId=${sid}&source=api`)
    expect(fromApi.map((e) => `${e.connector} ${e.operation}`)).toContain('memory-panel suspend')
    expect(fromApi.some((e) => e.operation === 'create')).toBe(false)
    const fromCli = await log(`serviceId=${sid}&source=cli`)
    expect(fromCli.map((e) => `${e.connector} ${e.operation}`)).toContain('memory-panel unsuspend')
    // The sync pass's own WHMCS calls are the sync's too.
    expect((await log('connector=whmcs-client&source=sync')).length).toBeGreaterThan(0)
    const bad = await fetch(`${api.url}/v1/log?source=nobody`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    })
    expect(bad.status).toBe(400)
  })
})
