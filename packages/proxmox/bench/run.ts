/**
 * Benchmarks against the in-process simulator (not tests; never run in CI):
 *  (a) request latency: this client vs a bare `undici.request` of the same GET, and the `proxmox-api` package;
 *  (b) 1,000 VM deploys at concurrency 50 on a 3-node cluster: all ready, no VMID/IP collisions, peak memory;
 *  (c) 200 concurrent config changes on 10 VMs under a lock storm: all converge, none surfaces an error;
 *  (d) how soon `create` answers: `createMode: 'complete'` (baseline) against `'accept'`.
 * Run with `pnpm bench` (tsx with the source condition). `BENCH_DEPLOYS` shrinks (b) for a quick look.
 */
import { createConnector, MemoryCheckpointStore, type Result } from '@panelkit/core'
import { proxmoxApi } from 'proxmox-api'
import { request, fetch as undiciFetch } from 'undici'
import { createProxmoxClient } from '../src/client.ts'
import { ENDPOINTS } from '../src/endpoints/catalog.ts'
import { createTlsAgent } from '../src/http.ts'
import {
  createProxmoxKvmConnector,
  MemoryIpPool,
  MemoryVmidReservations,
  parseNet,
  serviceIdFromDescription,
} from '../src/index.ts'
import { ProxmoxSimulator } from '../src/testing/index.ts'

const TOKEN_ID = 'root@pam!bench'
const TOKEN_SECRET = '0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a'

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number
}
const fmt = (ms: number) => `${(ms * 1000).toFixed(0)} µs`
const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
  const line = (cells: (string | number)[]) =>
    `| ${cells.map((c, i) => String(c).padEnd(widths[i] as number)).join(' | ')} |`
  console.log(`\n${title}\n`)
  console.log(line(header))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const r of rows) console.log(line(r))
}

async function timeLoop(n: number, fn: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = []
  for (let i = 0; i < n; i++) {
    const t = performance.now()
    await fn()
    samples.push(performance.now() - t)
  }
  return samples
}

async function latency(): Promise<void> {
  const sim = await new ProxmoxSimulator({ tokens: { [TOKEN_ID]: TOKEN_SECRET } }).start()
  const agent = createTlsAgent({ fingerprint: sim.fingerprint256 }, { connections: 1 })
  const client = createProxmoxClient({
    baseUrl: sim.url,
    dispatcher: agent,
    credentials: { type: 'token', tokenId: TOKEN_ID, secret: TOKEN_SECRET },
  })
  const url = `${sim.url}/api2/json/cluster/resources?type=node`
  const authorization = `PVEAPIToken=${TOKEN_ID}=${TOKEN_SECRET}`
  const bare = async () => {
    const res = await request(url, { dispatcher: agent, headers: { authorization } })
    return ((await res.body.json()) as { data: unknown }).data
  }
  const ours = () => client.api.clusterResources({ type: 'node' })
  const pkg = proxmoxApi({
    host: '127.0.0.1',
    port: sim.port,
    tokenID: TOKEN_ID,
    tokenSecret: TOKEN_SECRET,
    // proxmox-api has no TLS option; its injectable fetch is the only way to reach a pinned server.
    fetch: ((input: string | URL, init?: object) =>
      undiciFetch(input, { ...init, dispatcher: agent })) as never,
  })
  const theirs = () => pkg.cluster.resources.$get({ type: 'node' })
  for (const fn of [bare, ours, theirs]) await timeLoop(300, fn)
  const N = 3000
  const rounds: Record<string, number[]> = { bare: [], ours: [], theirs: [] }
  // Interleave in blocks so drift (GC, JIT) hits all three alike.
  for (let block = 0; block < 6; block++) {
    rounds.bare?.push(...(await timeLoop(N / 6, bare)))
    rounds.ours?.push(...(await timeLoop(N / 6, ours)))
    rounds.theirs?.push(...(await timeLoop(N / 6, theirs)))
  }
  const base = median(rounds.bare as number[])
  table(
    `(a) GET /cluster/resources?type=node, ${N} sequential requests each, one keep-alive connection, TLS pinned`,
    ['client', 'median', 'p99', 'ratio to bare undici.request'],
    [
      ['bare undici.request', fmt(base), fmt(percentile(rounds.bare as number[], 99)), '1.00×'],
      [
        '@panelkit/proxmox',
        fmt(median(rounds.ours as number[])),
        fmt(percentile(rounds.ours as number[], 99)),
        `${(median(rounds.ours as number[]) / base).toFixed(2)}×`,
      ],
      [
        'proxmox-api 1.1.1',
        fmt(median(rounds.theirs as number[])),
        fmt(percentile(rounds.theirs as number[], 99)),
        `${(median(rounds.theirs as number[]) / base).toFixed(2)}×`,
      ],
    ],
  )
  await client.close()
  await agent.close()
  await sim.close()
}

async function deploys(): Promise<void> {
  const total = Number(process.env.BENCH_DEPLOYS ?? 1000)
  const concurrency = 50
  const sim = await new ProxmoxSimulator({
    nodes: ['pve1', 'pve2', 'pve3'],
    nodeMemoryGb: 1024,
    templates: [{ vmid: 9000, name: 'debian-12-cloud', node: 'pve1', diskGb: 2 }],
    taskDurations: { default: 2, qmclone: 20, qmigrate: 20, qmstart: 5 },
  }).start()
  const ipPool = new MemoryIpPool({
    main: {
      ipv4: { network: '10.20.0.0/20', gateway: '10.20.0.1' },
      ipv6: { network: '2001:db8:20::/64', gateway: '2001:db8:20::1' },
    },
  })
  const definition = createProxmoxKvmConnector({
    ipPool,
    vmids: new MemoryVmidReservations(),
    client: { tasks: { pollMs: 5, maxPollMs: 50 }, connections: 64 },
  })
  const connector = createConnector(definition, { checkpoints: new MemoryCheckpointStore() })
  const server = {
    hostname: '127.0.0.1',
    port: sim.port,
    username: 'root@pam',
    password: 'sim-root-password',
    options: { fingerprint: sim.fingerprint256 },
  }
  let peakRss = process.memoryUsage().rss
  let peakHeap = process.memoryUsage().heapUsed
  const sampler = setInterval(() => {
    const m = process.memoryUsage()
    peakRss = Math.max(peakRss, m.rss)
    peakHeap = Math.max(peakHeap, m.heapUsed)
  }, 50)
  const started = performance.now()
  const durations: number[] = []
  const failures: string[] = []
  let next = 0
  const requestsBefore = sim.stats.requests
  async function worker() {
    while (next < total) {
      const i = next++
      const t = performance.now()
      const result: Result<unknown> = await connector.invoke('create', {
        service: {
          serviceId: 100_000 + i,
          clientId: 1 + (i % 97),
          password: `Bench-${i}-pw!`,
          server,
          settings: { template: '9000', ipPool: 'main', ipv6: true, diskGb: 2, memoryMb: 1024, node: 'auto' },
          client: { email: `c${i}@example.com` },
        },
      })
      durations.push(performance.now() - t)
      if (!result.ok) failures.push(`${100_000 + i}: ${result.error.code} ${result.error.detail}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const elapsed = performance.now() - started
  clearInterval(sampler)
  const vms = [...sim.vms.values()].filter((vm) => !vm.template)
  const ready = vms.filter((vm) => vm.status === 'running' && !vm.lock)
  const owners = vms.map((vm) => serviceIdFromDescription(vm.config.description))
  const vmidCollisions = owners.length - new Set(owners).size
  const ipv4s = vms.map((vm) => /ip=([\d.]+)/.exec(vm.config.ipconfig0 ?? '')?.[1])
  const ipv6s = vms.map((vm) => /ip6=([\da-f:]+)/.exec(vm.config.ipconfig0 ?? '')?.[1])
  const macs = vms.map((vm) => parseNet(vm.config.net0 ?? 'virtio').macaddr)
  const ipCollisions = ipv4s.length - new Set(ipv4s).size + (ipv6s.length - new Set(ipv6s).size)
  const perNode = ['pve1', 'pve2', 'pve3']
    .map((n) => `${n} ${vms.filter((vm) => vm.node === n).length}`)
    .join(', ')
  table(
    `(b) ${total} deploys (16-step pipeline each) at concurrency ${concurrency} on a 3-node simulated cluster`,
    ['measure', 'value'],
    [
      ['VMs ready (running, unlocked)', `${ready.length} / ${total}`],
      ['failed deploys', failures.length],
      [
        'VMID collisions (two services on one VM, or two VMs for one service)',
        vmidCollisions + (vms.length - total),
      ],
      ['IP collisions (IPv4 + IPv6)', ipCollisions],
      ['distinct MACs', new Set(macs).size],
      ['placement', perNode],
      ['wall time', `${(elapsed / 1000).toFixed(1)} s (${((total / elapsed) * 1000).toFixed(1)} deploys/s)`],
      [
        'deploy time median / p99',
        `${(median(durations) / 1000).toFixed(2)} s / ${(percentile(durations, 99) / 1000).toFixed(2)} s`,
      ],
      ['API requests', sim.stats.requests - requestsBefore],
      [
        'peak RSS / heap (client, connector and simulator in one process)',
        `${mb(peakRss)} / ${mb(peakHeap)}`,
      ],
    ],
  )
  if (failures.length > 0) console.log(failures.slice(0, 5).join('\n'))
  await connector.close()
  await sim.close()
}

/** (d) The same deploys in both create modes, with clones that take half a second as real ones take longer. */
async function acceptMode(): Promise<void> {
  const total = 100
  const concurrency = 10
  const rows: (string | number)[][] = []
  let base = 0
  for (const mode of ['complete', 'accept'] as const) {
    const sim = await new ProxmoxSimulator({
      nodeMemoryGb: 1024,
      taskDurations: { default: 5, qmclone: 500, qmstart: 20 },
    }).start()
    const definition = createProxmoxKvmConnector({
      createMode: mode,
      ipPool: new MemoryIpPool({ main: { ipv4: { network: '10.30.0.0/22', gateway: '10.30.0.1' } } }),
      vmids: new MemoryVmidReservations(),
      client: { tasks: { pollMs: 5, maxPollMs: 50 }, connections: 32 },
    })
    const connector = createConnector(definition, { checkpoints: new MemoryCheckpointStore() })
    const server = {
      hostname: '127.0.0.1',
      port: sim.port,
      username: 'root@pam',
      password: 'sim-root-password',
      options: { fingerprint: sim.fingerprint256 },
    }
    const answers: number[] = []
    const readies: number[] = []
    let failed = 0
    let next = 0
    const started = performance.now()
    async function worker() {
      while (next < total) {
        const i = next++
        const service = {
          serviceId: 300_000 + i,
          clientId: 7,
          password: `Accept-${i}-pw!`,
          server,
          settings: { template: '9000', ipPool: 'main', diskGb: 2, node: 'pve1' },
          client: { email: `a${i}@example.com` },
        }
        const t = performance.now()
        const result = await connector.invoke('create', { service })
        answers.push(performance.now() - t)
        if (!result.ok) failed++
        const status = await connector.invoke('action', {
          service,
          action: 'deployStatus',
          params: { wait: true },
          audience: 'admin',
        })
        if (!status.ok || (status.data as { data?: { status?: string } }).data?.status !== 'ready') failed++
        readies.push(performance.now() - t)
      }
    }
    await Promise.all(Array.from({ length: concurrency }, worker))
    const wall = performance.now() - started
    if (mode === 'complete') base = median(answers)
    rows.push([
      mode,
      `${median(answers).toFixed(0)} ms`,
      `${(median(answers) / base).toFixed(2)}×`,
      `${median(readies).toFixed(0)} ms`,
      failed,
      `${(wall / 1000).toFixed(1)} s`,
    ])
    await connector.close()
    await sim.close()
  }
  table(
    `(d) ${total} creates at concurrency ${concurrency}, clone task 500 ms: when create answers, when the VM is ready`,
    [
      'createMode',
      'create answers (median)',
      'ratio to complete',
      'VM ready (median)',
      'failures',
      'wall time',
    ],
    rows,
  )
}

async function lockStorm(): Promise<void> {
  const sim = await new ProxmoxSimulator({
    taskDurations: { default: 2, qmconfig: 10 },
    tokens: { [TOKEN_ID]: TOKEN_SECRET },
  }).start()
  const client = createProxmoxClient({
    baseUrl: sim.url,
    tls: { fingerprint: sim.fingerprint256 },
    credentials: { type: 'token', tokenId: TOKEN_ID, secret: TOKEN_SECRET },
    tasks: { pollMs: 5, maxPollMs: 50 },
    lockRetry: { initialDelayMs: 20, maxDelayMs: 500, maxAttempts: 40 },
  })
  const ids = Array.from({ length: 10 }, (_, i) => 200 + i)
  for (const vmid of ids)
    await client.run(ENDPOINTS.vmClone, {
      node: 'pve1',
      vmid: 9000,
      newid: vmid,
      full: true,
      storage: 'local-lvm',
    })
  const requestsBefore = sim.stats.requests
  const refusalsBefore = sim.stats.lockRefusals
  sim.lockStorm({ probability: 0.5, durationMs: 120_000 })
  const changes = Array.from({ length: 200 }, (_, i) => ({ vmid: ids[i % 10] as number, key: `k${i}` }))
  const started = performance.now()
  const latencies: number[] = []
  const settled = await Promise.allSettled(
    changes.map(async (ch, i) => {
      const t = performance.now()
      // Every change writes its own marker into the tags, so convergence is checkable.
      await client.run(ENDPOINTS.vmConfigUpdate, {
        node: 'pve1',
        vmid: ch.vmid,
        cores: (i % 4) + 1,
        tags: `storm;${ch.key}`,
      })
      latencies.push(performance.now() - t)
    }),
  )
  const elapsed = performance.now() - started
  sim.clearFaults()
  const errors = settled.filter((s) => s.status === 'rejected')
  const converged = ids.every((vmid) => {
    const tags = sim.vms.get(vmid)?.config.tags ?? ''
    return changes.some((ch) => ch.vmid === vmid && tags === `storm;${ch.key}`)
  })
  table(
    '(c) 200 concurrent config changes on 10 VMs under a lock storm (half of all config writes refused with "can\'t lock file … got timeout", plus real file-lock contention)',
    ['measure', 'value'],
    [
      ['changes that surfaced an error', errors.length],
      ['VMs whose final config is one of the requested changes', `${converged ? 10 : 'not all'} / 10`],
      ['lock refusals the client absorbed (retried with backoff)', sim.stats.lockRefusals - refusalsBefore],
      ['requests sent (incl. task polls and retries)', sim.stats.requests - requestsBefore],
      [
        'latency median / p99',
        `${median(latencies).toFixed(0)} ms / ${percentile(latencies, 99).toFixed(0)} ms`,
      ],
      ['wall time', `${(elapsed / 1000).toFixed(1)} s`],
    ],
  )
  if (errors.length > 0) console.log(String((errors[0] as PromiseRejectedResult).reason))
  await client.close()
  await sim.close()
}

console.log(`@panelkit/proxmox benchmark — Node ${process.version}, ${new Date().toISOString()}`)
await latency()
// `BENCH_ONLY=latency` stops after the request-latency table (a quick before/after comparison).
if (process.env.BENCH_ONLY === 'latency') process.exit(0)
await deploys()
await lockStorm()
await acceptMode()
