import { type ChildProcess, fork } from 'node:child_process'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Agent, request } from 'undici'
import { acceptHeader, basicHeader, createComputeStacksClient, DEFAULT_API_VERSION } from '../src/index.ts'

/**
 * 1. Median latency of one `users.get` through the client against a bare `undici.request` of the same
 *    call (same agent, same headers, JSON parsed), interleaved so both see the same conditions.
 * 2. A full listing of 50,000 users (every page), its time and the client process's peak heap.
 * The simulator runs in a child process; not a test, never run in CI.
 */

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

interface SimInfo {
  port: number
  cert: string
  apiKey: string
  apiSecret: string
  userId: number
  users: number
}

async function startSim(users: number): Promise<{ info: SimInfo; child: ChildProcess }> {
  const child = fork(new URL('./simulator-process.ts', import.meta.url), [String(users)], {
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const info = await new Promise<SimInfo>((resolve, reject) => {
    child.once('message', (m) => resolve(m as SimInfo))
    child.once('exit', (code) => reject(new Error(`simulator exited with ${code}`)))
  })
  return { info, child }
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve())
    child.send('stop')
  })
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
const fmt = (n: number, digits = 3) => n.toFixed(digits)

async function latency(rounds: number, blocks: number) {
  const { info, child } = await startSim(10)
  const agent = new Agent({ connect: { ca: info.cert }, connections: 1 })
  const client = createComputeStacksClient({
    host: `127.0.0.1:${info.port}`,
    auth: { type: 'basic', apiKey: info.apiKey, apiSecret: info.apiSecret },
    dispatcher: agent,
  })
  const url = `https://127.0.0.1:${info.port}/api/admin/users/${info.userId}`
  const headers = {
    accept: acceptHeader(DEFAULT_API_VERSION),
    authorization: basicHeader(info.apiKey, info.apiSecret),
    'user-agent': 'panelkit-computestacks',
  }
  const bare = async () => {
    const response = await request(url, { dispatcher: agent, headers })
    const body = (await response.body.json()) as { user: { id: number } }
    if (body.user.id !== info.userId) throw new Error('bare: wrong user')
  }
  const viaClient = async () => {
    const user = await client.users.get(info.userId)
    if (user.id !== info.userId) throw new Error('client: wrong user')
  }
  for (let i = 0; i < 1000; i++) {
    await bare()
    await viaClient()
  }
  // Interleaved in blocks: each block gives its own ratio of medians, so a burst of load from other
  // processes moves one block, not the result; the table shows the median block and the spread.
  const all = { bare: [] as number[], client: [] as number[] }
  const ratios: number[] = []
  const perBlock = Math.max(50, Math.floor(rounds / blocks))
  for (let block = 0; block < blocks; block++) {
    const times = { bare: [] as number[], client: [] as number[] }
    for (let i = 0; i < perBlock; i++) {
      // Alternate the order so neither always runs on a warmer connection.
      const order = i % 2 === 0 ? (['bare', 'client'] as const) : (['client', 'bare'] as const)
      for (const which of order) {
        const started = performance.now()
        await (which === 'bare' ? bare() : viaClient())
        times[which].push(performance.now() - started)
      }
    }
    const b = times.bare.sort((x, y) => x - y)
    const c = times.client.sort((x, y) => x - y)
    ratios.push(quantile(c, 0.5) / quantile(b, 0.5))
    all.bare.push(...b)
    all.client.push(...c)
  }
  await client.close()
  await agent.close()
  await stop(child)
  const b = all.bare.sort((x, y) => x - y)
  const c = all.client.sort((x, y) => x - y)
  const r = ratios.sort((x, y) => x - y)
  return {
    bare: { median: quantile(b, 0.5), p95: quantile(b, 0.95) },
    client: { median: quantile(c, 0.5), p95: quantile(c, 0.95) },
    ratio: { median: quantile(r, 0.5), min: r[0] ?? 0, max: r[r.length - 1] ?? 0 },
    perBlock,
  }
}

async function listing(users: number, perPages: number[]) {
  const { info, child } = await startSim(users)
  const rows: {
    mode: string
    perPage: number
    count: number
    pages: number
    seconds: number
    peakHeapMb: number
    times: number[]
  }[] = []
  const measure = async (
    mode: string,
    perPage: number,
    run: () => Promise<{ count: number; pages: number }>,
  ) => {
    gc()
    const baseHeap = process.memoryUsage().heapUsed
    let peak = baseHeap
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().heapUsed)
    }, 2)
    const started = performance.now()
    const { count, pages } = await run()
    const seconds = (performance.now() - started) / 1000
    clearInterval(sampler)
    peak = Math.max(peak, process.memoryUsage().heapUsed)
    const peakHeapMb = (peak - baseHeap) / 1024 / 1024
    // Repeats of one mode fold into one row: the median time and the highest peak.
    const row = rows.find((r) => r.mode === mode && r.perPage === perPage)
    if (!row) rows.push({ mode, perPage, count, pages, seconds, peakHeapMb, times: [seconds] })
    else {
      row.times.push(seconds)
      row.seconds = row.times.sort((x, y) => x - y)[Math.floor(row.times.length / 2)] ?? seconds
      row.peakHeapMb = Math.max(row.peakHeapMb, peakHeapMb)
    }
  }
  const agent = new Agent({ connect: { ca: info.cert } })
  for (const perPage of perPages)
    for (let repeat = 0; repeat < listingRepeats; repeat++) {
      await measure('bare undici, page by page', perPage, async () => {
        let page = 1
        let count = 0
        let pages = 0
        for (;;) {
          const response = await request(
            `https://127.0.0.1:${info.port}/api/admin/users?page=${page}&per_page=${perPage}`,
            {
              dispatcher: agent,
              headers: { accept: acceptHeader(80), authorization: basicHeader(info.apiKey, info.apiSecret) },
            },
          )
          const body = (await response.body.json()) as { users: unknown[] }
          count += body.users.length
          pages++
          if (body.users.length < perPage) break
          page++
        }
        return { count, pages }
      })
      await measure('client.users.list()', perPage, async () => {
        const client = createComputeStacksClient({
          host: `127.0.0.1:${info.port}`,
          auth: { type: 'basic', apiKey: info.apiKey, apiSecret: info.apiSecret },
          dispatcher: agent,
          perPage,
        })
        let count = 0
        for await (const user of client.users.list()) if (user.id > 0) count++
        return { count, pages: Math.ceil(count / perPage) }
      })
    }
  await agent.close()
  await stop(child)
  // The admin listing is `User.sorted` with no filter (CTL `users_controller.rb#index`): it lists every
  // user, the two support admins included (only lookups hide them).
  return { rows, expected: info.users }
}

const rounds = Number(process.env.BENCH_ROUNDS ?? 10_000)
const blocks = Number(process.env.BENCH_BLOCKS ?? 20)
const listingRepeats = Number(process.env.BENCH_LISTING_REPEATS ?? 3)
const totalUsers = Number(process.env.BENCH_USERS ?? 50_000)
console.log(`node ${process.version}, ${rounds} rounds in ${blocks} blocks, ${totalUsers} users\n`)

const l = await latency(rounds, blocks)
console.log('| request (GET /api/admin/users/{id}) | median ms | p95 ms | ratio of medians |')
console.log('|---|---|---|---|')
console.log(`| bare undici.request + JSON.parse | ${fmt(l.bare.median)} | ${fmt(l.bare.p95)} | 1.00× |`)
console.log(
  `| client.users.get (auth, recorder, retry, validation) | ${fmt(l.client.median)} | ${fmt(l.client.p95)} | ${fmt(l.client.median / l.bare.median, 2)}× |`,
)
console.log(
  `\nper-block ratio (${blocks} blocks of ${l.perBlock} interleaved pairs): median ${fmt(l.ratio.median, 2)}×, min ${fmt(l.ratio.min, 2)}×, max ${fmt(l.ratio.max, 2)}×`,
)
console.log(`target ≤ 1.25× (median block): ${l.ratio.median <= 1.25 ? 'met' : 'NOT met'}\n`)
// `BENCH_ONLY=latency` stops after the request-latency table (a quick before/after comparison).
if (process.env.BENCH_ONLY === 'latency') process.exit(0)

const list = await listing(totalUsers, [100, 500])
console.log(
  `| full listing of ${list.expected} users (median of ${listingRepeats}) | per_page | pages | users seen | seconds | peak heap MB | time ratio |`,
)
console.log('|---|---|---|---|---|---|---|')
for (const row of list.rows) {
  const base = list.rows.find((r) => r.perPage === row.perPage && r.mode.startsWith('bare'))
  console.log(
    `| ${row.mode} | ${row.perPage} | ${row.pages} | ${row.count} | ${fmt(row.seconds, 2)} | ${fmt(row.peakHeapMb, 1)} | ${fmt(row.seconds / (base?.seconds ?? row.seconds), 2)}× |`,
  )
  if (row.count !== list.expected) console.log(`  !! expected ${list.expected} users, saw ${row.count}`)
}
