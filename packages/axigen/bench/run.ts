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
  accountCommands,
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
// Every server runs in this process, so a round trip includes the server's own work. The measures
// take turns in blocks, so a noisy neighbour slows them all alike instead of skewing one ratio.
const BLOCKS = 10
const PER_BLOCK = 500
const listen = async (server: net.Server) => {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return (server.address() as net.AddressInfo).port
}
const echo = net.createServer((s) => {
  s.setNoDelay(true)
  s.on('data', (d) => s.write(d))
})
const echoSocket = net.connect(await listen(echo), '127.0.0.1')
echoSocket.setNoDelay(true)
await new Promise((r) => echoSocket.once('connect', r))
// A server that answers every line with fixed Axigen bytes: the client's own cost, with a server as
// cheap as the echo (the simulator parses and executes each command).
const VERSION_REPLY = '10.6.30|Linux|x86_64\r\n+OK: command successful\r\n<#> '
const fixed = net.createServer((s) => {
  s.setNoDelay(true)
  let stage = 0
  s.write("Welcome to AXIGEN's Command Line Interface\r\nYou must login first.\r\n<login> ")
  s.on('data', (d) => {
    for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) {
      if (stage === 0) s.write('<password> ')
      else if (stage === 1) s.write('+OK: Authentication successful\r\n<#> ')
      else s.write(VERSION_REPLY)
      stage = Math.min(stage + 1, 2)
    }
  })
})
const fixedPort = await listen(fixed)

const session = new CliSession({
  connect: socketTransportFactory({ host: '127.0.0.1', port: sim.port, secure: false }),
  username: 'admin',
  password: PASSWORD,
})
await session.open()
const version = encodeCommand('GET', 'VERSION')
const client = createAxigenClient({ ...base, pool: { max: 1 } })
const fixedClient = createAxigenClient({ ...base, port: fixedPort, probeVersion: false, pool: { max: 1 } })
const measures: [string, () => Promise<unknown>][] = [
  [
    'bare socket echo (baseline)',
    () =>
      new Promise<void>((r) => {
        echoSocket.once('data', () => r())
        echoSocket.write('GET VERSION\r\n')
      }),
  ],
  ['session.send(GET VERSION), simulator', () => session.send(version)],
  ['client.server.version(), simulator (pool + recorder)', () => client.server.version()],
  ['client.server.version(), fixed-reply server', () => fixedClient.server.version()],
]
const times = measures.map(() => [] as number[])
const spent = measures.map(() => 0)
for (const [, run] of measures) for (let i = 0; i < 200; i++) await run() // warm-up
for (let block = 0; block < BLOCKS; block++) {
  for (const [m, [, run]] of measures.entries()) {
    const list = times[m] as number[]
    const blockStart = performance.now()
    for (let i = 0; i < PER_BLOCK; i++) {
      const t = performance.now()
      await run()
      list.push(performance.now() - t)
    }
    spent[m] = (spent[m] ?? 0) + performance.now() - blockStart
  }
}
const echoMedian = median(times[0] as number[])
for (const [m, [label]] of measures.entries()) {
  const med = median(times[m] as number[])
  const rate = (BLOCKS * PER_BLOCK) / ((spent[m] ?? 1) / 1000)
  row(
    `(a) ${label}`,
    `${fmt(rate, 0)} ${m === 0 ? 'round trips' : 'commands'}/s`,
    `${fmt(med * 1000, 0)} µs`,
    `${fmt(med / echoMedian, 2)}×`,
  )
}
echoSocket.destroy()
echo.close()
await fixedClient.close()
fixed.close()

// ---- (b) create-account through the pool vs connect + login per operation ------------------------
// The baseline does per operation what Axigen's WHMCS module does (seed 002: each action "opens a TCP
// connection to the Axigen CLI port, sends the relevant CLI commands"; the connection test "opens a
// CLI session, authenticates, and exits"): connect (and TLS), banner, USER + password, the same create
// script as the pooled side, then EXIT. It uses a bare session, not a whole client, so it pays no
// client set-up. Whether AxiWHMCS probes GET VERSION first is not documented; Axigen's own Python
// clients do, so that variant is shown as a second row, not used as the baseline.
const createScript = (name: string) =>
  accountCommands.add('bench.example', {
    name,
    password: 'Account-Pass-1',
    quotas: { totalMessageSize: 1048576 },
  })
type TransportOptions = Parameters<typeof socketTransportFactory>[0]
async function perOperation(transport: TransportOptions, probeVersion: boolean, names: string[]) {
  const connect = socketTransportFactory(transport)
  const t = performance.now()
  for (const name of names) {
    const s = new CliSession({ connect, username: 'admin', password: PASSWORD, probeVersion })
    await s.runScript(createScript(name).steps)
    await s.close() // EXIT, then wait for the server to close
  }
  return performance.now() - t
}
async function pooled(c: ReturnType<typeof createAxigenClient>, names: string[]) {
  const t = performance.now()
  for (const name of names) await c.run(createScript(name))
  return performance.now() - t
}
let serial = 0
const names = (tag: string, n: number) => Array.from({ length: n }, () => `${tag}${serial++}`)
for (const [name, transport, extra] of [
  ['plain TCP', { host: '127.0.0.1', port: sim.port, secure: false }, {}],
  [
    'TLS',
    { host: '127.0.0.1', port: sim.tlsPort, secure: true, ca: cert.cert },
    { port: sim.tlsPort, secure: true, ca: cert.cert },
  ],
] as const) {
  const c = createAxigenClient({ ...base, ...extra, pool: { max: 1 } })
  await c.server.version() // the pool's one login happens before the clock starts
  let perOpMs = 0
  let probedMs = 0
  let pooledMs = 0
  const PER_OP = 60
  const POOLED = 300
  for (let block = 0; block < 5; block++) {
    perOpMs += await perOperation(transport, false, names('o', PER_OP))
    probedMs += await perOperation(transport, true, names('v', PER_OP))
    pooledMs += await pooled(c, names('p', POOLED))
  }
  await c.close()
  const perOpRate = (5 * PER_OP) / (perOpMs / 1000)
  const probedRate = (5 * PER_OP) / (probedMs / 1000)
  const pooledRate = (5 * POOLED) / (pooledMs / 1000)
  row(
    `(b) create-account, connect + login + EXIT each time (${name})`,
    `${fmt(perOpRate, 0)} ops/s`,
    '',
    '1.00×',
  )
  row(
    `(b) … the same with GET VERSION before login (${name})`,
    `${fmt(probedRate, 0)} ops/s`,
    '',
    `${fmt(probedRate / perOpRate, 2)}×`,
  )
  row(
    `(b) create-account through the pool (${name})`,
    `${fmt(pooledRate, 0)} ops/s`,
    '',
    `${fmt(pooledRate / perOpRate, 1)}×`,
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
