/**
 * What a pipeline run records: one line per step, and the run's summary as an operation's result
 * carries it. Kept apart from pipeline.ts (which runs pipelines and reports failures through
 * result.ts) and result.ts (whose results carry these summaries), so neither imports the other back.
 */

export type StepRecordOutcome = 'success' | 'skipped' | 'failed'

export interface StepRecord {
  /** 1-based position in the pipeline. */
  index: number
  name: string
  label: string
  outcome: StepRecordOutcome
  from: string
  to: string
  durationMs: number
  at: string
  reason?: string
  retryable?: boolean
}

/** What a pipeline run inside an operation did, for progress displays and the app's store. */
export interface PipelineRunSummary {
  pipeline: string
  title: string
  key: string
  status: 'completed' | 'failed'
  startedAt: string
  state: string
  steps: StepRecord[]
  durationMs: number
}
