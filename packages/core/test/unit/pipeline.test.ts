import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CommandError, ConnectionError } from '../../src/errors.ts'
import {
  definePipeline,
  formatPipelineRun,
  formatStepLine,
  MemoryCheckpointStore,
  type PipelineStep,
  runPipeline,
} from '../../src/pipeline.ts'

interface World {
  /** How many times each step's external effect was applied. */
  applied: Map<string, number>
  /** Step names that fail on their next run (then recover). */
  failOnce: Set<string>
  /** Step names that crash after applying their effect but before the checkpoint is saved. */
  crashAfterEffect: Set<string>
}

/** Idempotent steps, as real connectors write them: look first, act only when needed. */
function makeSteps(count: number, world: World): PipelineStep<{ values: Record<string, number> }, World>[] {
  return Array.from({ length: count }, (_, i) => {
    const name = `step-${i + 1}`
    return {
      name,
      label: `Step number ${i + 1}`,
      state: `state_${i + 1}`,
      async run({ data }) {
        if (world.failOnce.delete(name)) throw new ConnectionError(`${name}: injected failure`)
        if ((world.applied.get(name) ?? 0) > 0) return { status: 'skipped', reason: 'already applied' }
        world.applied.set(name, 1)
        if (world.crashAfterEffect.delete(name))
          throw new ConnectionError(`${name}: crashed after the effect`)
        return { status: 'done', data: { values: { ...data.values, [name]: i + 1 } } }
      },
    }
  })
}

describe('pipeline runner', () => {
  it('runs every step, checkpoints after each, and returns the final state', async () => {
    const world: World = { applied: new Map(), failOnce: new Set(), crashAfterEffect: new Set() }
    const pipeline = definePipeline({
      name: 'p',
      title: 'Deploy',
      initialState: 'new',
      steps: makeSteps(3, world),
    })
    const store = new MemoryCheckpointStore()
    const saved: string[] = []
    const run = await runPipeline(pipeline, {
      key: 'k',
      store,
      data: { values: {} },
      context: world,
      onStep: (_r, cp) => saved.push(cp.state),
    })
    expect(run.status).toBe('completed')
    expect(run.checkpoint.state).toBe('state_3')
    expect(saved).toEqual(['state_1', 'state_2', 'state_3'])
    expect((await store.load('k'))?.completed).toBe(true)
    expect(run.checkpoint.data.values).toEqual({ 'step-1': 1, 'step-2': 2, 'step-3': 3 })
  })

  it('stops at the first failure, keeps the state at the last success, and resumes there', async () => {
    const world: World = { applied: new Map(), failOnce: new Set(['step-2']), crashAfterEffect: new Set() }
    const pipeline = definePipeline({
      name: 'p',
      title: 'Deploy',
      initialState: 'new',
      steps: makeSteps(3, world),
    })
    const store = new MemoryCheckpointStore()
    const first = await runPipeline(pipeline, { key: 'k', store, data: { values: {} }, context: world })
    expect(first.status).toBe('failed')
    expect(first.error?.retryable).toBe(true)
    expect(first.checkpoint.state).toBe('state_1')
    expect(first.steps.map((s) => s.outcome)).toEqual(['success', 'failed'])
    expect(first.checkpoint.lastError?.code).toBe('CONNECTION')
    const second = await runPipeline(pipeline, { key: 'k', store, context: world })
    expect(second.status).toBe('completed')
    expect(second.startedAt).toBe('state_1')
    expect(second.steps.map((s) => s.name)).toEqual(['step-2', 'step-3'])
    expect(second.checkpoint.failures).toBe(0)
  })

  it('classifies a permanent failure as not retryable', async () => {
    const pipeline = definePipeline({
      name: 'p',
      title: 'Deploy',
      initialState: 'new',
      steps: [
        {
          name: 'a',
          label: 'A',
          state: 'a',
          async run() {
            throw new CommandError('the server said no')
          },
        },
      ],
    })
    const run = await runPipeline(pipeline, { key: 'k', store: new MemoryCheckpointStore() })
    expect(run.status).toBe('failed')
    expect(run.error?.retryable).toBe(false)
    expect(run.steps[0]?.retryable).toBe(false)
  })

  it('returns a completed checkpoint as is, or restarts when asked', async () => {
    const world: World = { applied: new Map(), failOnce: new Set(), crashAfterEffect: new Set() }
    const pipeline = definePipeline({
      name: 'p',
      title: 'Deploy',
      initialState: 'new',
      steps: makeSteps(2, world),
    })
    const store = new MemoryCheckpointStore()
    await runPipeline(pipeline, { key: 'k', store, data: { values: {} }, context: world })
    const again = await runPipeline(pipeline, { key: 'k', store, context: world })
    expect(again.steps).toHaveLength(0)
    const restarted = await runPipeline(pipeline, {
      key: 'k',
      store,
      data: { values: {} },
      context: world,
      onCompleted: 'restart',
    })
    expect(restarted.steps.map((s) => s.outcome)).toEqual(['skipped', 'skipped'])
  })

  it('rejects duplicate step names and checkpoints of another pipeline', async () => {
    expect(() =>
      definePipeline({
        name: 'p',
        title: 'x',
        initialState: 'n',
        steps: [
          { name: 'a', label: 'A', state: 'a', run: async () => undefined },
          { name: 'a', label: 'A', state: 'b', run: async () => undefined },
        ],
      }),
    ).toThrow(/duplicate/)
    const store = new MemoryCheckpointStore()
    const one = definePipeline({
      name: 'one',
      title: 'x',
      initialState: 'n',
      steps: [{ name: 'a', label: 'A', state: 'a', run: async () => undefined }],
    })
    const two = definePipeline({
      name: 'two',
      title: 'x',
      initialState: 'n',
      steps: [{ name: 'a', label: 'A', state: 'a', run: async () => undefined }],
    })
    await runPipeline(one, { key: 'same', store })
    await expect(runPipeline(two, { key: 'same', store })).rejects.toThrow(/belongs to pipeline one/)
  })

  it('property: failures injected at any step, then resumes, end as an uninterrupted run with each effect once', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.nat(7), { maxLength: 6 }),
        fc.array(fc.nat(7), { maxLength: 3 }),
        async (count, failures, crashes) => {
          const reference: World = { applied: new Map(), failOnce: new Set(), crashAfterEffect: new Set() }
          const clean = await runPipeline(
            definePipeline({
              name: 'p',
              title: 'Deploy',
              initialState: 'new',
              steps: makeSteps(count, reference),
            }),
            { key: 'k', store: new MemoryCheckpointStore(), data: { values: {} }, context: reference },
          )
          const world: World = {
            applied: new Map(),
            failOnce: new Set(failures.filter((i) => i < count).map((i) => `step-${i + 1}`)),
            crashAfterEffect: new Set(crashes.filter((i) => i < count).map((i) => `step-${i + 1}`)),
          }
          const pipeline = definePipeline({
            name: 'p',
            title: 'Deploy',
            initialState: 'new',
            steps: makeSteps(count, world),
          })
          const store = new MemoryCheckpointStore()
          let run = await runPipeline(pipeline, { key: 'k', store, data: { values: {} }, context: world })
          let resumes = 0
          while (run.status === 'failed') {
            resumes++
            expect(resumes).toBeLessThanOrEqual(2 * count + 1)
            run = await runPipeline(pipeline, { key: 'k', store, context: world })
          }
          expect(run.checkpoint.state).toBe(clean.checkpoint.state)
          expect(run.checkpoint.completed).toBe(true)
          for (const [, times] of world.applied) expect(times).toBe(1)
          expect([...world.applied.keys()].sort()).toEqual([...reference.applied.keys()].sort())
        },
      ),
      { numRuns: 200 },
    )
  })

  it('formats steps and runs in the shape operators know', async () => {
    const line = formatStepLine({
      index: 1,
      name: 'migrate',
      label: 'Migrate to target node',
      outcome: 'success',
      from: 'clone',
      to: 'migrated',
      durationMs: 30_230,
      at: '',
    })
    expect(line).toMatch(/^\[\+\] {2}1\. Migrate to target node +success \(clone -> migrated\) \[30\.23s\]$/)
    const skipped = formatStepLine({
      index: 9,
      name: 'n',
      label: 'Configure network',
      outcome: 'skipped',
      from: 'a',
      to: 'b',
      durationMs: 10,
      at: '',
    })
    expect(skipped).toContain('Configure network (skip — no change)')
    const failed = formatStepLine({
      index: 11,
      name: 's',
      label: 'Start VM',
      outcome: 'failed',
      from: 'a',
      to: 'b',
      durationMs: 5110,
      at: '',
      reason: 'VM failed to start',
      retryable: true,
    })
    expect(failed).toContain('failed: VM failed to start. Will retry. (a -> b) [5.11s]')
    const world: World = { applied: new Map(), failOnce: new Set(['step-2']), crashAfterEffect: new Set() }
    const run = await runPipeline(
      definePipeline({ name: 'p', title: 'ChangePackage', initialState: 'cp', steps: makeSteps(2, world) }),
      {
        key: 'k',
        store: new MemoryCheckpointStore(),
        data: { values: {} },
        context: world,
      },
    )
    const text = formatPipelineRun(run, { subject: 'service=5546' })
    expect(text.split('\n')[0]).toBe('--- ChangePackage: service=5546 status=cp ---')
    expect(text).toMatch(/--- ChangePackage paused: waiting at \(state_1\)/)
  })
})
