import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ConnectorDefinition, ConnectorInstance } from '../connector.ts'
import { createConnector } from '../connector.ts'
import type { ServerInput, ServiceContextInput } from '../context.ts'
import { MemoryLogSink } from '../module-log.ts'
import { Operation } from '../operations.ts'
import { MemoryCheckpointStore } from '../pipeline.ts'
import type { Result } from '../result.ts'
import type { SettingsSpec } from '../settings.ts'
import { bundleKillChild, type KillChildRun, spawnKillChild } from './kill.ts'
import type { KillReport, KillTask } from './kill-child.ts'

/** What a connector's test provides so the shared contract suite can drive it against a simulator. */
export interface ContractFixture {
  /** A valid service for this connector; every call returns a new, unused service (fresh id, username). */
  makeService(): ServiceContextInput
  /**
   * Creates, directly in the simulator, an account that collides with `service` (same username, domain
   * or email) but is owned by someone else — so `create(service)` must answer `CONFLICT`.
   */
  createForeignAccount(service: ServiceContextInput): Promise<void>
  /** How many remote accounts the simulator holds for this service's identity. */
  countAccounts(service: ServiceContextInput): Promise<number>
  /** The account's state as the simulator sees it. */
  accountState(service: ServiceContextInput): Promise<'active' | 'suspended' | 'missing'>
  /** Write requests the simulator has received so far (to prove dry-run sends none). */
  writeCount(): Promise<number>
  /** The server the services use (also used for server-level operations). */
  server: ServerInput
  /** Extra secret values that must never show up (API secrets, tokens the simulator issued). */
  secrets?: () => string[]
  /** Connector-specific invalid services, each to be refused with `VALIDATION` before any call. */
  invalidServices?: { name: string; service: unknown }[]
  /**
   * Optional: opts into "an existing resource not marked as ours is never modified, and terminate never
   * deletes it".
   */
  foreignResource?: ForeignResourceHooks
  /**
   * Optional: opts into "a create interrupted between any two steps (or after any write), then retried
   * by a fresh connector instance, ends exactly as an uninterrupted create".
   */
  interruptions?: InterruptionHooks
  /**
   * Optional: opts into "a process killed with SIGKILL right after any step of an operation, then re-run
   * by a fresh process with the same run key, ends exactly as an uninterrupted run".
   */
  kills?: KillHooks
  close(): Promise<void>
}

/** How the suite makes and inspects a resource no service has marked as its own. */
export interface ForeignResourceHooks {
  /**
   * Creates, directly in the simulator, a resource with `service`'s identity (its username, domain, …)
   * that carries no ownership marker at all — as if made by hand or by another tool.
   */
  create(service: ServiceContextInput): Promise<void>
  /** Everything the simulator holds about that resource (JSON-serialisable), to prove nothing changed. */
  snapshot(service: ServiceContextInput): Promise<unknown>
}

/** How the suite interrupts a create and compares the outcome. */
export interface InterruptionHooks {
  /**
   * The resource's end state without the service's identity (no names, ids or passwords; JSON-
   * serialisable): an interrupted-then-retried create must give the same snapshot as an uninterrupted one.
   */
  snapshot(service: ServiceContextInput): Promise<unknown>
  /**
   * Optional crash points inside the remote system. `arm(k)` makes the k-th write from now take effect and
   * then fail as a crash would (the connection dropped before the answer); `disarm()` clears it. The
   * suite counts one create's writes with `writeCount()` and arms each in turn. Without this hook only the
   * pipeline-step interruptions run (those need the connector's create to be a `ctx.runPipeline`).
   */
  crashAfterWrite?: {
    arm(k: number): void | Promise<void>
    disarm(): void | Promise<void>
  }
}

/** An operation the kill case interrupts. */
export type KillOperation = 'create' | 'terminate' | 'changePackage'
/** Where the kill case cuts: after each completed pipeline step, or after each write that got its answer. */
export type KillPoints = 'steps' | 'writes'

/**
 * How the suite runs the connector in child processes and kills them. Each child is a real Node process
 * (`child_process.fork`) running the fixture's `module` against the simulator, which stays in the test's
 * process; the child stops itself with SIGKILL from its own step observer (the invocation's
 * `onProgress`) or module log sink, so nothing after the point runs. Checkpoints live in files, as in a
 * durable store; anything else the connector keeps in memory dies with the child.
 */
export interface KillHooks {
  /**
   * The child's module (a file URL or path; TypeScript is fine, the suite bundles it with esbuild): it
   * exports `connector(params)`, returning the connector definition built as the test's own (see
   * `KillTargetModule` in `@panelkit/core/testing`).
   */
  module: string | URL
  /** JSON handed to the module's `connector` in every child (simulator address, state files, …). */
  params?: unknown
  /**
   * The service's end state without its identity (as `InterruptionHooks.snapshot`): after a killed and
   * re-run operation it must equal the end state of an uninterrupted run.
   */
  snapshot(service: ServiceContextInput): Promise<unknown>
  /**
   * Which operations to kill, and where: after each completed pipeline step (`steps`), or after each
   * write that got its answer (`writes`, for an operation that is not a pipeline or to cut inside steps),
   * or both in turn (`['steps', 'writes']`). Default: `{ create: 'steps' }`. Terminate and change-package run on a service the child first creates.
   */
  operations?: Partial<Record<KillOperation, KillPoints | readonly KillPoints[]>>
  /** For `changePackage`: the service with the next package's settings. */
  changedPackage?(service: ServiceContextInput): ServiceContextInput
}

export interface ContractSuiteOptions<Spec extends SettingsSpec, R> {
  /** Suite title, e.g. `axigen-domain`. */
  name: string
  connector: ConnectorDefinition<Spec, R>
  setup: () => Promise<ContractFixture>
  /** Runs the optional foreign-resource case (the fixture must provide `foreignResource`). */
  foreignResource?: boolean
  /** Runs the optional interrupted-create case (the fixture must provide `interruptions`). */
  interruptions?: boolean
  /** Runs the optional kill-between-steps case (the fixture must provide `kills`). */
  kills?: boolean
  /** Per-test time limit; pipelines against slow simulators may need more. */
  timeoutMs?: number
  /** Time limit of the kill case, which starts one process per kill point (default 300 s). */
  killTimeoutMs?: number
}

const SAFE_OPERATIONS = [
  Operation.USAGE,
  Operation.CLIENT_AREA,
  Operation.TEST_CONNECTION,
  Operation.LIST_ACCOUNTS,
] as const

function withBadField(service: ServiceContextInput, mutate: (s: Record<string, unknown>) => void): unknown {
  const copy = structuredClone(service) as unknown as Record<string, unknown>
  mutate(copy)
  return copy
}

/**
 * The lifecycle contract every connector must keep, as one vitest suite. Call it at the top level of a
 * test file; it registers its own `describe` block.
 */
export function runContractSuite<Spec extends SettingsSpec, R>(options: ContractSuiteOptions<Spec, R>): void {
  const timeout = options.timeoutMs ?? 60_000
  const definition = options.connector
  describe(`lifecycle contract: ${options.name}`, () => {
    let fixture: ContractFixture
    let connector: ConnectorInstance<Spec, R>
    const sink = new MemoryLogSink(1_000_000)
    const results: unknown[] = []
    const services: ServiceContextInput[] = []

    const call = async <O extends Operation>(op: O, input: unknown, extra: { dryRun?: boolean } = {}) => {
      const result = (await connector.invoke(op, input as never, extra)) as Result<unknown>
      results.push(result)
      return result
    }
    const fresh = () => {
      const s = fixture.makeService()
      services.push(s)
      return s
    }
    const expectOk = (r: Result<unknown>, what: string) => {
      if (!r.ok) throw new Error(`${what} failed: ${r.error.code} ${r.error.detail}`)
      return r
    }

    beforeAll(async () => {
      fixture = await options.setup()
      connector = createConnector(options.connector, { sink })
    }, timeout)

    afterAll(async () => {
      await connector?.close()
      await fixture?.close()
    }, timeout)

    it(
      'a repeated create makes one account and returns ok',
      async () => {
        const service = fresh()
        const first = expectOk(await call('create', { service }), 'first create')
        const second = expectOk(await call('create', { service }), 'second create')
        expect(await fixture.countAccounts(service)).toBe(1)
        expect((second.data as { created: boolean }).created).toBe(false)
        expect((second.data as { accountId: string }).accountId).toBe(
          (first.data as { accountId: string }).accountId,
        )
      },
      timeout,
    )

    it(
      'create against an account owned by someone else returns CONFLICT',
      async () => {
        const service = fresh()
        await fixture.createForeignAccount(service)
        const before = await fixture.countAccounts(service)
        const result = await call('create', { service })
        expect(result.ok).toBe(false)
        if (!result.ok) expect(result.error.code).toBe('CONFLICT')
        expect(await fixture.countAccounts(service)).toBe(before)
      },
      timeout,
    )

    it(
      'suspend, unsuspend and terminate are idempotent',
      async () => {
        const service = fresh()
        expectOk(await call('create', { service }), 'create')
        expect(await fixture.accountState(service)).toBe('active')
        expectOk(await call('suspend', { service }), 'suspend')
        expect(await fixture.accountState(service)).toBe('suspended')
        const again = expectOk(await call('suspend', { service }), 'second suspend')
        expect((again.data as { changed: boolean }).changed).toBe(false)
        expect(await fixture.accountState(service)).toBe('suspended')
        expectOk(await call('unsuspend', { service }), 'unsuspend')
        expect(await fixture.accountState(service)).toBe('active')
        expectOk(await call('unsuspend', { service }), 'second unsuspend')
        expect(await fixture.accountState(service)).toBe('active')
        expectOk(await call('terminate', { service }), 'terminate')
        expect(await fixture.accountState(service)).toBe('missing')
        const twice = expectOk(await call('terminate', { service }), 'second terminate')
        expect((twice.data as { changed: boolean }).changed).toBe(false)
        expect(await fixture.countAccounts(service)).toBe(0)
      },
      timeout,
    )

    it(
      'terminate of an account that never existed is ok',
      async () => {
        const service = fresh()
        const result = expectOk(await call('terminate', { service }), 'terminate')
        expect((result.data as { changed: boolean }).changed).toBe(false)
      },
      timeout,
    )

    it(
      'invalid input returns VALIDATION naming the field and makes no external call',
      async () => {
        const base = fresh()
        const cases: { name: string; input: unknown; field?: string }[] = [
          { name: 'no input', input: undefined },
          { name: 'a string', input: 'create me' },
          { name: 'no service', input: {} },
          {
            name: 'missing service id',
            input: { service: withBadField(base, (s) => delete s.serviceId) },
            field: 'service.serviceId',
          },
          {
            name: 'service id with a line break',
            input: { service: { ...base, serviceId: '12\r\n34' } },
            field: 'service.serviceId',
          },
          {
            name: 'bad client email',
            input: {
              service: withBadField(
                base,
                (s) => ((s.client as Record<string, unknown>).email = 'not-an-email'),
              ),
            },
            field: 'service.client.email',
          },
          {
            name: 'username with CRLF',
            input: { service: { ...base, username: 'bob\r\nDELETE all' } },
            field: 'service.username',
          },
          {
            name: 'password with NUL',
            input: { service: { ...base, password: 'abc\u0000def' } },
            field: 'service.password',
          },
          {
            name: 'no server',
            input: { service: withBadField(base, (s) => delete s.server) },
            field: 'service.server',
          },
          ...(fixture.invalidServices ?? []).map((c) => ({ name: c.name, input: { service: c.service } })),
        ]
        for (const op of ['create', 'suspend', 'terminate', 'changePassword'] as const) {
          for (const c of cases) {
            const before = sink.entries.length
            const result = await call(op, c.input)
            expect(result.ok, `${op} with ${c.name}`).toBe(false)
            if (!result.ok) {
              expect(result.error.code, `${op} with ${c.name}`).toBe('VALIDATION')
              if (c.field)
                expect(
                  result.error.issues?.map((i) => i.path),
                  `${op} with ${c.name}`,
                ).toContain(c.field)
            }
            expect(sink.entries.length, `${op} with ${c.name} made an external call`).toBe(before)
          }
        }
        expect(await fixture.countAccounts(base)).toBe(0)
      },
      timeout,
    )

    it(
      'no operation throws, whatever it is given',
      async () => {
        const service = fresh()
        expectOk(await call('create', { service }), 'create')
        const garbage: unknown[] = [
          undefined,
          null,
          42,
          'x',
          [],
          { service: null },
          { server: 'nope' },
          { service: { serviceId: {} } },
        ]
        for (const op of Object.values(Operation)) {
          for (const input of garbage) {
            await expect(connector.invoke(op, input as never)).resolves.toHaveProperty('ok', false)
          }
        }
        for (const op of SAFE_OPERATIONS) {
          const input =
            op === 'testConnection' || op === 'listAccounts' ? { server: fixture.server } : { service }
          const result = await call(op, input)
          expect(typeof result.ok).toBe('boolean')
        }
        for (const audience of ['client', 'admin'] as const) {
          const result = await call('sso', { service, audience })
          expect(typeof result.ok).toBe('boolean')
        }
        expect(await connector.invoke('nonsense' as never, { service } as never)).toHaveProperty('ok', false)
      },
      timeout,
    )

    it(
      'dry-run sends no write',
      async () => {
        const service = fresh()
        const writesBefore = await fixture.writeCount()
        const logBefore = sink.entries.length
        const result = await call('create', { service }, { dryRun: true })
        expect(result.dryRun, 'a dry-run result lists what would have been written').toBeDefined()
        expect(result.dryRun?.writes.length ?? 0).toBeGreaterThan(0)
        expect(await fixture.writeCount()).toBe(writesBefore)
        expect(await fixture.countAccounts(service)).toBe(0)
        const entries = sink.entries.slice(logBefore)
        expect(entries.filter((e) => e.access === 'write').every((e) => e.outcome === 'dry-run')).toBe(true)
      },
      timeout,
    )

    it(
      'testConnection succeeds against the simulator',
      async () => {
        expectOk(await call('testConnection', { server: fixture.server }), 'testConnection')
      },
      timeout,
    )

    it(
      'no declared secret ever appears in the module log, a result or an error',
      async () => {
        const service = fresh()
        await call('create', { service })
        await call('changePassword', {
          service: { ...service, password: `New-${Math.random().toString(36).slice(2)}-Pw!` },
        })
        await call('create', {
          service: { ...service, server: { ...fixture.server, password: 'definitely-wrong-password' } },
        })
        const secrets = new Set<string>()
        for (const s of services) {
          if (s.password && s.password.length >= 4) secrets.add(s.password)
        }
        const server = fixture.server
        if (server.password) secrets.add(server.password)
        if (server.accessHash) secrets.add(server.accessHash)
        secrets.add('definitely-wrong-password')
        for (const s of fixture.secrets?.() ?? []) if (s.length >= 4) secrets.add(s)
        const haystacks = [JSON.stringify(sink.entries), JSON.stringify(results)]
        expect(sink.entries.length).toBeGreaterThan(0)
        for (const secret of secrets) {
          for (const hay of haystacks) {
            expect(hay.includes(secret), `secret ${secret.slice(0, 2)}… leaked`).toBe(false)
          }
        }
      },
      timeout,
    )

    const foreign = () => fixture.foreignResource
    if (options.foreignResource)
      it(
        'an existing resource not marked as ours is never modified, and terminate never deletes it',
        async () => {
          const hooks = foreign()
          if (!hooks)
            throw new Error('the fixture declared foreignResource in the options but did not provide it')
          const service = fresh()
          await hooks.create(service)
          const before = JSON.stringify(await hooks.snapshot(service))
          const count = await fixture.countAccounts(service)
          const created = await call('create', { service })
          expect(created.ok, 'create of a foreign resource').toBe(false)
          if (!created.ok) expect(created.error.code).toBe('CONFLICT')
          const renamed = { ...service, password: `Other-${Math.random().toString(36).slice(2)}-Pw!` }
          for (const [op, input] of [
            ['suspend', { service }],
            ['unsuspend', { service }],
            ['changePassword', { service: renamed }],
            ['changePackage', { service }],
            ['terminate', { service }],
          ] as const) {
            const r = await call(op, input)
            const changed = r.ok && (r.data as { changed?: boolean }).changed === true
            expect(changed, `${op} reported a change on a foreign resource`).toBe(false)
            if (!r.ok) expect(['CONFLICT', 'NOT_FOUND'], `${op}: ${r.error.detail}`).toContain(r.error.code)
            expect(JSON.stringify(await hooks.snapshot(service)), `${op} modified a foreign resource`).toBe(
              before,
            )
          }
          expect(await fixture.countAccounts(service)).toBe(count)
        },
        timeout,
      )

    if (options.interruptions)
      it(
        'a create interrupted between any two steps, then retried by a fresh instance, ends as an uninterrupted one',
        async () => {
          const hooks = fixture.interruptions
          if (!hooks)
            throw new Error('the fixture declared interruptions in the options but did not provide it')
          // The retry shares the checkpoint store and the job's run key, as the provisioner's durable store
          // does across a crash; the connector instance, its resources and its sessions are new.
          const attempt = async (
            service: ServiceContextInput,
            store: MemoryCheckpointStore,
            runKey: string,
            options: { signal?: AbortSignal; onProgress?: () => void } = {},
          ) => {
            const instance = createConnector(definition, { sink, checkpoints: store })
            try {
              const r = (await instance.invoke('create', { service } as never, {
                runKey,
                ...options,
              })) as Result<unknown>
              results.push(r)
              return r
            } finally {
              await instance.close()
            }
          }
          const reference = fresh()
          const writesBefore = await fixture.writeCount()
          const ref = expectOk(
            await attempt(reference, new MemoryCheckpointStore(), 'reference'),
            'reference create',
          )
          const writes = (await fixture.writeCount()) - writesBefore
          const steps = ref.runs?.reduce((n, run) => n + run.steps.length, 0) ?? 0
          const expected = JSON.stringify(await hooks.snapshot(reference))
          const interruptions: {
            name: string
            before: () => Promise<{ signal?: AbortSignal; onProgress?: () => void }>
            after: () => Promise<void>
          }[] = []
          for (let k = 1; k < steps; k++) {
            interruptions.push({
              name: `aborted after pipeline step ${k} of ${steps}`,
              before: async () => {
                const controller = new AbortController()
                let seen = 0
                return {
                  signal: controller.signal,
                  onProgress: () => (++seen === k ? controller.abort() : undefined),
                }
              },
              after: async () => undefined,
            })
          }
          const crash = hooks.crashAfterWrite
          if (crash) {
            for (let k = 1; k <= writes; k++) {
              interruptions.push({
                name: `crashed after write ${k} of ${writes}`,
                before: async () => {
                  await crash.arm(k)
                  return {}
                },
                after: async () => {
                  await crash.disarm()
                },
              })
            }
          }
          expect(interruptions.length, 'a create with steps or writes to interrupt').toBeGreaterThan(0)
          for (const [i, interruption] of interruptions.entries()) {
            const service = fresh()
            const store = new MemoryCheckpointStore()
            const runKey = `interrupted-${i}`
            try {
              await attempt(service, store, runKey, await interruption.before())
            } finally {
              await interruption.after()
            }
            const retried = await attempt(service, store, runKey)
            expectOk(retried, `create retried after being ${interruption.name}`)
            expect(await fixture.countAccounts(service), interruption.name).toBe(1)
            expect(JSON.stringify(await hooks.snapshot(service)), interruption.name).toBe(expected)
          }
        },
        timeout,
      )

    // Registered only when opted into: a suite that runs against many variations of one simulator takes
    // it once (each kill point is a process start), and the others do not list it as skipped.
    if (options.kills)
      it(
        'a process killed (SIGKILL) right after any step, then re-run by a fresh process, ends as an uninterrupted run',
        async () => {
          const hooks = fixture.kills
          if (!hooks) throw new Error('the fixture declared kills in the options but did not provide it')
          const timings = await runKillCase({
            hooks,
            countAccounts: (service) => fixture.countAccounts(service),
            makeService: fresh,
            childTimeoutMs: Math.max(timeout, 60_000),
          })
          console.info(`kill case ${options.name}: ${timings.join('; ')}`)
        },
        options.killTimeoutMs ?? 300_000,
      )
  })
}

/**
 * The kill-between-steps case without the test runner's bookkeeping: throws (an assertion error naming
 * the operation and the kill point) when a re-run does not end as the uninterrupted run. Returns one
 * timing line per operation.
 */
export async function runKillCase(args: {
  hooks: KillHooks
  countAccounts(service: ServiceContextInput): Promise<number>
  makeService(): ServiceContextInput
  childTimeoutMs: number
}): Promise<string[]> {
  const { hooks, countAccounts } = args
  const fresh = args.makeService
  const script = await bundleKillChild(hooks.module)
  const dir = mkdtempSync(join(tmpdir(), 'panelkit-kill-checkpoints-'))
  const timings: string[] = [`bundle ${Math.round(script.bundleMs)} ms`]
  try {
    const plans = (
      Object.entries(hooks.operations ?? { create: 'steps' }) as [
        KillOperation,
        KillPoints | readonly KillPoints[],
      ][]
    ).flatMap(([operation, points]) =>
      (typeof points === 'string' ? [points] : points).map((p) => [operation, p] as const),
    )
    for (const [operation, points] of plans) {
      if (operation === 'changePackage' && !hooks.changedPackage)
        throw new Error('kills.operations names changePackage but the fixture has no changedPackage')
      const prep = (service: ServiceContextInput, id: string): KillTask[] =>
        operation === 'create'
          ? []
          : [{ id: `${id}:create`, operation: 'create', input: { service }, runKey: `${id}:create` }]
      const task = (service: ServiceContextInput, id: string, k?: number): KillTask => ({
        id,
        operation,
        input:
          operation === 'changePackage'
            ? { service: hooks.changedPackage?.(service), previousSettings: service.settings }
            : { service },
        runKey: id,
        ...(k === undefined ? {} : { killAfter: { points, k } }),
      })
      const describeRun = (run: KillChildRun) =>
        `exit ${run.code ?? run.signal}; reports ${JSON.stringify(run.reports)}; stderr: ${run.stderr.slice(-2000)}`
      const reportOf = (run: KillChildRun, id: string): KillReport => {
        const report = run.reports.find((r) => r.id === id)
        if (!report) throw new Error(`${operation}: no report for ${id} (${describeRun(run)})`)
        if (!report.ok) throw new Error(`${operation}: ${id} failed: ${report.code} ${report.detail}`)
        return report
      }
      const reference = fresh()
      const started = performance.now()
      let total: number | undefined
      let expected = ''
      let pending: { service: ServiceContextInput; id: string; k: number } | undefined
      let children = 0
      // Child k re-runs the service killed in child k-1 (a fresh process, the same run key — what the
      // engine's retry does), then starts service k and kills itself right after point k: one process
      // start per kill point. The first child also makes the uninterrupted reference.
      for (let k = 1; ; k++) {
        const tasks: KillTask[] = []
        if (pending) tasks.push(task(pending.service, pending.id))
        if (total === undefined) tasks.push(...prep(reference, 'reference'), task(reference, 'reference'))
        const next =
          total === undefined || k <= total
            ? { service: fresh(), id: `${operation}-${points}-${k}`, k }
            : undefined
        if (next) tasks.push(...prep(next.service, next.id), task(next.service, next.id, k))
        const run = await spawnKillChild(
          script,
          { checkpointDir: dir, params: hooks.params ?? null, tasks },
          args.childTimeoutMs,
        )
        children++
        for (const t of tasks) if (t.id.endsWith(':create')) reportOf(run, t.id)
        if (total === undefined) {
          const ref = reportOf(run, 'reference')
          total = ref[points]
          if (total < 1)
            throw new Error(
              `${operation}: an uninterrupted run has no ${points} to kill after (${points === 'steps' ? 'not a pipeline: use writes' : 'no writes'})`,
            )
          expected = JSON.stringify(await hooks.snapshot(reference))
        }
        if (pending) {
          const what = `${operation} re-run after a kill after ${points.slice(0, -1)} ${pending.k} of ${total}`
          reportOf(run, pending.id)
          expect(await countAccounts(pending.service), what).toBe(operation === 'terminate' ? 0 : 1)
          expect(JSON.stringify(await hooks.snapshot(pending.service)), what).toBe(expected)
        }
        if (next) {
          expect(
            run.signal,
            `${operation}: the child was to kill itself after ${points.slice(0, -1)} ${k} (${describeRun(run)})`,
          ).toBe('SIGKILL')
          expect(run.reports.some((r) => r.id === next.id)).toBe(false)
        } else {
          expect(run.code, `${operation}: the last child ended badly (${describeRun(run)})`).toBe(0)
        }
        pending = next
        if (!next) break
      }
      timings.push(
        `${operation}: ${total} ${points}, ${children} processes, ${Math.round(performance.now() - started)} ms`,
      )
    }
  } finally {
    script.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
  return timings
}
