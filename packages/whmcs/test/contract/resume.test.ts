import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  createReverseSync,
  createWhmcsClient,
  MemoryProvisionedView,
  type ProvisionedService,
  type ReverseSyncOptions,
} from '../../src/index.ts'
import { createWhmcsSimulator, type SimProduct, type WhmcsSimulator } from '../../src/testing/index.ts'

/** A page that still fails after the client's retries: resumed from its offset, then skipped and named. */

let sim: WhmcsSimulator
let product: SimProduct
let serviceIds: string[]

function sync(extra: Partial<ReverseSyncOptions> = {}) {
  const client = createWhmcsClient({
    url: sim.url,
    identifier: sim.credential.identifier,
    secret: sim.credential.secret,
    ca: sim.ca,
    retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
  })
  return createReverseSync({
    client,
    view: new MemoryProvisionedView(),
    mappings: [{ productId: product.id, connector: 'memory-panel', planOption: 'Plan' }],
    pageSize: 10,
    resumeDelayMs: 1,
    ...extra,
  })
}

const atOffset = (offset: number) => (p: Record<string, unknown>) => p.limitstart === String(offset)
const offsetsRead = () =>
  sim.requests.filter((r) => r.action === 'GetClientsProducts' && r.status === 200).map((r) => r.limitstart)

beforeEach(async () => {
  sim = await createWhmcsSimulator()
  product = sim.createProduct({ name: 'Workspace', configOptions: [{ name: 'Plan', options: ['Basic'] }] })
  const c = sim.createClient({ email: 'resume@example.test' })
  serviceIds = []
  for (let i = 0; i < 50; i++)
    serviceIds.push(
      String(
        sim.createService({ clientId: c.id, pid: product.id, status: 'Active', options: { Plan: 'Basic' } })
          .id,
      ),
    )
})
afterEach(async () => {
  await sim.close()
})

describe('reverse sync: resuming a failed page within the pass', () => {
  it('resumes from the failed offset and completes the pass without re-reading earlier pages', async () => {
    // Seven 500s: the client's three attempts fail twice (two resumes), then one more and a success.
    sim.injectFault({
      kind: 'status',
      status: 500,
      times: 7,
      action: 'GetClientsProducts',
      when: atOffset(20),
    })
    const report = await sync().fullPass()
    expect(report.errors).toEqual([])
    expect(report.complete).toBe(true)
    expect(report.resumes).toBe(2)
    expect(report.unread).toEqual([])
    expect(report.notEvaluated).toEqual([])
    expect(report.servicesSeen).toBe(50)
    expect(report.intents.map((i) => i.serviceId).sort()).toEqual([...serviceIds].sort())
    const reads = offsetsRead()
    expect(reads.filter((o) => o === 0)).toHaveLength(1)
    expect(reads.filter((o) => o === 10)).toHaveLength(1)
    expect(reads.filter((o) => o === 20)).toHaveLength(1)
  })

  it('skips a page that keeps failing, names its range and evaluates the pages after it', async () => {
    sim.injectFault({
      kind: 'status',
      status: 500,
      times: 1000,
      action: 'GetClientsProducts',
      when: atOffset(20),
    })
    const view = new MemoryProvisionedView()
    view.services.set('99999', { serviceId: '99999', state: 'active' })
    const report = await sync({ resumeAttempts: 2, view }).fullPass()
    expect(report.complete).toBe(false)
    expect(report.resumes).toBe(2)
    expect(report.unread).toHaveLength(1)
    expect(report.unread?.[0]).toMatchObject({ productId: String(product.id), offset: 20, count: 10 })
    expect(report.unread?.[0]?.error.code).toBe('HTTP')
    expect(report.errors).toHaveLength(1)
    expect(report.errors[0]).toMatchObject({ productId: String(product.id), stage: 'read' })
    // Everything but rows 20–29 was evaluated.
    const evaluated = report.intents.map((i) => i.serviceId).sort()
    expect(evaluated).toEqual([...serviceIds.slice(0, 20), ...serviceIds.slice(30)].sort())
    expect(report.servicesSeen).toBe(40)
    // An incomplete pass never claims "unknown to WHMCS".
    expect(report.drift.some((d) => d.kind === 'unknown-to-whmcs')).toBe(false)
  })

  it('names the whole list as unread when its first page fails (total unknown)', async () => {
    sim.injectFault({ kind: 'status', status: 503, times: 1000, action: 'GetClientsProducts' })
    const report = await sync({ resumeAttempts: 1 }).fullPass()
    expect(report.complete).toBe(false)
    expect(report.unread).toEqual([
      expect.objectContaining({ productId: String(product.id), offset: 0, count: null }),
    ])
    expect(report.servicesSeen).toBe(0)
  })

  it('stops at once on a credential refusal: no resume, the rest named as unread', async () => {
    sim.injectFault({
      kind: 'status',
      status: 500,
      times: 3,
      action: 'GetClientsProducts',
      when: atOffset(30),
    })
    // After the 500s the simulator answers the next read of offset 30 as if the secret were revoked.
    const original = sim.credential.secret
    let revoked = false
    sim.injectFault({
      kind: 'slow',
      delayMs: 0,
      action: 'GetClientsProducts',
      when: (p) => {
        if (p.limitstart === '30' && !revoked) {
          revoked = true
          ;(sim.credentials[0] as { secret: string }).secret = 'revoked'
        }
        return false
      },
    })
    const report = await sync({ resumeAttempts: 5 }).fullPass()
    ;(sim.credentials[0] as { secret: string }).secret = original
    expect(report.complete).toBe(false)
    expect(report.errors.at(-1)?.error.code).toBe('AUTH')
    expect(report.unread?.at(-1)).toMatchObject({ offset: 30, count: 20 })
    expect(sim.authFailures.get('127.0.0.1')).toBe(1)
  })

  it('names exactly the services read but not evaluated (view failure, bad service)', async () => {
    const failing = new Set(serviceIds.slice(10, 20))
    const view = {
      get: () => undefined,
      getMany(ids: readonly string[]): Map<string, ProvisionedService> {
        if (ids.some((id) => failing.has(id))) throw new Error('store unavailable')
        return new Map()
      },
    }
    const broken = serviceIds[42] as string
    sim.service(Number(broken)).configChoices = {}
    const report = await sync({ view }).fullPass()
    expect(report.complete).toBe(false)
    expect([...(report.notEvaluated ?? [])].sort()).toEqual([...failing, broken].sort())
    expect(report.intentCount).toBe(50 - 11)
    expect(report.errors.map((e) => e.stage).sort()).toEqual(['evaluate', 'view'])
  })

  it('reports a malformed service by id and evaluates the rest of its page', async () => {
    const bad = serviceIds[13] as string
    sim.service(Number(bad)).nextduedate = 'soon'
    const view = new MemoryProvisionedView()
    view.services.set(bad, { serviceId: bad, state: 'active' })
    const report = await sync({ view }).fullPass()
    expect(report.notEvaluated).toEqual([bad])
    expect(report.errors).toHaveLength(1)
    expect(report.errors[0]).toMatchObject({ serviceId: bad, stage: 'read' })
    expect(report.errors[0]?.error.code).toBe('PROTOCOL')
    expect(report.errors[0]?.error.detail).toContain('nextduedate')
    expect(report.intentCount).toBe(49)
    expect(report.complete).toBe(true)
    // Seen, so never "unknown to WHMCS".
    expect(report.drift.some((d) => d.serviceId === bad)).toBe(false)
  })
})
