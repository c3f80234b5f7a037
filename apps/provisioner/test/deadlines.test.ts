import type { AddressInfo } from 'node:net'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { type ConnectorInstance, createConnector, defineConnector } from '@panelkit/core'
import { generateTestCertificate } from '@panelkit/core/testing'
import { createProxmoxKvmConnector } from '@panelkit/proxmox'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApp } from '../src/app.ts'
import { testServerConnection } from '../src/check-connections.ts'
import { parseConfig, ServerConfigSchema } from '../src/config.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { TEST_KEY } from './helpers.ts'
import { startWhmcs } from './whmcs.ts'

/** Nothing waits forever (issue 17.7): `check` and every job operation have a deadline. */

let server: Server
let port = 0
let ca = ''
const sockets = new Set<TLSSocket>()

beforeAll(async () => {
  const cert = await generateTestCertificate()
  ca = cert.cert
  // Accepts TLS, reads what it is sent, never answers.
  server = createServer({ key: cert.key, cert: cert.cert }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    socket.resume()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  await new Promise((resolve) => server.close(resolve))
})

describe('deadlines', () => {
  it('`check` gives up on a Proxmox that accepts TLS and never answers within its own deadline', async () => {
    const connector = createConnector(createProxmoxKvmConnector()) as unknown as ConnectorInstance
    const config = ServerConfigSchema.parse({
      id: 'pve-silent',
      connector: 'proxmox-kvm',
      hostname: '127.0.0.1',
      port,
      username: 'root@pam',
      password: 'Silent-Pw-1',
      options: { ca },
    })
    const started = performance.now()
    const result = await testServerConnection(connector, config, 800)
    const took = performance.now() - started
    // Closing does not wait for the login nobody waits for any more.
    await connector.close()
    expect(performance.now() - started).toBeLessThan(15_000)
    expect(result.ok).toBe(false)
    expect(result.ok ? undefined : result.error.code).toBe('TIMEOUT')
    expect(took).toBeLessThan(10_000)
  })

  it('a job whose operation never finishes times out, releases its lease and is parked with TIMEOUT', async () => {
    const whmcs = await startWhmcs()
    const silent = defineConnector({
      id: 'silent-panel',
      metadata: { displayName: 'Never answers', system: 'silent-panel' },
      settings: {},
      operations: {
        // A connector that ignores its signal: the engine's deadline still ends the job.
        create: () => new Promise<never>(() => undefined),
      },
    })
    const { config, secrets } = parseConfig(
      {
        whmcs: whmcs.config,
        servers: [{ id: 's1', connector: 'silent-panel', hostname: 'silent.example' }],
        serverGroups: [{ id: 'g1', servers: ['s1'] }],
        products: [{ whmcsProductId: whmcs.pid, connector: 'silent-panel', serverGroup: 'g1' }],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        store: { encryptionKey: '${KEY}' },
        worker: { maxAttempts: 1, operationTimeoutSeconds: 1, leaseSeconds: 60 },
      },
      { KEY: TEST_KEY, ...whmcs.env },
    )
    const app = await createApp({
      config,
      secrets,
      logStream: null,
      store: { file: ':memory:' },
      builtins: false,
      connectors: [{ definition: silent }],
    })
    try {
      whmcs.order({ password: 'Silent-Service-Pw' })
      await app.engine.sync()
      const started = performance.now()
      await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      expect(performance.now() - started).toBeLessThan(20_000)
      const [job] = await listJobs(app.store.db)
      expect(job).toMatchObject({ operation: 'create', status: 'parked', leaseOwner: null })
      expect(job?.lastError).toMatchObject({ code: 'TIMEOUT', retryable: true })
    } finally {
      await app.close()
      await whmcs.close()
    }
  })
})
