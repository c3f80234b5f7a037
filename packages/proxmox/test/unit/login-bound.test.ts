import type { AddressInfo } from 'node:net'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import { generateTestCertificate } from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProxmoxClient } from '../../src/client.ts'

/**
 * A Proxmox behind something that accepts TLS and never answers (issue 17.7): the login a call needs
 * is tried a bounded number of times, not once per retry of the call (3 × 3 logins of 60 s each).
 */

let server: Server
let port = 0
let ca = ''
let logins = 0
const sockets = new Set<TLSSocket>()

beforeAll(async () => {
  const cert = await generateTestCertificate()
  ca = cert.cert
  server = createServer({ key: cert.key, cert: cert.cert }, (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    socket.on('data', (chunk: Buffer) => {
      logins += chunk.toString('latin1').split('POST /api2/json/access/ticket').length - 1
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  await new Promise((resolve) => server.close(resolve))
})

describe('a server that accepts and never answers', () => {
  it('gets a bounded number of logins and a TIMEOUT', async () => {
    const client = createProxmoxClient({
      baseUrl: `https://127.0.0.1:${port}`,
      credentials: { type: 'password', username: 'root@pam', password: 'Login-Pw-1' },
      tls: { ca },
      headersTimeoutMs: 200,
      networkRetry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 10 },
    })
    try {
      const error = await client.api.version({}).then(
        () => undefined,
        (e: unknown) => e as { kind?: string },
      )
      expect(error?.kind).toBe('TIMEOUT')
      // The login's own three attempts, and not three more for each of the call's retries.
      expect(logins).toBe(3)
    } finally {
      await client.close()
    }
  })
})
