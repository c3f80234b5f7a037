import { createConnector, MemoryCheckpointStore, type ProgressEvent, type Result } from '@panelkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createProxmoxKvmConnector,
  MemoryIpPool,
  MemoryVmidReservations,
  serviceIdFromDescription,
} from '../../src/index.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

// `createMode: 'accept'`: create answers once the clone runs; the deploy goes on in the background.
let sim: ProxmoxSimulator
const ipPool = new MemoryIpPool({ main: { ipv4: { network: '198.51.100.0/24', gateway: '198.51.100.1' } } })
const vmids = new MemoryVmidReservations()
const checkpoints = new MemoryCheckpointStore()
const definition = createProxmoxKvmConnector({
  createMode: 'accept',
  ipPool,
  vmids,
  client: { tasks: { pollMs: 1, maxPollMs: 10 }, lockRetry: { initialDelayMs: 2, maxDelayMs: 20 } },
})
const progress: ProgressEvent[] = []
const connector = createConnector(definition, { checkpoints, onProgress: (e) => progress.push(e) })
let n = 0

function service(settings: Record<string, unknown> = {}) {
  n++
  return {
    serviceId: `8${String(n).padStart(3, '0')}`,
    clientId: 31,
    username: 'grace',
    password: `Accept-Pw-${n}!`,
    server: {
      hostname: '127.0.0.1',
      port: sim.port,
      username: 'root@pam',
      password: 'sim-root-password',
      options: { fingerprint: sim.fingerprint256 },
    },
    settings: { template: '9000', ipPool: 'main', diskGb: 20, ...settings },
    client: { email: 'grace@example.com', firstName: 'Grace', lastName: 'Hopper' },
  }
}

const vmOf = (serviceId: string) =>
  [...sim.vms.values()].find((vm) => serviceIdFromDescription(vm.config.description) === serviceId)

function ok<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.operation} failed: ${result.error.code} ${result.error.detail}`)
  return result.data
}

const status = async (s: ReturnType<typeof service>, wait = false, on = connector) =>
  ok(await on.invoke('action', { service: s, action: 'deployStatus', params: { wait }, audience: 'admin' }))
    .data as {
    status: string
    state: string
    running: boolean
    log: string[]
    lastError?: { detail: string }
  }

beforeAll(async () => {
  // Clones take a while here, so an accepted create visibly returns before the VM is ready.
  sim = await new ProxmoxSimulator({ taskDurations: { default: 1, qmclone: 150 } }).start()
})
afterAll(async () => {
  await connector.close()
  await sim.close()
})

describe('create in accept mode', () => {
  it('answers once the clone runs, then the deploy finishes in the background with progress events', async () => {
    const s = service()
    const data = ok(await connector.invoke('create', { service: s }))
    expect(data.created).toBe(true)
    expect(data.details?.deploy).toBe('running')
    expect(data.ips).toEqual([expect.stringMatching(/^198\.51\.100\./)])
    const vm = vmOf(String(s.serviceId))
    expect(String(vm?.vmid)).toBe(data.accountId)
    expect(vm?.lock).toBe('clone')
    expect(vm?.status).toBe('stopped')
    const during = await status(s)
    expect(during).toMatchObject({ status: 'running', running: true })
    // A repeated create meanwhile is the same account, not a second clone.
    const again = ok(await connector.invoke('create', { service: s }))
    expect(again).toMatchObject({ created: false, accountId: data.accountId })
    const done = await status(s, true)
    expect(done).toMatchObject({ status: 'ready', state: 'ready', running: false })
    expect(done.log.at(-1)).toMatch(/Verify running \+ notify +success \(starting -> ready\)/)
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
    const mine = progress.filter((e) => e.serviceId === String(s.serviceId)).map((e) => e.step.name)
    expect(mine.slice(-2)).toEqual(['start', 'verify'])
    expect([...sim.vms.values()].filter((v) => v.config.name === `vps-31-${s.serviceId}`)).toHaveLength(1)
    const third = ok(await connector.invoke('create', { service: s }))
    expect(third).toMatchObject({ created: false, accountId: data.accountId })
  })

  it('two creates at once: one clone, both answer before the VM is ready, one of them created', async () => {
    const s = service()
    const [x, y] = await Promise.all([
      connector.invoke('create', { service: s }),
      connector.invoke('create', { service: s }),
    ])
    const a = ok(x)
    const b = ok(y)
    expect(a.accountId).toBe(b.accountId)
    expect([a.created, b.created].sort()).toEqual([false, true])
    expect(a.details?.deploy).toBe('running')
    expect(b.details?.deploy).toBe('running')
    expect([...sim.vms.values()].filter((v) => v.config.name === `vps-31-${s.serviceId}`)).toHaveLength(1)
    expect((await status(s, true)).status).toBe('ready')
  })

  it('a failure before the clone is the create call’s own failure', async () => {
    const s = service({ memoryMb: 4 * 1024 * 1024 })
    const result = await connector.invoke('create', { service: s })
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.error.code).toBe('CAPACITY')
    expect(vmOf(String(s.serviceId))).toBeUndefined()
  })

  it('a later write waits for the running deploy before it acts', async () => {
    const s = service()
    ok(await connector.invoke('create', { service: s }))
    ok(await connector.invoke('suspend', { service: s }))
    const vm = vmOf(String(s.serviceId))
    // Had suspend not waited, the deploy's start step would have started the VM after it.
    await new Promise((r) => setTimeout(r, 30))
    expect(vm?.status).toBe('stopped')
    expect((await status(s)).status).toBe('ready')
  })

  it('a background failure shows in deployStatus and the next write resumes at the failed step', async () => {
    const s = service()
    sim.failTask({ type: 'qmstart', exitstatus: 'start failed: QEMU exited with code 1' })
    ok(await connector.invoke('create', { service: s }))
    const failed = await status(s, true)
    expect(failed.status).toBe('failed')
    expect(failed.state).toBe('set_cloudinit')
    expect(failed.lastError?.detail).toContain('QEMU exited with code 1')
    ok(await connector.invoke('action', { service: s, action: 'start', audience: 'client' }))
    expect((await status(s)).status).toBe('ready')
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
  })

  it('after a crash mid-deploy, the next create resumes it and no second VM appears', async () => {
    const s = service()
    const crashing = createConnector(definition, { checkpoints })
    const first = ok(await crashing.invoke('create', { service: s }))
    // Closing aborts the background run, as a dying process would leave it.
    await crashing.close()
    expect((await status(s)).status).toBe('interrupted')
    const resumed = ok(await connector.invoke('create', { service: s }))
    expect(resumed.accountId).toBe(first.accountId)
    expect(resumed.created).toBe(true)
    expect((await status(s, true)).status).toBe('ready')
    expect([...sim.vms.values()].filter((v) => v.config.name === `vps-31-${s.serviceId}`)).toHaveLength(1)
    expect(vmOf(String(s.serviceId))?.status).toBe('running')
  })

  it('terminate cancels a running deploy and releases everything', async () => {
    const s = service()
    const data = ok(await connector.invoke('create', { service: s }))
    const result = ok(await connector.invoke('terminate', { service: s }))
    expect(result.changed).toBe(true)
    expect(sim.vms.has(Number(data.accountId))).toBe(false)
    expect(await ipPool.leases(String(s.serviceId))).toHaveLength(0)
    expect(await vmids.reservedFor(String(s.serviceId))).toBeUndefined()
    expect((await status(s)).status).toBe('none')
  })
})
