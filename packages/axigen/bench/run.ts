/**
 * Benchmarks on loopback (not a test; never run in CI): `pnpm bench`. Every figure is compared with a
 * baseline measured in the same run, so the ratios mean something on any machine.
 */
import net from 'node:net'
import tls from 'node:tls'
import v8 from 'node:v8'
import vm from 'node:vm'
import {
  type AxigenClientOptions,
  accountCommands,
  CliSession,
  createAxigenClient,
  encodeCommand,
  socketTransportFactory,
} from '@panelkit/axigen'
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { generateTestCertificate } from '@panelkit/core/testing'

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
  ['client.server.getVersion(), simulator (pool + recorder)', () => client.server.getVersion()],
  ['client.server.getVersion(), fixed-reply server', () => fixedClient.server.getVersion()],
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
//
// TLS: the pooled client verifies the certificate (its default), so the baseline verifies it too. The
// module is PHP, and PHP's TLS streams build a fresh OpenSSL context for every connection and, when
// neither the stream context nor php.ini names a CA file (AxiWHMCS's server form has no such field),
// load OpenSSL's default trust store into it (php-src ext/openssl/xp_ssl.c). That store is the
// system's public-CA bundle, where an operator also adds a private CA. The benchmark models it as
// Node's bundled Mozilla root store (the same list the distributions ship) plus the simulator's CA,
// given to every baseline connection. Two other ways a PHP module could be set up are measured beside
// it: a CA file with only the server's CA, and verification turned off (the pool then skips it too).
const createScript = (name: string) =>
  accountCommands.add('bench.example', {
    name,
    password: 'Account-Pass-1',
    quotas: { totalMessageSize: 1048576 },
  })
type TransportOptions = Parameters<typeof socketTransportFactory>[0]
async function perOperation(
  transport: TransportOptions,
  probeVersion: boolean,
  names: string[],
  concurrency: number,
) {
  const t = performance.now()
  await inParallel(names, concurrency, async (name) => {
    // A factory per operation: like PHP, every connection builds its TLS context (and trust store)
    // anew; the client's own factory builds it once and shares it between connections.
    const connect = socketTransportFactory(transport)
    const s = new CliSession({ connect, username: 'admin', password: PASSWORD, probeVersion })
    await s.runScript(createScript(name).steps)
    await s.close() // EXIT, then wait for the server to close
  })
  return performance.now() - t
}
async function pooled(c: ReturnType<typeof createAxigenClient>, names: string[], concurrency: number) {
  const t = performance.now()
  await inParallel(names, concurrency, (name) => c.run(createScript(name)))
  return performance.now() - t
}
/** `concurrency` callers take the next name until none is left (callers = 1 is strictly serial). */
async function inParallel(names: string[], concurrency: number, work: (name: string) => Promise<unknown>) {
  let next = 0
  const caller = async () => {
    while (next < names.length) await work(names[next++] as string)
  }
  await Promise.all(Array.from({ length: concurrency }, caller))
}
let serial = 0
const names = (tag: string, n: number) => Array.from({ length: n }, () => `${tag}${serial++}`)

interface Scenario {
  label: string
  transport: TransportOptions
  /** 1 = one operation at a time (the worst case for a pool); 4 = the provisioner's default workers. */
  concurrency: number
  perOp: number
  probed?: boolean
}
// The server is addressed by name, as a WHMCS server entry usually is ("Hostname: the Axigen server
// hostname or IP"): PHP resolves it again for every connection, the pool once per session. `localhost`
// comes from the hosts file, the cheapest resolution there is (no DNS query). A by-address row shows
// the plain case without it.
const HOST = 'localhost'
const plain: TransportOptions = { host: HOST, port: sim.port, secure: false }
const plainByAddress: TransportOptions = { host: '127.0.0.1', port: sim.port, secure: false }
const tlsBase = { host: HOST, port: sim.tlsPort, secure: true } as const
const systemStore: TransportOptions = { ...tlsBase, ca: [...tls.rootCertificates, cert.cert] }
const oneCa: TransportOptions = { ...tlsBase, ca: cert.cert }
const noVerify: TransportOptions = { ...tlsBase, insecure: true, onWarning: () => {} }
// The default-trust-store scenarios run last: the garbage of their large TLS contexts would otherwise
// be collected during the other scenarios' timed blocks.
const scenarios: Scenario[] = [
  { label: 'plain TCP, 1 at a time', transport: plain, concurrency: 1, perOp: 40, probed: true },
  { label: 'plain TCP, 4 in flight', transport: plain, concurrency: 4, perOp: 40 },
  { label: 'plain TCP by address, 1 at a time', transport: plainByAddress, concurrency: 1, perOp: 40 },
  { label: 'TLS, not verified, 1 at a time', transport: noVerify, concurrency: 1, perOp: 40 },
  { label: 'TLS, verified with one CA file, 1 at a time', transport: oneCa, concurrency: 1, perOp: 40 },
  {
    label: 'TLS, verified with the default trust store, 1 at a time',
    transport: systemStore,
    concurrency: 1,
    perOp: 16,
    probed: true,
  },
  {
    label: 'TLS, verified with the default trust store, 4 in flight',
    transport: systemStore,
    concurrency: 4,
    perOp: 16,
  },
]
// Warm-up, untimed: the first scenario would otherwise also pay the JIT's first compilations.
{
  const c = createAxigenClient({ ...base, pool: { max: 1 } })
  await pooled(c, names('w', 300), 1)
  await perOperation(plain, false, names('w', 60), 1)
  await c.close()
}
// What a fresh TLS context costs with each trust store: the per-connection price the baseline pays.
for (const [label, ca] of [
  ['default trust store', systemStore.ca],
  ['one CA file', oneCa.ca],
] as const) {
  const t = performance.now()
  for (let i = 0; i < 10; i++) tls.createSecureContext({ ca: ca as string | string[] })
  row(
    `(b) building one TLS client context with the ${label}`,
    '',
    `${fmt((performance.now() - t) / 10, 2)} ms`,
    '',
  )
}
const B_BLOCKS = 7
const POOLED = 240
for (const { label, transport, concurrency, perOp, probed } of scenarios) {
  const c = createAxigenClient({
    ...base,
    ...transport,
    onWarning: () => {},
    pool: { max: concurrency },
  } as AxigenClientOptions)
  // The pool's logins happen before the clock starts.
  await Promise.all(Array.from({ length: concurrency }, () => c.server.getVersion()))
  let perOpMs = 0
  let probedMs = 0
  let pooledMs = 0
  const blockRatios: number[] = []
  for (let block = 0; block < B_BLOCKS; block++) {
    const o = await perOperation(transport, false, names('o', perOp), concurrency)
    if (probed) probedMs += await perOperation(transport, true, names('v', perOp), 1)
    const p = await pooled(c, names('p', POOLED), concurrency)
    perOpMs += o
    pooledMs += p
    blockRatios.push(POOLED / p / (perOp / o))
  }
  await c.close()
  const perOpRate = (B_BLOCKS * perOp) / (perOpMs / 1000)
  const pooledRate = (B_BLOCKS * POOLED) / (pooledMs / 1000)
  const sorted = [...blockRatios].sort((a, b) => a - b)
  row(`(b) connect + login + create + EXIT each time (${label})`, `${fmt(perOpRate, 0)} ops/s`, '', '1.00×')
  if (probed) {
    const probedRate = (B_BLOCKS * perOp) / (probedMs / 1000)
    row(
      `(b) … the same with GET VERSION before login (${label})`,
      `${fmt(probedRate, 0)} ops/s`,
      '',
      `${fmt(probedRate / perOpRate, 2)}×`,
    )
  }
  row(
    `(b) create through the pool (${label})`,
    `${fmt(pooledRate, 0)} ops/s`,
    '',
    `${fmt(pooledRate / perOpRate, 1)}× (blocks ${fmt(sorted[0] ?? 0, 1)}–${fmt(sorted.at(-1) ?? 0, 1)})`,
  )
}

// ---- (c) memory before and after 100,000 commands -----------------------------------------------
for (let i = 0; i < 2000; i++) await client.server.getVersion()
gc()
gc()
const before = process.memoryUsage().heapUsed
for (let i = 0; i < 100_000; i++) await client.server.getVersion()
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
