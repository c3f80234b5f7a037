import { describe, expect, it } from 'vitest'
import { parsePrompt, type Reply, ReplyFramer } from '../../src/protocol/framer.ts'
import { loadGoldenTranscripts } from '../helpers/golden.ts'

const golden = loadGoldenTranscripts()
const serverTexts = golden.flatMap((t) => t.exchanges.map((e) => e.server))

function frameAll(bytes: Buffer, cuts: number[]): Reply[] {
  const framer = new ReplyFramer()
  const out: Reply[] = []
  let at = 0
  for (const cut of [...cuts, bytes.length]) {
    out.push(...framer.push(bytes.subarray(at, cut)))
    at = cut
  }
  return out
}

describe('ReplyFramer', () => {
  it('has golden replies to work on', () => {
    expect(serverTexts.length).toBeGreaterThan(10)
  })

  it('frames every golden reply identically when split at every byte', () => {
    for (const text of serverTexts) {
      const bytes = Buffer.from(text, 'utf8')
      const whole = frameAll(bytes, [])
      expect(whole, JSON.stringify(text)).toHaveLength(1)
      for (let i = 1; i < bytes.length; i++) {
        const split = frameAll(bytes, [i])
        expect(split, `${JSON.stringify(text)} split at ${i}`).toEqual(whole)
      }
    }
  })

  it('frames a reply fed one byte at a time', () => {
    for (const text of serverTexts) {
      const bytes = Buffer.from(text, 'utf8')
      const cuts = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)
      expect(frameAll(bytes, cuts)).toEqual(frameAll(bytes, []))
    }
  })

  it('reads status, lines and the context path', () => {
    const [reply] = new ReplyFramer().push(Buffer.from('a\r\nb\r\n+OK: fine\r\n<domain-account#> '))
    expect(reply?.lines).toEqual(['a', 'b'])
    expect(reply?.status).toEqual({ ok: true, text: 'fine' })
    expect(reply?.prompt.path).toEqual(['domain', 'account'])
  })

  it('does not end a reply at a prompt-looking data line without a status line', () => {
    const framer = new ReplyFramer()
    expect(framer.push(Buffer.from('Name\r\n<abc#> '))).toHaveLength(0)
    const replies = framer.push(Buffer.from('more\r\n+OK: x\r\n<#> '))
    expect(replies).toHaveLength(1)
    expect(replies[0]?.lines).toEqual(['Name', '<abc#> more'])
  })

  it('keeps multi-byte UTF-8 characters split across chunks', () => {
    const bytes = Buffer.from('name = "Zoë 日本"\r\n+OK: ok\r\n<#> ')
    for (let i = 1; i < bytes.length; i++) {
      const [r] = frameAll(bytes, [i])
      expect(r?.lines[0]).toBe('name = "Zoë 日本"')
    }
  })

  it('refuses a line longer than maxLineBytes, terminated or not', () => {
    const framer = new ReplyFramer({ maxLineBytes: 16 })
    expect(() => framer.push(Buffer.from(`${'x'.repeat(17)}\r\n`))).toThrow(/longer than 16 bytes/)
    const other = new ReplyFramer({ maxLineBytes: 16 })
    expect(() => other.push(Buffer.from('y'.repeat(40)))).toThrow(/longer than 16 bytes/)
    expect(
      new ReplyFramer({ maxLineBytes: 16 }).push(Buffer.from(`${'z'.repeat(16)}\r\n+OK: a\r\n<#> `)),
    ).toHaveLength(1)
  })

  it('refuses a reply larger than maxReplyBytes', () => {
    const framer = new ReplyFramer({ maxReplyBytes: 100 })
    const line = `${'r'.repeat(30)}\r\n`
    expect(() => framer.push(Buffer.from(line.repeat(4)))).toThrow(/exceeded 100 bytes/)
  })

  it('parses prompts strictly', () => {
    expect(parsePrompt('<#> ')?.path).toEqual([])
    expect(parsePrompt('<login> ')?.kind).toBe('login')
    expect(parsePrompt('<password> ')?.kind).toBe('password')
    expect(parsePrompt('<user@example.com> ')).toBeUndefined()
    expect(parsePrompt('<#>')).toBeUndefined()
  })
})
