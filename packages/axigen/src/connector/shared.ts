import tls from 'node:tls'
import {
  type CallRecorder,
  ConnectionError,
  isPanelkitError,
  type Server,
  type TestConnectionResult,
  ValidationError,
} from '@panelkit/core'
import { z } from 'zod'
import { type AxigenClient, createAxigenClient, DEFAULT_PORT, DEFAULT_SECURE_PORT } from '../client.ts'
import { AxigenDialectSchema } from '../dialect.ts'

/** Transport options an operator may put in `server.options`. */
export const AxigenServerOptionsSchema = z
  .object({
    ca: z.string().optional(),
    /** SHA-256 fingerprint of the CLI listener's certificate: only that certificate is trusted. */
    fingerprint: z.string().optional(),
    /** @deprecated use `fingerprint` */
    fingerprint256: z.string().optional(),
    insecure: z.boolean().optional(),
    servername: z.string().optional(),
    connectTimeoutMs: z.coerce.number().int().positive().optional(),
    greetingTimeoutMs: z.coerce.number().int().positive().optional(),
    /** Time limit for one command. */
    timeoutMs: z.coerce.number().int().positive().optional(),
    /** @deprecated use `timeoutMs` */
    commandTimeoutMs: z.coerce.number().int().positive().optional(),
    poolMax: z.coerce.number().int().positive().max(64).optional(),
    probeVersion: z.boolean().optional(),
    // Choices where the protocol is unknown (AxigenDialect; the README lists each).
    markerAttribute: AxigenDialectSchema.shape.markerAttribute.optional(),
    classAssignment: AxigenDialectSchema.shape.classAssignment.optional(),
    migrationAttributes: AxigenDialectSchema.shape.migrationAttributes.optional(),
    emptyServiceList: AxigenDialectSchema.shape.emptyServiceList.optional(),
    mboxSizeUnit: AxigenDialectSchema.shape.mboxSizeUnit.optional(),
  })
  .loose()
export type AxigenServerOptions = z.infer<typeof AxigenServerOptionsSchema>

const DIALECT_KEYS = [
  'markerAttribute',
  'classAssignment',
  'migrationAttributes',
  'emptyServiceList',
  'mboxSizeUnit',
] as const

/**
 * Runs `fn`; when the server refuses to open a domain with UPDATE Domain (a disabled domain on some
 * servers), runs it again opening the domain with EDIT Domain, the documented door to an inactive domain.
 * A refused UPDATE was the script's first command, so nothing had changed. If EDIT is refused too (an
 * enabled domain, or a server that allows neither), the first error stands.
 */
export async function onDomain<T>(client: AxigenClient, fn: (c: AxigenClient) => Promise<T>): Promise<T> {
  try {
    return await fn(client)
  } catch (error) {
    if (!isUpdateDomainRefusal(error)) throw error
    try {
      return await fn(client.forDisabledDomain())
    } catch (second) {
      if (
        isPanelkitError(second) &&
        second.kind === 'COMMAND' &&
        /^EDIT Domain /.test(String(second.details?.command))
      )
        throw error
      throw second
    }
  }
}

/** Whether the server refused to open a domain (UPDATE Domain, or EDIT Domain for a disabled one). */
export function isDomainEntryRefusal(error: unknown): boolean {
  return (
    isPanelkitError(error) &&
    error.kind === 'COMMAND' &&
    /^(UPDATE|EDIT) Domain /.test(String(error.details?.command))
  )
}

/** The server refused to open an account (`UPDATE Account`): it may be missing; look it up to tell. */
export function isAccountEntryRefusal(error: unknown): boolean {
  return (
    isPanelkitError(error) &&
    error.kind === 'COMMAND' &&
    /^UPDATE Account /.test(String(error.details?.command))
  )
}

function isUpdateDomainRefusal(error: unknown): boolean {
  return (
    isPanelkitError(error) &&
    error.kind === 'COMMAND' &&
    /^UPDATE Domain /.test(String(error.details?.command))
  )
}

/** One pooled client per distinct server and credentials, kept for the connector instance's life. */
export class ClientCache {
  private readonly clients = new Map<string, AxigenClient>()

  get(server: Server, calls: CallRecorder, signal?: AbortSignal): AxigenClient {
    const port = server.port ?? (server.secure ? DEFAULT_SECURE_PORT : DEFAULT_PORT)
    // Keyed by what the caller gave, so a known server costs no parse (each operation asks again).
    const key = JSON.stringify([
      server.hostname,
      server.ip,
      port,
      server.secure,
      server.username,
      server.password,
      server.options,
    ])
    const known = this.clients.get(key)
    if (known) return known.withRecorder(calls, signal)
    const parsed = AxigenServerOptionsSchema.safeParse(server.options)
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => ({
        path: `server.options.${i.path.join('.')}`,
        message: i.message,
      }))
      throw new ValidationError(
        `Invalid server options: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`,
        issues,
      )
    }
    const o = parsed.data
    const options: Parameters<typeof createAxigenClient>[0] = {
      host: server.ip && server.secure === false ? server.ip : server.hostname,
      port,
      secure: server.secure,
      username: server.username ?? 'admin',
      password: server.password ?? '',
      recorder: calls,
      pool: { max: o.poolMax ?? 4 },
    }
    for (const k of ['servername', 'connectTimeoutMs', 'greetingTimeoutMs', 'probeVersion'] as const) {
      if (o[k] !== undefined) (options as Record<string, unknown>)[k] = o[k]
    }
    const tls: NonNullable<typeof options.tls> = {}
    if (o.ca !== undefined) tls.ca = o.ca
    const fingerprint = o.fingerprint ?? o.fingerprint256
    if (fingerprint !== undefined) tls.fingerprint = fingerprint
    if (o.insecure !== undefined) tls.insecure = o.insecure
    if (Object.keys(tls).length > 0) options.tls = tls
    const timeoutMs = o.timeoutMs ?? o.commandTimeoutMs
    if (timeoutMs !== undefined) options.timeoutMs = timeoutMs
    const dialect: Record<string, unknown> = {}
    for (const k of DIALECT_KEYS) if (o[k] !== undefined) dialect[k] = o[k]
    options.dialect = dialect
    const client = createAxigenClient(options)
    this.clients.set(key, client)
    return client.withRecorder(calls, signal)
  }

  async close(): Promise<void> {
    const all = [...this.clients.values()]
    this.clients.clear()
    await Promise.all(all.map((c) => c.close()))
  }
}

/** Whether something answers a TLS handshake on host:port (used to explain a silent plain port). */
export function speaksTls(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host, port, rejectUnauthorized: false }, () => {
      socket.destroy()
      resolve(true)
    })
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(false)
    }, timeoutMs)
    socket.on('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
    socket.on('close', () => clearTimeout(timer))
  })
}

/**
 * Opens a fresh session (not from the pool, so a stale pooled login cannot hide a problem), logs in and
 * reads the version. Failures keep their actionable message; a silent plain port is probed for TLS so
 * the operator learns that Secure must be turned on.
 */
export async function diagnoseConnection(
  server: Server,
  calls: CallRecorder,
  signal: AbortSignal,
): Promise<TestConnectionResult> {
  const started = performance.now()
  const cache = new ClientCache()
  const port = server.port ?? (server.secure ? DEFAULT_SECURE_PORT : DEFAULT_PORT)
  try {
    const client = cache.get(
      { ...server, options: { greetingTimeoutMs: 5_000, ...server.options, poolMax: 1 } },
      calls,
      signal,
    )
    const version = await client.server.version()
    const result: TestConnectionResult = {
      latencyMs: performance.now() - started,
      details: {
        host: server.hostname,
        port,
        secure: server.secure,
        os: version?.os,
        platform: version?.platform,
      },
    }
    if (version) result.version = version.version
    return result
  } catch (error) {
    const diagnosis = isPanelkitError(error) ? error.details?.diagnosis : undefined
    if (!server.secure && diagnosis === 'no-banner' && (await speaksTls(server.hostname, port, 1_000))) {
      throw new ConnectionError(
        `${server.hostname}:${port} speaks TLS, but Secure is off: turn Secure on for this server (or use the ` +
          'plain CLI port, 7000 by default) — both ends must agree.',
        { cause: error, retryable: false, details: { diagnosis: 'plain-expected-tls-found' } },
      )
    }
    // Secure without a port tries 7001, which is not an Axigen default (notes §1.2): say so, and name
    // what a stock server answers.
    if (
      server.secure &&
      server.port === undefined &&
      typeof diagnosis === 'string' &&
      ['refused', 'tls-expected-plain-found', 'tls-handshake-timeout', 'timeout'].includes(diagnosis)
    ) {
      const why = isPanelkitError(error) ? error.message : String(error)
      throw new ConnectionError(
        `${why} Secure is on and no port is set, so panelkit tried ${DEFAULT_SECURE_PORT}, which is not an ` +
          `Axigen default: a stock Axigen CLI listens in plain text on ${DEFAULT_PORT}. Set the port of your TLS ` +
          `CLI listener, or turn Secure off to use ${DEFAULT_PORT} (over an SSH tunnel if the network is not trusted).`,
        {
          cause: error,
          retryable: false,
          details: { diagnosis, defaultPortTried: DEFAULT_SECURE_PORT, suggestedPort: DEFAULT_PORT },
        },
      )
    }
    throw error
  } finally {
    await cache.close()
  }
}

/**
 * Maps with at most `limit` calls in flight, keeping the order of `items`. Import reads many accounts:
 * bounded by the pool size, they use every pooled session without queueing hundreds of callers.
 */
export async function mapBounded<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      results[i] = await fn(items[i] as T)
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  return results
}
