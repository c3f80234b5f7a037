import { startComputeStacksSimulator } from '../src/testing/index.ts'

/**
 * The simulator in its own process, so the benchmark's memory figures are the client's alone.
 * Seeds the requested number of users, reports how to reach it, and lives until told to stop.
 */
const users = Number(process.argv[2] ?? '0')
const sim = await startComputeStacksSimulator({ rateLimit: { limit: 1_000_000_000, windowMs: 300_000 } })
sim.seedUsers(users)
const first = [...sim.users.values()].find((u) => !u.isAdmin)
process.send?.({
  port: sim.port,
  cert: sim.cert,
  apiKey: sim.apiKey,
  apiSecret: sim.apiSecret,
  userId: first?.id ?? 1,
  users: sim.users.size,
})
process.on('message', async (message) => {
  if (message === 'stop') {
    await sim.close()
    process.exit(0)
  }
})
