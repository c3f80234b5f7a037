// A control for the lifecycle bench's worker-count rows: how much more CPU the same work costs on this
// machine when more processes share its cores, with nothing of panelkit in it. Each client process does
// a fixed amount of JavaScript of the kind a job does (objects, JSON, a regular expression) and then one
// round trip over loopback TCP to an echo server in this process, N times; 1, 2 and 4 client processes
// run at once, twice each, alternating. Not a test: `npx tsx bench/oversubscription.ts`.
import { fork } from 'node:child_process'
import { type AddressInfo, createConnection, createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'

const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 6000)

async function client(port: number, n: number): Promise<void> {
  const socket = createConnection(port, '127.0.0.1')
  socket.setNoDelay(true)
  await new Promise((resolve) => socket.once('connect', resolve))
  let sink = 0
  const work = (i: number) => {
    const rows = []
    for (let k = 0; k < 40; k++)
      rows.push({
        id: `e-${i}-${k}`,
        action: `UPDATE Account user${k}`,
        lines: ['+OK', `quota = ${k}`],
        ms: k + 0.5,
      })
    const text = JSON.stringify(rows)
    sink += (JSON.parse(text) as unknown[]).length + text.replace(/quota = (\d+)/g, 'q=$1').length
  }
  const before = process.cpuUsage()
  let done = 0
  await new Promise<void>((resolve) => {
    socket.on('data', () => {
      if (++done >= n) return resolve()
      work(done)
      socket.write('x\n')
    })
    work(0)
    socket.write('x\n')
  })
  const used = process.cpuUsage(before)
  process.send?.({ cpuMs: (used.user + used.system) / 1000, sink })
  socket.destroy()
}

if (process.argv[2] === 'client') {
  await client(Number(process.argv[3]), Number(process.argv[4]))
} else {
  const server = createServer((c) => {
    c.setNoDelay(true)
    c.on('data', (d) => c.write(d))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const self = fileURLToPath(import.meta.url)
  const runs = new Map<number, number[]>()
  for (const processes of [1, 2, 4, 1, 2, 4]) {
    const children = Array.from({ length: processes }, () =>
      fork(self, ['client', String(port), String(ROUND_TRIPS)], { execArgv: ['--import', 'tsx'] }),
    )
    const cpu = await Promise.all(
      children.map(
        (c) =>
          new Promise<number>((resolve) => c.once('message', (m: { cpuMs: number }) => resolve(m.cpuMs))),
      ),
    )
    const perTrip = (cpu.reduce((a, b) => a + b, 0) * 1000) / (processes * ROUND_TRIPS)
    runs.set(processes, [...(runs.get(processes) ?? []), perTrip])
  }
  server.close()
  const one = Math.min(...(runs.get(1) ?? []))
  console.log(
    `The same work in 1, 2 and 4 processes at once on ${availableParallelism()} cores (${ROUND_TRIPS} round trips each, two runs)`,
  )
  console.log(
    '| client processes | CPU µs per round trip (two runs) | vs 1 process (the better run of each) |',
  )
  console.log('|---:|---|---:|')
  for (const [processes, values] of runs)
    console.log(
      `| ${processes} | ${values.map((v) => v.toFixed(1)).join(', ')} | ${(Math.min(...values) / one).toFixed(2)}× |`,
    )
}
