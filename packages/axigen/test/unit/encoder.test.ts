import { hasErrorCode } from '@panelkit/core'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeCommand, encodePasswordLine, list, secret, value } from '../../src/protocol/encoder.ts'
import { tokenize } from '../../src/protocol/parser.ts'
import { CliSession } from '../../src/session/session.ts'
import { ScriptedTransport } from '../helpers/memory-transport.ts'

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/

describe('value encoder', () => {
  it('round-trips arbitrary strings through the simulator parser as exactly one value', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (s) => {
        if (CONTROL.test(s)) {
          expect(() => value(s)).toThrow(expect.objectContaining({ code: 'PANELKIT_ERR_VALIDATION' }))
          return
        }
        const { line } = encodeCommand('SET', 'password', value(s))
        const tokens = tokenize(line)
        expect(tokens).toHaveLength(3)
        expect(tokens[2]).toEqual({ kind: 'word', value: s, quoted: true })
      }),
      { numRuns: 2000 },
    )
  })

  it('keeps several hostile values apart in one command', () => {
    const hostile = fc.string({
      unit: fc.constantFrom('"', '\\', ' ', "'", '(', ')', 'a', 'é', '#', '<', '>'),
    })
    fc.assert(
      fc.property(hostile, hostile, (a, b) => {
        const { line } = encodeCommand('ADD', 'Account', 'name', value(a), 'password', value(b))
        const tokens = tokenize(line)
        expect(tokens.map((t) => (t.kind === 'word' ? t.value : t.items))).toEqual([
          'ADD',
          'Account',
          'name',
          a,
          'password',
          b,
        ])
      }),
    )
  })

  it('refuses CR, LF, NUL and other control characters with VALIDATION, never echoing the value', () => {
    for (const bad of ['a\rb', 'a\nb', 'a\u0000b', 'x\u001bq', 'del\u007f', 'nel\u0085', 'ls\u2028']) {
      expect(() => secret(bad)).toThrow(expect.objectContaining({ code: 'PANELKIT_ERR_VALIDATION' }))
      expect(() => encodePasswordLine(bad)).toThrow(
        expect.objectContaining({ code: 'PANELKIT_ERR_VALIDATION' }),
      )
      try {
        secret(bad)
      } catch (error) {
        expect((error as Error).message).not.toContain(bad)
      }
    }
  })

  it('masks secrets in the log form and refuses non-keywords and odd list items', () => {
    const c = encodeCommand('SET', 'password', secret('hunter2'))
    expect(c.line).toBe('SET password "hunter2"')
    expect(c.masked).toBe('SET password ***')
    expect(() => encodeCommand('SET x')).toThrow(/keyword/)
    expect(encodeCommand('SET', 'services', list(['imap', 'pop3'])).line).toBe('SET services (imap pop3)')
    expect(encodeCommand('SET', 'services', list([])).line).toBe('SET services ()')
    expect(() => list(['imap) DELETE'])).toThrow(/plain word/)
  })
})

describe('the login line of a bare session', () => {
  it('refuses a control character in a username that needs quoting, and sends nothing after the banner', async () => {
    const transport = new ScriptedTransport(
      [{ client: null, server: "Welcome to AXIGEN's Command Line Interface\r\n<login> " }],
      'pw',
    )
    const session = new CliSession({
      connect: async () => transport,
      username: 'ad min\r\nDELETE Domain name "victim.example"',
      password: 'pw',
      probeVersion: false,
    })
    const error = await session.open().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(hasErrorCode(error, 'VALIDATION')).toBe(true)
    expect(transport.sent).toEqual([])
  })
})
