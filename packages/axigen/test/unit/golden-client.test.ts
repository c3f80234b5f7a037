import { describe, expect, it } from 'vitest'
import { createAxigenClient } from '../../src/index.ts'
import { loadGoldenTranscripts } from '../helpers/golden.ts'
import { ScriptedTransport } from '../helpers/memory-transport.ts'
import { ADMIN, SCENARIOS } from '../helpers/scenarios.ts'

describe('golden transcripts replayed against the client', () => {
  const golden = new Map(loadGoldenTranscripts().map((t) => [t.name, t]))

  it('has a transcript for every scenario', () => {
    expect([...golden.keys()].sort()).toEqual(SCENARIOS.map((s) => s.name).sort())
  })

  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: the client sends exactly the recorded lines and understands the replies`, async () => {
      const transcript = golden.get(scenario.name)
      expect(transcript).toBeDefined()
      const transport = new ScriptedTransport(transcript?.exchanges ?? [], ADMIN.password)
      const client = createAxigenClient({
        host: 'golden',
        secure: false,
        ...ADMIN,
        pool: { max: 1 },
        transport: async () => transport,
      })
      const result = await scenario.run(client)
      await client.close()
      expect(transport.mismatches).toEqual([])
      expect(transport.finished).toBe(true)
      if (scenario.name === 'list-domains') {
        expect(result).toEqual([
          { name: 'example.org', enabled: true },
          { name: 'parked.net', enabled: false },
        ])
      }
      if (scenario.name === 'show-account') {
        expect(result).toMatchObject({
          name: 'alice',
          registry: { mboxSizeKb: 2048, messageCount: 17, folderCount: 6 },
        })
      }
      if (scenario.name === 'login-and-version')
        expect(result).toMatchObject({ version: '10.6.30', os: 'Linux' })
      if (scenario.name.startsWith('error')) expect(result).toEqual({ rejected: 'PANELKIT_ERR_COMMAND' })
    })
  }
})
