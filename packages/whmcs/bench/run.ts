import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { createReverseSync, createWhmcsClient, encodeForm, MemoryProvisionedView } from '../src/index.ts'

/**
 * The reverse-sync benchmark: a full pass over N services of mapped products, an unchanged second
 * pass, and the client's request latency against a bare undici request of the same call. The
 * simulator runs in a child process so the figures are the client's, not the fake server's.
 * Absolute times depend on the machine; the ratios are the point.
 */

const SERVICES = Number(process.env.WHMCS_BENCH_SERVICES ?? 100_000)
const LATENCY_RUNS = Number(process.env.WHMCS_BENCH_RUNS ?? 300)

interface SimInfo {
  url: string
  ca: string
  identifier: string
  secret: string
  productIds: number[]
  planOption: string
  passwordField: string
  seedMs: number
}

const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--conditions=@panelkit/source',
    fileURLToPath(new URL('./simulator-process.ts', import.meta.url)),
    String(SERVICES),
  ],
  { stdio: ['pipe', 'pipe', 'inherit'] },
)
const line = await new Promise<string>((resolve, reject) => {
  child.once('error', reject)
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve)
})
const sim = JSON.parse(line) as SimInfo

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0)
const rssPeak = () => process.resourceUsage().maxRSS * 1024

const client = createWhmcsClient({
  url: sim.url,
  identifier: sim.identifier,
  secret: sim.secret,
  ca: sim.ca,
  pageSize: 250,
  pageConcurrency: 4,
})
const view = new MemoryProvisionedView()
// Intents stream to the app as they are found (its engine enqueues them); here the "engine" marks them
// done in the view at once, which is what the second pass then compares against.
const intentsByKind: Record<string, number> = {}
const sync = createReverseSync({
  client,
  view,
  onIntent: (intent) => {
    intentsByKind[intent.kind] = (intentsByKind[intent.kind] ?? 0) + 1
    view.apply(intent)
  },
  onDrift: () => {},
  mappings: sim.productIds.map((productId) => ({
    productId,
    connector: 'bench-panel',
    planOption: sim.planOption,
    passwordField: sim.passwordField,
  })),
})

// Warm up connections and code paths so the first measured page is not a cold start.
await client.getClientsProducts({ serviceid: 1 })

const rssBefore = process.memoryUsage().rss
let started = performance.now()
const first = await sync.fullPass()
const firstMs = performance.now() - started
const firstPeak = rssPeak()

started = performance.now()
const second = await sync.fullPass()
const secondMs = performance.now() - started

// Baseline: the same pages with bare undici and JSON.parse (no validation, no sync logic), measured
// after the passes so that its garbage does not count in their peak memory.
const bareAgent = new Agent({ connect: { ca: sim.ca }, connections: 8 })
const endpoint = new URL('includes/api.php', sim.url)
async function barePost(params: Record<string, string | number>): Promise<Record<string, unknown>> {
  const res = await request(endpoint, {
    method: 'POST',
    body: encodeForm({ ...params, identifier: sim.identifier, secret: sim.secret, responsetype: 'json' }),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    dispatcher: bareAgent,
  })
  return (await res.body.json()) as Record<string, unknown>
}
started = performance.now()
let bareRows = 0
for (const pid of sim.productIds) {
  const first = await barePost({ action: 'GetClientsProducts', pid, limitstart: 0, limitnum: 250 })
  const total = Number(first.totalresults)
  bareRows += Number(first.numreturned)
  const offsets: number[] = []
  for (let o = 250; o < total; o += 250) offsets.push(o)
  for (let i = 0; i < offsets.length; i += 4) {
    const pages = await Promise.all(
      offsets
        .slice(i, i + 4)
        .map((o) => barePost({ action: 'GetClientsProducts', pid, limitstart: o, limitnum: 250 })),
    )
    for (const p of pages) bareRows += Number(p.numreturned)
  }
}
const bareMs = performance.now() - started

// Latency of one small call: the client (validation, logging, retry wrapper) vs bare undici.
const latencyAgent = new Agent({ connect: { ca: sim.ca } })
const timedClient = createWhmcsClient({
  url: sim.url,
  identifier: sim.identifier,
  secret: sim.secret,
  dispatcher: latencyAgent,
})
const clientTimes: number[] = []
const bareTimes: number[] = []
async function bareDetails() {
  const res = await request(endpoint, {
    method: 'POST',
    body: encodeForm({
      action: 'GetClientsProducts',
      serviceid: 1,
      identifier: sim.identifier,
      secret: sim.secret,
      responsetype: 'json',
    }),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    dispatcher: latencyAgent,
  })
  const body = (await res.body.json()) as { result?: string }
  if (body.result !== 'success') throw new Error('bare call failed')
}
for (let i = 0; i < 20; i++) {
  await timedClient.getClientsProducts({ serviceid: 1 })
  await bareDetails()
}
for (let i = 0; i < LATENCY_RUNS; i++) {
  // Interleaved so that drift in the machine's load hits both sides alike.
  let t = performance.now()
  await timedClient.getClientsProducts({ serviceid: 1 })
  clientTimes.push(performance.now() - t)
  t = performance.now()
  await bareDetails()
  bareTimes.push(performance.now() - t)
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}
const clientMedian = median(clientTimes)
const bareMedian = median(bareTimes)

const rows: [string, string, string, string][] = [
  ['measure', 'result', 'baseline (same run)', 'ratio / target'],
  [
    `full pass, ${SERVICES.toLocaleString('en')} services`,
    `${(firstMs / 1000).toFixed(2)} s, ${first.servicesSeen} seen, ${first.intentCount} intents`,
    `bare undici + JSON.parse of the same pages: ${(bareMs / 1000).toFixed(2)} s (${bareRows} rows)`,
    `${(firstMs / bareMs).toFixed(2)}× · target < 10 s`,
  ],
  [
    'peak RSS during the pass',
    `${mb(firstPeak)} MB`,
    `RSS before the pass: ${mb(rssBefore)} MB`,
    'target < 300 MB',
  ],
  [
    'unchanged second pass',
    `${(secondMs / 1000).toFixed(2)} s, ${second.intentCount} intents, ${second.driftCount} drift`,
    `first pass: ${first.intentCount} intents`,
    'target: 0 intents',
  ],
  [
    'median request latency (GetClientsProducts, 1 service)',
    `${clientMedian.toFixed(2)} ms`,
    `bare undici.request: ${bareMedian.toFixed(2)} ms`,
    `${(clientMedian / bareMedian).toFixed(2)}× · target ≤ 1.25×`,
  ],
]
const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0))) ?? []
const fmt = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c] ?? 0)).join(' | ')} |`
console.log(
  `\nWHMCS reverse sync benchmark — node ${process.version}, ${SERVICES} services (seeded in ${sim.seedMs.toFixed(0)} ms in the simulator process)\n`,
)
console.log(fmt(rows[0] as string[]))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows.slice(1)) console.log(fmt(r))
console.log(
  `\nfirst-pass intents by kind: ${JSON.stringify(intentsByKind)}; errors: ${first.errors.length + second.errors.length}`,
)

await client.close()
await timedClient.close()
await bareAgent.close()
await latencyAgent.close()
child.stdin?.end()
