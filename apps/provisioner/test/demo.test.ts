import { describe, expect, it } from 'vitest'
import { runDemo } from '../src/demo/demo.ts'
import { dropSchema, PG_URL, STORE_KINDS, uniqueSchema } from './helpers.ts'

describe.each(STORE_KINDS)('the demo end to end against all four simulators (%s)', (kind) => {
  it('takes every product type through its life and converges', { timeout: 60_000 }, async () => {
    const lines: string[] = []
    const schema = uniqueSchema()
    try {
      const code = await runDemo({
        io: { out: (l) => lines.push(l), err: (l) => lines.push(l) },
        keep: false,
        ...(kind === 'postgres' ? { postgres: { url: PG_URL as string, schema } } : {}),
      })
      const text = lines.join('\n')
      expect(code, text).toBe(0)
      expect(text).toMatch(/demo: every service converged/)
      for (const connector of ['axigen-domain', 'axigen-account', 'proxmox-kvm', 'computestacks-account'])
        expect(text).toContain(`connector=${connector}`)
      // Step lines in the seed-003 shape, with transitions and durations.
      expect(text).toMatch(/\[\+\] {2}4\. Clone from template +success \(set_dns -> clone\) \[\d+\.\d\ds\]/)
      expect(text).toMatch(/--- Suspend: service=4 .*\n.*\[\+\] {2}1\. Suspend/)
      expect(text).toContain('IP pool main: 0 of 31 IPv4 addresses in use after the termination')
      // No secret reaches the output.
      for (const secret of ['Demo-Axigen-Admin-1', 'sim-root-password', 'Mailbox-Pw-2-new', 'Container-Pw-1'])
        expect(text).not.toContain(secret)
    } finally {
      if (kind === 'postgres') await dropSchema(schema)
    }
  })
})
