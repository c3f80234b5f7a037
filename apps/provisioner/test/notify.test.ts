import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  generateTestCertificate,
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { startNotifier } from '../src/notify.ts'
import { runCli } from './cli-runner.ts'
import { dropSchema, PG_URL, TEST_KEY, uniqueSchema } from './helpers.ts'
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

describe('notifications from two engines on one store', () => {
  it('delivers each parked job once, and an event raised by both once', { timeout: 60_000 }, async () => {
    const schema = uniqueSchema()
    const panelHost = `notify-shared-${process.pid}`
    const panel = registerMemoryPanel(panelHost, new MemoryPanel({ apiPassword: 'Shared-Panel-Pw-1' }))
    const world = await startWhmcs()
    const { hooks, hookServer } = await startHookServer()
    const raw = {
      whmcs: world.config,
      servers: [{ id: 's1', connector: 'memory-panel', hostname: panelHost, password: 'Shared-Panel-Pw-1' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [{ whmcsProductId: world.pid, connector: 'memory-panel', serverGroup: 'g1' }],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { url: PG_URL, schema, encryptionKey: '${KEY}' },
      http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
      worker: { backoffMs: 5, maxBackoffMs: 10, maxAttempts: 1 },
      console: { notify: { webhook: `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/` } },
    }
    const apps: App[] = []
    try {
      for (let i = 0; i < 2; i++) {
        const { config, secrets } = parseConfig(raw, { KEY: TEST_KEY, ...world.env })
        apps.push(
          await createApp({
            config,
            secrets,
            logStream: null,
            connectors: [{ definition: memoryPanelConnector }],
          }),
        )
      }
      const [a, b] = apps as [App, App]
      const notifiers = apps.map((app) => startNotifier(app) as NonNullable<ReturnType<typeof startNotifier>>)
      for (let i = 0; i < 6; i++) world.order({ password: `Shared-Service-pw-${i}` })
      await a.engine.sync()
      // Every create fails once: each job parks, on whichever engine ran it.
      panel.failNext = 6
      await Promise.all([
        a.engine.runWorker({ untilIdle: true, pollMs: 5, concurrency: 2 }),
        b.engine.runWorker({ untilIdle: true, pollMs: 5, concurrency: 2 }),
      ])
      await Promise.all(notifiers.map((n) => n.idle()))
      const parked = await a.store.db.selectFrom('jobs').select('id').where('status', '=', 'parked').execute()
      expect(parked.length).toBe(6)
      const delivered = hooks.filter((h) => h.event === 'job-parked').map((h) => h.jobId)
      expect(delivered.sort()).toEqual(parked.map((p) => p.id).sort())

      // The same event raised in both processes at once is sent by one of them.
      const raised = await Promise.all(
        notifiers.map((n) =>
          n.notify('sync-failed:shared', { event: 'sync-failed', reason: 'x' }, '/console'),
        ),
      )
      expect(raised.filter(Boolean)).toHaveLength(1)
      await Promise.all(notifiers.map((n) => n.idle()))
      expect(hooks.filter((h) => h.event === 'sync-failed')).toHaveLength(1)
    } finally {
      for (const app of apps) await app.close()
      await world.close()
      await new Promise((r) => hookServer.close(r))
      unregisterMemoryPanel(panelHost)
      await dropSchema(schema)
    }
  })
})

describe('notifications by e-mail (SMTP)', () => {
  it('sends the message over STARTTLS with AUTH to a real SMTP server, never logging the credentials', {
    timeout: 60_000,
  }, async () => {
    const cert = await generateTestCertificate()
    const SMTP_USER = 'provisioner'
    const SMTP_PASS = 'Smtp-Pass-Secret-9'
    const messages: { from: string; to: string[]; data: string; secure: boolean }[] = []
    const smtp = new SMTPServer({
      key: cert.key,
      cert: cert.cert,
      authMethods: ['PLAIN', 'LOGIN'],
      disabledCommands: [],
      logger: false,
      onAuth(auth, _session, callback) {
        if (auth.username === SMTP_USER && auth.password === SMTP_PASS)
          callback(null, { user: auth.username })
        else callback(new Error('Authentication failed'))
      },
      onData(stream, session, callback) {
        const chunks: Buffer[] = []
        stream.on('data', (c: Buffer) => chunks.push(c))
        stream.on('end', () => {
          messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks).toString('utf8'),
            secure: session.secure,
          })
          callback()
        })
      },
    })
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r))
    const port = (smtp.server.address() as AddressInfo).port
    const logs: string[] = []
    const open = async (pass: string) => {
      const { config, secrets } = parseConfig(
        {
          // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
          store: { encryptionKey: '${KEY}' },
          http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
          console: {
            publicUrl: 'https://provisioner.example.net',
            notify: {
              timeoutMs: 5000,
              email: {
                host: '127.0.0.1',
                port,
                starttls: 'required',
                ca: cert.cert,
                from: 'provisioner@example.net',
                to: ['ops@example.net', 'oncall@example.net'],
                // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
                auth: { user: SMTP_USER, pass: '${SMTP_PASS}' },
              },
            },
          },
        },
        { KEY: TEST_KEY, SMTP_PASS: pass },
      )
      return createApp({
        config,
        secrets,
        logStream: {
          write: (line: string) => {
            logs.push(line)
            return true
          },
        },
        store: { file: ':memory:' },
        builtins: false,
      })
    }
    const good = await open(SMTP_PASS)
    const bad = await open('Wrong-Smtp-Pass-1')
    try {
      const n = startNotifier(good)
      if (!n) throw new Error('the notifier was not installed')
      expect(
        await n.notify(
          'job-parked:42:1:1',
          {
            event: 'job-parked',
            reason: 'TIMEOUT: the panel did not answer',
            jobId: 42,
            serviceId: '7',
            operation: 'create',
          },
          '/console/services/7',
        ),
      ).toBe(true)
      await n.idle()
      expect(messages).toHaveLength(1)
      const m = messages[0] as (typeof messages)[number]
      expect(m.secure).toBe(true) // upgraded with STARTTLS before AUTH and the message
      expect(m.from).toBe('provisioner@example.net')
      expect(m.to).toEqual(['ops@example.net', 'oncall@example.net'])
      expect(m.data).toMatch(/^Subject: \[provisioner\] job parked \(service 7, create\)$/m)
      expect(m.data).toContain('Reason: TIMEOUT: the panel did not answer')
      expect(m.data).toContain('Console: https://provisioner.example.net/console/services/7')

      // A refused login is logged with the server's reply, and without the password.
      const refused = startNotifier(bad)
      if (!refused) throw new Error('the notifier was not installed')
      await refused.notify('job-parked:43:1:1', { event: 'job-parked', reason: 'x' }, '/console/parked')
      await refused.idle()
      expect(messages).toHaveLength(1)
      const failure = logs.find((l) => l.includes('notification not delivered'))
      expect(failure).toMatch(/"channel":"email"/)
      expect(failure).toMatch(/Invalid login|535|Authentication/i)
      const all = logs.join('\n')
      for (const secret of [
        SMTP_PASS,
        'Wrong-Smtp-Pass-1',
        Buffer.from(`\u0000${SMTP_USER}\u0000Wrong-Smtp-Pass-1`).toString('base64'),
      ])
        expect(all).not.toContain(secret)
    } finally {
      await good.close()
      await bad.close()
      await new Promise<void>((r) => smtp.close(() => r()))
    }
  })

  it('config lint knows the e-mail keys: a misspelt one, a literal password, the wrong TLS for the port', () => {
    const base = (email: Record<string, unknown>) => ({
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      console: {
        notify: { email: { host: 'mail.example.net', from: 'p@example.net', to: 'o@example.net', ...email } },
      },
    })
    const issues = (email: Record<string, unknown>) => {
      try {
        parseConfig(base(email), { KEY: TEST_KEY, P: 'x' })
        return ''
      } catch (error) {
        return (error as Error).message
      }
    }
    expect(issues({})).toBe('')
    expect(issues({ startls: 'required' })).toMatch(/console\.notify\.email\.startls.*did you mean starttls/)
    expect(issues({ auth: { user: 'u', pass: 'literal-password' } })).toMatch(
      /console\.notify\.email\.auth\.pass.*environment reference/,
    )
    expect(issues({ port: 587, secure: true })).toMatch(/console\.notify\.email\.secure.*STARTTLS/)
    expect(issues({ port: 465 })).toMatch(/console\.notify\.email\.port.*secure: true/)
    expect(issues({ to: 'not-an-address' })).toMatch(/console\.notify\.email\.to/)
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
    expect(issues({ starttls: 'never', auth: { user: 'u', pass: '${P}' } })).toMatch(/plain text/)
  })
})

describe('notifications from `provisioner worker`', () => {
  it('a bare worker process (the CLI command) sends the webhook for the job it parked', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-notify-worker-'))
    const panelHost = `notify-worker-${process.pid}`
    const panel = registerMemoryPanel(panelHost, new MemoryPanel({ apiPassword: 'Worker-Panel-Pw-1' }))
    const world = await startWhmcs()
    const { hooks, hookServer } = await startHookServer()
    const file = join(dir, 'provisioner.json')
    writeFileSync(
      file,
      JSON.stringify({
        whmcs: world.config,
        servers: [
          { id: 's1', connector: 'memory-panel', hostname: panelHost, password: 'Worker-Panel-Pw-1' },
        ],
        serverGroups: [{ id: 'g1', servers: ['s1'] }],
        products: [{ whmcsProductId: world.pid, connector: 'memory-panel', serverGroup: 'g1' }],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        store: { dataDir: join(dir, 'data'), encryptionKey: '${NOTIFY_WORKER_KEY}' },
        worker: { backoffMs: 5, maxBackoffMs: 10, maxAttempts: 1 },
        console: { notify: { webhook: `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/` } },
      }),
    )
    const saved = { ...process.env }
    Object.assign(process.env, { NOTIFY_WORKER_KEY: TEST_KEY, ...world.env })
    const cli = (...argv: string[]) => runCli(file, ...argv)
    try {
      world.order({ password: 'Worker-Service-pw-1' })
      expect((await cli('sync')).code).toBe(0)
      panel.failNext = 1
      const run = await cli('worker', '--once')
      expect(run.code, run.text).toBe(0)
      // Sent before the command returned (the app's close waits for deliveries under way).
      expect(hooks.map((h) => h.event)).toEqual(['job-parked'])
      // Another worker run over the same store does not send it again.
      expect((await cli('worker', '--once')).code).toBe(0)
      expect(hooks).toHaveLength(1)
    } finally {
      for (const k of ['NOTIFY_WORKER_KEY', ...Object.keys(world.env)]) {
        if (saved[k] === undefined) delete process.env[k]
        else process.env[k] = saved[k]
      }
      await world.close()
      await new Promise((r) => hookServer.close(r))
      unregisterMemoryPanel(panelHost)
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/** A webhook receiver on a loopback port that keeps every JSON body it is sent. */
async function startHookServer(): Promise<{
  hooks: { event: string; jobId?: number }[]
  hookServer: Server
}> {
  const hooks: { event: string; jobId?: number }[] = []
  const hookServer = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      hooks.push(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      res.writeHead(204)
      res.end()
    })
  })
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r))
  return { hooks, hookServer }
}
