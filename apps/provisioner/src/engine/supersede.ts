import { ConflictError } from '@panelkit/core'
import type { Engine, SyncSummary } from './engine.ts'
import type { Job } from './jobs.ts'

/**
 * Cancel, and optionally supersede: what `provisioner cancel` and `POST /v1/cancel` both do.
 *
 * `engine.cancel` drops a parked or queued job (and the later open jobs of its service) and puts the
 * service's intended state back to what the servers confirmed. With `resync`, a service pass of the
 * reverse sync follows for each service, so WHMCS's view is planned afresh with today's config: the
 * cancelled job is superseded by new ones. Without a WHMCS connection a resync is refused before
 * anything is cancelled.
 */
export interface CancelOutcome {
  cancelled: Job[]
  services: string[]
  /** One service pass per service, when `resync` was asked for. */
  syncs: { serviceId: string; summary: SyncSummary }[]
}

export async function cancelJobs(
  engine: Engine,
  filter: { jobId?: number; serviceId?: string },
  options: { reason?: string; resync?: boolean } = {},
): Promise<CancelOutcome> {
  if (options.resync && !engine.whmcs)
    throw new ConflictError(
      'No WHMCS connection is configured (the `whmcs` section), so nothing can be planned again: nothing was cancelled',
    )
  const out = await engine.cancel(filter, options.reason ?? 'cancelled by an operator')
  const syncs: CancelOutcome['syncs'] = []
  if (options.resync)
    for (const serviceId of out.services) syncs.push({ serviceId, summary: await engine.sync({ serviceId }) })
  return { ...out, syncs }
}

/** A job as the API and `--json` show it: without the sealed secret. */
export function publicJob({ secretEnc: _, ...job }: Job): Omit<Job, 'secretEnc'> {
  return job
}
