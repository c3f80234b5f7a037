import { AbortedError } from '@panelkit/core'

export interface Page<T> {
  items: T[]
  totalresults: number
  startnumber: number
  numreturned: number
}

export interface PaginateOptions {
  pageSize: number
  /** Pages fetched at once after the first has told the total. */
  concurrency: number
  signal?: AbortSignal | undefined
  /** The offset of the first page (default 0): where a pass resumes after a page failed. */
  start?: number | undefined
}

export type FetchPage<T> = (limitstart: number, limitnum: number, signal: AbortSignal) => Promise<Page<T>>

/**
 * Every page of a `limitstart`/`limitnum` list, in order. The first page is fetched alone; once its
 * `totalresults` is known the rest are fetched with bounded parallelism and yielded in order. It stops
 * when `startnumber + numreturned` reaches the latest `totalresults`, and also on an empty page (a
 * list that shrank while it was read), so it can neither stop early nor loop forever.
 */
export async function* paginate<T>(
  fetchPage: FetchPage<T>,
  options: PaginateOptions,
): AsyncGenerator<Page<T>> {
  const controller = new AbortController()
  const onAbort = () => controller.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onAbort, { once: true })
  const inFlight: Promise<Page<T>>[] = []
  try {
    if (options.signal?.aborted) throw new AbortedError('Paging was aborted')
    const first = await fetchPage(Math.max(0, options.start ?? 0), options.pageSize, controller.signal)
    yield first
    let total = first.totalresults
    let end = first.startnumber + first.numreturned
    if (first.numreturned === 0 || end >= total) return
    // A server that caps the page size answers fewer rows than asked; step by what it gives.
    const step = Math.min(options.pageSize, first.numreturned)
    let nextOffset = end
    const concurrency = Math.max(1, options.concurrency)
    const launch = () => {
      while (inFlight.length < concurrency && nextOffset < total) {
        const promise = fetchPage(nextOffset, step, controller.signal)
        // Rejections are observed when the page's turn comes; this keeps Node from reporting them
        // as unhandled if the consumer stops early.
        promise.catch(() => {})
        inFlight.push(promise)
        nextOffset += step
      }
    }
    launch()
    while (inFlight.length > 0) {
      const page = await (inFlight.shift() as Promise<Page<T>>)
      yield page
      if (page.numreturned === 0) return
      end = Math.max(end, page.startnumber + page.numreturned)
      if (page.totalresults > total) total = page.totalresults
      if (inFlight.length === 0 && nextOffset >= total && end < total) nextOffset = end
      launch()
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    if (inFlight.length > 0) controller.abort(new AbortedError('Paging stopped early'))
  }
}
