import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createHttpTransport, retryAfterMs, retryRequest, shouldRetryRequest } from '../../src/http/index.ts'
import {
  ConnectionError,
  HttpError,
  hasErrorCode,
  type PanelkitError,
  RateLimitedError,
} from '../../src/index.ts'
import { generateTestCertificate, type TestCertificate } from '../../src/testing/index.ts'

/** The shared HTTP layer over real HTTPS on 127.0.0.1:0. */

let cert: TestCertificate
let server: Server
let origin: string

beforeAll(async () => {
  cert = await generateTestCertificate()
  server = createServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('x'.repeat(10_000))
    } else if (req.url === '/slow') {
      setTimeout(() => res.end('late'), 500)
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-twice': ['a', 'b'] })
      res.end(`${req.method} ${req.url}`)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const failure = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as PanelkitError,
  )

describe('createHttpTransport', () => {
  it('reads a response, joining repeated headers', async () => {
    const t = createHttpTransport({ origin, system: 'Test', tls: { ca: cert.cert } })
    const r = await t.request({ method: 'GET', path: '/hello?x=1' })
    expect(r).toMatchObject({ status: 200, text: 'GET /hello?x=1' })
    expect(r.headers['x-twice']).toBe('a, b')
    await t.close()
  })

  it('refuses a body over maxResponseBytes with a PROTOCOL error and stays usable', async () => {
    const t = createHttpTransport({ origin, system: 'Test', tls: { ca: cert.cert }, maxResponseBytes: 1000 })
    const e = await failure(t.request({ method: 'GET', path: '/big' }))
    expect(hasErrorCode(e, 'PROTOCOL')).toBe(true)
    expect(e?.message).toMatch(/maxResponseBytes/)
    await expect(t.request({ method: 'GET', path: '/' })).resolves.toMatchObject({ status: 200 })
    await t.close()
  })

  it('times out a slow answer (TIMEOUT) and aborts on the caller signal (ABORTED)', async () => {
    const t = createHttpTransport({ origin, system: 'Test', tls: { ca: cert.cert }, timeoutMs: 100 })
    const slow = await failure(t.request({ method: 'GET', path: '/slow' }))
    expect(hasErrorCode(slow, 'TIMEOUT')).toBe(true)
    expect(slow?.message).toBe('Test GET /slow: no answer within 100 ms')
    const controller = new AbortController()
    const p = failure(t.request({ method: 'GET', path: '/slow', signal: controller.signal, timeoutMs: 5000 }))
    setTimeout(() => controller.abort(), 20)
    expect(hasErrorCode(await p, 'ABORTED')).toBe(true)
    await t.close()
  })

  it('an untrusted certificate is a non-retryable CONNECTION error that says what to do', async () => {
    const t = createHttpTransport({ origin, system: 'Test' })
    const e = await failure(t.request({ method: 'GET', path: '/' }))
    expect(hasErrorCode(e, 'CONNECTION')).toBe(true)
    expect(e?.retryable).toBe(false)
    expect(e?.message).toMatch(/TLS verification failed \(.+\): pass the server's CA certificate \(tls\.ca\)/)
    await t.close()
  })

  it('pins a fingerprint (any spelling) and refuses another certificate', async () => {
    const spelled = cert.fingerprint256.toLowerCase().replaceAll(':', '')
    const pinned = createHttpTransport({ origin, system: 'Test', tls: { fingerprint: spelled } })
    await expect(pinned.request({ method: 'GET', path: '/' })).resolves.toMatchObject({ status: 200 })
    await pinned.close()
    const wrong = createHttpTransport({
      origin,
      system: 'Test',
      tls: { fingerprint: `${'00:'.repeat(31)}00` },
    })
    const e = await failure(wrong.request({ method: 'GET', path: '/' }))
    expect(e?.message).toMatch(/fingerprint mismatch/)
    expect(e?.retryable).toBe(false)
    await wrong.close()
  })

  it('insecure warns once per client; plain HTTP warns unless the host is loopback', async () => {
    const warnings: string[] = []
    const t = createHttpTransport({
      origin,
      system: 'Test',
      tls: { insecure: true },
      warn: (m) => warnings.push(m),
    })
    await t.request({ method: 'GET', path: '/' })
    await t.request({ method: 'GET', path: '/' })
    expect(warnings).toEqual([
      expect.stringMatching(/^Test client: TLS certificate verification is disabled/),
    ])
    await t.close()
    warnings.length = 0
    await createHttpTransport({
      origin: 'http://127.0.0.1:1',
      system: 'Test',
      warn: (m) => warnings.push(m),
    }).close()
    expect(warnings).toEqual([])
    await createHttpTransport({
      origin: 'http://panel.example.test',
      system: 'Test',
      warn: (m) => warnings.push(m),
    }).close()
    expect(warnings).toEqual([expect.stringMatching(/plain HTTP, so credentials travel in clear text/)])
  })

  it('a refused connection is retryable and marked as never sent', async () => {
    const t = createHttpTransport({ origin: 'https://127.0.0.1:1', system: 'Test' })
    const e = await failure(t.request({ method: 'POST', path: '/', body: 'x' }))
    expect(hasErrorCode(e, 'CONNECTION')).toBe(true)
    expect(e?.retryable).toBe(true)
    expect(e?.details).toMatchObject({ notSent: true })
    await t.close()
  })
})

describe('retries', () => {
  const reset = new ConnectionError('reset', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })
  const refused = new ConnectionError('refused', { details: { notSent: true } })
  const bad = new HttpError('502', { status: 502 })

  it('repeats only what is safe to repeat', () => {
    expect(shouldRetryRequest(reset, { idempotent: true })).toBe(true)
    expect(shouldRetryRequest(reset, { idempotent: false })).toBe(false)
    expect(shouldRetryRequest(bad, { idempotent: false })).toBe(false)
    expect(shouldRetryRequest(refused, { idempotent: false })).toBe(true)
    expect(shouldRetryRequest(new HttpError('404', { status: 404 }), { idempotent: true })).toBe(false)
    const soon = new RateLimitedError('429', { retryAfterMs: 1000 })
    const late = new RateLimitedError('429', { retryAfterMs: 120_000 })
    expect(shouldRetryRequest(soon, { idempotent: false })).toBe(true)
    expect(shouldRetryRequest(late, { idempotent: true, maxRetryAfterMs: 60_000 })).toBe(false)
  })

  it('retryRequest sends a non-idempotent request once after a 5xx, an idempotent one until it works', async () => {
    let n = 0
    const flaky = async () => {
      n++
      if (n < 3) throw bad
      return 'ok'
    }
    const policy = { initialDelayMs: 1, maxDelayMs: 2 }
    expect(await failure(retryRequest(flaky, { policy, idempotent: false }))).toBe(bad)
    expect(n).toBe(1)
    n = 0
    await expect(retryRequest(flaky, { policy, idempotent: true })).resolves.toBe('ok')
    expect(n).toBe(3)
  })

  it('reads Retry-After as seconds or a date, and RateLimit-Reset', () => {
    const now = Date.parse('2026-01-01T00:00:00Z')
    expect(retryAfterMs({ 'retry-after': '2' }, now)).toBe(2000)
    expect(retryAfterMs({ 'retry-after': 'Thu, 01 Jan 2026 00:00:05 GMT' }, now)).toBe(5000)
    expect(retryAfterMs({ 'ratelimit-reset': '3' }, now)).toBe(3000)
    expect(retryAfterMs({}, now)).toBeUndefined()
  })
})
