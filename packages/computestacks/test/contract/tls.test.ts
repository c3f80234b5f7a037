import { X509Certificate } from 'node:crypto'
import { createCallRecorder, hasErrorCode, type PanelkitError, ServerSchema } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clientForServer } from '../../src/connector/account.ts'
import { createComputeStacksClient } from '../../src/index.ts'
import { type ComputeStacksSimulator, startComputeStacksSimulator } from '../../src/testing/index.ts'
import { clientFor } from './helpers.ts'

/** The TLS options every panelkit REST client shares, over real HTTPS against the simulator. */

let sim: ComputeStacksSimulator
beforeAll(async () => {
  sim = await startComputeStacksSimulator({})
})
afterAll(async () => {
  await sim.close()
})

const auth = () => ({ type: 'basic' as const, apiKey: sim.apiKey, apiSecret: sim.apiSecret })

describe('TLS options', () => {
  it('an untrusted certificate is a CONNECTION error with a diagnosis, not retried', async () => {
    const client = createComputeStacksClient({ host: sim.host, auth: auth(), retry: { maxAttempts: 3 } })
    const error = (await client.version().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(error, 'CONNECTION')).toBe(true)
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/TLS verification failed .*tls\.ca.*tls\.fingerprint/)
    await client.close()
  })

  it('tls.ca, and the deprecated top-level ca, trust the simulator', async () => {
    const viaTls = createComputeStacksClient({ host: sim.host, auth: auth(), tls: { ca: sim.ca } })
    await expect(viaTls.version()).resolves.toBeDefined()
    await viaTls.close()
    const { client } = clientFor(sim)
    await expect(client.version()).resolves.toBeDefined()
    await client.close()
  })

  it('pins the certificate fingerprint and refuses any other', async () => {
    const fingerprint = sim.fingerprint
    expect(fingerprint).toBe(new X509Certificate(sim.ca).fingerprint256)
    expect(sim.cert).toBe(sim.ca) // the deprecated name
    const pinned = createComputeStacksClient({ host: sim.host, auth: auth(), tls: { fingerprint } })
    await expect(pinned.version()).resolves.toBeDefined()
    await pinned.close()
    const wrong = createComputeStacksClient({
      host: sim.host,
      auth: auth(),
      tls: { fingerprint: `${'AB:'.repeat(31)}AB` },
    })
    const error = (await wrong.version().catch((e: unknown) => e)) as PanelkitError
    expect(hasErrorCode(error, 'CONNECTION')).toBe(true)
    expect(error.message).toMatch(/fingerprint mismatch/)
    await wrong.close()
  })

  it('insecure works and warns once', async () => {
    const warnings: string[] = []
    const client = createComputeStacksClient({
      host: sim.host,
      auth: auth(),
      tls: { insecure: true },
      warn: (m) => warnings.push(m),
    })
    await client.version()
    await client.version()
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/verification is disabled/)
    await client.close()
  })
})

describe('secure: false', () => {
  it('is honoured: plain HTTP, with a one-time warning that the credentials travel in clear', async () => {
    const warnings: string[] = []
    const client = createComputeStacksClient({
      host: 'portal.example.test',
      secure: false,
      auth: { type: 'basic', apiKey: 'key', apiSecret: 'api-secret-value' },
      warn: (m) => warnings.push(m),
    })
    expect(client.origin).toBe('http://portal.example.test')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatch(/plain HTTP.*clear text/)
    expect(warnings[0]).not.toContain('api-secret-value')
    await client.close()
  })

  it('contradicting an https:// host is refused', () => {
    expect(() =>
      createComputeStacksClient({ host: 'https://portal.example.test', secure: false, auth: auth() }),
    ).toThrow(/secure is false/)
  })

  it('the connector passes the server record’s secure: false to the client', async () => {
    const server = ServerSchema.parse({
      hostname: 'portal.example.test',
      port: 8080,
      secure: false,
      username: 'key',
      password: 'api-secret-value',
    })
    const client = clientForServer(server, createCallRecorder({ connector: 'test' }))
    expect(client.origin).toBe('http://portal.example.test:8080')
    await client.close()
  })
})
