import { JobStatus } from '../engine/jobs.ts'
import type { Db } from '../store/store.ts'

/**
 * Cancels a parked job: it will not run again, and the service's later jobs are no longer held
 * behind it. Only a parked job can be cancelled (a running one belongs to a worker). Returns 1 when
 * it was cancelled, 0 when it was not parked.
 */
export async function cancelParked(db: Db, jobId: number): Promise<number> {
  const now = Date.now()
  const r = await db
    .updateTable('jobs')
    .set({ status: JobStatus.CANCELLED, finished_at: now, updated_at: now, secret_enc: null })
    .where('id', '=', jobId)
    .where('status', '=', JobStatus.PARKED)
    .executeTakeFirst()
  return Number(r.numUpdatedRows)
}
