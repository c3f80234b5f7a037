import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { CallRecorder } from '../calls.ts'
import { defineConnector } from '../connector.ts'
import { AuthError, ConflictError, ConnectionError, NotFoundError } from '../errors.ts'
import { definePipeline } from '../pipeline.ts'
import { setting } from '../settings.ts'

/**
 * An in-memory hosting panel and the connector for it: the complete example of the contract, used by
 * core's own tests, the README and anyone learning to write a connector. The panel is a plain object
 * with accounts; the connector reaches it only through the call recorder, as a real transport would.
 */

export interface MemoryAccount {
  id: string
  username: string
  email: string
  /** The billing service that owns the account (stored as a tag, like the real connectors do). */
  serviceId: string
  plan: string
  password: string
  suspended: boolean
  diskUsedMb: number
}

export interface MemoryPanelOptions {
  /** API password the panel accepts. */
  apiPassword?: string
}

/** The panel's side: state, counters and fault injection for tests. */
export class MemoryPanel {
  readonly accounts = new Map<string, MemoryAccount>()
  readonly apiPassword: string
  writes = 0
  reads = 0
  /** Fail the next `n` calls with a connection error (fault injection). */
  failNext = 0
  /**
   * A crash point: the n-th write from now takes effect, then its caller gets a connection error as if
   * the connection died before the answer (0 = disarmed).
   */
  crashAfterWrites = 0
  private nextId = 1

  constructor(options: MemoryPanelOptions = {}) {
    this.apiPassword = options.apiPassword ?? 'panel-api-secret'
  }

  private gate(password: string | undefined, access: 'read' | 'write'): void {
    if (this.failNext > 0) {
      this.failNext--
      throw new ConnectionError('memory panel: connection reset (injected)')
    }
    if (password !== this.apiPassword) throw new AuthError('memory panel: bad API password')
    if (access === 'write') this.writes++
    else this.reads++
  }

  find(username: string): MemoryAccount | undefined {
    return this.accounts.get(username.toLowerCase())
  }

  handle(password: string | undefined, command: string, args: Record<string, string>): unknown {
    const access = command.startsWith('get') || command === 'list' || command === 'version' ? 'read' : 'write'
    this.gate(password, access)
    const result = this.apply(command, args)
    if (access === 'write' && this.crashAfterWrites > 0 && --this.crashAfterWrites === 0) {
      throw new ConnectionError('memory panel: connection lost after the write took effect (injected crash)')
    }
    return result
  }

  private apply(command: string, args: Record<string, string>): unknown {
    const username = (args.username ?? '').toLowerCase()
    switch (command) {
      case 'version':
        return { version: '1.0.0' }
      case 'list':
        return [...this.accounts.values()].map((a) => ({ ...a, password: undefined }))
      case 'get': {
        const a = this.find(username)
        return a ? { ...a, password: undefined } : null
      }
      case 'create': {
        if (this.find(username)) throw new ConflictError(`memory panel: username ${username} is taken`)
        const account: MemoryAccount = {
          id: String(this.nextId++),
          username,
          email: args.email ?? '',
          serviceId: args.serviceId ?? '',
          plan: args.plan ?? 'basic',
          password: args.password ?? '',
          suspended: false,
          diskUsedMb: 0,
        }
        this.accounts.set(username, account)
        return { id: account.id }
      }
      default: {
        const a = this.find(username)
        if (!a) throw new NotFoundError(`memory panel: no account ${username}`)
        if (command === 'suspend') a.suspended = true
        else if (command === 'unsuspend') a.suspended = false
        else if (command === 'delete') this.accounts.delete(username)
        else if (command === 'password') a.password = args.password ?? ''
        else if (command === 'plan') a.plan = args.plan ?? a.plan
        else if (command === 'usage') a.diskUsedMb = Number(args.diskUsedMb ?? 0)
        return { ok: true }
      }
    }
  }
}

/** What the connector talks to: a panel in this process, or one in another process over HTTP. */
export interface MemoryPanelEndpoint {
  handle(password: string | undefined, command: string, args: Record<string, string>): unknown
}

const panels = new Map<string, MemoryPanelEndpoint>()

/** Registers a panel under a host name; the connector finds it by `server.hostname`. */
export function registerMemoryPanel<P extends MemoryPanelEndpoint = MemoryPanel>(
  hostname: string,
  panel: P = new MemoryPanel() as unknown as P,
): P {
  panels.set(hostname, panel)
  return panel
}

const REMOTE_ERRORS: Record<string, new (message: string) => Error> = {
  AUTH: AuthError,
  CONFLICT: ConflictError,
  NOT_FOUND: NotFoundError,
  CONNECTION: ConnectionError,
}

/**
 * Serves a panel over HTTP on 127.0.0.1, so that a connector in another process (the contract suite's
 * kill-between-steps children) reaches the same accounts: `registerMemoryPanel(host, remoteMemoryPanel(url))`
 * there. A write takes effect before its answer is sent, as on a real panel.
 */
export async function serveMemoryPanel(panel: MemoryPanel): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      let status = 200
      let body: unknown
      try {
        const { password, command, args } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          password?: string
          command: string
          args: Record<string, string>
        }
        body = { result: panel.handle(password, command, args) ?? null }
      } catch (error) {
        status = 500
        const code = (error as { kind?: string }).kind ?? 'INTERNAL'
        body = { error: { kind: code, message: error instanceof Error ? error.message : String(error) } }
      }
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A panel served by `serveMemoryPanel` in another process. */
export function remoteMemoryPanel(url: string): MemoryPanelEndpoint {
  return {
    async handle(password, command, args) {
      let response: Response
      try {
        response = await fetch(url, { method: 'POST', body: JSON.stringify({ password, command, args }) })
      } catch (error) {
        throw new ConnectionError(`memory panel ${url}: ${(error as Error).message}`)
      }
      const body = (await response.json()) as { result?: unknown; error?: { kind: string; message: string } }
      if (body.error) {
        const ErrorClass = REMOTE_ERRORS[body.error.kind]
        throw ErrorClass ? new ErrorClass(body.error.message) : new Error(body.error.message)
      }
      return body.result
    },
  }
}

export function unregisterMemoryPanel(hostname: string): void {
  panels.delete(hostname)
}

/** The connector's "client": one function per panel command, every call through the recorder. */
function memoryClient(hostname: string, apiPassword: string | undefined, calls: CallRecorder) {
  const send = <T>(
    command: string,
    args: Record<string, string>,
    access: 'read' | 'write',
    dryRunResult?: () => T,
  ) =>
    calls.call<T>(
      {
        system: 'memory-panel',
        action: command,
        access,
        target: hostname,
        request: args,
        ...(dryRunResult ? { dryRunResult } : {}),
      },
      async () => {
        const panel = panels.get(hostname)
        if (!panel) throw new ConnectionError(`memory panel ${hostname}: connection refused (no such panel)`)
        return structuredClone(await panel.handle(apiPassword, command, args)) as T
      },
    )
  return {
    version: () => send<{ version: string }>('version', {}, 'read'),
    get: (username: string) => send<Omit<MemoryAccount, 'password'> | null>('get', { username }, 'read'),
    list: () => send<Omit<MemoryAccount, 'password'>[]>('list', {}, 'read'),
    create: (args: Record<string, string>) =>
      send<{ id: string }>('create', args, 'write', () => ({ id: 'dry-run' })),
    command: (command: string, args: Record<string, string>) => send(command, args, 'write'),
  }
}

interface ProvisionData extends Record<string, unknown> {
  username: string
  accountId?: string
}

/** Create as a pipeline: check, create, apply the plan, verify — each step idempotent. */
const provisionPipeline = definePipeline<
  ProvisionData,
  ReturnType<typeof memoryClient> & { plan: string; email: string; serviceId: string; password: string }
>({
  name: 'memory-provision',
  title: 'Provision',
  initialState: 'new',
  steps: [
    {
      name: 'create-account',
      label: 'Create account',
      state: 'created',
      async run({ data, context }) {
        const existing = await context.get(data.username)
        if (existing) {
          if (existing.serviceId !== context.serviceId) {
            throw new ConflictError(
              `Username ${data.username} belongs to service ${existing.serviceId}, not ${context.serviceId}`,
            )
          }
          return { status: 'skipped', reason: 'exists', data: { accountId: existing.id } }
        }
        const created = await context.create({
          username: data.username,
          email: context.email,
          serviceId: context.serviceId,
          plan: context.plan,
          password: context.password,
        })
        return { status: 'done', data: { accountId: created.id } }
      },
    },
    {
      name: 'apply-plan',
      label: 'Apply plan',
      state: 'planned',
      async run({ data, context }) {
        const account = await context.get(data.username)
        if (account && account.plan === context.plan) return { status: 'skipped', reason: 'no change' }
        await context.command('plan', { username: data.username, plan: context.plan })
        return { status: 'done' }
      },
    },
  ],
})

export const memoryPanelConnector = defineConnector({
  id: 'memory-panel',
  metadata: {
    displayName: 'Memory Panel (example)',
    system: 'memory-panel',
    defaultPort: 80,
    defaultSecurePort: 443,
  },
  settings: {
    plan: setting.dropdown({ label: 'Plan', options: ['basic', 'pro', 'enterprise'], default: 'basic' }),
    diskQuotaMb: setting.number({ label: 'Disk quota', unit: 'MB', min: 0, integer: true, default: 1024 }),
    welcomeEmail: setting.yesNo({ label: 'Send welcome email', default: false }),
  },
  operations: {
    async create(ctx) {
      const { client, username } = session(ctx)
      const existing = await client.get(username)
      const run = await ctx.runPipeline(provisionPipeline, {
        data: { username },
        context: {
          ...client,
          plan: ctx.settings.plan,
          email: ctx.service.client.email,
          serviceId: ctx.service.serviceId,
          password: ctx.service.password ?? '',
        },
      })
      return {
        accountId: run.checkpoint.data.accountId ?? username,
        created: !existing,
        username,
        serverId: ctx.server.id ?? ctx.server.hostname,
      }
    },
    async suspend(ctx) {
      return setSuspended(ctx, true)
    },
    async unsuspend(ctx) {
      return setSuspended(ctx, false)
    },
    async terminate(ctx) {
      const { client, find } = session(ctx)
      const account = await find()
      if (!account) return { changed: false }
      await client.command('delete', { username: account.username })
      return { changed: true }
    },
    async changePassword(ctx) {
      const { client, require } = session(ctx)
      const account = await require()
      await client.command('password', { username: account.username, password: ctx.service.password ?? '' })
      return { changed: true }
    },
    async changePackage(ctx) {
      const { client, require } = session(ctx)
      const account = await require()
      if (account.plan === ctx.settings.plan) return { changed: false, applied: [] }
      await client.command('plan', { username: account.username, plan: ctx.settings.plan })
      return { changed: true, applied: ['plan'] }
    },
    async usage(ctx) {
      const { require } = session(ctx)
      const account = await require()
      return {
        collectedAt: new Date().toISOString(),
        metrics: [{ name: 'disk', value: account.diskUsedMb, unit: 'MB', limit: ctx.settings.diskQuotaMb }],
      }
    },
    async clientArea(ctx) {
      const { require } = session(ctx)
      const account = await require()
      return {
        fields: [
          { key: 'plan', label: 'Plan', value: account.plan },
          {
            key: 'disk',
            label: 'Disk used',
            value: account.diskUsedMb,
            unit: 'MB',
            limit: ctx.settings.diskQuotaMb,
          },
          { key: 'status', label: 'Status', value: account.suspended ? 'suspended' : 'active' },
        ],
        links: [],
      }
    },
    async sso(ctx) {
      const { require } = session(ctx)
      const account = await require()
      const token = `${ctx.audience}-${account.id}-${Math.random().toString(36).slice(2)}`
      ctx.redactor.addValue(token)
      return {
        url: `https://${ctx.server.hostname}/sso?token=${token}`,
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
      }
    },
    async testConnection(ctx) {
      const started = performance.now()
      const client = memoryClient(ctx.server.hostname, ctx.server.password, ctx.calls)
      const { version } = await client.version()
      return { version, latencyMs: performance.now() - started, details: {} }
    },
    async listAccounts(ctx) {
      const client = memoryClient(ctx.server.hostname, ctx.server.password, ctx.calls)
      const accounts = await client.list()
      return {
        accounts: accounts.map((a) => ({
          accountId: a.id,
          username: a.username,
          email: a.email,
          serviceId: a.serviceId,
          status: a.suspended ? ('suspended' as const) : ('active' as const),
        })),
      }
    },
  },
  actions: {
    resetUsage: {
      label: 'Reset usage counters',
      audience: ['admin'],
      access: 'write',
      async run(ctx) {
        const { client, require } = session(ctx)
        const account = await require()
        await client.command('usage', { username: account.username, diskUsedMb: '0' })
        return { message: 'Usage counters reset' }
      },
    },
  },
})

async function owned(client: ReturnType<typeof memoryClient>, username: string, serviceId: string) {
  const account = await client.get(username)
  if (!account) return undefined
  if (account.serviceId !== serviceId) {
    throw new ConflictError(`Account ${username} belongs to service ${account.serviceId}, not ${serviceId}`)
  }
  return account
}

async function requireOwned(client: ReturnType<typeof memoryClient>, username: string, serviceId: string) {
  const account = await owned(client, username, serviceId)
  if (!account) throw new NotFoundError(`No account ${username} for service ${serviceId}`)
  return account
}

interface AccountScope {
  server: { hostname: string; password?: string | undefined }
  calls: CallRecorder
  service: { username?: string | undefined; serviceId: string }
}

/** The client, the account's username, and look-ups that check the account belongs to this service. */
function session(ctx: AccountScope) {
  const client = memoryClient(ctx.server.hostname, ctx.server.password, ctx.calls)
  const username = ctx.service.username ?? `svc${ctx.service.serviceId}`
  return {
    client,
    username,
    find: () => owned(client, username, ctx.service.serviceId),
    require: () => requireOwned(client, username, ctx.service.serviceId),
  }
}

async function setSuspended(ctx: AccountScope, suspended: boolean) {
  const { client, require } = session(ctx)
  const account = await require()
  if (account.suspended === suspended) return { changed: false }
  await client.command(suspended ? 'suspend' : 'unsuspend', { username: account.username })
  return { changed: true }
}
