import {
  AbortedError,
  AuthError,
  type CallRecorder,
  CommandError,
  ConnectionError,
  isPanelkitError,
  type PanelkitError,
  ProtocolError,
  TimeoutError,
} from '@panelkit/core'
import { type EncodedCommand, encodeCommand, encodePasswordLine, value } from '../protocol/encoder.ts'
import { CRLF, type FramerOptions, type Reply, ReplyFramer } from '../protocol/framer.ts'
import { parseVersion, type VersionInfo } from '../protocol/output.ts'
import type { Transport, TransportFactory } from '../transport/transport.ts'

/** One command of a script, with the context it must leave the session in (checked from the prompt). */
export interface ScriptStep {
  command: EncodedCommand
  /** Expected context path after the command, `domain-account` style (`''` = root). */
  expect?: string
  /** Added to the COMMAND error when the server refuses this step: which setting to change. */
  hint?: string
}

export interface SessionOptions {
  connect: TransportFactory
  username: string
  password: string
  /** Sends `GET VERSION` before logging in (the reply is kept as `session.version`). Default true. */
  probeVersion?: boolean
  /** Time allowed for the banner after connecting (a silent port usually expects TLS). */
  greetingTimeoutMs?: number
  /** Default time limit for one command's reply. */
  commandTimeoutMs?: number
  framer?: FramerOptions
}

export interface SendOptions {
  timeoutMs?: number
  signal?: AbortSignal | undefined
}

type SessionState = 'new' | 'opening' | 'ready' | 'closed'

interface Waiter {
  resolve: (r: Reply) => void
  reject: (e: PanelkitError) => void
  /** When the wait expires (performance.now() milliseconds). */
  deadline: number
  onTimeout: () => PanelkitError
  signal: AbortSignal | undefined
}

const BACK = encodeCommand('BACK')
const EXIT = encodeCommand('EXIT')
const GET_VERSION = encodeCommand('GET', 'VERSION')

/**
 * A logged-in CLI connection: reads the banner, logs in, tracks the context stack from every prompt,
 * runs one command at a time and returns to the root after a failure. A socket the server closed while
 * idle is reopened (and logged in again) transparently at the start of the next script.
 */
export class CliSession {
  readonly options: SessionOptions
  version: VersionInfo | undefined
  /** Context path read from the last prompt; empty at the root. */
  context: string[] = []
  /** When the session last finished a command (ms since epoch). */
  lastUsed = Date.now()
  /** Commands sent over the session's lifetime (all connections). */
  commands = 0
  connects = 0
  private state: SessionState = 'new'
  private transport: Transport | undefined
  private framer: ReplyFramer
  /** The reply being waited for (at most one: one command in flight). */
  private waiter: Waiter | undefined
  /** One timer per session, re-armed lazily, instead of a setTimeout/clearTimeout pair per command. */
  private timer: NodeJS.Timeout | undefined
  private timerAt = 0
  private busy = false
  private readonly lockWaiters: (() => void)[] = []
  private closeReason: PanelkitError | undefined
  /** Whether this session already asked GET VERSION (once per session, before its first login). */
  private versionProbed = false
  /** The unframed lines the server sent just before it closed the connection. */
  private closedWith: readonly string[] = []

  /** ES-private, and masked in `options`, so that logging a client or its pool never prints it. */
  readonly #password: string

  constructor(options: SessionOptions) {
    this.#password = options.password
    this.options = { ...options, password: '***' }
    this.framer = new ReplyFramer(options.framer)
  }

  get ready(): boolean {
    return this.state === 'ready' && this.transport !== undefined && !this.transport.closed
  }

  get atRoot(): boolean {
    return this.context.length === 0
  }

  get description(): string {
    return this.transport?.description ?? 'axigen'
  }

  /** Connects and logs in (again), unless already logged in. */
  async open(signal?: AbortSignal, recorder?: CallRecorder): Promise<void> {
    if (this.ready) return
    this.teardown()
    this.state = 'opening'
    this.closeReason = undefined
    this.closedWith = []
    const login = async () => {
      const transport = await this.options.connect(signal)
      this.transport = transport
      this.connects++
      this.framer = new ReplyFramer(this.options.framer)
      transport.onData((chunk) => this.onData(chunk))
      transport.onClose((error) => this.onClose(error))
      const greetingTimeoutMs = this.options.greetingTimeoutMs ?? 10_000
      const banner = await this.wait(
        greetingTimeoutMs,
        signal,
        () =>
          new TimeoutError(
            `Connected to ${transport.description} but no Axigen banner arrived within ${greetingTimeoutMs} ms. ` +
              'A silent port usually expects TLS: turn Secure on (or use the plain CLI port), and check that ' +
              'the port belongs to the Axigen CLI service.',
            { details: { diagnosis: 'no-banner' } },
          ),
      )
      if (banner.prompt.kind !== 'login') {
        throw new ProtocolError(
          `${transport.description} did not show the <login> prompt after its banner; is it an Axigen CLI port?`,
          { details: { diagnosis: 'not-axigen', banner: banner.lines.slice(0, 3) } },
        )
      }
      // Before login, where GET VERSION is confirmed (notes §1.4), and once per session: a reconnect
      // does not ask again (after login the command is unconfirmed and may be refused).
      if ((this.options.probeVersion ?? true) && !this.versionProbed) {
        this.versionProbed = true
        const reply = await this.exchange(GET_VERSION.line, this.commandTimeout(), signal)
        const line = reply.lines.find((l) => parseVersion(l))
        if (reply.status?.ok && line) this.version = parseVersion(line)
      }
      // Real clients send the name bare; quote it only when it is not a plain word.
      const name = this.options.username
      const user = /^[A-Za-z0-9._@+-]+$/.test(name)
        ? { line: `USER ${name}`, masked: `USER ${name}` }
        : encodeCommand('USER', value(name, 'username'))
      const afterUser = await this.exchange(user.line, this.commandTimeout(), signal)
      if (afterUser.prompt.kind !== 'password') throw this.authError(afterUser)
      let afterPassword: Reply
      try {
        afterPassword = await this.exchange(encodePasswordLine(this.#password), this.commandTimeout(), signal)
      } catch (error) {
        // The notes leave open what follows a refused password (§1.5, §7.2): a new <login> prompt, or
        // `-ERR` and a close. A close whose last words were an -ERR status is a refused login.
        const refusal = this.closedWith.find((l) => l.startsWith('-ERR'))
        if (refusal !== undefined && isPanelkitError(error) && error.kind === 'CONNECTION') {
          throw this.authError(undefined, refusal.replace(/^-ERR:?\s*/, ''), error)
        }
        throw error
      }
      if (afterPassword.prompt.kind !== 'context' || !afterPassword.status?.ok) {
        throw this.authError(afterPassword)
      }
      this.context = afterPassword.prompt.path
      this.state = 'ready'
    }
    try {
      if (recorder) {
        await recorder.call(
          {
            system: 'axigen',
            action: 'LOGIN',
            access: 'read',
            target: this.options.username,
            request: { commands: ['GET VERSION', `USER "${this.options.username}"`, '***'] },
            summarize: () => ({ version: this.version?.version }),
          },
          login,
        )
      } else {
        await login()
      }
    } catch (error) {
      this.teardown()
      this.state = 'closed'
      throw error
    }
  }

  private authError(reply: Reply | undefined, serverText?: string, cause?: unknown): PanelkitError {
    const text = serverText ?? reply?.status?.text ?? reply?.lines.join(' ') ?? ''
    return new AuthError(
      `The Axigen CLI refused the login of ${JSON.stringify(this.options.username)}${text ? ` (${text})` : ''}: ` +
        'the username or password is wrong, or the admin account is disabled. Verify the credentials by ' +
        'logging in to Axigen WebAdmin, then update the server password here.',
      { details: { diagnosis: 'auth', serverText: text }, ...(cause === undefined ? {} : { cause }) },
    )
  }

  private commandTimeout(): number {
    return this.options.commandTimeoutMs ?? 30_000
  }

  /** Runs `fn` with the session to itself (one command in flight); callers queue in order. */
  private async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.busy) await new Promise<void>((resolve) => this.lockWaiters.push(resolve))
    this.busy = true
    try {
      return await fn()
    } finally {
      // Hand the session straight to the next caller, or mark it free.
      const next = this.lockWaiters.shift()
      if (next) next()
      else this.busy = false
    }
  }

  /** Sends one command and returns its reply; `-ERR` is a reply, not an exception, here. */
  send(command: EncodedCommand, options: SendOptions = {}): Promise<Reply> {
    return this.exclusive(() => this.sendNow(command, options))
  }

  private async sendNow(command: EncodedCommand, options: SendOptions): Promise<Reply> {
    if (!this.ready) {
      throw (
        this.closeReason ??
        new ConnectionError(`The Axigen CLI session to ${this.description} is not open`, {
          details: { diagnosis: 'closed' },
        })
      )
    }
    const reply = await this.exchange(
      command.line,
      options.timeoutMs ?? this.commandTimeout(),
      options.signal,
      command,
    )
    this.context = reply.prompt.path
    return reply
  }

  private exchange(
    line: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    command?: EncodedCommand,
  ): Promise<Reply> {
    const transport = this.transport
    if (!transport || transport.closed) {
      return Promise.reject(
        this.closeReason ?? new ConnectionError(`The connection to ${this.description} is closed`),
      )
    }
    if (signal?.aborted) {
      return Promise.reject(new AbortedError('The Axigen command was aborted', { cause: signal.reason }))
    }
    const pending = this.wait(timeoutMs, signal, () => {
      const shown = command?.masked ?? line.split(' ')[0]
      return new TimeoutError(
        `The Axigen CLI at ${transport.description} did not answer ${shown} within ${timeoutMs} ms; ` +
          'the connection was closed (raise timeoutMs for long jobs).',
        { details: { diagnosis: 'command-timeout' } },
      )
    })
    transport.write(line + CRLF)
    this.commands++
    return pending
  }

  private wait(
    timeoutMs: number,
    signal: AbortSignal | undefined,
    onTimeout: () => PanelkitError,
  ): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      if (signal?.aborted) {
        const error = new AbortedError('The Axigen command was aborted', { cause: signal.reason })
        this.fail(error)
        reject(error)
        return
      }
      const deadline = performance.now() + timeoutMs
      this.waiter = { resolve, reject, deadline, onTimeout, signal }
      signal?.addEventListener('abort', this.onAbort, { once: true })
      // The armed timer must fire at or before this deadline; when it fires early it re-arms itself.
      if (this.timer === undefined || this.timerAt > deadline) this.armTimer(timeoutMs)
    })
  }

  /** Ends the current wait (the reply came, or it failed) and returns its waiter. */
  private takeWaiter(): Waiter | undefined {
    const waiter = this.waiter
    if (!waiter) return undefined
    this.waiter = undefined
    waiter.signal?.removeEventListener('abort', this.onAbort)
    return waiter
  }

  private armTimer(ms: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerAt = performance.now() + ms
    this.timer = setTimeout(this.onTimer, ms)
    // A pending command always has an open socket holding the process; an idle session must not.
    this.timer.unref()
  }

  private readonly onTimer = (): void => {
    this.timer = undefined
    const waiter = this.waiter
    if (!waiter) return
    const left = waiter.deadline - performance.now()
    if (left > 0) {
      this.armTimer(Math.ceil(left))
      return
    }
    this.takeWaiter()
    const error = waiter.onTimeout()
    waiter.reject(error)
    this.fail(error)
  }

  private readonly onAbort = (): void => {
    const waiter = this.takeWaiter()
    if (!waiter) return
    const error = new AbortedError('The Axigen command was aborted', { cause: waiter.signal?.reason })
    waiter.reject(error)
    // The reply may still come; the connection cannot be trusted to be in step any more.
    this.fail(error)
  }

  private onData(chunk: Buffer): void {
    let replies: Reply[]
    try {
      replies = this.framer.push(chunk)
    } catch (error) {
      this.fail(isPanelkitError(error) ? error : new ProtocolError('Unreadable reply', { cause: error }))
      return
    }
    for (const reply of replies) {
      const waiter = this.takeWaiter()
      if (!waiter) {
        this.fail(new ProtocolError(`${this.description} sent a reply nobody asked for`))
        return
      }
      this.lastUsed = Date.now()
      waiter.resolve(reply)
    }
  }

  private onClose(error: Error | undefined): void {
    const pending = this.framer.pendingLines
    this.closedWith = pending
    const said = pending.length > 0 ? ` after sending: ${pending.slice(-2).join(' / ').slice(0, 200)}` : ''
    const binary = pending.some((l) => /[\u0000-\u0008\u000e-\u001f]/.test(l))
    const reason =
      this.closeReason ??
      (binary
        ? new ConnectionError(
            `${this.description} sent binary data and closed: the port probably speaks TLS. Turn Secure on, or use the plain CLI port.`,
            { cause: error, retryable: false, details: { diagnosis: 'plain-expected-tls-found' } },
          )
        : new ConnectionError(
            `The Axigen CLI at ${this.description} closed the connection${said}. If this repeats, check that ` +
              'the CLI service is running and that the connection limits (maxConnections, maxAuthErrors) are not hit.',
            { cause: error, details: { diagnosis: 'closed' } },
          ))
    this.closeReason = reason
    if (this.state === 'ready') this.state = 'closed'
    this.takeWaiter()?.reject(reason)
  }

  /** Marks the session broken and closes the socket. */
  private fail(error: PanelkitError): void {
    this.closeReason ??= error
    this.state = 'closed'
    this.takeWaiter()?.reject(error)
    this.transport?.destroy()
  }

  private teardown(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.transport?.destroy()
    this.transport = undefined
    this.context = []
  }

  /** Sends BACK until the prompt shows the root, discarding uncommitted edits. */
  async backToRoot(signal?: AbortSignal): Promise<void> {
    for (let guard = 0; this.context.length > 0 && guard < 16; guard++) {
      const depth = this.context.length
      const reply = await this.sendNow(BACK, { signal })
      if (!reply.status?.ok || reply.prompt.path.length >= depth) {
        this.fail(
          new ProtocolError(`BACK did not leave <${this.context.join('-')}#>; the session was dropped`),
        )
        throw this.closeReason as PanelkitError
      }
    }
  }

  /**
   * Runs a script from the root: each step's `-ERR` throws a `CommandError` naming the (masked) command
   * and the server's text, a prompt other than the expected one throws a `ProtocolError`, and either
   * way the session is taken back to the root first. A socket that was closed while idle is reopened.
   */
  runScript(
    steps: readonly ScriptStep[],
    options: SendOptions & { recorder?: CallRecorder } = {},
  ): Promise<Reply[]> {
    return this.exclusive(async () => {
      const reused = this.state !== 'new'
      if (!this.ready) await this.open(options.signal, options.recorder)
      if (!this.atRoot) await this.backToRoot(options.signal)
      try {
        return await this.stepThrough(steps, options)
      } catch (error) {
        // The server closed a reused socket before answering the first command (an idle close we had
        // not noticed yet): nothing was executed, so reconnect once and run the script again.
        if (reused && isPanelkitError(error) && error.kind === 'CONNECTION' && this.firstStepUnanswered) {
          await this.open(options.signal, options.recorder)
          return await this.stepThrough(steps, options)
        }
        throw error
      }
    })
  }

  /**
   * Runs the next script of a visit (`AxigenClient.visit`) from the context the previous one left the
   * session in, checked like any script. A refused step takes the session back to the root, so the
   * visit cannot go on in a context it did not expect.
   */
  continueScript(steps: readonly ScriptStep[], options: SendOptions = {}): Promise<Reply[]> {
    return this.exclusive(async () => {
      if (!this.ready)
        throw (
          this.closeReason ??
          new ConnectionError('The Axigen session closed in the middle of a visit; nothing more was sent')
        )
      return this.stepThrough(steps, options)
    })
  }

  /** Takes the session back to the root at the end of a visit (uncommitted edits are discarded). */
  leave(signal?: AbortSignal): Promise<void> {
    return this.exclusive(async () => {
      if (this.ready && !this.atRoot) await this.recover(signal)
    })
  }

  private firstStepUnanswered = false

  private async stepThrough(steps: readonly ScriptStep[], options: SendOptions): Promise<Reply[]> {
    const replies: Reply[] = []
    this.firstStepUnanswered = true
    for (const step of steps) {
      const reply = await this.sendNow(step.command, options)
      this.firstStepUnanswered = false
      replies.push(reply)
      if (!reply.status?.ok) {
        const text = reply.status?.text ?? 'no status line'
        await this.recover(options.signal)
        throw new CommandError(
          `Axigen refused ${step.command.masked}: ${text}${step.hint ? `. ${step.hint}` : ''}`,
          {
            details: {
              command: step.command.masked,
              serverText: text,
              context: reply.prompt.raw,
              ...(step.hint ? { hint: step.hint } : {}),
            },
          },
        )
      }
      if (step.expect !== undefined && !promptIs(reply.prompt.raw, step.expect)) {
        const got = reply.prompt.raw
        await this.recover(options.signal)
        throw new ProtocolError(
          `After ${step.command.masked} the Axigen CLI showed ${got}, expected <${step.expect ? `${step.expect}#` : '#'}>`,
          { details: { command: step.command.masked, prompt: got } },
        )
      }
    }
    return replies
  }

  private async recover(signal: AbortSignal | undefined): Promise<void> {
    if (!this.ready || this.atRoot) return
    try {
      await this.backToRoot(signal)
    } catch {
      this.fail(new ConnectionError('Could not return to the root context; the session was dropped'))
    }
  }

  /** Says goodbye (EXIT) when possible and closes the socket. */
  async close(): Promise<void> {
    await this.exclusive(async () => {
      if (this.ready && this.transport) {
        const transport = this.transport
        transport.write(EXIT.line + CRLF)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 200)
          transport.onClose(() => {
            clearTimeout(t)
            resolve()
          })
        })
      }
      this.closeReason = new ConnectionError('The Axigen session was closed by the client')
      this.state = 'closed'
      this.teardown()
    })
  }

  /** Closes the socket now. */
  destroy(): void {
    this.closeReason ??= new ConnectionError('The Axigen session was closed by the client')
    this.state = 'closed'
    this.teardown()
  }
}

/** Whether a prompt (`<domain-account#>`) shows the context path `domain-account` (any case). */
function promptIs(raw: string, path: string): boolean {
  if (raw.length !== path.length + 3 || raw.charCodeAt(raw.length - 2) !== 0x23) return false
  const shown = raw.slice(1, -2)
  return shown === path || shown.toLowerCase() === path.toLowerCase()
}
