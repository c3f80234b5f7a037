import { spawn } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Agent, request } from 'undici'
import { createReverseSync, createWhmcsClient, encodeForm, MemoryProvisionedView } from '../src/index.ts'

/**
 * The reverse-sync benchmark: a full pass over N services of mapped products, an unchanged second
 * pass, and the client's request latency against a bare undici request of the same call. The
 * simulator runs in a child process so the figures are the client's, not the fake server's.
 * Absolute times depend on the machine; the ratios are the point.
 */

const SERVICES = Number(process.env.WHMCS_BENCH_SERVICES ?? 100_000)
const LATENCY_RUNS = Number(process.env.WHMCS_BENCH_RUNS ?? 400)

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

const ROUNDS = Math.max(1, Number(process.env.WHMCS_BENCH_ROUNDS ?? 3))
const PAGE_SIZE = Number(process.env.WHMCS_BENCH_PAGE_SIZE ?? 250)

const client = createWhmcsClient({
  url: sim.url,
  identifier: sim.identifier,
  secret: sim.secret,
  ca: sim.ca,
  pageSize: PAGE_SIZE,
  pageConcurrency: Number(process.env.WHMCS_BENCH_PAGE_CONCURRENCY ?? 4),
})
const mappings = sim.productIds.map((productId) => ({
  productId,
  connector: 'bench-panel',
  planOption: sim.planOption,
  passwordField: sim.passwordField,
}))

/** The RSS high-water mark while `run` runs, sampled every 10 ms (maxRSS only ever grows). */
async function sampledPeak<T>(
  run: () => Promise<T>,
): Promise<{ value: T; peak: number; heapPeak: number; ms: number }> {
  let peak = 0
  let heapPeak = 0
  const sample = () => {
    const m = process.memoryUsage()
    peak = Math.max(peak, m.rss)
    heapPeak = Math.max(heapPeak, m.heapUsed)
  }
  sample()
  const timer = setInterval(sample, 10)
  const started = performance.now()
  try {
    const value = await run()
    sample()
    return { value, peak, heapPeak, ms: performance.now() - started }
  } finally {
    clearInterval(timer)
  }
}

// A full collection on demand, to tell what a pass keeps (live heap) from garbage not yet collected.
setFlagsFromString('--expose-gc')
const collect = runInNewContext('gc') as () => void
const liveHeap = () => {
  collect()
  return process.memoryUsage().heapUsed
}

// Baseline: the same pages with bare undici and JSON.parse (no validation, no sync logic).
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
async function bareFullRead(): Promise<number> {
  let rows = 0
  for (const pid of sim.productIds) {
    const first = await barePost({ action: 'GetClientsProducts', pid, limitstart: 0, limitnum: PAGE_SIZE })
    const total = Number(first.totalresults)
    rows += Number(first.numreturned)
    const offsets: number[] = []
    for (let o = PAGE_SIZE; o < total; o += PAGE_SIZE) offsets.push(o)
    for (let i = 0; i < offsets.length; i += 4) {
      const pages = await Promise.all(
        offsets
          .slice(i, i + 4)
          .map((o) => barePost({ action: 'GetClientsProducts', pid, limitstart: o, limitnum: PAGE_SIZE })),
      )
      for (const p of pages) rows += Number(p.numreturned)
    }
  }
  return rows
}

interface Round {
  firstMs: number
  firstPeak: number
  heapPeak: number
  heapBefore: number
  heapAfterFirst: number
  heapAfterSecond: number
  viewSize: number
  rssBefore: number
  secondMs: number
  secondPeak: number
  bareMs: number
  bareRows: number
  seen: number
  intents: number
  secondIntents: number
  secondDrift: number
  errors: number
}
const intentsByKind: Record<string, number> = {}

async function syncRound(round: number): Promise<Omit<Round, 'bareMs' | 'bareRows'>> {
  // A fresh view per round: intents stream to the "engine" (`onIntent`), which marks them done at
  // once; the second pass then compares against that.
  const view = new MemoryProvisionedView()
  const sync = createReverseSync({
    client,
    view,
    mappings,
    onDrift: () => {},
    onIntent: (intent) => {
      if (round === 0) intentsByKind[intent.kind] = (intentsByKind[intent.kind] ?? 0) + 1
      view.apply(intent)
    },
  })
  const heapBefore = liveHeap()
  const rssBefore = process.memoryUsage().rss
  const first = await sampledPeak(() => sync.fullPass())
  const heapAfterFirst = liveHeap()
  const second = await sampledPeak(() => sync.fullPass())
  const heapAfterSecond = liveHeap()
  return {
    firstMs: first.ms,
    firstPeak: first.peak,
    heapPeak: Math.max(first.heapPeak, second.heapPeak),
    heapBefore,
    heapAfterFirst,
    heapAfterSecond,
    viewSize: view.services.size,
    rssBefore,
    secondMs: second.ms,
    secondPeak: second.peak,
    seen: first.value.servicesSeen,
    intents: first.value.intentCount,
    secondIntents: second.value.intentCount,
    secondDrift: second.value.driftCount,
    errors: first.value.errors.length + second.value.errors.length,
  }
}

// Warm up connections and code paths so the first measured page is not a cold start.
await client.getClientsProducts({ serviceid: 1 })
await barePost({ action: 'GetClientsProducts', serviceid: 1 })

// Interleaved rounds, the order swapped every round, so drift in the machine's load hits both alike.
const rounds: Round[] = []
for (let r = 0; r < ROUNDS; r++) {
  let bareMs = 0
  let bareRows = 0
  const bare = async () => {
    const t = performance.now()
    bareRows = await bareFullRead()
    bareMs = performance.now() - t
  }
  if (r % 2 === 1) await bare()
  const s = await syncRound(r)
  if (r % 2 === 0) await bare()
  rounds.push({ ...s, bareMs, bareRows })
}

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
for (let i = 0; i < 50; i++) {
  await timedClient.getClientsProducts({ serviceid: 1 })
  await bareDetails()
}
const blockRatios: number[] = []
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}
for (let block = 0; block < ROUNDS; block++) {
  const c: number[] = []
  const b: number[] = []
  for (let i = 0; i < LATENCY_RUNS; i++) {
    // Interleaved, and the first of each pair alternates.
    const clientFirst = i % 2 === 0
    if (!clientFirst) {
      const t0 = performance.now()
      await bareDetails()
      b.push(performance.now() - t0)
    }
    const t = performance.now()
    await timedClient.getClientsProducts({ serviceid: 1 })
    c.push(performance.now() - t)
    if (clientFirst) {
      const t0 = performance.now()
      await bareDetails()
      b.push(performance.now() - t0)
    }
  }
  blockRatios.push(median(c) / median(b))
  clientTimes.push(...c)
  bareTimes.push(...b)
}
const clientMedian = median(clientTimes)
const bareMedian = median(bareTimes)

const med = (f: (r: Round) => number) => median(rounds.map(f))
const range = (xs: number[], digits = 2, unit = '') =>
  xs.length > 1
    ? ` (rounds: ${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}${unit})`
    : ''
const firstMs = med((r) => r.firstMs)
const bareMs = med((r) => r.bareMs)
const secondMs = med((r) => r.secondMs)
const first = rounds[0] as Round
const load = loadavg()

const rows: [string, string, string, string][] = [
  ['measure', `result (median of ${ROUNDS} interleaved rounds)`, 'baseline (same run)', 'ratio / target'],
  [
    `full pass, ${SERVICES.toLocaleString('en')} services`,
    `${(firstMs / 1000).toFixed(2)} s${range(
      rounds.map((r) => r.firstMs / 1000),
      2,
      ' s',
    )}, ${first.seen} seen, ${first.intents} intents`,
    `bare undici + JSON.parse of the same pages: ${(bareMs / 1000).toFixed(2)} s (${first.bareRows} rows)`,
    `${(firstMs / bareMs).toFixed(2)}×${range(
      rounds.map((r) => r.firstMs / r.bareMs),
      2,
      '×',
    )} · target < 10 s`,
  ],
  [
    'peak RSS during a pass (sampled every 10 ms)',
    `${rounds.map((r) => mb(Math.max(r.firstPeak, r.secondPeak))).join(' / ')} MB by round (process maxRSS ${mb(rssPeak())} MB)`,
    `RSS before the first pass: ${mb(first.rssBefore)} MB (the tsx loader thread included)`,
    'target < 300 MB',
  ],
  [
    'JS heap: peak in use / live after a full GC',
    `peak ${rounds.map((r) => mb(r.heapPeak)).join(' / ')} MB; live after pass 1 / pass 2: ${mb(first.heapAfterFirst)} / ${mb(first.heapAfterSecond)} MB`,
    `live before: ${mb(first.heapBefore)} MB; the view then holds ${first.viewSize} services`,
    'nothing kept but the view',
  ],
  [
    'unchanged second pass',
    `${(secondMs / 1000).toFixed(2)} s, ${rounds.map((r) => r.secondIntents).join('/')} intents, ${rounds.map((r) => r.secondDrift).join('/')} drift`,
    `first pass: ${first.intents} intents`,
    'target: 0 intents',
  ],
  [
    'median request latency (GetClientsProducts, 1 service)',
    `${clientMedian.toFixed(3)} ms`,
    `bare undici.request: ${bareMedian.toFixed(3)} ms`,
    `${(clientMedian / bareMedian).toFixed(2)}×${range(blockRatios, 2, '×')} · target ≤ 1.25×`,
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
  `\nfirst-pass intents by kind: ${JSON.stringify(intentsByKind)}; errors: ${rounds.reduce((a, r) => a + r.errors, 0)}; load average at the end: ${load.map((l) => l.toFixed(1)).join(' ')} on ${availableParallelism()} cores`,
)

await client.close()
await timedClient.close()
await bareAgent.close()
await latencyAgent.close()
child.stdin?.end()
