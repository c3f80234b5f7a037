import { describe, expect, it } from 'vitest'
import { type Page, paginate } from '../../src/pagination.ts'

/** A list of `total` rows served with a delay, counting how many pages are in flight at once. */
function server(total: number, options: { cap?: number; delayMs?: (offset: number) => number } = {}) {
  const state = { inFlight: 0, maxInFlight: 0, asked: [] as number[], aborted: 0 }
  const fetchPage = async (start: number, num: number, signal: AbortSignal): Promise<Page<number>> => {
    state.asked.push(start)
    state.inFlight++
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)
    await new Promise((r) => setTimeout(r, options.delayMs?.(start) ?? 1))
    state.inFlight--
    if (signal.aborted) state.aborted++
    const n = Math.max(0, Math.min(num, options.cap ?? num, total - start))
    return {
      items: Array.from({ length: n }, (_, i) => start + i),
      totalresults: total,
      startnumber: start,
      numreturned: n,
    }
  }
  return { state, fetchPage }
}

async function all(gen: AsyncGenerator<Page<number>>): Promise<number[]> {
  const out: number[] = []
  for await (const page of gen) out.push(...page.items)
  return out
}

describe('paginate', () => {
  it('visits every page once, in order, with at most `concurrency` fetches at a time', async () => {
    // Later pages answer first: order must still hold.
    const { state, fetchPage } = server(103, { delayMs: (o) => 20 - (o % 40) / 4 })
    const rows = await all(paginate(fetchPage, { pageSize: 10, concurrency: 3 }))
    expect(rows).toEqual(Array.from({ length: 103 }, (_, i) => i))
    expect(state.maxInFlight).toBe(3)
    expect([...state.asked].sort((a, b) => a - b)).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100])
  })

  it('steps by what a capping server returns, and starts at a given offset', async () => {
    const capped = server(60, { cap: 25 })
    expect(await all(paginate(capped.fetchPage, { pageSize: 100, concurrency: 2 }))).toHaveLength(60)
    expect(capped.state.asked).toEqual([0, 25, 50])
    const resumed = server(60)
    const rows = await all(paginate(resumed.fetchPage, { pageSize: 20, concurrency: 2, start: 40 }))
    expect(rows[0]).toBe(40)
    expect(rows).toHaveLength(20)
    expect(resumed.state.asked).toEqual([40])
  })

  it('aborts the pages still in flight when the consumer stops early', async () => {
    const { state, fetchPage } = server(1000, { delayMs: () => 5 })
    for await (const page of paginate(fetchPage, { pageSize: 10, concurrency: 4 })) {
      if (page.startnumber === 10) break
    }
    await new Promise((r) => setTimeout(r, 30))
    expect(state.aborted).toBeGreaterThan(0)
    expect(state.asked.length).toBeLessThanOrEqual(1 + 4 + 1)
  })
})
