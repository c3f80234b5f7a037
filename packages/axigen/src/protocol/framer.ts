import { ProtocolError } from '@panelkit/core'

/**
 * Splits the CLI byte stream into replies. A reply is zero or more CRLF-terminated lines followed by a
 * prompt that has no CRLF after it (`<login> `, `<password> `, `<#> `, `<domain-account#> `). After
 * login every reply carries a status line (`+OK: …` / `-ERR: …`) right before the prompt; a `#` prompt
 * that does not follow a status line is treated as data, so a data line that happens to look like a
 * prompt and ends a TCP chunk cannot end the reply early.
 */

export const CRLF = '\r\n'

export type PromptKind = 'login' | 'password' | 'context'

export interface Prompt {
  kind: PromptKind
  /** The prompt as sent, without the trailing space: `<domain-account#>`. */
  raw: string
  /** Context names from the root: `['domain', 'account']`; empty at the root and before login. */
  path: string[]
}

export interface StatusLine {
  ok: boolean
  /** The text after `+OK: ` or `-ERR: `. */
  text: string
}

export interface Reply {
  /** Output lines before the status line, without their CRLF. */
  lines: string[]
  /** The `+OK`/`-ERR` line; always present after login, optional before it. */
  status: StatusLine | undefined
  prompt: Prompt
  /** Size of the reply on the wire, in bytes. */
  bytes: number
}

export interface FramerOptions {
  /** Longest line accepted (bytes, without CRLF). Defaults to 64 KiB. */
  maxLineBytes?: number
  /** Largest reply accepted (bytes). Defaults to 16 MiB. */
  maxReplyBytes?: number
}

/** Shared, never written to: resetting the leftover buffer after each reply allocates nothing. */
const EMPTY: Buffer = Buffer.alloc(0)

const PROMPT = /^<(login|password|([A-Za-z0-9-]*)#)> $/
const STATUS = /^(\+OK|-ERR)(?::\s?(.*))?$/

/** Parses a prompt text such as `<domain-account#> ` (with its trailing space). */
export function parsePrompt(text: string): Prompt | undefined {
  const m = PROMPT.exec(text)
  if (!m) return undefined
  const raw = text.slice(0, -1)
  if (m[1] === 'login') return { kind: 'login', raw, path: [] }
  if (m[1] === 'password') return { kind: 'password', raw, path: [] }
  const path = (m[2] ?? '').split('-').filter((p) => p.length > 0)
  return { kind: 'context', raw, path }
}

/** Parses `+OK: text` / `-ERR: text`; anything else is not a status line. */
export function parseStatusLine(line: string): StatusLine | undefined {
  const m = STATUS.exec(line)
  if (!m) return undefined
  return { ok: m[1] === '+OK', text: m[2] ?? '' }
}

/** The prompt text for a context path (`['domain','account']` → `<domain-account#> `). */
export function formatPrompt(path: readonly string[] | 'login' | 'password'): string {
  if (path === 'login' || path === 'password') return `<${path}> `
  return `<${path.join('-')}#> `
}

/**
 * Incremental reply framer with a leftover buffer (the node-postgres `pg-protocol` pattern): feed it
 * chunks in any split, it returns every complete reply and keeps the rest.
 */
export class ReplyFramer {
  private readonly maxLineBytes: number
  private readonly maxReplyBytes: number
  private buffer: Buffer = EMPTY
  private lines: string[] = []
  private replyBytes = 0

  constructor(options: FramerOptions = {}) {
    this.maxLineBytes = options.maxLineBytes ?? 64 * 1024
    this.maxReplyBytes = options.maxReplyBytes ?? 16 * 1024 * 1024
  }

  /** Bytes received but not yet part of a complete reply. */
  get pendingBytes(): number {
    return this.replyBytes + this.buffer.length
  }

  /** Complete lines of the reply being received (for diagnostics after a close). */
  get pendingLines(): readonly string[] {
    return this.lines
  }

  reset(): void {
    this.buffer = EMPTY
    this.lines = []
    this.replyBytes = 0
  }

  push(chunk: Buffer): Reply[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    const replies: Reply[] = []
    let start = 0
    for (;;) {
      const lf = this.buffer.indexOf(0x0a, start)
      if (lf === -1) break
      const end = lf > start && this.buffer[lf - 1] === 0x0d ? lf - 1 : lf
      if (end - start > this.maxLineBytes) this.tooLong()
      this.lines.push(this.buffer.toString('utf8', start, end))
      this.replyBytes += lf + 1 - start
      if (this.replyBytes > this.maxReplyBytes) this.tooBig()
      start = lf + 1
    }
    this.buffer = start === 0 ? this.buffer : this.buffer.subarray(start)
    if (this.buffer.length > this.maxLineBytes) this.tooLong()
    // A prompt is the unterminated tail; it is short, so only short tails are worth checking.
    if (this.buffer.length > 0 && this.buffer.length <= 256 && this.buffer[0] === 0x3c) {
      const prompt = parsePrompt(this.buffer.toString('latin1'))
      if (prompt) {
        const last = this.lines[this.lines.length - 1]
        const status = last === undefined ? undefined : parseStatusLine(last)
        if (prompt.kind !== 'context' || status) {
          const lines = status ? this.lines.slice(0, -1) : this.lines
          replies.push({ lines, status, prompt, bytes: this.replyBytes + this.buffer.length })
          this.lines = []
          this.replyBytes = 0
          this.buffer = EMPTY
        }
      }
    }
    return replies
  }

  private tooLong(): never {
    const error = new ProtocolError(
      `The Axigen CLI sent a line longer than ${this.maxLineBytes} bytes without a line break; ` +
        'the port may not be an Axigen CLI listener',
      { details: { maxLineBytes: this.maxLineBytes } },
    )
    this.reset()
    throw error
  }

  private tooBig(): never {
    const error = new ProtocolError(
      `The Axigen CLI reply exceeded ${this.maxReplyBytes} bytes; raise maxReplyBytes or narrow the listing`,
      { details: { maxReplyBytes: this.maxReplyBytes } },
    )
    this.reset()
    throw error
  }
}
