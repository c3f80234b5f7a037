import { type CallInfo, type CallRecorder, createCallRecorder, ValidationError } from '@panelkit/core'
import { z } from 'zod'
import { type accountCommands, accountCommandsFor } from './commands/accounts.ts'
import { classCommands, groupCommands, mailingListCommands } from './commands/collections.ts'
import { type domainCommands, domainCommandsFor } from './commands/domains.ts'
import type { CliExecutor, CliScript } from './commands/script.ts'
import { serverCommands } from './commands/server.ts'
import { type AxigenDialect, AxigenDialectSchema } from './dialect.ts'
import { SessionPool } from './pool.ts'
import { assertSafe } from './protocol/encoder.ts'
import type { Reply } from './protocol/framer.ts'
import type { VersionInfo } from './protocol/output.ts'
import { CliSession, type ScriptStep } from './session/session.ts'
import { socketTransportFactory } from './transport/socket.ts'
import type { TransportFactory } from './transport/transport.ts'

/** The plain CLI port every public client uses (notes §1.1, C: S1, S2, S5–S8): what a stock server answers. */
export const DEFAULT_PORT = 7000
/**
 * Used only when `secure` is asked for without a port. Not an Axigen default — no public source names a
 * TLS port (notes §1.2, §7.9); it is the port AxiWHMCS documents for its SSL CLI. testConnection says so
 * when nothing answers TLS there.
 */
export const DEFAULT_SECURE_PORT = 7001

const PemSchema = z.union([z.string(), z.instanceof(Buffer)])
const CaSchema = z.union([PemSchema, z.array(PemSchema)])
const FingerprintSchema = z
  .string()
  .regex(/^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/, 'must be a SHA-256 fingerprint (AA:BB:… or hex)')

export const AxigenClientOptionsSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).optional(),
  /**
   * Implicit TLS. Default false: a stock Axigen CLI listens in plain text on 7000 (notes §1.2), and a TLS
   * listener is deployment configuration. Plain text sends the admin password in clear: a warning is
   * logged once per process (tunnel it, or enable TLS on the listener and set secure).
   */
  secure: z.boolean().default(false),
  username: z.string().min(1),
  password: z.string(),
  /**
   * Certificate trust with `secure`, the same names as the REST clients' `tls` option: `ca` (PEM CA
   * certificates to trust), `fingerprint` (pin the server certificate's SHA-256 fingerprint) or
   * `insecure` (accept any certificate; warns once).
   */
  tls: z
    .object({
      ca: CaSchema.optional(),
      fingerprint: FingerprintSchema.optional(),
      insecure: z.boolean().optional(),
    })
    .optional(),
  /** @deprecated use `tls.ca` */
  ca: CaSchema.optional(),
  /** @deprecated use `tls.fingerprint` */
  fingerprint256: FingerprintSchema.optional(),
  /** @deprecated use `tls.insecure` */
  insecure: z.boolean().optional(),
  servername: z.string().optional(),
  connectTimeoutMs: z.number().int().positive().default(10_000),
  greetingTimeoutMs: z.number().int().positive().default(10_000),
  /** Time limit for one command, from sending it to the end of its reply. Default 30 s. */
  timeoutMs: z.number().int().positive().optional(),
  /** @deprecated use `timeoutMs` */
  commandTimeoutMs: z.number().int().positive().optional(),
  socketIdleTimeoutMs: z.number().int().nonnegative().optional(),
  probeVersion: z.boolean().default(true),
  maxLineBytes: z.number().int().positive().optional(),
  maxReplyBytes: z.number().int().positive().optional(),
  /** Choices where the protocol is unknown (see `AxigenDialect` and the README). */
  dialect: AxigenDialectSchema.default(AxigenDialectSchema.parse({})),
  pool: z
    .object({
      max: z.number().int().positive().optional(),
      idleTimeoutMs: z.number().int().nonnegative().optional(),
      healthCheckAfterMs: z.number().int().nonnegative().optional(),
      acquireTimeoutMs: z.number().int().positive().optional(),
      maxWaiting: z.number().int().nonnegative().optional(),
    })
    .default({}),
})

export type AxigenClientOptions = z.input<typeof AxigenClientOptionsSchema> & {
  /** Where calls are logged and dry-run decided. Default: a recorder for `axigen-client`. */
  recorder?: CallRecorder
  /** Replaces the socket transport (tests, tunnels). */
  transport?: TransportFactory
  onWarning?: (message: string) => void
}

export interface RunOptions {
  signal?: AbortSignal | undefined
}

/** A client bound to a pool; `withRecorder` gives a view that logs to another recorder. */
export interface AxigenClient extends CliExecutor {
  readonly recorder: CallRecorder
  readonly pool: SessionPool
  readonly host: string
  readonly port: number
  readonly secure: boolean
  readonly dialect: AxigenDialect
  withRecorder(recorder: CallRecorder, signal?: AbortSignal): AxigenClient
  /**
   * Holds one pooled session for several scripts, each starting where the previous one left the
   * session (the first starts at the root): a read and the write it decides visit the domain once
   * instead of entering it again from the root. Each script is still its own recorded call (a write
   * is not sent under dry-run); the session goes back to the root at the end, discarding anything
   * uncommitted.
   */
  visit<T>(fn: (session: CliExecutor) => Promise<T>, options?: RunOptions): Promise<T>
  /**
   * A view whose scripts open their domain with `EDIT Domain` instead of `UPDATE Domain`: the documented
   * command for an inactive domain (notes §3.1), for servers that refuse UPDATE on a disabled domain.
   */
  forDisabledDomain(): AxigenClient
  domains: ReturnType<typeof bindCommands<typeof domainCommands>>
  accounts: ReturnType<typeof bindCommands<typeof accountCommands>>
  classes: ReturnType<typeof bindCommands<typeof classCommands>>
  lists: ReturnType<typeof bindCommands<typeof mailingListCommands>>
  groups: ReturnType<typeof bindCommands<typeof groupCommands>>
  server: ReturnType<typeof bindCommands<typeof serverCommands>> & {
    /**
     * The version the server reported before login (read once per session, no extra round trip);
     * undefined when `probeVersion` is off or the server did not answer it.
     */
    version(): Promise<VersionInfo | undefined>
  }
  close(): Promise<void>
}

type Bound<F> = F extends (...args: infer A) => CliScript<infer T> ? (...args: [...A]) => Promise<T> : never

/** Turns script builders into methods that run them (the last argument may not carry options). */
function bindCommands<C extends Record<string, (...args: never[]) => CliScript<unknown>>>(
  executor: CliExecutor,
  commands: C,
): { [K in keyof C]: Bound<C[K]> } {
  const out: Record<string, unknown> = {}
  for (const [name, build] of Object.entries(commands)) {
    out[name] = (...args: unknown[]) => {
      // A validation error while building the script is a rejection, like any other failure.
      try {
        return executor.run((build as (...a: unknown[]) => CliScript<unknown>)(...args))
      } catch (error) {
        return Promise.reject(error)
      }
    }
  }
  return out as { [K in keyof C]: Bound<C[K]> }
}

interface Shared {
  dialect: AxigenDialect
  /** The dialect's script builders, made once per client (views are made per operation). */
  commands: { domains: typeof domainCommands; accounts: typeof accountCommands }
  pool: SessionPool
  host: string
  port: number
  secure: boolean
}

/** What one script run hands the recorder: the parsed value and the raw replies (for the log). */
interface ScriptRun {
  value: unknown
  replies: readonly Reply[]
}

const statusOf = (r: Reply) => `${r.status?.ok ? '+OK' : '-ERR'}: ${r.status?.text ?? ''}`
/** The log keeps the status lines only: listings can be large and are not worth redacting. */
const summarizeRun = (run: ScriptRun) => run.replies.map(statusOf)
const NOT_SENT: readonly Reply[] = []

const UPDATE_DOMAIN = /^UPDATE Domain /

/** The same script entering its domain with EDIT Domain; the context paths gain the `-edit` segment. */
function viaEdit<T>(script: CliScript<T>, continued = false): CliScript<T> {
  // A script that goes on inside a visit is already in the domain: only its contexts are renamed.
  if (!continued && (!script.steps[0] || !UPDATE_DOMAIN.test(script.steps[0].command.line))) return script
  const steps = script.steps.map((s, i) => {
    const out: ScriptStep = { ...s }
    if (i === 0)
      out.command = {
        line: s.command.line.replace(UPDATE_DOMAIN, 'EDIT Domain '),
        masked: s.command.masked.replace(UPDATE_DOMAIN, 'EDIT Domain '),
      }
    if (s.expect === 'domain' || s.expect?.startsWith('domain-'))
      out.expect = `domain-edit${s.expect.slice(6)}`
    return out
  })
  return { ...script, steps }
}

function makeClient(
  shared: Shared,
  recorder: CallRecorder,
  signal?: AbortSignal,
  edit = false,
): AxigenClient {
  /** Runs one script as a recorded call; `send` runs its (possibly renamed) steps on a session. */
  const recorded = <T>(
    original: CliScript<T>,
    continued: boolean,
    send: (steps: readonly ScriptStep[]) => Promise<Reply[]>,
  ): Promise<T> => {
    const script = edit ? viaEdit(original, continued) : original
    const info: CallInfo<ScriptRun> = {
      system: 'axigen',
      action: script.action,
      access: script.access,
      request: { commands: script.steps.map((s) => s.command.masked) },
      summarize: summarizeRun,
    }
    if (script.target !== undefined) info.target = script.target
    if (script.access === 'write') {
      info.dryRunResult = () => ({ value: script.dryRun ? script.dryRun() : undefined, replies: NOT_SENT })
    }
    return recorder
      .call(info, () =>
        send(script.steps).then((replies): ScriptRun => ({ value: script.parse(replies), replies })),
      )
      .then((run) => run.value as T)
  }
  const executor: CliExecutor = {
    run<T>(script: CliScript<T>, options: RunOptions = {}): Promise<T> {
      const runSignal = options.signal ?? signal
      const sendOptions = { signal: runSignal, recorder }
      const poolOptions = { signal: runSignal }
      return recorded(script, false, (steps) =>
        shared.pool.use((session) => session.runScript(steps, sendOptions), poolOptions),
      )
    },
  }
  const visit = <T>(fn: (held: CliExecutor) => Promise<T>, options: RunOptions = {}): Promise<T> => {
    const runSignal = options.signal ?? signal
    const sendOptions = { signal: runSignal, recorder }
    return shared.pool.use(
      async (session) => {
        // Until a script has been sent (a dry-run write is not), the next one starts at the root.
        let started = false
        const held: CliExecutor = {
          run: <S>(script: CliScript<S>) =>
            recorded(script, started, (steps) => {
              const sent = started
                ? session.continueScript(steps, sendOptions)
                : session.runScript(steps, sendOptions)
              started = true
              return sent
            }),
        }
        try {
          return await fn(held)
        } finally {
          await session.leave(runSignal)
        }
      },
      { signal: runSignal },
    )
  }
  // A view is made for every operation (its recorder and signal): the command groups are bound on
  // first use, not all of them each time.
  let domains: AxigenClient['domains'] | undefined
  let accounts: AxigenClient['accounts'] | undefined
  let classes: AxigenClient['classes'] | undefined
  let lists: AxigenClient['lists'] | undefined
  let groups: AxigenClient['groups'] | undefined
  let server: AxigenClient['server'] | undefined
  const client: AxigenClient = {
    ...executor,
    visit,
    recorder,
    pool: shared.pool,
    host: shared.host,
    port: shared.port,
    secure: shared.secure,
    dialect: shared.dialect,
    withRecorder: (r, s) => makeClient(shared, r, s ?? signal, edit),
    forDisabledDomain: () => makeClient(shared, recorder, signal, true),
    get domains() {
      domains ??= bindCommands(executor, shared.commands.domains)
      return domains
    },
    get accounts() {
      accounts ??= bindCommands(executor, shared.commands.accounts)
      return accounts
    },
    get classes() {
      classes ??= bindCommands(executor, classCommands)
      return classes
    },
    get lists() {
      lists ??= bindCommands(executor, mailingListCommands)
      return lists
    },
    get groups() {
      groups ??= bindCommands(executor, groupCommands)
      return groups
    },
    get server() {
      server ??= {
        ...bindCommands(executor, serverCommands),
        version: () =>
          recorder.call({ system: 'axigen', action: 'VERSION', access: 'read' }, () =>
            shared.pool.use(
              async (session) => {
                await session.runScript([], { signal, recorder })
                return session.version
              },
              { signal },
            ),
          ),
      }
      return server
    },
    close: () => shared.pool.close(),
  }
  return client
}

/**
 * A pooled Axigen CLI client. Nothing connects until the first command; every command runs as a
 * recorded script on a logged-in session from the pool.
 */
export function createAxigenClient(options: AxigenClientOptions): AxigenClient {
  const parsed = AxigenClientOptionsSchema.safeParse(options)
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({
      path: i.path.join('.') || 'options',
      message: i.message,
    }))
    throw new ValidationError(
      `Invalid Axigen client options: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
      issues,
    )
  }
  const o = parsed.data
  assertSafe(o.username, 'username')
  assertSafe(o.password, 'password')
  const port = o.port ?? (o.secure ? DEFAULT_SECURE_PORT : DEFAULT_PORT)
  const recorder = options.recorder ?? createCallRecorder({ connector: 'axigen-client' })
  recorder.redactor.addValue(o.password)
  const transportOptions: Parameters<typeof socketTransportFactory>[0] = {
    host: o.host,
    port,
    secure: o.secure,
    insecure: o.tls?.insecure ?? o.insecure ?? false,
    connectTimeoutMs: o.connectTimeoutMs,
  }
  const ca = o.tls?.ca ?? o.ca
  if (ca !== undefined) transportOptions.ca = ca
  const fingerprint = o.tls?.fingerprint ?? o.fingerprint256
  if (fingerprint !== undefined) transportOptions.fingerprint256 = fingerprint
  if (o.servername !== undefined) transportOptions.servername = o.servername
  if (o.socketIdleTimeoutMs !== undefined) transportOptions.socketIdleTimeoutMs = o.socketIdleTimeoutMs
  if (options.onWarning) transportOptions.onWarning = options.onWarning
  const connect = options.transport ?? socketTransportFactory(transportOptions)
  const framer: { maxLineBytes?: number; maxReplyBytes?: number } = {}
  if (o.maxLineBytes !== undefined) framer.maxLineBytes = o.maxLineBytes
  if (o.maxReplyBytes !== undefined) framer.maxReplyBytes = o.maxReplyBytes
  const pool = new SessionPool(
    () =>
      new CliSession({
        connect,
        username: o.username,
        password: o.password,
        probeVersion: o.probeVersion,
        greetingTimeoutMs: o.greetingTimeoutMs,
        commandTimeoutMs: o.timeoutMs ?? o.commandTimeoutMs ?? 30_000,
        framer,
      }),
    Object.fromEntries(Object.entries(o.pool).filter(([, v]) => v !== undefined)),
  )
  const commands = { domains: domainCommandsFor(o.dialect), accounts: accountCommandsFor(o.dialect) }
  return makeClient({ pool, host: o.host, port, secure: o.secure, dialect: o.dialect, commands }, recorder)
}
