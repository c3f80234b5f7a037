import type { AddressInfo } from 'node:net'
import { createServer, type Server, type Socket } from 'node:net'
import { createRedactor } from '@panelkit/core'
import { createWhmcsClient } from '@panelkit/whmcs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.ts'
import { Engine } from '../src/engine/engine.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { silentLogger } from '../src/logger.ts'
import { openTestStore, STORE_KINDS, TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

/**
 * The uncertain window of a deposit credit (issue 17.11): `sending` is recorded only once WHMCS has
 * been reached (TCP, TLS, an authenticated read). A WHMCS whose TLS handshake never completes leaves
 * a claim that was never sent — released and retried — not an uncertain entry for an operator.
 */

let stall: Server
let stallUrl = ''
const sockets = new Set<Socket>()
let whmcs: WhmcsWorld

beforeAll(async () => {
  whmcs = await startWhmcs()
  // Accepts TCP and never says a word: the TLS handshake stalls.
  stall = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.resume()
  })
  await new Promise<void>((resolve) => stall.listen(0, '127.0.0.1', resolve))
  stallUrl = `https://127.0.0.1:${(stall.address() as AddressInfo).port}/includes/api.php`
})

afterAll(async () => {
  for (const s of sockets) s.destroy()
  await new Promise((resolve) => stall.close(resolve))
  await whmcs.close()
})

describe.each(STORE_KINDS)('deposit credits against an unreachable WHMCS (%s)', (kind) => {
  it('are never recorded as sending, so nothing is left uncertain; once WHMCS answers, credited once', async () => {
    const { config } = parseConfig(
      {
        whmcs: whmcs.config,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        store: { encryptionKey: '${KEY}' },
        worker: { maxAttempts: 1 },
      },
      { KEY: TEST_KEY, ...whmcs.env },
    )
    const { store, cleanup } = await openTestStore(kind)
    const redactor = createRedactor()
    const stalled = createWhmcsClient({
      url: stallUrl,
      identifier: whmcs.sim.credential.identifier,
      secret: whmcs.sim.credential.secret,
      tls: { ca: whmcs.sim.ca },
      timeoutMs: 400,
      retry: false,
    })
    const engine = new Engine({
      store,
      config,
      connectors: [],
      whmcs: stalled,
      redactor,
      logger: silentLogger(redactor),
      moduleLog: store.moduleLog(redactor),
    })
    try {
      const client = whmcs.customer(`window-${kind}@example.com`)
      const deposit = {
        clientId: String(client),
        depositId: `win-${kind}`,
        amount: '12.50',
        description: 'Deposit',
      }
      await engine.creditDeposit(deposit, 'api')
      await engine.runWorker({ untilIdle: true, pollMs: 5 })
      expect(await store.ledger.list({ state: 'uncertain' })).toEqual([])
      const [job] = await listJobs(store.db)
      // Parked as a connection failure (one attempt allowed here), not as "an operator must decide".
      expect(job?.status).toBe('parked')
      expect(job?.lastError?.code).toBe('CONNECTION')
      expect(job?.lastError?.detail).toMatch(/could not be reached before AddCredit was sent/)
      expect([...whmcs.sim.credits.values()].filter((c) => c.clientid === client)).toHaveLength(0)
      // The same key through a WHMCS that answers: sent once.
      const live = new Engine({
        store,
        config,
        connectors: [],
        whmcs: whmcs.client(),
        redactor,
        logger: silentLogger(redactor),
        moduleLog: store.moduleLog(redactor),
      })
      expect(await live.retry()).toBe(1)
      await live.runWorker({ untilIdle: true, pollMs: 5 })
      await live.close()
      expect([...whmcs.sim.credits.values()].filter((c) => c.clientid === client)).toHaveLength(1)
    } finally {
      await engine.close()
      await cleanup()
    }
  })
})
