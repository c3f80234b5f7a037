import { createCallRecorder, isPanelkitError } from '@panelkit/core'
import { describe, expect, it } from 'vitest'
import { type ComputeStacksClient, createComputeStacksClient } from '../../src/index.ts'
import {
  type ComputeStacksSimulator,
  type ComputeStacksSimulatorOptions,
  startComputeStacksSimulator,
} from '../../src/testing/index.ts'
import { loadTranscript, replayAgainstServer, startReplayServer } from '../fixtures/transcript.ts'

/**
 * Every golden transcript in test/fixtures/transcripts is used twice: the client, making the call named
 * here against a server that plays the transcript back, must send exactly its requests and read its
 * responses as shown; the simulator, sent the same requests, must answer exactly its responses.
 */

const API_KEY = 'fixtureApiKey0000001'
const API_SECRET = 'fixture-secret-000000000000000000000000000'

interface Case {
  /** Simulator state the transcript assumes (a fresh simulator: admin is user 1, new users start at 4). */
  setup?: (sim: ComputeStacksSimulator) => void
  simulator?: Partial<ComputeStacksSimulatorOptions>
  client?: { apiVersion?: number; apiSecret?: string }
  /** The client call that must produce the transcript's requests; it checks what the client made of the answer. */
  call: (client: ComputeStacksClient) => Promise<void>
}

async function failure(promise: Promise<unknown>): Promise<{ kind: string; message: string }> {
  try {
    await promise
  } catch (error) {
    if (isPanelkitError(error)) return { kind: error.kind, message: error.message }
    throw error
  }
  throw new Error('expected the call to fail')
}

const jane = (sim: ComputeStacksSimulator) => {
  const user = sim.addUser({
    email: 'jane@example.com',
    fname: 'Jane',
    lname: 'Doe',
    externalId: '10',
    currency: 'EUR',
    labels: { whmcs: { client_id: 3, service_id: 10 } },
    services: {
      deployments: 2,
      containers: 5,
      container_services: 3,
      container_images: 0,
      container_registries: 0,
      dns_zones: 1,
    },
  })
  sim.addUsage(user.id, { total: '12.50' })
  sim.addUsage(user.id, { total: 0.05 })
  sim.addUsage(user.id, { total: '100.00', processed: true })
  return user
}

const cases: Record<string, Case> = {
  version: {
    async call(client) {
      expect(await client.version()).toEqual({
        version: '9.3.1',
        apiLatestVersion: 93,
        apiAvailableVersions: [51, 52, 53, 54, 60, 61, 62, 65, 70, 71, 80],
      })
    },
  },
  'create-user': {
    async call(client) {
      const user = await client.users.create({
        email: 'jane.doe3-10@cs.example.com',
        firstName: 'Jane',
        lastName: 'Doe',
        password: 'Secret-pass-1',
        externalId: 10,
        currency: 'EUR',
        companyName: 'Doe Ltd',
        phone: '+44.1234567',
        whmcs: { clientId: '3', serviceId: '10' },
      })
      expect(user).toMatchObject({
        id: 4,
        externalId: '10',
        userGroupId: 1,
        whmcs: { clientId: '3', serviceId: '10' },
      })
    },
  },
  'create-user-email-taken': {
    setup: (sim) => {
      sim.addUser({ email: 'jane.doe3-10@cs.example.com' })
    },
    async call(client) {
      const error = await failure(
        client.users.create({
          email: 'jane.doe3-10@cs.example.com',
          firstName: 'Jane',
          lastName: 'Doe',
          externalId: '10',
          whmcs: { clientId: 3, serviceId: 10 },
        }),
      )
      expect(error.kind).toBe('CONFLICT')
      expect(error.message).toContain('Email has already been taken')
    },
  },
  'find-by-email-missing': {
    async call(client) {
      expect(await client.users.find({ email: 'jane@example.com' })).toBeUndefined()
    },
  },
  'show-with-balance': {
    setup: jane,
    async call(client) {
      const user = await client.users.get(4, { balance: true })
      expect(user).toMatchObject({
        unprocessedUsage: '12.55',
        runRate: '0',
        services: { deployments: 2, containerServices: 3, containers: 5, dnsZones: 1 },
        userGroup: { id: 1, name: 'default' },
        currencySymbol: '€',
      })
    },
  },
  suspend: {
    setup: jane,
    async call(client) {
      expect((await client.users.suspend(4)).active).toBe(false)
    },
  },
  'user-sso': {
    setup: jane,
    async call(client) {
      const token = await client.users.ssoToken(4)
      expect(token.username).toBe('jane@example.com')
      const url = new URL(client.loginUrl(token))
      expect(url.searchParams.get('username')).toBe('jane@example.com')
      expect(url.searchParams.get('token')).toBe(token.token)
    },
  },
  'list-users-page': {
    setup: (sim) => {
      sim.addUser({ email: 'ann.able@example.com', fname: 'Ann', lname: 'Able' })
      sim.addUser({ email: 'bob.brown@example.com', fname: 'Bob', lname: 'Brown' })
      sim.addUser({ email: 'cy.cole@example.com', fname: 'Cy', lname: 'Cole' })
    },
    async call(client) {
      const pages = client.users.pages({ perPage: 2 })
      const first = await pages.next()
      await pages.return(undefined)
      expect(first.value).toMatchObject({ page: 1, perPage: 2, total: 6, nextPage: 2 })
      expect(first.value?.items.map((u: { email: string }) => u.email)).toEqual([
        'ann.able@example.com',
        'admin@cs.example.test',
      ])
    },
  },
  'deprecated-version': {
    client: { apiVersion: 60 },
    async call(client) {
      expect((await client.locations.list()).map((l) => l.name)).toEqual(['Default'])
    },
  },
  'unsupported-version': {
    client: { apiVersion: 50 },
    async call(client) {
      const error = await failure(client.locations.list())
      expect(error.kind).toBe('UNSUPPORTED')
      expect(error.message).toContain('You requested an unsupported version (50)')
    },
  },
  'bad-secret': {
    client: { apiSecret: 'wrong-secret-000000' },
    async call(client) {
      const error = await failure(client.locations.list())
      expect(error.kind).toBe('AUTH')
      expect(error.message).toContain('Not Authorized')
    },
  },
  throttled: {
    // A 429 burst from the fault injector answers as the real throttle does.
    setup: (sim) => sim.inject({ type: 'throttle' }),
    async call(client) {
      const error = await failure(client.locations.list())
      expect(error.kind).toBe('RATE_LIMITED')
    },
  },
}

describe('golden transcripts', () => {
  for (const [name, testCase] of Object.entries(cases)) {
    describe(name, () => {
      const exchanges = loadTranscript(name)

      it('the client sends exactly the transcript and reads its answer', async () => {
        const server = await startReplayServer(exchanges)
        const deprecated: number[] = []
        const client = createComputeStacksClient({
          host: `127.0.0.1:${server.port}`,
          auth: { type: 'basic', apiKey: API_KEY, apiSecret: testCase.client?.apiSecret ?? API_SECRET },
          ca: server.cert,
          retry: false,
          recorder: createCallRecorder({ connector: 'transcripts' }),
          onDeprecated: (info) => deprecated.push(info.apiVersion),
          ...(testCase.client?.apiVersion !== undefined ? { apiVersion: testCase.client.apiVersion } : {}),
        })
        try {
          await testCase.call(client)
        } finally {
          await client.close()
          await server.close()
        }
        expect(server.problems()).toEqual([])
        const warned = exchanges.some((e) => e.response.headers['api-deprecated'] === 'true')
        expect(deprecated).toEqual(warned ? [testCase.client?.apiVersion] : [])
      })

      it('the simulator answers exactly the transcript', async () => {
        const sim = await startComputeStacksSimulator({
          apiKey: API_KEY,
          apiSecret: API_SECRET,
          ...testCase.simulator,
        })
        try {
          testCase.setup?.(sim)
          expect(await replayAgainstServer(exchanges, sim.url, sim.cert)).toEqual([])
        } finally {
          await sim.close()
        }
      })
    })
  }
})
