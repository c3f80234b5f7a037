import { createCallRecorder, MemoryLogSink } from '@panelkit/core'
import { Agent, request } from 'undici'
import { type ComputeStacksClientOptions, createComputeStacksClient } from '../../src/index.ts'
import type { ComputeStacksSimulator } from '../../src/testing/index.ts'

/** A client for a simulator, trusting its certificate, with fast retries. */
export function clientFor(sim: ComputeStacksSimulator, extra: Partial<ComputeStacksClientOptions> = {}) {
  const sink = new MemoryLogSink(100_000)
  const recorder = createCallRecorder({ connector: 'test', sink })
  const client = createComputeStacksClient({
    host: sim.host,
    auth: { type: 'basic', apiKey: sim.apiKey, apiSecret: sim.apiSecret },
    ca: sim.cert,
    recorder,
    retry: { maxAttempts: 4, initialDelayMs: 5, maxDelayMs: 20 },
    ...extra,
  })
  return { client, sink }
}

/** Follows nothing: returns the status and Location of a plain GET (the SSO login page). */
export async function visit(sim: ComputeStacksSimulator, url: string) {
  const agent = new Agent({ connect: { ca: sim.cert } })
  try {
    const response = await request(url, { dispatcher: agent })
    await response.body.text()
    return { status: response.statusCode, location: String(response.headers.location ?? '') }
  } finally {
    await agent.close()
  }
}

/** A raw request with Basic auth, for asserting exact wire behaviour. */
export async function raw(
  sim: ComputeStacksSimulator,
  path: string,
  options: { method?: string; accept?: string | null; auth?: string | null; body?: unknown } = {},
) {
  const agent = new Agent({ connect: { ca: sim.cert } })
  try {
    const headers: Record<string, string> = {}
    const accept = options.accept === undefined ? 'application/json; api_version=80' : options.accept
    if (accept !== null) headers.accept = accept
    const auth = options.auth === undefined ? `${sim.apiKey}:${sim.apiSecret}` : options.auth
    if (auth !== null) headers.authorization = `Basic ${Buffer.from(auth).toString('base64')}`
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const response = await request(`${sim.url}${path}`, {
      dispatcher: agent,
      method: (options.method ?? 'GET') as 'GET',
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    })
    const text = await response.body.text()
    return {
      status: response.statusCode,
      headers: response.headers as Record<string, string | undefined>,
      text,
      json:
        text && String(response.headers['content-type'] ?? '').includes('json')
          ? (JSON.parse(text) as Record<string, unknown>)
          : undefined,
    }
  } finally {
    await agent.close()
  }
}
