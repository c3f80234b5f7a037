import { createCallRecorder, createRedactor, MemoryLogSink } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProxmoxClient, type ProxmoxClient } from '../../src/client.ts'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import { type ProxmoxSimulator, startProxmoxSimulator } from '../../src/testing/index.ts'

describe('client against the simulator', () => {
  let sim: ProxmoxSimulator
  let client: ProxmoxClient
  const sink = new MemoryLogSink(10_000)
  beforeAll(async () => {
    sim = await startProxmoxSimulator({ taskDurations: { default: 2 } })
    const redactor = createRedactor()
    client = createProxmoxClient({
      baseUrl: sim.url,
      credentials: { type: 'password', username: 'root@pam', password: 'sim-root-password' },
      tls: { fingerprint: sim.fingerprint },
      recorder: createCallRecorder({ connector: 'test', sink, redactor }),
      tasks: { pollMs: 2 },
      lockRetry: { initialDelayMs: 2, maxDelayMs: 10 },
    })
  })
  afterAll(async () => {
    await client.close()
    await sim.close()
  })

  it('a client trusting sim.ca reaches the simulator; the deprecated names give the same certificate', async () => {
    expect(sim.certificate).toBe(sim.ca)
    expect(sim.fingerprint256).toBe(sim.fingerprint)
    const viaCa = createProxmoxClient({
      baseUrl: sim.url,
      credentials: { type: 'password', username: 'root@pam', password: 'sim-root-password' },
      tls: { ca: sim.ca },
    })
    try {
      expect((await viaCa.api.version({})).version).toBe('9.1.5')
    } finally {
      await viaCa.close()
    }
  })

  it('logs in, reads the version and clones a template', async () => {
    const version = await client.api.version({})
    expect(version.version).toBe('9.1.5')
    const id = await client.nextId()
    expect(id).toBe(100)
    const result = await client.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: id,
      name: 'web-1',
      full: true,
      storage: 'local-lvm',
    })
    expect(result?.exitstatus).toBe('OK')
    const config = await client.api.vmConfig({ node: 'pve1', vmid: id })
    expect(config.name).toBe('web-1')
    expect(String(config.scsi0)).toContain(`vm-${id}-disk-0`)
  })
})
