import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { ReplyFramer } from '../../src/index.ts'
import { startAxigenSimulator } from '../../src/testing/index.ts'
import { loadGoldenTranscripts } from '../helpers/golden.ts'
import { ADMIN, seedGolden } from '../helpers/scenarios.ts'

/** Sends the recorded client lines to a fresh simulator and compares every reply byte for byte. */
async function replay(
  exchanges: { client: string | null; server: string }[],
  port: number,
): Promise<string[]> {
  const socket = net.connect(port, '127.0.0.1')
  const framer = new ReplyFramer()
  const raw: string[] = []
  let pending = Buffer.alloc(0)
  let resolveNext: (() => void) | undefined
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk])
    if (framer.push(chunk).length > 0) {
      raw.push(pending.toString('utf8'))
      pending = Buffer.alloc(0)
      resolveNext?.()
    }
  })
  const next = () => new Promise<void>((r) => (resolveNext = r))
  for (const e of exchanges) {
    const wait = next()
    if (e.client !== null) socket.write(`${e.client === '***' ? ADMIN.password : e.client}\r\n`)
    await wait
  }
  socket.destroy()
  return raw
}

describe('golden transcripts replayed against the simulator', () => {
  for (const transcript of loadGoldenTranscripts()) {
    it(`${transcript.name}: every reply matches byte for byte`, async () => {
      const sim = await startAxigenSimulator()
      seedGolden(sim)
      try {
        const raw = await replay(transcript.exchanges, sim.port)
        expect(raw).toEqual(transcript.exchanges.map((e) => e.server))
      } finally {
        await sim.close()
      }
    })
  }
})
