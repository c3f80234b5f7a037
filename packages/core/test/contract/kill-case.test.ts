import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ServiceContextInput } from '../../src/index.ts'
import { runKillCase } from '../../src/testing/contract-suite.ts'
import { MemoryPanel, serveMemoryPanel } from '../../src/testing/index.ts'

// The kill case must be able to fail: against a connector whose create answers "already exists" without
// resuming its checkpoint (the Axigen domain bug of issue 17), a real process killed between the two
// steps is re-run into an account on the wrong plan, and the case says where.
describe('the kill-between-steps case', () => {
  const panel = new MemoryPanel({ apiPassword: 'Broken-Api-1' })
  let served: Awaited<ReturnType<typeof serveMemoryPanel>>
  let n = 0
  beforeAll(async () => {
    served = await serveMemoryPanel(panel)
  })
  afterAll(async () => {
    await served?.close()
  })

  it('fails a create that answers "already exists" without resuming its unfinished checkpoint', async () => {
    const makeService = (): ServiceContextInput => {
      n++
      return {
        serviceId: 7100 + n,
        clientId: 1,
        username: `broken${n}`,
        password: `Pw-${n}-long-enough`,
        server: { hostname: 'broken-panel' },
        settings: { plan: 'pro' },
        client: { email: `broken${n}@example.com` },
      }
    }
    const run = runKillCase({
      hooks: {
        module: new URL('./kill-case.broken-target.ts', import.meta.url),
        params: { url: served.url, password: panel.apiPassword },
        snapshot: async (service) => panel.find(service.username ?? '')?.plan ?? null,
      },
      countAccounts: async (service) => (panel.find(service.username ?? '') ? 1 : 0),
      makeService,
      childTimeoutMs: 60_000,
    })
    await expect(run).rejects.toThrow(
      /create re-run after a kill after step 1 of 2: expected '"basic"' to be '"pro"'/,
    )
    // One account each for the reference, the service killed after step 1 (re-run) and the one the same
    // child started and killed after step 2: nothing duplicated, the failure is the plan.
    expect(panel.accounts.size).toBe(3)
  }, 120_000)
})
