import { request as httpRequest } from 'node:http'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { countJobs, listJobs } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { apiCaller, TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

/**
 * The API's security rules (issue 17, points 4, 5, 6, 8 and 9): token scopes per route, validation
 * against the connector's own settings schema before anything is queued, exact routes, health checks,
 * the 413 answer, error bodies without stacks or paths, per-job secrets, and jobs made moot by a
 * terminate queued before them.
 */

const ADMIN = 'admin-token-0123456789abcdef'
const READER = 'read-token-0123456789abcdef'
const OPERATOR = 'operate-token-0123456789abcd'
const BILLING = 'billing-token-0123456789abcd'
const host = `sec-panel-${process.pid}`
let app: App
let api: ApiServer
let panel: MemoryPanel
let whmcs: WhmcsWorld
let s1 = ''
let s2 = ''
let client1 = 0

const call = apiCaller(() => api.url, ADMIN)

beforeAll(async () => {
  panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Panel-Pw-55' }))
  whmcs = await startWhmcs()
  const { config, secrets } = parseConfig(
    {
      whmcs: whmcs.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: 'Panel-Pw-55' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [
        {
          whmcsProductId: whmcs.pid,
          connector: 'memory-panel',
          serverGroup: 'g1',
          usageBilling: { metric: 'disk', unitPrice: '0.10' },
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      http: {
        listen: '127.0.0.1:0',
        tokens: [
          ADMIN,
          { token: READER, scopes: ['read'], name: 'dashboard' },
          { token: OPERATOR, scopes: ['read', 'operate'] },
          { token: BILLING, scopes: ['billing'] },
        ],
      },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, ...whmcs.env },
  )
  client1 = whmcs.customer('sec-one@example.com')
  s1 = whmcs.order({ clientId: client1, password: 'Initial-s1-pw' })
  s2 = whmcs.order({ clientId: client1, password: 'Initial-s2-pw' })
  app = await createApp({
    config,
    secrets,
    logStream: null,
    store: { file: ':memory:' },
    connectors: [{ definition: memoryPanelConnector }],
  })
  api = await startApiServer(app)
  await app.engine.sync()
  await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
})

afterAll(async () => {
  await api.close()
  await app.close()
  await whmcs.close()
  unregisterMemoryPanel(host)
})

describe('token scopes (17.9)', () => {
  it('checks each route against the token’s scopes, and a refused request changes nothing', async () => {
    const before = await countJobs(app.store.db)
    const refused = [
      await call('POST', `/v1/services/${s1}/actions`, { action: 'suspend' }, READER),
      await call('POST', '/v1/sync', {}, READER),
      await call(
        'POST',
        `/v1/clients/${client1}/credit`,
        { depositId: 'd-1', amount: '999999999.99', description: 'x' },
        OPERATOR,
      ),
      await call('POST', '/v1/ledger/settle', { key: 'k', outcome: 'done' }, OPERATOR),
      await call('POST', `/v1/services/${s1}/actions`, { action: 'terminate' }, OPERATOR),
      await call('GET', `/v1/services/${s1}/sso?audience=admin`, undefined, OPERATOR),
      await call('GET', '/v1/services', undefined, BILLING),
      await call('POST', '/v1/retry', {}, BILLING),
    ]
    for (const r of refused) {
      expect(r.status).toBe(403)
      expect(r.body.error.code).toBe('PANELKIT_ERR_FORBIDDEN')
      expect(r.body.error.message).toMatch(/needs the (read|operate|billing|admin) scope/)
    }
    expect(await countJobs(app.store.db)).toEqual(before)
    expect((await call('GET', '/v1/services', undefined, READER)).status).toBe(200)
    expect((await call('GET', '/v1/ledger', undefined, READER)).status).toBe(200)
    expect((await call('POST', `/v1/services/${s2}/actions`, { action: 'suspend' }, OPERATOR)).status).toBe(
      202,
    )
    const credit = await call(
      'POST',
      `/v1/clients/${client1}/credit`,
      { depositId: 'sec-d1', amount: '5.00', description: 'Deposit' },
      BILLING,
    )
    expect(credit.status).toBe(202)
    expect((await call('GET', `/v1/services/${s2}/sso?audience=client`, undefined, OPERATOR)).status).toBe(
      302,
    )
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
  })

  it('refuses a token whose scopes are not ones it knows, and a literal encryption key', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
    const base = { store: { encryptionKey: '${KEY}' } }
    expect(() =>
      parseConfig({ ...base, http: { tokens: [{ token: READER, scopes: ['root'] }] } }, { KEY: TEST_KEY }),
    ).toThrow(/http\.tokens\[0\]/)
    expect(() => parseConfig({ store: { encryptionKey: TEST_KEY } }, {})).toThrow(
      /store\.encryptionKey: must not be written in the configuration file/,
    )
  })
})

describe('validation before queueing (17.6)', () => {
  it('refuses settings the connector would refuse, unknown settings and a password with CR/LF; nothing is stored', async () => {
    const before = await countJobs(app.store.db)
    const service = await getService(app.store.db, s1)
    const bad = [
      await call('POST', `/v1/services/${s1}/actions`, {
        action: 'changePackage',
        settings: { diskQuotaMb: -5 },
      }),
      await call('POST', `/v1/services/${s1}/actions`, {
        action: 'changePackage',
        settings: { plan: 'gold' },
      }),
      await call('POST', `/v1/services/${s1}/actions`, { action: 'changePackage', settings: { diskGb: 20 } }),
      await call('POST', `/v1/services/${s1}/actions`, {
        action: 'changePassword',
        password: 'Good-Pw\r\nX-Injected: 1',
      }),
      await call('POST', `/v1/services/${s1}/actions`, {
        action: 'changePassword',
        password: 'Nul-in-\u0000-password',
      }),
    ]
    for (const r of bad) {
      expect(r.status).toBe(400)
      expect(r.body.error.code).toBe('PANELKIT_ERR_VALIDATION')
    }
    expect(bad[0]?.body.error.issues[0].path).toBe('settings.diskQuotaMb')
    expect(bad[1]?.body.error.issues[0].path).toBe('settings.plan')
    expect(bad[2]?.body.error.issues[0].path).toBe('settings.diskGb')
    expect(bad[3]?.body.error.issues[0].path).toBe('password')
    expect(await countJobs(app.store.db)).toEqual(before)
    expect(await getService(app.store.db, s1)).toEqual(service)
    // The engine refuses the same change from any other source (the CLI).
    await expect(app.engine.request(s1, { settings: { diskQuotaMb: -5 } }, 'cli')).rejects.toThrow(
      /settings\.diskQuotaMb/,
    )
    // A valid change is queued.
    const ok = await call('POST', `/v1/services/${s1}/actions`, {
      action: 'changePackage',
      settings: { plan: 'pro' },
    })
    expect(ok.status).toBe(202)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${s1}`)?.plan).toBe('pro')
  })

  it('routes exactly: a longer path is not its prefix’s endpoint', async () => {
    const before = await countJobs(app.store.db)
    for (const path of [
      `/v1/services/${s1}/actions/extra`,
      '/v1/status/x',
      `/v1/clients/${client1}/credit/more`,
    ]) {
      const r = await call('POST', path, { action: 'suspend' })
      expect(r.status, path).toBe(404)
      expect(r.body.error.code).toBe('PANELKIT_ERR_NOT_FOUND')
    }
    expect(await countJobs(app.store.db)).toEqual(before)
    expect(panel.find(`svc${s1}`)?.suspended).toBe(false)
  })

  it('answers HEAD and GET on /health and /v1/health without a token', async () => {
    for (const path of ['/health', '/v1/health']) {
      const head = await fetch(`${api.url}${path}`, { method: 'HEAD' })
      expect(head.status, path).toBe(200)
      expect(await head.text()).toBe('')
      expect((await call('GET', path, undefined, null)).body).toEqual({ ok: true })
    }
  })

  it('answers a 10 MB body with the documented 413 JSON, not a connection reset', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024, 0x61)
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${api.url}/v1/sync`,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${ADMIN}`,
            'content-type': 'application/json',
            'content-length': big.length,
          },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          )
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(big)
    })
    expect(answer.status).toBe(413)
    expect(JSON.parse(answer.body).error).toMatchObject({ code: 'PANELKIT_ERR_PAYLOAD_TOO_LARGE' })
    // Also with fetch, which streams the body and reads the answer.
    const r = await call('POST', '/v1/sync', JSON.stringify({ pad: 'x'.repeat(10 * 1024 * 1024) }))
    expect(r.status).toBe(413)
  })
})

describe('error bodies (17.8)', () => {
  it('give code, message and detail, and never a stack or a file path', async () => {
    // A job that fails with an error carrying a stack: the account vanished under it.
    panel.accounts.delete(`svc${s2}`)
    await call('POST', `/v1/services/${s2}/actions`, { action: 'unsuspend' })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const stored = (await listJobs(app.store.db, { serviceId: s2 })).at(-1)
    expect(stored?.status).toBe('parked')
    // The store (the operator's view) keeps the stack …
    expect(stored?.lastError?.cause?.stack).toMatch(/\n\s+at /)
    // … the API does not.
    const detail = await call('GET', `/v1/services/${s2}`)
    const job = detail.body.jobs.at(-1)
    expect(job.lastError).toMatchObject({ code: 'NOT_FOUND', retryable: false })
    expect(typeof job.lastError.message).toBe('string')
    expect(typeof job.lastError.detail).toBe('string')
    expect(detail.text).not.toMatch(/"stack"|\n\s+at |\.ts:\d+|\.js:\d+|node:internal/)
    const errors = [
      await call('GET', '/v1/nothing'),
      await call('POST', `/v1/services/${s1}/actions`, { action: 'explode' }),
      await call('GET', '/v1/services', undefined, 'wrong-token-0123456789abc'),
    ]
    for (const e of errors) {
      expect(Object.keys(e.body.error)).toEqual(expect.arrayContaining(['code', 'message', 'detail']))
      expect(e.text).not.toMatch(/\n\s+at |\.ts:\d+/)
    }
  })
})

describe('per-job secrets (17.4)', () => {
  it('a hundred password changes leave the app-wide redactor as it was, and each password stays masked', async () => {
    const size = JSON.stringify(app.redactor)
    for (let i = 0; i < 100; i++) {
      const r = await call('POST', `/v1/services/${s1}/actions`, {
        action: 'changePassword',
        password: `Rotated-${i}-Password!`,
      })
      expect(r.status).toBe(202)
    }
    expect(JSON.stringify(app.redactor)).toBe(size)
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(panel.find(`svc${s1}`)?.password).toBe('Rotated-99-Password!')
    const log = JSON.stringify((await call('GET', `/v1/log?serviceId=${s1}&limit=1000`)).body)
    expect(log).not.toMatch(/Rotated-\d+-Password/)
    expect(JSON.stringify(app.redactor)).toBe(size)
  })
})

describe('jobs queued behind a terminate (17.5)', () => {
  it('are cancelled as moot: no write-back of a deleted account, no usage push parked as "never created"', async () => {
    const s3 = whmcs.order({ clientId: client1, password: 'Initial-s3-pw' })
    await app.engine.sync({ serviceId: s3 })
    // The terminate is queued before the create has run: the create's write-back lands after it.
    await app.engine.request(s3, { desired: 'terminated' }, 'api')
    const writesBefore = whmcs.sim.callCount('UpdateClientProduct')
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    const jobs = await listJobs(app.store.db, { serviceId: s3 })
    expect(jobs.map((j) => `${j.operation}:${j.status}`)).toEqual([
      'create:done',
      'terminate:done',
      'writeBack:cancelled',
    ])
    expect((jobs.at(-1)?.result as { cancelled?: string } | undefined)?.cancelled).toMatch(
      /terminated before this writeBack/,
    )
    expect(whmcs.sim.callCount('UpdateClientProduct')).toBe(writesBefore)
    expect(panel.find(`svc${s3}`)).toBeUndefined()
    // A usage push that reached the queue after the terminate is cancelled, not parked.
    const { enqueue } = await import('../src/engine/jobs.ts')
    await enqueue(app.store.db, {
      key: `usage:${s3}:2026-07`,
      serviceId: s3,
      operation: 'pushUsage',
      payload: { period: '2026-07' },
      source: 'engine',
    })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect((await listJobs(app.store.db, { serviceId: s3 })).at(-1)?.status).toBe('cancelled')
    expect(whmcs.sim.callCount('AddBillableItem')).toBe(0)
  })

  it('a usage period is not scheduled for a service whose terminate is queued', async () => {
    const s4 = whmcs.order({ clientId: client1, password: 'Initial-s4-pw' })
    await app.engine.sync({ serviceId: s4 })
    await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    await app.engine.request(s4, { desired: 'terminated' }, 'api')
    await app.engine.scheduleUsage('2026-08')
    const usage = (await listJobs(app.store.db, { serviceId: s4 })).filter((j) => j.operation === 'pushUsage')
    expect(usage).toEqual([])
  })
})

describe('log lines (18.8 masking rule)', () => {
  it('mask secrets without mangling ordinary words', async () => {
    const { createRedactor } = await import('@panelkit/core')
    const { createLogger } = await import('../src/logger.ts')
    const lines: string[] = []
    const logger = createLogger({
      redactor: createRedactor({ values: ['xpec', 'Long-Secret-Value-1'] }),
      stream: { write: (l: string) => lines.push(l) > 0 },
    })
    logger.error('Unexpected answer', {
      detail: 'login xpec refused; password=xpec; token Long-Secret-Value-1 expected',
      url: 'https://admin:pw@panel.example/x',
    })
    const line = JSON.parse(lines[0] as string) as Record<string, string>
    expect(line.msg).toBe('Unexpected answer')
    expect(line.detail).toBe('login [redacted] refused; password=[redacted]; token [redacted] expected')
    expect(line.url).toBe('https://admin:[redacted]@panel.example/x')
  })
})
