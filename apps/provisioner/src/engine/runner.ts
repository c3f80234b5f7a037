import { setMaxListeners } from 'node:events'
import {
  ConflictError,
  type Failure,
  type Redactor,
  type StepRecord,
  toFailure,
  ValidationError,
} from '@panelkit/core'
import { sql } from 'kysely'
import { withCallSource } from '../call-source.ts'
import { runCreditDeposit, runPushUsage } from './billing.ts'
import { type EngineContext, type ExecuteOutcome, emit, permanent, wake } from './context.ts'
import { finishWith, type Handoff } from './finish.ts'
import {
  claimJobs,
  countPending,
  type Job,
  JobStatus,
  jobFromRow,
  type Prefetched,
  releaseLeases,
  renewLease,
  retryParked,
  takePrefetched,
} from './jobs.ts'
import {
  confirmedChanges,
  mootAfterTerminate,
  prepareService,
  runOperation,
  runWriteBack,
} from './lifecycle.ts'
import { getService, type ServiceRecord } from './services.ts'

/**
 * Running jobs: the worker loop claims queued jobs under a lease, runs each one (renewing the lease
 * while it runs) by handing it to its part — lifecycle.ts for account operations and write-back,
 * billing.ts for usage and credit — and finishes it: done, queued again with back-off, or parked for
 * an operator. Also what an operator does to jobs: retry parked ones, cancel queued or parked ones.
 */

export interface WorkerOptions {
  signal?: AbortSignal
  untilIdle?: boolean
  concurrency?: number
  pollMs?: number
  drainMs?: number
}

/**
 * Claims and runs jobs until `signal` fires, or — with `untilIdle` — until no job is queued or
 * running. Up to `concurrency` jobs run at once (always different services).
 *
 * When `signal` fires the worker stops claiming and lets the jobs it is running reach their next
 * resting state for up to `drainMs`; jobs still running then are aborted, and every lease this
 * worker still holds is released (the job is queued again and resumes from its last checkpoint).
 */
export async function runWorker(
  ctx: EngineContext,
  options: WorkerOptions = {},
): Promise<{ ran: number; released: number }> {
  const concurrency = options.concurrency ?? ctx.config.worker.concurrency
  const leaseMs = ctx.config.worker.leaseSeconds * 1000
  const pollMs = options.pollMs ?? 200
  const drainMs = options.drainMs ?? 20_000
  const active = new Map<number, Promise<void>>()
  // Running jobs are aborted by this one, not by the stop signal: stopping lets them finish first.
  const hard = new AbortController()
  setMaxListeners(concurrency + 16, hard.signal)
  const stop = options.signal
  const onStop = () => wake(ctx)
  stop?.addEventListener('abort', onStop, { once: true })
  let ran = 0
  // A finishing job may claim this worker's next jobs in its own commit (finish.ts, Handoff). Slots
  // are counted so that the jobs running, the ones a finish in flight may claim (`reserved`) and the
  // ones claimed but not yet started (`handed`) never exceed `concurrency`; a job that has begun its
  // finish (`leaving`) gives its slot to that finish.
  const leaving = new Set<number>()
  const handed: Job[] = []
  let reserved = 0
  const free = () => concurrency - (active.size - leaving.size) - reserved - handed.length
  const handoff: Handoff = {
    reserve(job) {
      leaving.add(job.id)
      if (stop?.aborted) return 0
      const n = Math.max(0, free())
      reserved += n
      return n
    },
    settle(n, jobs) {
      reserved -= n
      // Started by the loop, which the finishing job's end wakes. Once the worker is stopping they are
      // not started: their leases are given back with the rest (releaseLeases below).
      handed.push(...jobs)
    },
  }
  try {
    while (!stop?.aborted) {
      const claimed = handed.splice(0)
      try {
        const more = free() - claimed.length
        if (more > 0) claimed.push(...(await claimJobs(ctx.store, ctx.owner, more, leaseMs)))
      } catch (error) {
        ctx.logger.warn('claiming jobs failed; will try again', { error: toFailure(error, ctx.redactor) })
      }
      for (const job of claimed) {
        ran++
        const p = runJob(ctx, job, hard.signal, handoff)
          .catch((error) => {
            ctx.logger.error('job runner failed', {
              jobId: job.id,
              error: toFailure(error, ctx.redactor),
            })
          })
          .finally(() => {
            active.delete(job.id)
            leaving.delete(job.id)
          })
        active.set(job.id, p)
      }
      if (claimed.length > 0 && free() > 0) continue
      if (options.untilIdle && active.size === 0 && claimed.length === 0) {
        if ((await countPending(ctx.store.db)) === 0) break
      }
      const woken = new Promise<void>((resolve) => {
        ctx.wake = resolve
      })
      // The idle wait is a bare timer, cleared as soon as the race is decided: no timer and no abort
      // listener outlives one turn of the loop (a busy worker turns many times a second), and no
      // AbortController is made and aborted per turn (each abort builds an exception object).
      let nap: NodeJS.Timeout | undefined
      const napped = new Promise<void>((resolve) => {
        nap = setTimeout(resolve, pollMs)
      })
      await Promise.race([...active.values(), woken, napped])
      clearTimeout(nap)
      ctx.wake = undefined
    }
    if (active.size > 0) {
      ctx.logger.info('stopping: letting running jobs finish', {
        running: active.size,
        deadlineMs: drainMs,
      })
      const deadline = setTimeout(() => hard.abort(new Error('shutdown deadline reached')), drainMs)
      await Promise.allSettled(active.values())
      clearTimeout(deadline)
    }
  } finally {
    stop?.removeEventListener('abort', onStop)
    if (!hard.signal.aborted && active.size > 0) hard.abort(new Error('worker stopped'))
    await Promise.allSettled(active.values())
  }
  await ctx.moduleLog.flush()
  const released = await releaseLeases(ctx.store.db, ctx.owner)
  if (released > 0) ctx.logger.warn('released the leases of unfinished jobs', { released })
  return { ran, released }
}

/** Runs one claimed job to its next resting state (done, queued for retry, or parked). */
export async function runJob(
  ctx: EngineContext,
  job: Job,
  outerSignal?: AbortSignal,
  handoff?: Handoff,
): Promise<void> {
  const leaseMs = ctx.config.worker.leaseSeconds * 1000
  const controller = new AbortController()
  const onOuter = () => controller.abort(outerSignal?.reason)
  outerSignal?.addEventListener('abort', onOuter, { once: true })
  const renew = setInterval(
    () => {
      renewLease(ctx.store.db, job, ctx.owner, leaseMs)
        .then((held) => {
          if (!held) controller.abort(new Error('lease lost'))
        })
        .catch(() => undefined)
    },
    Math.max(500, leaseMs / 3),
  )
  const started = performance.now()
  const steps: StepRecord[] = []
  // PostgreSQL's claim read the service and its server with the job; else they are read here.
  const prefetched = takePrefetched(job)
  const service = prefetched ? prefetched.service : await getService(ctx.store.db, job.serviceId)
  // The job's own secrets (the password it opens) live in a layer dropped with the job.
  const redactor = ctx.redactor.child()
  emit(ctx, { type: 'job-started', job, service })
  try {
    let outcome: JobOutcome
    try {
      const moot = service ? mootAfterTerminate(job, service) : undefined
      outcome = moot
        ? { ok: 'cancelled', reason: moot }
        : await withCallSource(job.source, () =>
            execute(ctx, job, service, controller.signal, steps, redactor, prefetched),
          )
    } catch (error) {
      outcome = { ok: false, error: toFailure(error, redactor) }
    }
    if (controller.signal.aborted) {
      // Lease lost or shutting down: whoever holds the job finishes it; the calls made are logged.
      await ctx.moduleLog.flush().catch(() => undefined)
      return
    }
    if (outcome.ok === 'cancelled') await finishMoot(ctx, job, outcome.reason, handoff)
    else if (outcome.ok)
      await succeed(ctx, job, service, outcome, steps, performance.now() - started, handoff)
    else await fail(ctx, job, outcome.error, steps, handoff)
  } finally {
    clearInterval(renew)
    outerSignal?.removeEventListener('abort', onOuter)
  }
}

/** Retries parked jobs (one, or a service's); returns how many were queued again. */
export async function retry(
  ctx: EngineContext,
  filter: { jobId?: number; serviceId?: string } = {},
): Promise<number> {
  const n = await retryParked(ctx.store.db, filter)
  if (n > 0) wake(ctx)
  return n
}

/**
 * Cancels a parked or queued job, and every later open job of its service (they were queued on the
 * assumption that it would run). The service's intended state goes back to what was confirmed, so
 * the next sync plans it again from WHMCS with today's config: that is how a parked job is
 * superseded. A running job cannot be cancelled (stop its worker first, or let it finish).
 */
export async function cancel(
  ctx: EngineContext,
  filter: { jobId?: number; serviceId?: string },
  reason = 'cancelled by an operator',
): Promise<{ cancelled: Job[]; services: string[] }> {
  if (filter.jobId === undefined && filter.serviceId === undefined)
    throw new ValidationError('Name a job or a service to cancel', [
      { path: 'jobId', message: 'give a job id or a service id' },
    ])
  return ctx.store.tx(async (trx) => {
    let serviceId = filter.serviceId
    let fromId = 0
    if (filter.jobId !== undefined) {
      const row = await trx.selectFrom('jobs').selectAll().where('id', '=', filter.jobId).executeTakeFirst()
      if (!row) throw new ValidationError(`No job ${filter.jobId}`, [{ path: 'jobId', message: 'unknown' }])
      if (serviceId !== undefined && row.service_id !== serviceId)
        throw new ValidationError(`Job ${filter.jobId} is not a job of service ${serviceId}`)
      serviceId = row.service_id
      fromId = Number(row.id)
      if (row.status === JobStatus.RUNNING)
        throw new ConflictError(
          `Job ${filter.jobId} is running; stop its worker or wait for it, then cancel it if it parks`,
        )
      if (row.status !== JobStatus.QUEUED && row.status !== JobStatus.PARKED)
        throw new ValidationError(
          `Job ${filter.jobId} is ${row.status}; only queued or parked jobs can be cancelled`,
        )
    }
    const open = await trx
      .selectFrom('jobs')
      .selectAll()
      .where('service_id', '=', serviceId as string)
      .where('id', '>=', fromId)
      .where('status', 'in', [JobStatus.QUEUED, JobStatus.PARKED, JobStatus.RUNNING])
      .orderBy('id')
      .execute()
    const running = open.find((r) => r.status === JobStatus.RUNNING)
    if (running)
      throw new ConflictError(
        `Job ${running.id} of service ${serviceId} is running; stop its worker or wait for it first`,
      )
    if (open.length === 0) return { cancelled: [], services: [] }
    const now = Date.now()
    const ids = open.map((r) => Number(r.id))
    await trx
      .updateTable('jobs')
      .set({
        // The key is freed (kept, suffixed), so the same intent planned again is a new job.
        key: sql<string>`key || ${':cancelled:'} || cast(id as text)`,
        status: JobStatus.CANCELLED,
        finished_at: now,
        updated_at: now,
        secret_enc: null,
        lease_owner: null,
        lease_until: null,
        result_json: JSON.stringify({ cancelled: reason }),
      })
      .where('id', 'in', ids)
      .execute()
    // The intended view goes back to the confirmed one (and the version moves on), so the next
    // sync sees the difference with WHMCS again and queues fresh jobs.
    await trx
      .updateTable('services')
      .set((eb) => ({
        desired: eb.ref('actual'),
        plan: eb.ref('confirmed_plan'),
        password_fp: eb.ref('confirmed_password_fp'),
        service_password_fp: eb.ref('confirmed_service_password_fp'),
        version: eb('version', '+', 1),
        last_error: null,
        updated_at: now,
      }))
      .where('service_id', '=', serviceId as string)
      .execute()
    const cancelled = open.map((r) => ({ ...jobFromRow(r), status: JobStatus.CANCELLED }))
    ctx.logger.info('jobs cancelled', { serviceId, jobs: ids, reason })
    return { cancelled, services: [serviceId as string] }
  })
}

type JobOutcome = ExecuteOutcome | { ok: 'cancelled'; reason: string }

/** Hands a job to the part that runs its operation. */
async function execute(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord | undefined,
  signal: AbortSignal,
  steps: StepRecord[],
  redactor: Redactor,
  prefetched?: Prefetched,
): Promise<ExecuteOutcome> {
  if (job.operation === 'creditDeposit') return runCreditDeposit(ctx, job, signal)
  if (!service) return permanent(`Service ${job.serviceId} is not in the store`)
  if (job.operation === 'writeBack') return runWriteBack(ctx, job, service, signal)
  const prepared = await prepareService(ctx, job, service, redactor, prefetched)
  if (!prepared.ready) return prepared.outcome
  const invokeOptions = {
    runKey: job.key,
    signal,
    onProgress: (event: { step: StepRecord }) => {
      steps.push(event.step)
      emit(ctx, { type: 'step', job, step: event.step })
    },
  }
  if (job.operation === 'pushUsage')
    return runPushUsage(ctx, job, service, prepared.entry.instance, prepared.serviceInput, invokeOptions)
  return runOperation(ctx, job, service, prepared, invokeOptions, steps)
}

/** A job made moot by what ran before it: finished as cancelled, with the reason, nothing sent. */
async function finishMoot(ctx: EngineContext, job: Job, reason: string, handoff?: Handoff): Promise<void> {
  // The finish and the module-log entries of the job's calls commit together (see finishWith).
  const { held } = await finishWith(
    ctx,
    job,
    { status: JobStatus.CANCELLED, lastError: null, result: { cancelled: reason, ranBy: ctx.owner } },
    undefined,
    handoff,
  )
  if (!held) return
  ctx.logger.info('job cancelled', { jobId: job.id, key: job.key, operation: job.operation, reason })
  emit(ctx, { type: 'job-cancelled', job, reason })
}

/** Finishes a job as done and records on its service what it confirmed, in one commit. */
async function succeed(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord | undefined,
  outcome: { data: unknown; settings?: Record<string, unknown> },
  steps: StepRecord[],
  durationMs: number,
  handoff?: Handoff,
): Promise<void> {
  const d = (outcome.data ?? {}) as Record<string, unknown>
  const { held } = await finishWith(
    ctx,
    job,
    { status: JobStatus.DONE, lastError: null, result: { ...d, ranBy: ctx.owner }, steps },
    service ? confirmedChanges(ctx, job, service, d, steps, outcome.settings) : undefined,
    handoff,
  )
  if (!held) {
    ctx.logger.warn('lease lost before the job could be finished; another worker will finish it', {
      jobId: job.id,
    })
    return
  }
  ctx.logger.info('job done', {
    jobId: job.id,
    key: job.key,
    operation: job.operation,
    serviceId: job.serviceId,
    durationMs: Math.round(durationMs),
  })
  emit(ctx, { type: 'job-done', job, durationMs, result: d })
}

/** A failed job: queued again with back-off while it can be retried, else parked for an operator. */
async function fail(
  ctx: EngineContext,
  job: Job,
  error: Failure,
  steps: StepRecord[],
  handoff?: Handoff,
): Promise<void> {
  const w = ctx.config.worker
  const retryable = error.retryable && job.attempts < w.maxAttempts
  const runAfter = retryable
    ? Date.now() + Math.min(w.maxBackoffMs, w.backoffMs * 2 ** (job.attempts - 1)) * (0.5 + Math.random() / 2)
    : undefined
  const { held } = await finishWith(
    ctx,
    job,
    {
      status: retryable ? JobStatus.QUEUED : JobStatus.PARKED,
      ...(runAfter !== undefined ? { runAfter: Math.round(runAfter) } : {}),
      lastError: error,
      steps,
    },
    {
      service: { last_error: `${error.code}: ${error.detail}`, last_job_id: job.id, updated_at: Date.now() },
    },
    handoff,
  )
  if (!held) return
  if (retryable) {
    ctx.logger.warn('job failed; will retry', {
      jobId: job.id,
      key: job.key,
      attempt: job.attempts,
      error,
    })
    emit(ctx, { type: 'job-retry', job, error, runAfter: runAfter ?? Date.now() })
  } else {
    ctx.logger.error('job parked; needs attention (`provisioner retry`)', {
      jobId: job.id,
      key: job.key,
      error,
    })
    emit(ctx, { type: 'job-parked', job, error })
  }
}
