/**
 * Benchmarks on loopback (not a test; never run in CI): `pnpm bench`. Every figure is compared with a
 * baseline measured in the same run, so the ratios mean something on any machine.
 */
import net from 'node:net'
import v8 from 'node:v8'
import vm from 'node:vm'
import { generateTestCertificate } from '@panelkit/core/testing'
import {
  type AxigenClientOptions,
  CliSession,
  createAxigenClient,
  encodeCommand,
  socketTransportFactory,
} from '../src/index.ts'
import { startAxigenSimulator } from '../src/testing/index.ts'

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] ?? 0
}
const fmt = (n: number, d = 1) => n.toFixed(d)
const rows: string[][] = []
const row = (...cells: string[]) => rows.push(cells)

const PASSWORD = 'Bench-Admin-Pass'
const cert = await generateTestCertificate()
const sim = await startAxigenSimulator({
  admins: { admin: PASSWORD },
  keepTranscripts: 0,
  tls: { key: cert.key, cert: cert.cert },
})
sim.addDomain('bench.example')
const base: AxigenClientOptions = {
  host: '127.0.0.1',
  port: sim.port,
  secure: false,
  username: 'admin',
  password: PASSWORD,
}

// ---- (a) one session vs a bare socket echo ------------------------------------------------------
const ROUNDS = 5000
const echo = net.createServer((s) => s.on('data', (d) => s.write(d)))
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
const echoPort = (echo.address() as net.AddressInfo).port
const echoSocket = net.connect(echoPort, '127.0.0.1')
echoSocket.setNoDelay(true)
await new Promise((r) => echoSocket.once('connect', r))
const echoTimes: number[] = []
for (let i = 0; i < ROUNDS; i++) {
  const t = performance.now()
  await new Promise<void>((r) => {
    echoSocket.once('data', () => r())
    echoSocket.write('GET VERSION\r\n')
  })
  echoTimes.push(performance.now() - t)
}
echoSocket.destroy()
echo.close()

const session = new CliSession({
  connect: socketTransportFactory({ host: '127.0.0.1', port: sim.port, secure: false }),
  username: 'admin',
  password: PASSWORD,
})
await session.open()
const version = encodeCommand('GET', 'VERSION')
const sessionTimes: number[] = []
let started = performance.now()
for (let i = 0; i < ROUNDS; i++) {
  const t = performance.now()
  await session.send(version)
  sessionTimes.push(performance.now() - t)
}
const sessionRate = ROUNDS / ((performance.now() - started) / 1000)

const client = createAxigenClient({ ...base, pool: { max: 1 } })
const clientTimes: number[] = []
started = performance.now()
for (let i = 0; i < ROUNDS; i++) {
  const t = performance.now()
  await client.server.version()
  clientTimes.push(performance.now() - t)
}
const clientRate = ROUNDS / ((performance.now() - started) / 1000)
const echoMedian = median(echoTimes)
row(
  '(a) bare socket echo (baseline)',
  `${fmt(ROUNDS / (echoTimes.reduce((a, b) => a + b, 0) / 1000), 0)} round trips/s`,
  `${fmt(echoMedian * 1000, 0)} µs`,
  '1.00×',
)
row(
  '(a) session.send(GET VERSION)',
  `${fmt(sessionRate, 0)} commands/s`,
  `${fmt(median(sessionTimes) * 1000, 0)} µs`,
  `${fmt(median(sessionTimes) / echoMedian, 2)}×`,
)
row(
  '(a) client.server.version() (pool + recorder)',
  `${fmt(clientRate, 0)} commands/s`,
  `${fmt(median(clientTimes) * 1000, 0)} µs`,
  `${fmt(median(clientTimes) / echoMedian, 2)}×`,
)

// ---- (b) create-account through the pool vs connect + login per operation ------------------------
async function createAccounts(
  label: string,
  options: Partial<AxigenClientOptions>,
  perOperation: boolean,
  count: number,
) {
  let n = 0
  const pooled = perOperation ? undefined : createAxigenClient({ ...base, ...options, pool: { max: 1 } })
  const t = performance.now()
  for (let i = 0; i < count; i++) {
    const c = pooled ?? createAxigenClient({ ...base, ...options, probeVersion: false, pool: { max: 1 } })
    await c.accounts.add('bench.example', {
      name: `${label}${n++}`,
      password: 'Account-Pass-1',
      quotas: { totalMessageSize: 1048576 },
    })
    if (!pooled) await c.close()
  }
  await pooled?.close()
  return count / ((performance.now() - t) / 1000)
}
for (const [name, options] of [
  ['plain TCP', {}],
  ['TLS', { port: sim.tlsPort, secure: true, ca: cert.cert }],
] as const) {
  const tag = name === 'TLS' ? 't' : 'p'
  const perOp = await createAccounts(`${tag}once`, options, true, 300)
  const pooled = await createAccounts(`${tag}pool`, options, false, 2000)
  row(`(b) create-account, connect + login each time (${name})`, `${fmt(perOp, 0)} ops/s`, '', '1.00×')
  row(
    `(b) create-account through the pool (${name})`,
    `${fmt(pooled, 0)} ops/s`,
    '',
    `${fmt(pooled / perOp, 1)}×`,
  )
}

// ---- (c) memory before and after 100,000 commands -----------------------------------------------
for (let i = 0; i < 2000; i++) await client.server.version()
gc()
gc()
const before = process.memoryUsage().heapUsed
for (let i = 0; i < 100_000; i++) await client.server.version()
gc()
gc()
const after = process.memoryUsage().heapUsed
row('(c) heap before 100,000 commands', `${fmt(before / 1048576)} MiB`, '', '')
row(
  '(c) heap after 100,000 commands',
  `${fmt(after / 1048576)} MiB`,
  '',
  `${fmt(((after - before) / before) * 100, 1)} %`,
)

await client.close()
await session.close()
await sim.close()

const header = ['measure', 'throughput', 'median round trip', 'ratio']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`
console.log(`Node ${process.version}, ${process.platform}/${process.arch}, loopback`)
console.log(line(header))
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
for (const r of rows) console.log(line(r))
