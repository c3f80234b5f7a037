import { X509Certificate } from 'node:crypto'
import net from 'node:net'
import tls from 'node:tls'
import {
  type RenderEntry,
  renderKeyValues,
  renderShow,
  renderTable as renderTableWith,
} from '../protocol/output.ts'
import {
  CommandSyntaxError,
  keywordArgs,
  type ParsedCommand,
  type ParsedToken,
  parseCommand,
} from '../protocol/parser.ts'
import { encodeReply } from '../protocol/server-encoder.ts'
import {
  cloneAccount,
  effectiveServices,
  newAccount,
  newDomain,
  type SimAccount,
  type SimDomain,
  type SimGroup,
  type SimList,
} from './state.ts'
import { DEFAULT_TEXTS, formatText, type SimulatorTexts } from './texts.ts'
import type { DomainColumn, SimulatorVariations } from './variations.ts'

export interface SimulatorFaults {
  /** Close each new connection after it has sent this many bytes. */
  dropAfterBytes?: number
  /** Wait this long before writing each prompt. */
  delayPromptMs?: number
  /** For a command matching this, write half the reply and close the connection (`times` left). */
  closeMidReply?: { match: RegExp; times: number }
  /** Refuse every login as if the password were wrong. */
  refuseLogins?: boolean
  /** Delay the reply of matching commands. */
  slowCommands?: { match: RegExp; delayMs: number }
  /** Accept connections and never send a byte (a black hole behind a firewall). */
  silent?: boolean
  /** Answer matching commands with this `-ERR` text (`times` left). */
  failCommand?: { match: RegExp; text: string; times: number }
  /**
   * A crash point: the connection is dropped right after the n-th write from now has taken effect,
   * before its reply is sent (the client never learns it succeeded). Counts down; 0 = disarmed.
   */
  dropAfterWrites?: number
}

export interface TranscriptEntry {
  from: 'client' | 'server'
  text: string
}

export interface SimulatorOptions {
  /** Admin users and their passwords. Default `{ admin: 'admin-secret' }`. */
  admins?: Record<string, string>
  texts?: Partial<SimulatorTexts>
  /** Failed logins after which the connection is closed (`maxAuthErrors`). Default 3. */
  maxAuthErrors?: number
  /** Commands allowed before login (`maxAuthCommands`). Default 10. */
  maxAuthCommands?: number
  /** Closes connections idle this long (ms). Default: never. */
  idleTimeoutMs?: number
  /** Whether `DELETE Domain` needs a disabled domain (unknown on real servers). Default false. */
  deleteRequiresDisabled?: boolean
  /** Keep transcripts of the last N connections (0 = none). Default 50. */
  keepTranscripts?: number
  /** Also listen with implicit TLS using this key and certificate. */
  tls?: { key: string | Buffer; cert: string | Buffer }
  host?: string
  /** Legal differences a real server may show (see `SimulatorVariations`). Default: none. */
  variations?: SimulatorVariations
}

type Outcome = { lines?: string[]; ok?: boolean; text?: string; close?: boolean; crash?: boolean }

interface Frame {
  segment: string
  closeWith: readonly ('COMMIT' | 'DONE')[]
  handle(cmd: ParsedCommand): Outcome | undefined
  /**
   * Applies the frame's edits: with DONE to its parent's working copy, with COMMIT to the live state at
   * once (notes §2.3: COMMIT saves and writes the configuration, then returns to the previous context).
   * Returns an error text when they cannot be applied.
   */
  apply(verb: 'COMMIT' | 'DONE'): string | undefined
}

interface Conn {
  stage: 'login' | 'password' | 'ready'
  user: string
  authErrors: number
  preAuthCommands: number
  frames: Frame[]
  transcript: TranscriptEntry[] | undefined
}

const tokenText = (t: ParsedToken | undefined): string | undefined =>
  t === undefined ? undefined : t.kind === 'word' ? t.value : t.items.join(' ')
const isNumber = (s: string) => /^-?\d+$/.test(s)

/**
 * A stateful Axigen CLI on 127.0.0.1:0 (plain and implicit TLS): banner, login, prompts, contexts with
 * COMMIT/DONE/BACK, tables and SHOW output, injected faults and transcripts. State is plain data in
 * `domains`; tests may read and seed it directly.
 */
export class AxigenSimulator {
  readonly domains = new Map<string, SimDomain>()
  readonly admins: Map<string, string>
  readonly texts: SimulatorTexts
  readonly variations: SimulatorVariations
  faults: SimulatorFaults = {}
  /** Changes applied to the live state (committed edits and root-level writes). */
  writes = 0
  /** Commands received after login. */
  commands = 0
  connections = 0
  saves = 0
  readonly transcripts: TranscriptEntry[][] = []
  private readonly options: SimulatorOptions
  private servers: net.Server[] = []
  private sockets = new Set<net.Socket>()
  port = 0
  tlsPort = 0

  constructor(options: SimulatorOptions = {}) {
    this.options = options
    this.admins = new Map(Object.entries(options.admins ?? { admin: 'admin-secret' }))
    this.variations = options.variations ?? {}
    this.texts = { ...DEFAULT_TEXTS, ...this.variations.texts, ...options.texts }
  }

  /** Counts one write that took effect; true when a crash point says to drop the connection now. */
  private wrote(): boolean {
    this.writes++
    const left = this.faults.dropAfterWrites
    if (left === undefined || left <= 0) return false
    this.faults.dropAfterWrites = left - 1
    return left === 1
  }

  private renderTable(title: string, columns: readonly string[], rows: readonly (readonly string[])[]) {
    return renderTableWith(title, columns, rows, this.variations.tableLayout ?? 'aligned')
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1'
  }

  /** The PEM certificate of the TLS listener (the `tls.cert` it was started with), for the client's `tls.ca`. */
  get ca(): string | undefined {
    const cert = this.options.tls?.cert
    return cert === undefined ? undefined : cert.toString()
  }

  /** The SHA-256 fingerprint of that certificate, for the client's `tls.fingerprint`. */
  get fingerprint(): string | undefined {
    const ca = this.ca
    return ca === undefined ? undefined : new X509Certificate(ca).fingerprint256
  }

  async listen(): Promise<this> {
    const host = this.host
    const plain = net.createServer((s) => this.accept(s))
    this.port = await listenOn(plain, host)
    this.servers.push(plain)
    if (this.options.tls) {
      const secure = tls.createServer({ key: this.options.tls.key, cert: this.options.tls.cert }, (s) =>
        this.accept(s),
      )
      secure.on('tlsClientError', () => undefined)
      this.tlsPort = await listenOn(secure, host)
      this.servers.push(secure)
    }
    return this
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))))
    this.servers = []
  }

  /** Drops every open connection (as a server restart would). */
  dropConnections(): void {
    for (const s of this.sockets) s.destroy()
  }

  get openConnections(): number {
    return this.sockets.size
  }

  // ---- seeding helpers for tests ------------------------------------------------------------------

  addDomain(
    name: string,
    options: Partial<Pick<SimDomain, 'location' | 'enabled' | 'groupware'>> & {
      postmasterPassword?: string
    } = {},
  ): SimDomain {
    const d = newDomain(
      name,
      options.location ?? `/var/opt/axigen/domains/${name}`,
      options.postmasterPassword ?? 'pm-secret',
    )
    if (options.enabled !== undefined) d.enabled = options.enabled
    if (options.groupware !== undefined) d.groupware = options.groupware
    this.domains.set(d.name, d)
    return d
  }

  addAccount(domain: string, name: string, password = 'account-secret'): SimAccount {
    const d = this.domains.get(domain.toLowerCase())
    if (!d) throw new Error(`no domain ${domain}`)
    const a = newAccount(name, password)
    d.accounts.set(a.name, a)
    return a
  }

  account(domain: string, name: string): SimAccount | undefined {
    return this.domains.get(domain.toLowerCase())?.accounts.get(name.toLowerCase())
  }

  // ---- connections ------------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    this.connections++
    this.sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('close', () => this.sockets.delete(socket))
    socket.on('error', () => undefined)
    if (this.faults.silent) return
    const keep = this.options.keepTranscripts ?? 50
    const conn: Conn = {
      stage: 'login',
      user: '',
      authErrors: 0,
      preAuthCommands: 0,
      frames: [],
      transcript: keep > 0 ? [] : undefined,
    }
    if (conn.transcript) {
      this.transcripts.push(conn.transcript)
      if (this.transcripts.length > keep) this.transcripts.shift()
    }
    let sent = 0
    const dropAfter = this.faults.dropAfterBytes
    const write = (text: string) => {
      if (socket.destroyed) return
      conn.transcript?.push({ from: 'server', text })
      if (dropAfter !== undefined && sent + text.length >= dropAfter) {
        socket.write(text.slice(0, Math.max(0, dropAfter - sent)))
        socket.destroy()
        return
      }
      sent += text.length
      socket.write(text)
    }
    let idleTimer: NodeJS.Timeout | undefined
    const touch = () => {
      if (this.options.idleTimeoutMs === undefined) return
      clearTimeout(idleTimer)
      idleTimer = setTimeout(() => socket.destroy(), this.options.idleTimeoutMs)
    }
    socket.on('close', () => clearTimeout(idleTimer))
    touch()
    write(encodeReply(this.texts.banner, undefined, 'login'))
    let buffer = ''
    let chain = Promise.resolve()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      buffer += chunk
      for (;;) {
        const lf = buffer.indexOf('\n')
        if (lf === -1) break
        const line = buffer.slice(0, lf).replace(/\r$/, '')
        buffer = buffer.slice(lf + 1)
        chain = chain
          .then(() => this.onLine(conn, line, write, socket))
          .catch(() => {
            socket.destroy()
          })
      }
      touch()
    })
  }

  private async onLine(
    conn: Conn,
    line: string,
    write: (s: string) => void,
    socket: net.Socket,
  ): Promise<void> {
    if (socket.destroyed) return
    conn.transcript?.push({ from: 'client', text: conn.stage === 'password' ? '***' : line })
    const f = this.faults
    if (f.slowCommands?.match.test(line)) await delay(f.slowCommands.delayMs)
    const reply = this.execute(conn, line)
    if (reply.crash) {
      socket.destroy()
      return
    }
    if (reply.close === true && reply.text === undefined) {
      socket.destroy()
      return
    }
    const prompt = conn.stage === 'ready' ? conn.frames.map((fr) => fr.segment) : conn.stage
    const status = reply.text === undefined ? undefined : { ok: reply.ok ?? true, text: reply.text }
    if (reply.close) {
      write(encodeReply(reply.lines ?? [], status, []).replace(/<[^<]*> $/, ''))
      socket.end()
      return
    }
    let text = encodeReply(reply.lines ?? [], status, prompt)
    if (f.closeMidReply && f.closeMidReply.times > 0 && f.closeMidReply.match.test(line)) {
      f.closeMidReply.times--
      write(text.slice(0, Math.floor(text.length / 2)))
      socket.destroy()
      return
    }
    const promptDelay = f.delayPromptMs ?? (this.variations.promptOwnSegment ? 2 : 0)
    if (promptDelay) {
      const promptAt = text.lastIndexOf('<')
      write(text.slice(0, promptAt))
      await delay(promptDelay)
      text = text.slice(promptAt)
    }
    write(text)
  }

  private execute(conn: Conn, line: string): Outcome {
    const t = this.texts
    if (conn.stage === 'password') {
      const expected = this.admins.get(conn.user)
      if (!this.faults.refuseLogins && expected !== undefined && expected === line) {
        conn.stage = 'ready'
        return { text: t.authOk }
      }
      conn.stage = 'login'
      conn.authErrors++
      if (conn.authErrors >= (this.options.maxAuthErrors ?? 3)) {
        return { ok: false, text: t.tooManyAuthErrors, close: true }
      }
      if (this.variations.closeAfterFailedLogin) return { ok: false, text: t.authFailed, close: true }
      return { ok: false, text: t.authFailed }
    }
    let cmd: ParsedCommand
    try {
      cmd = parseCommand(line)
    } catch (error) {
      return { ok: false, text: formatText(t.syntaxError, { detail: (error as Error).message }) }
    }
    const [w0 = '', w1 = ''] = cmd.words
    if (w0 === '') return { ok: false, text: t.unknownCommand }
    if (w0 === 'EXIT' || w0 === 'QUIT') return { text: t.exit, close: true }
    if (conn.stage === 'login') {
      conn.preAuthCommands++
      if (conn.preAuthCommands > (this.options.maxAuthCommands ?? 10)) {
        return { ok: false, text: t.tooManyAuthErrors, close: true }
      }
      if (w0 === 'USER' && cmd.tokens[1]?.kind === 'word' && cmd.tokens.length === 2) {
        conn.user = cmd.tokens[1].value
        conn.stage = 'password'
        return t.afterUser === null ? {} : { text: t.afterUser }
      }
      if (w0 === 'GET' && w1 === 'VERSION') return { lines: [t.versionRecord], text: t.ok }
      if (w0 === 'HELP') return { lines: ['USER <name>', 'GET VERSION', 'EXIT'], text: t.ok }
      return { ok: false, text: t.loginFirst }
    }
    this.commands++
    const fc = this.faults.failCommand
    if (fc && fc.times > 0 && fc.match.test(line)) {
      fc.times--
      return { ok: false, text: fc.text }
    }
    const top = conn.frames[conn.frames.length - 1]
    if (w0 === 'BACK') {
      if (!top) return { ok: false, text: t.noContextToLeave }
      conn.frames.pop()
      return { text: t.back }
    }
    if (w0 === 'COMMIT' || w0 === 'DONE') {
      if (!top) return { ok: false, text: t.noContextToLeave }
      if (!top.closeWith.includes(w0)) return { ok: false, text: t.notHere }
      const error = top.apply(w0)
      if (error) return { ok: false, text: error }
      conn.frames.pop()
      if (w0 === 'COMMIT' && this.wrote()) return { crash: true }
      return { text: w0 === 'COMMIT' ? t.commit : t.done }
    }
    if (w0 === 'GET' && w1 === 'VERSION') {
      if (this.variations.refuseVersionAfterLogin) return { ok: false, text: t.unknownCommand }
      return { lines: [t.versionRecord], text: t.ok }
    }
    if (w0 === 'HELP') return { lines: ['(help text not simulated)'], text: t.ok }
    const outcome = top ? top.handle(cmd) : this.root(conn, cmd)
    if (outcome === undefined) return { ok: false, text: t.unknownCommand }
    return outcome
  }

  // ---- contexts ---------------------------------------------------------------------------------

  private err(template: string, name = ''): Outcome {
    return { ok: false, text: formatText(template, { name }) }
  }

  private ok(lines?: string[]): Outcome {
    return lines ? { lines, text: this.texts.ok } : { text: this.texts.ok }
  }

  /** Parses `VERB Noun [name] <x> keyword value …`; returns the args or an -ERR outcome. */
  private args(cmd: ParsedCommand, skip: number, known: string[], positional?: string, flags: string[] = []) {
    const r = keywordArgs(cmd.tokens, skip, known, positional, flags)
    if (r instanceof CommandSyntaxError)
      return {
        error: { ok: false, text: formatText(this.texts.syntaxError, { detail: r.message }) } as Outcome,
      }
    const get = (k: string) => tokenText(r.args.get(k))
    return { get, flags: r.flags, raw: r.args }
  }

  private root(conn: Conn, cmd: ParsedCommand): Outcome | undefined {
    const t = this.texts
    const [w0, w1] = cmd.words
    const verb = `${w0} ${w1}`
    switch (verb) {
      case 'LIST DOMAINS':
      case 'LIST ALLDOMAINS': {
        const all = w1 === 'ALLDOMAINS'
        const wildcard = tokenText(cmd.tokens[2])
        const match = wildcardMatcher(wildcard)
        const v = this.variations
        const extra: readonly DomainColumn[] = all
          ? (v.allDomainsColumns ?? ['status'])
          : (v.domainsColumns ?? ['used', 'total'])
        const cell = (d: SimDomain, c: DomainColumn) =>
          c === 'status'
            ? d.enabled
              ? t.enabledWord
              : t.disabledWord
            : c === 'used'
              ? String(sumUsage(d))
              : String(d.adminLimits.maxAccountMessageSizeQuota ?? 0)
        const rows = [...this.domains.values()]
          .filter((d) => (all || d.enabled) && match(d.name))
          .map((d) => [d.name, ...extra.map((c) => cell(d, c))])
        const header = all ? t.allDomainColumns : t.domainColumns
        const columns = [header[0] ?? 'name', ...extra.map((c, i) => header[i + 1] ?? c)]
        return this.ok(this.renderTable(all ? t.allDomainsTitle : t.domainsTitle, columns, rows))
      }
      case 'SHOW DOMAIN': {
        const a = this.args(cmd, 2, ['name', 'ATTR'], 'name')
        if (a.error) return a.error
        const d = this.domains.get((a.get('name') ?? '').toLowerCase())
        if (!d) return this.err(t.domainNotFound, a.get('name'))
        return this.ok(renderShow(t.showTitle, domainEntries(d)))
      }
      case 'CREATE DOMAIN': {
        const a = this.args(
          cmd,
          2,
          ['name', 'domainLocation', 'postmasterPassword', 'wmFilterTemplatePath'],
          'name',
        )
        if (a.error) return a.error
        const name = (a.get('name') ?? '').toLowerCase()
        const location = a.get('domainLocation')
        const pw = a.get('postmasterPassword')
        if (!name || !location || pw === undefined)
          return this.err(
            t.syntaxError.replace('{detail}', 'name, domainLocation and postmasterPassword are required'),
          )
        if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(name)) return this.err(t.badValue, 'name')
        if (this.domains.has(name)) return this.err(t.domainExists, name)
        const draft = newDomain(name, location, pw)
        conn.frames.push(this.domainCreateFrame(draft, 'domain-create'))
        return this.ok()
      }
      case 'EDIT DOMAIN':
      case 'UPDATE DOMAIN': {
        const a = this.args(cmd, 2, ['name'], 'name')
        if (a.error) return a.error
        const name = (a.get('name') ?? '').toLowerCase()
        const d = this.domains.get(name)
        if (!d) return this.err(t.domainNotFound, name)
        if (w0 === 'EDIT') {
          if (d.enabled) return this.err(t.domainMustBeDisabled, name)
          conn.frames.push(this.domainFrame(conn, d, 'domain-edit'))
        } else {
          if (!d.enabled && this.variations.refuseUpdateOnDisabledDomain)
            return this.err(t.domainNotActive, name)
          conn.frames.push(this.domainFrame(conn, d, 'domain'))
        }
        return this.ok()
      }
      case 'ENABLE DOMAIN':
      case 'DISABLE DOMAIN':
      case 'DELETE DOMAIN': {
        const a = this.args(cmd, 2, ['name', 'domainLocation'], 'name', ['dontKeepCopy'])
        if (a.error) return a.error
        const byLocation = a.get('domainLocation')
        const name = (a.get('name') ?? '').toLowerCase()
        const d = byLocation
          ? [...this.domains.values()].find((x) => x.location === byLocation)
          : this.domains.get(name)
        if (!d) return this.err(t.domainNotFound, name || byLocation)
        if (w0 === 'DELETE') {
          if (this.options.deleteRequiresDisabled && d.enabled)
            return this.err(t.domainMustBeDisabled, d.name)
          this.domains.delete(d.name)
        } else {
          d.enabled = w0 === 'ENABLE'
        }
        if (this.wrote()) return { crash: true }
        return this.ok()
      }
      case 'SAVE CONFIG':
        this.saves++
        return this.ok()
      default:
        return undefined
    }
  }

  /** An attribute context: SET/RESET/SHOW over a copy of `bag`, written back by `onApply`. */
  private bagFrame(
    segment: string,
    closeWith: readonly ('COMMIT' | 'DONE')[],
    initial: Record<string, string | number>,
    spec: {
      numeric?: readonly string[]
      text?: readonly string[]
      anyText?: boolean
      /** Attributes this server refuses (a variation). */
      refused?: readonly string[]
    },
    onApply: (bag: Record<string, string | number>, reset: Set<string>, verb: 'COMMIT' | 'DONE') => void,
    inherited: Record<string, string | number> = {},
  ): Frame {
    const bag = { ...initial }
    const reset = new Set<string>()
    const t = this.texts
    const numeric = new Map((spec.numeric ?? []).map((k) => [k.toLowerCase(), k]))
    const text = new Map((spec.text ?? []).map((k) => [k.toLowerCase(), k]))
    return {
      segment,
      closeWith,
      handle: (cmd) => {
        const [w0] = cmd.words
        const keyToken = tokenText(cmd.tokens[1])
        if (w0 === 'SHOW') {
          const keys = new Set([...numeric.values(), ...text.values(), ...Object.keys(bag)])
          const entries: RenderEntry[] = []
          for (const k of keys) {
            const v = bag[k] ?? inherited[k]
            if (v === undefined) continue
            const e: RenderEntry = { key: k, value: v }
            if (bag[k] !== undefined && inherited[k] !== undefined) {
              const note = this.note('explicit', String(inherited[k]))
              if (note !== undefined) e.note = note
            }
            entries.push(e)
          }
          return this.ok(renderShow(t.showTitle, entries))
        }
        if ((w0 === 'SET' || w0 === 'RESET') && keyToken !== undefined) {
          const lower = keyToken.toLowerCase()
          const key = numeric.get(lower) ?? text.get(lower) ?? (spec.anyText ? keyToken : undefined)
          if (key === undefined || spec.refused?.some((r) => r.toLowerCase() === lower))
            return this.err(t.unknownAttribute, keyToken)
          if (w0 === 'RESET') {
            delete bag[key]
            reset.add(key)
            return this.ok()
          }
          if (cmd.tokens.length !== 3)
            return this.err(t.syntaxError.replace('{detail}', 'SET takes one value'))
          const v = tokenText(cmd.tokens[2]) ?? ''
          if (numeric.has(lower)) {
            if (!isNumber(v)) return this.err(t.badValue, key)
            bag[key] = Number(v)
          } else bag[key] = v
          reset.delete(key)
          return this.ok()
        }
        return undefined
      },
      apply: (verb) => {
        onApply(bag, reset, verb)
        return undefined
      },
    }
  }

  private domainCreateFrame(draft: SimDomain, segment: string): Frame {
    const t = this.texts
    return {
      segment,
      closeWith: ['COMMIT'],
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        if (w0 === 'SET' && w1 === 'GROUPWARESUPPORT') {
          const v = tokenText(cmd.tokens[2])?.toLowerCase()
          if (v !== 'yes' && v !== 'no') return this.err(t.badValue, 'groupwareSupport')
          draft.groupware = v === 'yes'
          return this.ok()
        }
        if (w0 === 'ADD' && w1 === 'MESSAGESLOCATION') {
          const v = tokenText(cmd.tokens[2])
          if (
            !v ||
            !/^(file:\/\/)?\/[^?]*(\?(maxFiles=\d+|maxFileSize=\d+|readOnly=(yes|no))(&(maxFiles=\d+|maxFileSize=\d+|readOnly=(yes|no)))*)?$/.test(
              v,
            )
          )
            return this.err(t.badValue, 'MessagesLocation')
          draft.messagesLocations.push(v)
          return this.ok()
        }
        if (w0 === 'SET' && w1 === 'DOMAINOBJECTSLOCATION') return this.ok()
        if (w0 === 'SHOW') return this.ok(renderShow(t.showTitle, domainEntries(draft)))
        return undefined
      },
      apply: () => {
        if (this.domains.has(draft.name)) return formatText(t.domainExists, { name: draft.name })
        this.domains.set(draft.name, draft)
        return undefined
      },
    }
  }

  /**
   * The domain context (`UPDATE Domain`, or `EDIT Domain` for an inactive one, which also offers
   * `groupwareSupport`, notes §3.6). The domain's own edits (services, aliases, removals, DONE-saved
   * sub-contexts) apply on its COMMIT; objects inside it with a COMMIT of their own (accounts, admin
   * limits, classes, lists, groups) apply at their COMMIT, at once (notes §2.3).
   */
  private domainFrame(conn: Conn, live: SimDomain, segment: 'domain' | 'domain-edit'): Frame {
    const t = this.texts
    const ops: ((d: SimDomain) => void)[] = []
    const draft = {
      services: [...live.services],
      aliases: [...live.aliases],
      defaultQuotas: { ...live.defaultQuotas },
      migration: { ...live.migration },
      groupware: live.groupware,
    }
    const removed = new Set<string>()
    const hasAccount = (n: string) => !removed.has(n) && live.accounts.has(n)
    const frame: Frame = {
      segment,
      closeWith: ['COMMIT'],
      apply: () => {
        Object.assign(live, draft)
        for (const op of ops) op(live)
        return undefined
      },
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        const verb = `${w0} ${w1}`
        switch (verb) {
          case 'SET GROUPWARESUPPORT': {
            if (segment !== 'domain-edit') return undefined
            const v = tokenText(cmd.tokens[2])?.toLowerCase()
            if (v !== 'yes' && v !== 'no') return this.err(t.badValue, 'groupwareSupport')
            draft.groupware = v === 'yes'
            return this.ok()
          }
          case 'LIST ACCOUNTS': {
            const match = wildcardMatcher(tokenText(cmd.tokens[2]))
            const extra = this.variations.accountsColumns ?? []
            const rows = [...live.accounts.values()]
              .filter((a) => match(a.name))
              .map((a) => [
                a.name,
                ...extra.map((c) =>
                  c === 'status'
                    ? effectiveServices(live, a).length
                      ? t.enabledWord
                      : t.disabledWord
                    : String(a.usage.mboxSizeKb),
                ),
              ])
            const columns = [t.accountColumns[0] ?? 'name', ...extra]
            return this.ok(this.renderTable(t.accountsTitle, columns, rows))
          }
          case 'SHOW ACCOUNT': {
            const a = this.args(cmd, 2, ['name', 'ATTR'], 'name')
            if (a.error) return a.error
            const acc = live.accounts.get((a.get('name') ?? '').toLowerCase())
            if (!acc) return this.err(t.accountNotFound, a.get('name'))
            return this.ok(renderShow(t.showTitle, accountEntries(acc)))
          }
          case 'ADD ACCOUNT':
          case 'UPDATE ACCOUNT': {
            const a = this.args(cmd, 2, ['name', 'password'], 'name')
            if (a.error) return a.error
            const name = (a.get('name') ?? '').toLowerCase()
            if (!/^[a-z0-9][a-z0-9._+-]{0,63}$/.test(name)) return this.err(t.badValue, 'name')
            let account: SimAccount
            if (w0 === 'ADD') {
              const pw = a.get('password')
              if (pw === undefined) return this.err(t.syntaxError.replace('{detail}', 'password is required'))
              if (hasAccount(name)) return this.err(t.accountExists, name)
              const max = live.adminLimits.maxAccounts
              // Counted from the map's size, not by listing the names: an O(n) scan per ADD made every
              // create slower as a benchmark's domain filled up.
              const count = live.accounts.size - (live.accounts.has('postmaster') ? 1 : 0)
              if (max !== undefined && max > 0 && count >= max) return this.err(t.limitReached, 'maxAccounts')
              account = newAccount(name, pw)
              Object.assign(account.quotas, draft.defaultQuotas)
            } else {
              const existing = live.accounts.get(name)
              if (!existing || removed.has(name)) return this.err(t.accountNotFound, name)
              account = cloneAccount(existing)
            }
            conn.frames.push(
              this.accountFrame(conn, live, account, () => {
                if (w0 === 'ADD' && hasAccount(name)) return formatText(t.accountExists, { name })
                live.accounts.set(name, account)
                return undefined
              }),
            )
            return this.ok()
          }
          case 'REMOVE ACCOUNT': {
            const a = this.args(cmd, 2, ['name'], 'name')
            if (a.error) return a.error
            const name = (a.get('name') ?? '').toLowerCase()
            if (!hasAccount(name)) return this.err(t.accountNotFound, name)
            removed.add(name)
            ops.push((d) => d.accounts.delete(name))
            return this.ok()
          }
          case 'ADD ALIAS':
          case 'REMOVE ALIAS':
            return aliasEdit(this, draft.aliases, cmd)
          case 'LIST ALIASES':
            return this.ok([t.aliasesTitle, '', ...draft.aliases, ''])
          case 'SET SERVICES': {
            const list = cmd.tokens[2]
            if (list?.kind !== 'list' || this.refusesEmptyList(cmd)) return this.err(t.badValue, 'services')
            draft.services = [...list.items]
            return this.ok()
          }
          case 'CONFIG ADMINLIMITS':
            conn.frames.push(
              this.bagFrame(
                'adminLimits',
                ['COMMIT', 'DONE'],
                live.adminLimits,
                { numeric: ADMIN_LIMITS },
                (bag, reset) => {
                  // Admin limits are an object of their own with a COMMIT (notes §3.1): written at once.
                  live.adminLimits = numbers(bag)
                  for (const k of reset) delete live.adminLimits[k]
                },
              ),
            )
            return this.ok()
          case 'CONFIG ACCOUNTDEFAULTQUOTAS':
            conn.frames.push(
              this.bagFrame(
                'accountDefaultQuotas',
                ['DONE'],
                draft.defaultQuotas,
                { numeric: QUOTAS },
                (bag) => {
                  draft.defaultQuotas = numbers(bag)
                },
              ),
            )
            return this.ok()
          case 'CONFIG MIGRATIONDATA':
            conn.frames.push(
              this.bagFrame(
                'migrationData',
                ['DONE'],
                draft.migration,
                {
                  text: ['remoteServer', 'remoteImapHost', 'remoteImapPort', 'defaultAccountClassName'],
                  refused: this.variations.refuse?.remoteServer ? ['remoteServer'] : [],
                },
                (bag) => {
                  draft.migration = strings(bag)
                },
              ),
            )
            return this.ok()
          case 'LIST ACCOUNTCLASSES':
          case 'LIST LISTS':
          case 'LIST GROUPS': {
            const [title, names] =
              verb === 'LIST ACCOUNTCLASSES'
                ? [t.classesTitle, live.classes.keys()]
                : verb === 'LIST LISTS'
                  ? [t.listsTitle, live.lists.keys()]
                  : [t.groupsTitle, live.groups.keys()]
            return this.ok(
              this.renderTable(
                title,
                t.nameColumn,
                [...names].map((n) => [n]),
              ),
            )
          }
          case 'ADD ACCOUNTCLASS':
          case 'UPDATE ACCOUNTCLASS': {
            const a = this.args(cmd, 2, ['name'], 'name')
            if (a.error) return a.error
            const name = a.get('name') ?? ''
            const existing = live.classes.get(name)
            if (w0 === 'ADD' && existing) return this.err(t.classExists, name)
            if (w0 === 'UPDATE' && !existing) return this.err(t.classNotFound, name)
            const cls = existing
              ? { ...existing, quotas: { ...existing.quotas } }
              : { name, services: undefined, quotas: {} }
            conn.frames.push({
              segment: 'accountClass',
              closeWith: ['COMMIT'],
              handle: (c) =>
                c.words[0] === 'SHOW'
                  ? this.ok(renderShow(t.showTitle, [{ key: 'name', value: cls.name }]))
                  : undefined,
              apply: () => {
                live.classes.set(name, cls)
                return undefined
              },
            })
            return this.ok()
          }
          case 'ADD LIST':
          case 'UPDATE LIST': {
            const a = this.args(cmd, 2, ['name', 'password', 'adminEmail'], 'name')
            if (a.error) return a.error
            const name = (a.get('name') ?? '').toLowerCase()
            const existing = live.lists.get(name)
            if (w0 === 'ADD' && existing) return this.err(t.listExists, name)
            if (w0 === 'UPDATE' && !existing) return this.err(t.listNotFound, name)
            if (w0 === 'ADD' && (a.get('password') === undefined || a.get('adminEmail') === undefined))
              return this.err(t.syntaxError.replace('{detail}', 'password and adminEmail are required'))
            const list: SimList = existing
              ? { ...existing, members: new Map(existing.members) }
              : {
                  name,
                  password: a.get('password') ?? '',
                  adminEmail: a.get('adminEmail') ?? '',
                  members: new Map(),
                }
            conn.frames.push(this.listFrame(list, () => live.lists.set(name, list)))
            return this.ok()
          }
          case 'ADD GROUP':
          case 'UPDATE GROUP': {
            const a = this.args(cmd, 2, ['name'], 'name')
            if (a.error) return a.error
            const name = (a.get('name') ?? '').toLowerCase()
            const existing = live.groups.get(name)
            if (w0 === 'ADD' && existing) return this.err(t.groupExists, name)
            if (w0 === 'UPDATE' && !existing) return this.err(t.groupNotFound, name)
            const group: SimGroup = existing
              ? { ...existing, addresses: [...existing.addresses] }
              : { name, enabled: true, addresses: [] }
            conn.frames.push(this.groupFrame(group, () => live.groups.set(name, group)))
            return this.ok()
          }
          case 'REMOVE ACCOUNTCLASS':
          case 'REMOVE LIST':
          case 'REMOVE GROUP': {
            const a = this.args(cmd, 2, ['name'], 'name')
            if (a.error) return a.error
            const name = a.get('name') ?? ''
            const map = w1 === 'LIST' ? live.lists : w1 === 'GROUP' ? live.groups : live.classes
            const key = w1 === 'ACCOUNTCLASS' ? name : name.toLowerCase()
            if (!map.has(key))
              return this.err(
                w1 === 'LIST' ? t.listNotFound : w1 === 'GROUP' ? t.groupNotFound : t.classNotFound,
                name,
              )
            ops.push((d) => (w1 === 'LIST' ? d.lists : w1 === 'GROUP' ? d.groups : d.classes).delete(key))
            return this.ok()
          }
          default:
            if (w0 === 'SHOW' && cmd.tokens.length === 1)
              return this.ok(renderShow(t.showTitle, domainEntries({ ...live, ...draft })))
            return undefined
        }
      },
    }
    return frame
  }

  private accountFrame(
    conn: Conn,
    domain: SimDomain,
    account: SimAccount,
    onCommit: () => string | undefined,
  ): Frame {
    const t = this.texts
    return {
      segment: 'account',
      closeWith: ['COMMIT'],
      apply: () => onCommit(),
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        const verb = `${w0} ${w1}`
        if (w0 === 'SHOW' && cmd.tokens.length === 1)
          return this.ok(renderShow(t.showTitle, accountEntries(account)))
        switch (verb) {
          case 'SHOW REGISTRYINFORMATION':
            return this.ok(
              renderKeyValues(t.registryTitle, [
                ['Internal ID', `${domain.name}/${account.name}`],
                ['Creation Date', account.createdAt],
                ['Mbox size', this.mboxSize(account.usage.mboxSizeKb)],
                ['Mbox message count', account.usage.messageCount],
                ['Mbox folder count', account.usage.folderCount],
                ['Mbox Storage Status', 'ok'],
              ]),
            )
          case 'SET PASSWORD': {
            const pw = tokenText(cmd.tokens[2])
            if (pw === undefined || cmd.tokens.length > 5) return this.err(t.badValue, 'password')
            account.password = pw
            return this.ok()
          }
          case 'SET ACCOUNTCLASSNAME': {
            if (this.variations.refuse?.accountClassName)
              return this.err(t.unknownAttribute, 'accountClassName')
            const c = tokenText(cmd.tokens[2]) ?? ''
            if (!domain.classes.has(c)) return this.err(t.classNotFound, c)
            account.accountClass = c
            return this.ok()
          }
          case 'INHERIT SETTINGS': {
            // `INHERIT SETTINGS FROM accountClass <c>` (notes §3.2, C: S3 syntax, S7 use). What it does to
            // accountClassName is not documented; the simulator records the class as the account's.
            const [, , from, kind] = cmd.words
            const c = tokenText(cmd.tokens[4])
            if (from !== 'FROM' || kind !== 'ACCOUNTCLASS' || c === undefined || cmd.tokens.length !== 5)
              return this.err(t.syntaxError.replace('{detail}', 'INHERIT SETTINGS FROM accountClass <name>'))
            if (!domain.classes.has(c)) return this.err(t.classNotFound, c)
            account.accountClass = c
            return this.ok()
          }
          case 'SET NAME':
          case 'SET MUSTCHANGEPASS':
          case 'SET ACCOUNTTYPE': {
            const v = tokenText(cmd.tokens[2])
            if (v === undefined) return this.err(t.badValue, w1 ?? '')
            if (w1 === 'NAME') account.name = v.toLowerCase()
            else account.attributes[tokenText(cmd.tokens[1]) ?? ''] = v
            return this.ok()
          }
          case 'ADD ALIAS':
          case 'REMOVE ALIAS':
            return aliasEdit(this, account.aliases, cmd)
          case 'LIST ALIASES':
            return this.ok([t.aliasesTitle, '', ...account.aliases, ''])
          case 'CONFIG QUOTAS': {
            const inherited = domain.classes.get(account.accountClass)?.quotas ?? {}
            conn.frames.push(
              this.bagFrame(
                'quotas',
                ['DONE'],
                account.quotas,
                { numeric: QUOTAS },
                (bag) => {
                  account.quotas = numbers(bag)
                },
                inherited,
              ),
            )
            return this.ok()
          }
          case 'CONFIG CONTACTINFO':
            conn.frames.push(
              this.bagFrame(
                'contactInfo',
                ['DONE'],
                account.contact,
                { anyText: true, refused: this.variations.refuse?.contactNotes ? ['notes'] : [] },
                (bag) => {
                  account.contact = strings(bag)
                },
              ),
            )
            return this.ok()
          case 'CONFIG WEBMAILDATA':
            conn.frames.push(
              this.bagFrame(
                'webmailData',
                ['DONE'],
                account.webmail,
                { text: ['language', 'timeZone'] },
                (bag) => {
                  account.webmail = strings(bag)
                },
              ),
            )
            return this.ok()
          case 'CONFIG LIMITS':
            conn.frames.push(this.limitsFrame(domain, account))
            return this.ok()
          default:
            return undefined
        }
      },
    }
  }

  private limitsFrame(domain: SimDomain, account: SimAccount): Frame {
    const t = this.texts
    let services = account.services ? [...account.services] : undefined
    const inherited = () =>
      domain.classes.get(account.accountClass)?.services ??
      effectiveServices(domain, { ...account, services: undefined })
    return {
      segment: 'limits',
      closeWith: ['DONE'],
      apply: () => {
        account.services = services
        return undefined
      },
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        if (w0 === 'SHOW') {
          const entry: RenderEntry = { key: 'services', value: services ?? inherited() }
          const note = services
            ? this.note('explicit', `(${inherited().join(' ')})`)
            : this.note('inherited', `accountClass ${account.accountClass}`)
          if (note !== undefined) entry.note = note
          return this.ok(renderShow(t.showTitle, [entry]))
        }
        if (w0 === 'SET' && w1 === 'SERVICES') {
          const list = cmd.tokens[2]
          if (list?.kind !== 'list' || cmd.tokens.length !== 3 || this.refusesEmptyList(cmd))
            return this.err(t.badValue, 'services')
          services = [...list.items]
          return this.ok()
        }
        if (w0 === 'RESET' && w1 === 'SERVICES') {
          services = undefined
          return this.ok()
        }
        if (w0 === 'SET' && cmd.tokens.length === 3) return this.ok()
        return undefined
      },
    }
  }

  /** The note after a SHOW value, in the variation's form (notes §2.4: the bracketed form is inferred). */
  private note(kind: 'explicit' | 'inherited', detail: string): string | undefined {
    const form = this.variations.showNotes ?? 'bracketed'
    if (form === 'none') return undefined
    if (form === 'short') return kind
    return kind === 'explicit'
      ? formatText(this.texts.explicitNote, { inherited: detail })
      : formatText(this.texts.inheritedNote, { from: detail })
  }

  /** The empty-list variation: `()` refused, `( )` accepted (notes §7.6: the syntax is unknown). */
  private refusesEmptyList(cmd: ParsedCommand): boolean {
    return this.variations.refuse?.emptyServiceList === true && /\(\)/.test(cmd.raw)
  }

  /** `Mbox size` as the variation prints it (notes §7.5: the unit is unknown). */
  private mboxSize(kb: number): string | number {
    const form = this.variations.mboxSize ?? 'kb'
    return form === 'bytes' ? kb * 1024 : form === 'kb-with-unit' ? `${kb} KB` : kb
  }

  private listFrame(list: SimList, onCommit: () => void): Frame {
    const t = this.texts
    return {
      segment: 'list',
      closeWith: ['COMMIT', 'DONE'],
      apply: () => {
        onCommit()
        return undefined
      },
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        if (w0 === 'LIST' && w1 === 'USERS') {
          return this.ok([
            t.usersTitle,
            '',
            'email | name',
            ...[...list.members].map(([e, n]) => `${e} | ${n}`),
            '',
          ])
        }
        if ((w0 === 'ADD' || w0 === 'REMOVE') && w1 === 'USER') {
          const a = this.args(cmd, 2, ['email', 'name'], 'email')
          if (a.error) return a.error
          const email = (a.get('email') ?? '').toLowerCase()
          if (!/^[^@\s]+@[^@\s]+$/.test(email)) return this.err(t.badValue, 'email')
          if (w0 === 'ADD') list.members.set(email, a.get('name') ?? '')
          else if (!list.members.delete(email)) return this.err(t.memberNotFound, email)
          return this.ok()
        }
        if (w0 === 'SHOW')
          return this.ok(
            renderShow(t.showTitle, [
              { key: 'name', value: list.name },
              { key: 'adminEmail', value: list.adminEmail },
            ]),
          )
        return undefined
      },
    }
  }

  private groupFrame(group: SimGroup, onCommit: () => void): Frame {
    const t = this.texts
    return {
      segment: 'group',
      closeWith: ['COMMIT'],
      apply: () => {
        onCommit()
        return undefined
      },
      handle: (cmd) => {
        const [w0, w1] = cmd.words
        if (w0 === 'LIST' && w1 === 'ADDRESSES')
          return this.ok([t.addressesTitle, '', ...group.addresses, ''])
        if ((w0 === 'ADD' || w0 === 'REMOVE') && w1 === 'ADDRESS') {
          const address = (tokenText(cmd.tokens[2]) ?? '').toLowerCase()
          if (!/^[^@\s]+@[^@\s]+$/.test(address)) return this.err(t.badValue, 'address')
          const i = group.addresses.indexOf(address)
          if (w0 === 'ADD') {
            if (i === -1) group.addresses.push(address)
          } else if (i === -1) return this.err(t.aliasNotFound, address)
          else group.addresses.splice(i, 1)
          return this.ok()
        }
        if (w0 === 'SET' && w1 === 'ENABLE') {
          group.enabled = tokenText(cmd.tokens[2])?.toLowerCase() === 'yes'
          return this.ok()
        }
        if (w0 === 'SHOW')
          return this.ok(
            renderShow(t.showTitle, [
              { key: 'name', value: group.name },
              { key: 'enable', value: group.enabled },
            ]),
          )
        return undefined
      },
    }
  }
}

const QUOTAS = [
  'totalMessageSize',
  'totalMessageCount',
  'messageSize',
  'messageCount',
  'mboxCount',
  'quotaLimitThreshold',
] as const
const ADMIN_LIMITS = [
  'maxAccounts',
  'maxMaillists',
  'maxGroups',
  'maxFolderRecipients',
  'maxAccountClasses',
  'maxAccountMessageSizeQuota',
  'maxAccountMessageCountQuota',
  'maxAccountFolderCountQuota',
  'maxSubdomains',
] as const

function numbers(bag: Record<string, string | number>): Record<string, number> {
  return Object.fromEntries(Object.entries(bag).map(([k, v]) => [k, Number(v)]))
}

function strings(bag: Record<string, string | number>): Record<string, string> {
  return Object.fromEntries(Object.entries(bag).map(([k, v]) => [k, String(v)]))
}

function aliasEdit(sim: AxigenSimulator, aliases: string[], cmd: ParsedCommand): Outcome {
  const t = sim.texts
  const alias = (tokenText(cmd.tokens[2]) ?? '').toLowerCase()
  if (!/^[a-z0-9][a-z0-9._@+-]*$/.test(alias))
    return { ok: false, text: formatText(t.badValue, { name: 'alias' }) }
  const i = aliases.indexOf(alias)
  if (cmd.words[0] === 'ADD') {
    if (i !== -1) return { ok: false, text: formatText(t.aliasExists, { name: alias }) }
    aliases.push(alias)
  } else {
    if (i === -1) return { ok: false, text: formatText(t.aliasNotFound, { name: alias }) }
    aliases.splice(i, 1)
  }
  return { text: t.ok }
}

function domainEntries(
  d: Pick<SimDomain, 'name' | 'location' | 'groupware' | 'enabled' | 'services' | 'messagesLocations'>,
): RenderEntry[] {
  return [
    { key: 'name', value: d.name },
    { key: 'domainLocation', value: d.location },
    { key: 'groupwareSupport', value: d.groupware },
    { key: 'services', value: d.services },
    ...d.messagesLocations.map((m) => ({ key: 'messagesLocation', value: m })),
  ]
}

function accountEntries(a: SimAccount): RenderEntry[] {
  return [
    { key: 'name', value: a.name },
    { key: 'accountClassName', value: a.accountClass },
    ...Object.entries(a.attributes).map(([key, value]) => ({ key, value })),
  ]
}

function sumUsage(d: SimDomain): number {
  let n = 0
  for (const a of d.accounts.values()) n += a.usage.mboxSizeKb
  return n
}

function wildcardMatcher(pattern: string | undefined): (name: string) => boolean {
  if (pattern === undefined || pattern === '' || pattern === '*') return () => true
  const re = new RegExp(
    `^${pattern
      .toLowerCase()
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  )
  return (name) => re.test(name.toLowerCase())
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

function listenOn(server: net.Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      resolve(typeof address === 'object' && address ? address.port : 0)
    })
  })
}

/** Starts a simulator on 127.0.0.1:0 (and a TLS listener when `tls` is given). */
export async function startAxigenSimulator(options: SimulatorOptions = {}): Promise<AxigenSimulator> {
  return new AxigenSimulator(options).listen()
}
