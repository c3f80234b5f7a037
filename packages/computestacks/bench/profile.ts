import { fork } from 'node:child_process'
import { Agent } from 'undici'
import { createComputeStacksClient } from '../src/index.ts'

/**
 * The client's request path in a loop, for `node --cpu-prof` (see the README): the simulator runs in a
 * child process so the profile holds only the client's work.
 */
const rounds = Number(process.env.PROFILE_ROUNDS ?? 5000)
const child = fork(new URL('./simulator-process.ts', import.meta.url), ['10'], {
  execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')),
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
})
const info = await new Promise<{
  port: number
  cert: string
  apiKey: string
  apiSecret: string
  userId: number
}>((resolve) => child.once('message', (m) => resolve(m as never)))
const agent = new Agent({ connect: { ca: info.cert }, connections: 1 })
const client = createComputeStacksClient({
  host: `127.0.0.1:${info.port}`,
  auth: { type: 'basic', apiKey: info.apiKey, apiSecret: info.apiSecret },
  dispatcher: agent,
})
const started = performance.now()
for (let i = 0; i < rounds; i++) await client.users.get(info.userId)
console.log(`${rounds} requests, ${((performance.now() - started) / rounds).toFixed(3)} ms each`)
await client.close()
await agent.close()
child.send('stop')
