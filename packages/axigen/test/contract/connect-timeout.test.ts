import { type ChildProcess, spawn } from 'node:child_process'
import net from 'node:net'
import { createConnector, hasErrorCode, isPanelkitError } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { axigenDomainConnector, socketTransportFactory } from '../../src/index.ts'

/**
 * A real TCP connect timeout on loopback: a listener in another process whose event loop is blocked
 * never accepts, so once its accept queue (backlog 1) is full the kernel drops further SYNs and
 * connect() hangs exactly as behind a firewall that drops packets.
 */
let child: ChildProcess
let port = 0
const held: net.Socket[] = []

function connectWithin(ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1')
    held.push(s)
    const timer = setTimeout(() => resolve(false), ms)
    s.once('connect', () => {
      clearTimeout(timer)
      resolve(true)
    })
    s.once('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
  })
}

beforeAll(async () => {
  const code = `const s = require('node:net').createServer();
s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
  process.stdout.write(s.address().port + '\\n', () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0))
})`
  child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  port = Number(await new Promise<string>((r) => child.stdout?.once('data', (d) => r(String(d).trim()))))
  // Fill the accept queue until a connect stalls.
  for (let i = 0; i < 16 && (await connectWithin(150)); i++);
})

afterAll(() => {
  for (const s of held) s.destroy()
  child.kill('SIGKILL')
})

describe('TCP connect timeout', () => {
  it('the transport gives up after connectTimeoutMs with a firewall hint', async () => {
    const connect = socketTransportFactory({ host: '127.0.0.1', port, secure: false, connectTimeoutMs: 250 })
    const started = performance.now()
    const error = await connect().then(
      () => undefined,
      (e: unknown) => e,
    )
    const elapsed = performance.now() - started
    expect(hasErrorCode(error, 'TIMEOUT')).toBe(true)
    expect(isPanelkitError(error) && error.retryable).toBe(true)
    expect(isPanelkitError(error) && error.details?.diagnosis).toBe('timeout')
    expect((error as Error).message).toMatch(/within 250 ms: a firewall is probably dropping/)
    expect(elapsed).toBeGreaterThanOrEqual(240)
    expect(elapsed).toBeLessThan(2_000)
  })

  it('an abort ends the wait before the timeout', async () => {
    const connect = socketTransportFactory({
      host: '127.0.0.1',
      port,
      secure: false,
      connectTimeoutMs: 5_000,
    })
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 50)
    const started = performance.now()
    const error = await connect(controller.signal).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(hasErrorCode(error, 'ABORTED')).toBe(true)
    expect(performance.now() - started).toBeLessThan(1_000)
  })

  it('testConnection reports the timeout an operator can act on', async () => {
    const domains = createConnector(axigenDomainConnector)
    try {
      const r = await domains.invoke('testConnection', {
        server: {
          hostname: '127.0.0.1',
          port,
          secure: false,
          username: 'admin',
          password: 'x',
          options: { connectTimeoutMs: 250 },
        },
      })
      expect(r.ok).toBe(false)
      if (!r.ok) {
        expect(r.error.code).toBe('TIMEOUT')
        expect(r.error.retryable).toBe(true)
        expect(r.error.detail).toMatch(/firewall is probably dropping the packets/)
      }
    } finally {
      await domains.close()
    }
  })
})

describe('TLS handshake that never finishes', () => {
  it('is a connect timeout that names the stalled handshake', async () => {
    // Accepts TCP and never says a word: the TLS client waits for a ServerHello that never comes.
    const accepted: net.Socket[] = []
    const mute = net.createServer((s) => accepted.push(s))
    const mutePort = await new Promise<number>((r) =>
      mute.listen(0, '127.0.0.1', () => r((mute.address() as net.AddressInfo).port)),
    )
    try {
      const connect = socketTransportFactory({
        host: '127.0.0.1',
        port: mutePort,
        secure: true,
        connectTimeoutMs: 250,
      })
      const error = await connect().then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(hasErrorCode(error, 'TIMEOUT')).toBe(true)
      expect(isPanelkitError(error) && error.details?.diagnosis).toBe('tls-handshake-timeout')
      expect((error as Error).message).toMatch(/did not complete the TLS handshake within 250 ms/)
    } finally {
      for (const s of accepted) s.destroy()
      await new Promise((r) => mute.close(r))
    }
  })
})
