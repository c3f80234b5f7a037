import { readFileSync } from 'node:fs'
import { MockAgent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createProxmoxClient } from '../../src/client.ts'
import { ENDPOINTS } from '../../src/endpoints/catalog.ts'
import type { EndpointDefinition } from '../../src/endpoints/define.ts'
import { createHttpTransport } from '../../src/http.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

interface Exchange {
  name: string
  direction?: 'simulator'
  call?: { endpoint: keyof typeof ENDPOINTS; params: Record<string, unknown> }
  request: { method: 'GET' | 'POST' | 'PUT' | 'DELETE'; path: string; body?: string }
  response: {
    status: number
    reason?: string
    body: { data: unknown; errors?: unknown; message?: string }
    match?: 'shape' | 'subset'
  }
}

const transcript = JSON.parse(
  readFileSync(new URL('../fixtures/transcript.json', import.meta.url), 'utf8'),
) as { exchanges: Exchange[] }
const SECRET = '9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d'

describe('golden transcript, replayed against the client', () => {
  for (const ex of transcript.exchanges.filter((e) => e.call)) {
    it(ex.name, async () => {
      const agent = new MockAgent()
      agent.disableNetConnect()
      agent
        .get('https://pve.test:8006')
        .intercept({
          method: ex.request.method,
          path: ex.request.path,
          body: (b) => (ex.request.body === undefined ? !b || b === 'null' : b === ex.request.body),
        })
        .reply(ex.response.status, ex.response.body, {
          headers: { 'content-type': 'application/json;charset=UTF-8' },
        })
      const client = createProxmoxClient({
        baseUrl: 'https://pve.test:8006',
        dispatcher: agent,
        credentials: { type: 'token', tokenId: 'root@pam!ci', secret: SECRET },
        lockRetry: { maxAttempts: 1 },
      })
      try {
        const endpoint = ENDPOINTS[ex.call?.endpoint as keyof typeof ENDPOINTS] as EndpointDefinition
        const outcome = await client.call(endpoint, ex.call?.params as never).then(
          (data) => ({ data }),
          (error: unknown) => ({ error }),
        )
        if (ex.response.status === 200) expect(outcome).toEqual({ data: ex.response.body.data })
        else
          expect(outcome).toMatchObject({
            error: { status: ex.response.status, errors: ex.response.body.errors },
          })
        agent.assertNoPendingInterceptors()
      } finally {
        await client.close()
        await agent.close()
      }
    })
  }
})

describe('golden transcript, replayed against the simulator', () => {
  let sim: ProxmoxSimulator
  beforeAll(async () => {
    sim = await new ProxmoxSimulator({
      taskDurations: { default: 0 },
      tokens: { 'root@pam!ci': SECRET },
    }).start()
  })
  afterAll(async () => {
    await sim.close()
  })

  it('answers every exchange as recorded, in order', async () => {
    const transport = createHttpTransport({ baseUrl: sim.url, tls: { fingerprint: sim.fingerprint256 } })
    try {
      for (const ex of transcript.exchanges) {
        const request: Parameters<typeof transport.request>[0] = {
          method: ex.request.method,
          path: ex.request.path,
          headers: { authorization: `PVEAPIToken=root@pam!ci=${SECRET}` },
        }
        if (ex.request.body !== undefined) request.body = ex.request.body
        const response = await transport.request(request)
        expect(response.status, ex.name).toBe(ex.response.status)
        if (ex.response.reason) expect(response.reason, ex.name).toBe(ex.response.reason)
        const body = JSON.parse(response.text) as Exchange['response']['body']
        if (ex.response.match === 'shape')
          expect(typeof body.data, ex.name).toBe(typeof ex.response.body.data)
        else if (ex.response.match === 'subset')
          expect(body.data, ex.name).toMatchObject(ex.response.body.data as object)
        else expect(body, ex.name).toEqual(ex.response.body)
        // Let the task of this exchange finish before the next one touches the same VM.
        await new Promise((r) => setTimeout(r, 5))
      }
    } finally {
      await transport.close()
    }
  })
})
