import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * Who caused the external calls being made: the WHMCS server module (`whmcs-module`), the reverse sync
 * (`sync`), the HTTP API (`api`) or the CLI (`cli`), or the engine itself (`engine`: usage pushes,
 * write-backs). Carried in async context, so the module log can stamp every call without each
 * connector or client having to pass it along.
 */
const storage = new AsyncLocalStorage<string>()

/** A job's `source` column as a call source: the three sync passes (`sync-client`, …) are `sync`. */
export function callSourceOf(jobSource: string): string {
  return jobSource.startsWith('sync') ? 'sync' : jobSource
}

/** Runs `fn` with every external call it makes attributed to `source`. */
export function withCallSource<T>(source: string, fn: () => T): T {
  return storage.run(callSourceOf(source), fn)
}

/** The source of the calls being made here, if anyone said. */
export function currentCallSource(): string | undefined {
  return storage.getStore()
}
