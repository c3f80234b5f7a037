import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { createCallRecorder } from '../../src/calls.ts'
import { createConnector, defineConnector } from '../../src/connector.ts'
import { serviceContextFromWhmcsParams } from '../../src/context.ts'
import { ConflictError, ConnectionError } from '../../src/errors.ts'
import { HumanLogSink, JsonLinesLogSink, MemoryLogSink } from '../../src/module-log.ts'
import { definePipeline, MemoryCheckpointStore } from '../../src/pipeline.ts'
import { mapConfigOptions, setting, settingsSchema } from '../../src/settings.ts'

const service = {
  serviceId: 42,
  clientId: 7,
  username: 'alice',
  password: 'Correct-Horse-9',
  server: { hostname: 'panel.example.net', password: 'Server-Secret-1' },
  settings: { plan: 'pro', quota: '10', backups: 'on', apiKey: 'Setting-Secret-2' },
  client: { email: 'alice@example.com', firstName: 'Alice', lastName: 'A' },
}

function probeConnector(behaviour: { throwWith?: unknown; leak?: boolean } = {}) {
  return defineConnector({
    id: 'probe',
    metadata: { displayName: 'Probe', system: 'probe' },
    settings: {
      plan: setting.dropdown({ label: 'Plan', options: ['basic', 'pro'], required: true }),
      quota: setting.number({ label: 'Quota', min: 1, integer: true, default: 5 }),
      backups: setting.yesNo({ label: 'Backups' }),
      apiKey: setting.password({ label: 'API key' }),
    },
    operations: {
      async create(ctx) {
        await ctx.calls.call(
          { system: 'probe', action: 'lookup', access: 'read', request: { user: ctx.service.username } },
          async () => null,
        )
        const created = await ctx.calls.call(
          {
            system: 'probe',
            action: 'create',
            access: 'write',
            request: {
              user: ctx.service.username,
              password: ctx.service.password,
              note: `key ${ctx.settings.apiKey}`,
            },
            dryRunResult: () => ({ id: 'dry' }),
          },
          async () => ({ id: '1' }),
        )
        if (behaviour.throwWith !== undefined) throw behaviour.throwWith
        return {
          accountId: created.id,
          created: true,
          details: {
            typed: [ctx.settings.plan, ctx.settings.quota, ctx.settings.backups],
            echo: behaviour.leak ? ctx.service.password : 'no',
          },
        }
      },
      async suspend() {
        return { changed: 'yes' } as unknown as { changed: boolean }
      },
      async terminate(ctx) {
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        ctx.signal.throwIfAborted()
        return { changed: true }
      },
      async testConnection() {
        return { latencyMs: 1, details: {} }
      },
    },
    actions: {
      reboot: {
        label: 'Reboot',
        audience: ['admin'],
        access: 'write',
        params: z.object({ force: z.boolean() }),
        async run(_ctx, params) {
          return { message: `rebooted force=${String(params.force)}` }
        },
      },
    },
  })
}

describe('connector runtime', () => {
  it('validates and types settings, then runs the operation', async () => {
    const sink = new MemoryLogSink()
    const c = createConnector(probeConnector(), { sink })
    const r = await c.invoke('create', { service })
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.data.details?.typed).toEqual(['pro', 10, true])
    expect(sink.entries.map((e) => e.action)).toEqual(['lookup', 'create'])
    expect(sink.entries[0]).toMatchObject({
      connector: 'probe',
      operation: 'create',
      serviceId: '42',
      outcome: 'ok',
    })
    expect(c.capabilities.operations).toEqual(['create', 'suspend', 'terminate', 'testConnection', 'action'])
  })

  it('masks every declared secret in the log and the result', async () => {
    const sink = new MemoryLogSink()
    const c = createConnector(probeConnector({ leak: true }), { sink })
    const r = await c.invoke('create', { service })
    const text = JSON.stringify([sink.entries, r])
    for (const secret of ['Correct-Horse-9', 'Server-Secret-1', 'Setting-Secret-2'])
      expect(text).not.toContain(secret)
  })

  it('returns VALIDATION naming the field and calls nothing on bad input', async () => {
    const sink = new MemoryLogSink()
    const c = createConnector(probeConnector(), { sink })
    const cases: [unknown, string][] = [
      [{ service: { ...service, settings: { plan: 'gold' } } }, 'service.settings.plan'],
      [{ service: { ...service, settings: { plan: 'pro', quota: 'lots' } } }, 'service.settings.quota'],
      [{ service: { ...service, settings: { plan: 'pro', backups: 'maybe' } } }, 'service.settings.backups'],
      [{ service: { ...service, settings: {} } }, 'service.settings.plan'],
      [{ service: { ...service, domain: 'a\nb' } }, 'service.domain'],
      [
        { service: { ...service, client: { ...service.client, country: 'Germany' } } },
        'service.client.country',
      ],
    ]
    for (const [input, field] of cases) {
      const r = await c.invoke('create', input as never)
      expect(r.ok).toBe(false)
      if (!r.ok) {
        expect(r.error.code).toBe('VALIDATION')
        expect(r.error.field).toBe(field)
        expect(r.error.detail).toContain(field)
      }
    }
    expect(sink.entries).toHaveLength(0)
  })

  it('turns an unexpected exception into INTERNAL with the stack for operators only', async () => {
    const c = createConnector(
      probeConnector({ throwWith: new TypeError('cannot read x of undefined (Correct-Horse-9)') }),
    )
    const r = await c.invoke('create', { service })
    expect(r.ok).toBe(false)
    if (!r.ok) {
      expect(r.error.code).toBe('INTERNAL')
      expect(r.error.message).toBe('An unexpected error occurred.')
      expect(r.error.detail).toContain('cannot read x')
      expect(r.error.cause?.stack).toContain('TypeError')
      expect(JSON.stringify(r)).not.toContain('Correct-Horse-9')
    }
  })

  it('keeps typed failures: code, customer message, retryable', async () => {
    const c1 = createConnector(
      probeConnector({ throwWith: new ConflictError('user alice belongs to service 9') }),
    )
    const r1 = await c1.invoke('create', { service })
    expect(r1.ok ? null : r1.error).toMatchObject({
      code: 'CONFLICT',
      retryable: false,
      message: 'An account with these details already exists.',
    })
    const c2 = createConnector(probeConnector({ throwWith: new ConnectionError('reset') }))
    const r2 = await c2.invoke('create', { service })
    expect(r2.ok ? null : r2.error).toMatchObject({ code: 'CONNECTION', retryable: true })
  })

  it('rejects a result that breaks the result schema', async () => {
    const r = await createConnector(probeConnector()).invoke('suspend', { service })
    expect(r.ok ? null : r.error.code).toBe('INTERNAL')
  })

  it('dry-run: reads go through, writes are recorded and not sent', async () => {
    const sink = new MemoryLogSink()
    const c = createConnector(probeConnector(), { sink })
    const r = await c.invoke('create', { service }, { dryRun: true })
    expect(r.ok).toBe(true)
    expect(r.dryRun?.writes.map((w) => w.action)).toEqual(['create'])
    expect(JSON.stringify(r.dryRun)).not.toContain('Correct-Horse-9')
    expect(sink.entries.map((e) => e.outcome)).toEqual(['ok', 'dry-run'])
    if (r.ok) expect(r.data.accountId).toBe('dry')
  })

  it('enforces the time limit and reports UNSUPPORTED for missing operations and actions', async () => {
    const c = createConnector(probeConnector())
    const r = await c.invoke('terminate', { service }, { timeoutMs: 50 })
    expect(r.ok ? null : r.error).toMatchObject({ code: 'TIMEOUT', retryable: true })
    expect((await c.invoke('usage', { service })).ok ? null : 'UNSUPPORTED').toBe('UNSUPPORTED')
    const missing = await c.invoke('action', { service, action: 'explode' })
    expect(missing.ok ? null : missing.error.code).toBe('UNSUPPORTED')
    const clientOnly = await c.invoke('action', {
      service,
      action: 'reboot',
      audience: 'client',
      params: { force: true },
    })
    expect(clientOnly.ok ? null : clientOnly.error.code).toBe('UNSUPPORTED')
    const badParams = await c.invoke('action', { service, action: 'reboot', params: { force: 'yes' } })
    expect(badParams.ok ? null : badParams.error.field).toBe('params.force')
    const ok = await c.invoke('action', { service, action: 'reboot', params: { force: true } })
    expect(ok.ok ? ok.data.message : null).toBe('rebooted force=true')
  })

  it('loads dropdown choices from fixed lists', async () => {
    const c = createConnector(probeConnector())
    const r = await c.loadOptions('plan', { hostname: 'x' })
    expect(r.ok ? r.data : null).toEqual([
      { value: 'basic', label: 'basic' },
      { value: 'pro', label: 'pro' },
    ])
    expect((await c.loadOptions('quota', { hostname: 'x' })).ok).toBe(false)
  })

  it('passes the settings chosen so far to dynamic loaders, through the call recorder', async () => {
    const sink = new MemoryLogSink()
    const def = defineConnector({
      id: 'loader-probe',
      metadata: { displayName: 'Loader probe', system: 'probe' },
      settings: {
        domain: setting.dropdown({
          label: 'Domain',
          required: true,
          loader: async () => [{ value: 'a.example', label: 'a.example' }],
        }),
        accountClass: setting.dropdown({
          label: 'Account class',
          async loader(ctx) {
            const classes = await ctx.calls.call(
              {
                system: 'probe',
                action: 'LIST classes',
                access: 'read',
                request: { domain: ctx.settings.domain },
              },
              async () => [`${String(ctx.settings.domain)}-basic`],
            )
            return classes.map((c) => ({ value: c, label: c }))
          },
        }),
      },
      operations: {},
    })
    const c = createConnector(def, { sink })
    const r = await c.loadOptions('accountClass', { hostname: 'x' }, { settings: { domain: 'a.example' } })
    expect(r.ok ? r.data : r.error).toEqual([{ value: 'a.example-basic', label: 'a.example-basic' }])
    expect(sink.entries[0]).toMatchObject({ action: 'LIST classes', request: { domain: 'a.example' } })
  })

  it('runs pipelines with resumable checkpoints keyed by run key', async () => {
    let failures = 1
    const applied: string[] = []
    const pipeline = definePipeline<Record<string, unknown>>({
      name: 'two-steps',
      title: 'Deploy',
      initialState: 'new',
      steps: [
        { name: 'one', label: 'One', state: 'one', run: async () => void applied.push('one') },
        {
          name: 'two',
          label: 'Two',
          state: 'two',
          async run() {
            if (failures-- > 0) throw new ConnectionError('blip')
            applied.push('two')
            return undefined
          },
        },
      ],
    })
    const def = defineConnector({
      id: 'piped',
      metadata: { displayName: 'Piped', system: 'piped' },
      settings: {},
      operations: {
        async create(ctx) {
          await ctx.runPipeline(pipeline)
          return { accountId: 'x', created: true }
        },
      },
    })
    const checkpoints = new MemoryCheckpointStore()
    const steps: string[] = []
    const c = createConnector(def, {
      checkpoints,
      onProgress: (e) => steps.push(`${e.step.name}:${e.step.outcome}`),
    })
    const first = await c.invoke('create', { service: { ...service, settings: {} } }, { runKey: 'job-1' })
    expect(first.ok ? null : first.error.code).toBe('CONNECTION')
    expect(first.runs?.[0]?.state).toBe('one')
    const second = await c.invoke('create', { service: { ...service, settings: {} } }, { runKey: 'job-1' })
    expect(second.ok).toBe(true)
    expect(applied).toEqual(['one', 'two'])
    expect(steps).toEqual(['one:success', 'two:failed', 'two:success'])
    const third = await c.invoke('create', { service: { ...service, settings: {} } }, { runKey: 'job-1' })
    expect(third.runs?.[0]?.steps).toEqual([])
  })
})

describe('sso results', () => {
  it('return the login URL with its token while the module log masks it', async () => {
    const token = 'Sso-Token-0123456789'
    const sink = new MemoryLogSink()
    const c = createConnector(
      defineConnector({
        id: 'sso-probe',
        metadata: { displayName: 'SSO probe', system: 'probe' },
        settings: {},
        operations: {
          async sso(ctx) {
            ctx.redactor.addValue(token)
            await ctx.calls.call({ system: 'probe', action: 'token', access: 'read' }, async () => ({
              token,
            }))
            return { url: `https://panel.example.net/?username=alice&token=${token}` }
          },
        },
      }),
      { sink },
    )
    const result = await c.invoke('sso', { service, audience: 'client' })
    expect(result.ok ? result.data.url : null).toBe(
      `https://panel.example.net/?username=alice&token=${token}`,
    )
    expect(JSON.stringify(sink.entries)).not.toContain(token)
    expect(sink.entries.length).toBe(1)
  })
})

describe('settings and context helpers', () => {
  it('maps positional configoptions to named settings', () => {
    const spec = { plan: setting.text({ label: 'Plan' }), region: setting.text({ label: 'Region' }) }
    expect(mapConfigOptions(spec, { configoption1: 'pro', configoption2: 'eu', configoption3: 'x' })).toEqual(
      { plan: 'pro', region: 'eu' },
    )
    expect(mapConfigOptions(spec, { configoption1: 'pro', region: 'us' })).toEqual({
      plan: 'pro',
      region: 'us',
    })
  })

  it('applies defaults and WHMCS yes/no values', () => {
    const schema = settingsSchema({
      on: setting.yesNo({ label: 'On' }),
      n: setting.number({ label: 'N', default: 3 }),
    })
    expect(schema.parse({ on: 'on' })).toEqual({ on: true, n: 3 })
    expect(schema.parse({ on: '', n: '7' })).toEqual({ on: false, n: 7 })
  })

  it('builds the schema of a spec once, full and partial apart', () => {
    const spec = {
      name: setting.text({ label: 'Name', required: true }),
      n: setting.number({ label: 'N', default: 3 }),
    }
    const full = settingsSchema(spec)
    expect(settingsSchema(spec)).toBe(full)
    const partial = settingsSchema(spec, { partial: true })
    expect(partial).not.toBe(full)
    expect(settingsSchema(spec, { partial: true })).toBe(partial)
    expect(full.safeParse({}).success).toBe(false)
    expect(partial.safeParse({}).success).toBe(true)
    // Another spec object gets its own schema.
    expect(settingsSchema({ ...spec })).not.toBe(full)
  })

  it('reads a WHMCS $params array', () => {
    const ctx = serviceContextFromWhmcsParams(
      {
        serviceid: 5546,
        userid: 12,
        username: 'bob',
        password: 'pw',
        domain: 'bob.example',
        serverhostname: 'pve.example.net',
        serverusername: 'root@pam',
        serverpassword: 'spw',
        serversecure: 'on',
        configoption1: 'pro',
        clientsdetails: { email: 'bob@example.com', firstname: 'Bob', lastname: 'B', countrycode: 'DE' },
      },
      ['plan'],
    )
    expect(ctx).toMatchObject({
      serviceId: 5546,
      clientId: 12,
      settings: { plan: 'pro' },
      server: { hostname: 'pve.example.net', secure: true, username: 'root@pam' },
      client: { email: 'bob@example.com', country: 'DE' },
    })
  })
})

describe('module log sinks', () => {
  it('write JSON lines and human lines, redacted by the recorder', async () => {
    const json = new PassThrough()
    const human = new PassThrough()
    const chunks: string[] = []
    json.on('data', (c) => chunks.push(String(c)))
    const humanChunks: string[] = []
    human.on('data', (c) => humanChunks.push(String(c)))
    const recorder = createCallRecorder({ connector: 'x', sink: new JsonLinesLogSink(json) })
    recorder.redactor.addValue('topsecret')
    await recorder.call(
      { system: 's', action: 'GET /a', access: 'read', request: 'q=topsecret' },
      async () => 'fine',
    )
    const human2 = createCallRecorder({
      connector: 'x',
      sink: new HumanLogSink(human),
      operation: 'create',
      serviceId: '1',
    })
    await expect(
      human2.call({ system: 's', action: 'POST /b', access: 'write' }, async () =>
        Promise.reject(new ConnectionError('down')),
      ),
    ).rejects.toThrow('down')
    const entry = JSON.parse(chunks.join('').trim())
    expect(entry).toMatchObject({ connector: 'x', action: 'GET /a', outcome: 'ok', response: 'fine' })
    expect(chunks.join('')).not.toContain('topsecret')
    expect(humanChunks.join('')).toMatch(
      /\[!\] x create service=1 s POST \/b .*ms PANELKIT_ERR_CONNECTION: down/,
    )
  })
})
