import type { Transport } from '../../src/index.ts'

/** An in-memory transport that plays a golden transcript's server side and checks the client's lines. */
export class ScriptedTransport implements Transport {
  readonly description = 'scripted'
  readonly sent: string[] = []
  closed = false
  private data: ((chunk: Buffer) => void) | undefined
  private close: ((e: Error | undefined) => void) | undefined
  private readonly exchanges: { client: string | null; server: string }[]
  private index = 0
  readonly mismatches: string[] = []
  private readonly password: string

  constructor(exchanges: { client: string | null; server: string }[], password: string) {
    this.exchanges = exchanges
    this.password = password
  }

  onData(handler: (chunk: Buffer) => void): void {
    this.data = handler
    // The banner is the first exchange, sent as soon as someone listens; split to exercise the framer.
    queueMicrotask(() => this.play())
  }

  onClose(handler: (e: Error | undefined) => void): void {
    this.close = handler
  }

  private play(): void {
    const next = this.exchanges[this.index]
    if (next && next.client === null) {
      this.index++
      this.emit(next.server)
    }
  }

  private emit(text: string): void {
    const bytes = Buffer.from(text)
    const mid = Math.floor(bytes.length / 2)
    this.data?.(bytes.subarray(0, mid))
    this.data?.(bytes.subarray(mid))
  }

  write(data: string): void {
    const line = data.replace(/\r\n$/, '')
    this.sent.push(line)
    if (/^(EXIT|QUIT)$/.test(line)) return
    const next = this.exchanges[this.index++]
    if (!next) {
      this.mismatches.push(`unexpected extra line ${line}`)
      return
    }
    const expected = next.client === '***' ? this.password : next.client
    if (expected !== line) this.mismatches.push(`expected ${expected} got ${line}`)
    queueMicrotask(() => this.emit(next.server))
  }

  get finished(): boolean {
    return this.index >= this.exchanges.length
  }

  end(): void {
    this.destroy()
  }

  destroy(): void {
    if (this.closed) return
    this.closed = true
    this.close?.(undefined)
  }
}
