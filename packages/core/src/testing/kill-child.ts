import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ConnectorDefinition, ConnectorInstance } from '../connector.ts'
import { createConnector } from '../connector.ts'
import type { ModuleLogEntry } from '../module-log.ts'
import type { Operation } from '../operations.ts'
import type { Checkpoint, CheckpointStore } from '../pipeline.ts'
import type { Result } from '../result.ts'
import type { SettingsSpec } from '../settings.ts'

/**
 * The child side of the contract suite's kill-between-steps case: a process that runs connector
 * operations against a simulator and is killed with SIGKILL by its own step observer, so that nothing
 * after the chosen point runs — no `finally`, no close, no answer. Everything a worker keeps across a
 * crash (the checkpoints) lives in files; everything else dies with the process.
 */

/** A checkpoint store in a directory, one file per key, each write atomic (a rename), as a durable store. */
export class FileCheckpointStore implements CheckpointStore {
  private readonly dir: string
  constructor(dir: string) {
    this.dir = dir
    mkdirSync(dir, { recursive: true })
  }
  private file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`)
  }
  async load(key: string): Promise<Checkpoint | undefined> {
    try {
      return JSON.parse(readFileSync(this.file(key), 'utf8')) as Checkpoint
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }
  async save(checkpoint: Checkpoint): Promise<void> {
    const file = this.file(checkpoint.key)
    writeFileSync(`${file}.tmp`, JSON.stringify(checkpoint))
    renameSync(`${file}.tmp`, file)
  }
  async delete(key: string): Promise<void> {
    rmSync(this.file(key), { force: true })
  }
}

/** Where the child process stops itself: right after the k-th completed step, or the k-th answered write. */
export interface KillPoint {
  points: 'steps' | 'writes'
  /** 1-based. */
  k: number
}

/** One operation the child runs, in order; a task with `killAfter` is the last one that gets to run. */
export interface KillTask {
  id: string
  operation: Operation
  input: unknown
  /** The job's run key: a re-run with the same key resumes the killed run's checkpoints. */
  runKey: string
  killAfter?: KillPoint
}

export interface KillPlan {
  /** The directory the checkpoints live in (shared by every process of one kill case). */
  checkpointDir: string
  /** Whatever the fixture hands to its child module (simulator address, pool files, …). */
  params: unknown
  tasks: KillTask[]
}

/** What the child reports for each task that ran to its end (a killed task reports nothing). */
export interface KillReport {
  id: string
  ok: boolean
  code?: string
  detail?: string
  /** Completed (not failed) pipeline steps, as the step observer saw them. */
  steps: number
  /** Writes that got an answer, as the module log saw them. */
  writes: number
  /** Set when the task had a kill point that was never reached. */
  notKilled?: true
}

/**
 * What a connector's test provides for the child process: a module (a file the suite bundles with this
 * runner) whose `connector` export builds the connector exactly as the test's own instance is built,
 * from the JSON `params` the fixture gave.
 */
export interface KillTargetModule {
  connector(
    params: unknown,
    // biome-ignore lint/suspicious/noExplicitAny: any connector's definition, whatever its settings
  ): ConnectorDefinition<any, any> | Promise<ConnectorDefinition<any, any>>
}

function send(message: unknown): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) {
      reject(new Error('the kill runner needs an IPC channel (start it with child_process.fork)'))
      return
    }
    process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()))
  })
}

async function runTask(target: KillTargetModule, plan: KillPlan, task: KillTask): Promise<KillReport> {
  let steps = 0
  let writes = 0
  const reached = (kind: 'steps' | 'writes', count: number) => {
    // SIGKILL to itself: the process ends here, before the next statement of the connector runs.
    if (task.killAfter?.points === kind && task.killAfter.k === count) process.kill(process.pid, 'SIGKILL')
  }
  const definition = await target.connector(plan.params)
  const instance = createConnector(definition, {
    checkpoints: new FileCheckpointStore(plan.checkpointDir),
    sink: {
      write(entry: ModuleLogEntry) {
        if (entry.access === 'write' && entry.outcome === 'ok') reached('writes', ++writes)
      },
    },
  }) as unknown as ConnectorInstance<SettingsSpec, unknown>
  try {
    const result = (await instance.invoke(task.operation, task.input as never, {
      runKey: task.runKey,
      onProgress: (event) => {
        if (event.step.outcome !== 'failed') reached('steps', ++steps)
      },
    })) as Result<unknown>
    const report: KillReport = { id: task.id, ok: result.ok, steps, writes }
    if (!result.ok) {
      report.code = result.error.code
      report.detail = result.error.detail
    }
    if (task.killAfter) report.notKilled = true
    return report
  } finally {
    await instance.close()
  }
}

/** The child's entry: waits for its plan, runs the tasks in order, reports each, and exits. */
export function runKillChild(target: KillTargetModule): void {
  process.once('message', (message) => {
    void (async () => {
      const plan = message as KillPlan
      for (const task of plan.tasks) await send({ report: await runTask(target, plan, task) })
      // Not from inside the 'message' dispatch (Node 20 trips over a channel closed there): on the next turn.
      setImmediate(() => process.disconnect())
    })().catch((error: unknown) => {
      process.stderr.write(
        `kill runner: ${error instanceof Error ? (error.stack ?? error.message) : error}\n`,
      )
      process.exit(70)
    })
  })
}
