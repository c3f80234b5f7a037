import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  type CallRecorder,
  ConflictError,
  ConnectionError,
  defineConnector,
  definePipeline,
  HttpError,
  NotFoundError,
  setting,
  toPanelkitError,
} from '@panelkit/core'

/**
 * A small hosting panel over HTTP, and its connector, for the provisioner's own end-to-end, crash and
 * multi-process tests and the benchmark: unlike core's in-memory panel it can be reached from another
 * process, so workers can be killed with `kill -9` while the panel keeps count of every effect.
 */

export interface PanelAccount {
  username: string
  serviceId: string
  plan: string
  password: string
  suspended: boolean
  ip: string | null
}

export interface HttpPanelOptions {
  apiKey?: string
  /** Milliseconds every write takes (so a kill lands in the middle of work). */
  writeDelayMs?: number
}

export interface HttpPanel {
  url: string
  apiKey: string
  accounts: Map<string, PanelAccount>
  /** Every create that reached the panel, by username (a second one is a double effect). */
  creates: Map<string, number>
  writes: number
  /** Fail the next `n` requests with HTTP 503. */
  failNext: number
  close(): Promise<void>
}

export async function startHttpPanel(options: HttpPanelOptions = {}): Promise<HttpPanel> {
  const apiKey = options.apiKey ?? 'panel-api-key-0123456789'
  const state = {
    accounts: new Map<string, PanelAccount>(),
    creates: new Map<string, number>(),
    writes: 0,
    failNext: 0,
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      if (req.headers.authorization !== `Bearer ${apiKey}`) return reply(401, { error: 'bad api key' })
      if (state.failNext > 0) {
        state.failNext--
        return reply(503, { error: 'unavailable (injected)' })
      }
      const command = (req.url ?? '').replace(/^\/api\//, '')
      let args: Record<string, string> = {}
      try {
        args = chunks.length
          ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, string>)
          : {}
      } catch {
        return reply(400, { error: 'bad json' })
      }
      const write = !['get', 'list', 'version'].includes(command)
      const run = () => {
        const a = state.accounts.get(args.username ?? '')
        switch (command) {
          case 'version':
            return reply(200, { version: '2.0.0' })
          case 'list':
            return reply(
              200,
              [...state.accounts.values()].map((x) => ({ ...x, password: undefined })),
            )
          case 'get':
            return reply(200, a ? { ...a, password: undefined } : null)
          case 'create': {
            state.writes++
            if (a) return reply(409, { error: `username ${args.username} is taken` })
            const username = args.username ?? ''
            state.creates.set(username, (state.creates.get(username) ?? 0) + 1)
            state.accounts.set(username, {
              username,
              serviceId: args.serviceId ?? '',
              plan: args.plan ?? 'basic',
              password: args.password ?? '',
              suspended: false,
              ip: args.ip ?? null,
            })
            return reply(200, { ok: true })
          }
          default: {
            if (!a) return reply(404, { error: `no account ${args.username}` })
            state.writes++
            if (command === 'suspend') a.suspended = true
            else if (command === 'unsuspend') a.suspended = false
            else if (command === 'delete') state.accounts.delete(a.username)
            else if (command === 'password') a.password = args.password ?? ''
            else if (command === 'plan') a.plan = args.plan ?? a.plan
            else return reply(400, { error: `unknown command ${command}` })
            return reply(200, { ok: true })
          }
        }
      }
      if (write && options.writeDelayMs) setTimeout(run, options.writeDelayMs)
      else run()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }) as HttpPanel
}

/** What the connector needs to hand out addresses (the provisioner's durable IP pool fits). */
export interface PanelIpPool {
  allocate(serviceId: string): Promise<string | undefined>
  release(serviceId: string): Promise<void>
}

function client(baseUrl: string, apiKey: string | undefined, calls: CallRecorder, signal: AbortSignal) {
  const send = <T>(command: string, args: Record<string, string>, access: 'read' | 'write') =>
    calls.call<T>(
      {
        system: 'http-panel',
        action: command,
        access,
        target: baseUrl,
        request: args,
        dryRunResult: () => ({ ok: true }) as T,
      },
      async () => {
        let res: Response
        try {
          res = await fetch(`${baseUrl}/api/${command}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${apiKey ?? ''}`, 'content-type': 'application/json' },
            body: JSON.stringify(args),
            signal,
          })
        } catch (error) {
          throw toPanelkitError(error, `http-panel ${command}`)
        }
        const body = (await res.json().catch(() => null)) as T & { error?: string }
        if (res.status === 409) throw new ConflictError(`http-panel: ${body?.error ?? 'conflict'}`)
        if (res.status === 404) throw new NotFoundError(`http-panel: ${body?.error ?? 'not found'}`)
        if (!res.ok) {
          throw new HttpError(`http-panel ${command}: HTTP ${res.status} ${body?.error ?? ''}`.trim(), {
            status: res.status,
            method: 'POST',
            path: `/api/${command}`,
          })
        }
        return body
      },
    )
  return {
    get: (username: string) => send<PanelAccount | null>('get', { username }, 'read'),
    list: () => send<PanelAccount[]>('list', {}, 'read'),
    command: (command: string, args: Record<string, string>) => send<unknown>(command, args, 'write'),
  }
}

type Client = ReturnType<typeof client>

const deployPipeline = definePipeline<
  { username: string; ip?: string },
  { client: Client; pool: PanelIpPool | undefined; serviceId: string; plan: string; password: string }
>({
  name: 'http-panel-deploy',
  title: 'Deploy',
  initialState: 'new',
  steps: [
    {
      name: 'allocate-ip',
      label: 'Allocate IP',
      state: 'ip_allocated',
      async run({ context }) {
        if (!context.pool) return { status: 'skipped', reason: 'no pool' }
        const ip = await context.pool.allocate(context.serviceId)
        if (!ip) throw new ConflictError('The IP pool is exhausted', { retryable: false })
        return { status: 'done', data: { ip } }
      },
    },
    {
      name: 'create-account',
      label: 'Create account',
      state: 'created',
      async run({ data, context }) {
        // An account of this name is taken only when it carries this service's id.
        const own = (account: PanelAccount, reason: string) => {
          if (account.serviceId !== context.serviceId)
            throw new ConflictError(`${data.username} belongs to service ${account.serviceId}`)
          return { status: 'skipped' as const, reason }
        }
        const existing = await context.client.get(data.username)
        if (existing) return own(existing, 'exists')
        const args: Record<string, string> = {
          username: data.username,
          serviceId: context.serviceId,
          plan: context.plan,
          password: context.password,
        }
        if (data.ip) args.ip = data.ip
        try {
          await context.client.command('create', args)
        } catch (error) {
          // An earlier attempt's create (its worker killed or aborted while the panel was still
          // writing) can land between the lookup above and this create: the name is then taken.
          if (!(error instanceof ConflictError)) throw error
          const now = await context.client.get(data.username)
          if (!now) throw error
          return own(now, 'created by an earlier attempt')
        }
        return { status: 'done' }
      },
    },
    {
      name: 'apply-plan',
      label: 'Apply plan',
      state: 'planned',
      async run({ data, context }) {
        const account = await context.client.get(data.username)
        if (account?.plan === context.plan) return { status: 'skipped', reason: 'no change' }
        await context.client.command('plan', { username: data.username, plan: context.plan })
        return { status: 'done' }
      },
    },
  ],
})

/** The connector for the HTTP panel; `pool` makes it take one IP per service from a (durable) pool. */
export function httpPanelConnector(options: { pool?: PanelIpPool } = {}) {
  const url = (server: { hostname: string; port?: number | undefined; secure: boolean }) =>
    `${server.secure ? 'https' : 'http'}://${server.hostname}${server.port ? `:${server.port}` : ''}`
  return defineConnector({
    id: 'http-panel',
    metadata: { displayName: 'HTTP test panel', system: 'http-panel' },
    settings: {
      plan: setting.dropdown({ label: 'Plan', options: ['basic', 'pro'], default: 'basic' }),
    },
    operations: {
      async create(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        const username = ctx.service.username ?? `svc${ctx.service.serviceId}`
        const run = await ctx.runPipeline(deployPipeline, {
          data: { username },
          context: {
            client: c,
            pool: options.pool,
            serviceId: ctx.service.serviceId,
            plan: ctx.settings.plan,
            password: ctx.service.password ?? '',
          },
        })
        const ip = run.checkpoint.data.ip
        return {
          accountId: username,
          created: true,
          username,
          ...(ip ? { ips: [ip] } : {}),
        }
      },
      async suspend(ctx) {
        return toggle(ctx, true)
      },
      async unsuspend(ctx) {
        return toggle(ctx, false)
      },
      async terminate(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        const username = ctx.service.username ?? `svc${ctx.service.serviceId}`
        const a = await c.get(username)
        if (a) await c.command('delete', { username })
        await options.pool?.release(ctx.service.serviceId)
        return { changed: a !== null }
      },
      async changePassword(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        await c.command('password', {
          username: ctx.service.username ?? `svc${ctx.service.serviceId}`,
          password: ctx.service.password ?? '',
        })
        return { changed: true }
      },
      async changePackage(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        const username = ctx.service.username ?? `svc${ctx.service.serviceId}`
        const a = await c.get(username)
        if (!a) throw new NotFoundError(`No account ${username}`)
        if (a.plan === ctx.settings.plan) return { changed: false, applied: [] }
        await c.command('plan', { username, plan: ctx.settings.plan })
        return { changed: true, applied: ['plan'] }
      },
      async usage(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        const a = await c.get(ctx.service.username ?? `svc${ctx.service.serviceId}`)
        if (!a) throw new NotFoundError('No account')
        return { collectedAt: new Date().toISOString(), metrics: [{ name: 'disk', value: 1024, unit: 'MB' }] }
      },
      async testConnection(ctx) {
        const started = performance.now()
        try {
          const res = await fetch(`${url(ctx.server)}/api/version`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ctx.server.accessHash ?? ''}` },
            signal: ctx.signal,
          })
          if (res.status === 401) throw new HttpError('http-panel: bad API key', { status: 401 })
          const body = (await res.json()) as { version: string }
          return { version: body.version, latencyMs: performance.now() - started, details: {} }
        } catch (error) {
          throw error instanceof HttpError
            ? error
            : new ConnectionError(`http-panel: ${String(error)}`, { cause: error })
        }
      },
      async listAccounts(ctx) {
        const c = client(url(ctx.server), ctx.server.accessHash, ctx.calls, ctx.signal)
        const list = await c.list()
        return {
          accounts: list.map((a) => ({
            accountId: a.username,
            username: a.username,
            serviceId: a.serviceId,
            status: a.suspended ? ('suspended' as const) : ('active' as const),
          })),
        }
      },
    },
  })
}

async function toggle(
  ctx: {
    server: { hostname: string; port?: number | undefined; secure: boolean; accessHash?: string | undefined }
    calls: CallRecorder
    signal: AbortSignal
    service: { username?: string | undefined; serviceId: string }
  },
  suspended: boolean,
) {
  const base = `${ctx.server.secure ? 'https' : 'http'}://${ctx.server.hostname}${ctx.server.port ? `:${ctx.server.port}` : ''}`
  const c = client(base, ctx.server.accessHash, ctx.calls, ctx.signal)
  const username = ctx.service.username ?? `svc${ctx.service.serviceId}`
  const a = await c.get(username)
  if (!a) throw new NotFoundError(`No account ${username}`)
  if (a.suspended === suspended) return { changed: false }
  await c.command(suspended ? 'suspend' : 'unsuspend', { username })
  return { changed: true }
}
