import { X509Certificate } from 'node:crypto'
import { hasErrorCode, type PanelkitError } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createReverseSync,
  createWhmcsClient,
  MemoryProvisionedView,
  type WhmcsClientOptions,
} from '../../src/index.ts'
import { createWhmcsSimulator, type WhmcsSimulator } from '../../src/testing/index.ts'

/** The shared HTTP layer as WHMCS uses it, over real HTTPS against the simulator. */

let sim: WhmcsSimulator
beforeAll(async () => {
  sim = await createWhmcsSimulator()
})
afterAll(async () => {
  await sim.close()
})

function client(extra: Partial<WhmcsClientOptions> = {}) {
  return createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    tls: { ca: sim.ca },
    retry: { initialDelayMs: 1, maxDelayMs: 5 },
    ...extra,
  })
}

describe('a maintenance page (HTML at HTTP 200)', () => {
  it('is retried like a 503, and the read succeeds', async () => {
    const c = client()
    sim.injectFault({ kind: 'maintenance', action: 'GetClients' })
    const before = sim.callCount('GetClients')
    await expect(c.getClients()).resolves.toMatchObject({ totalresults: expect.any(Number) })
    expect(sim.callCount('GetClients')).toBe(before + 2)
    await c.close()
  })

  it('is a retryable HTTP error when it outlasts the retries, not a PROTOCOL error', async () => {
    const c = client({ retry: false })
    sim.injectFault({ kind: 'maintenance', action: 'GetClients' })
    const error = (await c.getClients().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(error, 'HTTP')).toBe(true)
    expect(error.retryable).toBe(true)
    expect(error.message).toMatch(/maintenance page/)
    // Any other HTML page still means a wrong URL: permanent.
    sim.injectFault({ kind: 'html', action: 'GetClients' })
    const wrongUrl = (await c.getClients().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(wrongUrl, 'PROTOCOL')).toBe(true)
    expect(wrongUrl.retryable).toBe(false)
    await c.close()
  })

  it('does not make a reverse-sync pass skip the product', async () => {
    const product = sim.createProduct({
      name: 'Maintained',
      customFields: [{ name: 'Password', type: 'password' }],
    })
    const owner = sim.createClient({ email: 'maintenance@example.test' })
    const service = sim.createService({ clientId: owner.id, pid: product.id, status: 'Active' })
    // The customer's chosen password (a create without it is a sync error of its own).
    sim.service(service.id).customFields[product.customFields[0]?.id ?? 0] = 'Chosen-Pw-2026'
    const sync = createReverseSync({
      client: client(),
      view: new MemoryProvisionedView(),
      mappings: [{ productId: product.id, connector: 'memory-panel', passwordField: 'Password' }],
    })
    sim.injectFault({ kind: 'maintenance', action: 'GetClientsProducts' })
    const report = await sync.clientPass({ clientId: owner.id })
    expect(sim.faults).toHaveLength(0) // the page was served
    expect(report.errors).toEqual([])
    expect(report.intents.map((i) => String(i.serviceId))).toContain(String(service.id))
  })
})

describe('TLS', () => {
  it('an untrusted certificate is a CONNECTION error with a diagnosis, not INTERNAL', async () => {
    const c = client({ tls: {} })
    const error = (await c.getClients().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(error, 'CONNECTION')).toBe(true)
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/TLS verification failed .*tls\.ca/)
    expect(error.message).not.toContain(sim.credential.secret)
    await c.close()
  })

  it('the deprecated top-level ca still trusts the simulator', async () => {
    const c = client({ tls: {}, ca: sim.ca })
    await expect(c.getClients()).resolves.toBeDefined()
    await c.close()
  })

  it('pins the certificate fingerprint and refuses any other', async () => {
    expect(sim.fingerprint).toBe(new X509Certificate(sim.ca).fingerprint256)
    expect(sim.fingerprint256).toBe(sim.fingerprint) // the deprecated name
    const pinned = client({ tls: { fingerprint: sim.fingerprint } })
    await expect(pinned.getClients()).resolves.toBeDefined()
    await pinned.close()
    const wrong = client({ tls: { fingerprint: `${'CD:'.repeat(31)}CD` } })
    const error = (await wrong.getClients().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(error, 'CONNECTION')).toBe(true)
    expect(error.message).toMatch(/fingerprint mismatch/)
    await wrong.close()
  })

  it('insecure works and warns once', async () => {
    const warnings: string[] = []
    const c = client({ tls: { insecure: true }, warn: (m) => warnings.push(m) })
    await c.getClients()
    await c.getClients()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/verification is disabled/)
    await c.close()
  })

  it('a plain-HTTP URL warns once that the secret travels in clear', async () => {
    const warnings: string[] = []
    const c = createWhmcsClient({
      url: 'http://billing.example.test/',
      identifier: 'id',
      secret: 'the-api-secret',
      warn: (m) => warnings.push(m),
    })
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/plain HTTP.*clear text/)
    expect(warnings[0]).not.toContain('the-api-secret')
    await c.close()
  })
})
