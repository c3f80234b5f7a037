import { setTimeout as sleep } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { batchedLines, narrate } from '../src/cli/output.ts'

describe('narration lines are written in batches', () => {
  it('writes the lines of one interval together, in order, and flush() writes the rest at once', async () => {
    const writes: string[] = []
    const lines = batchedLines((text) => writes.push(text), 30)
    lines.line('a')
    lines.line('b')
    expect(writes).toEqual([])
    await sleep(80)
    expect(writes).toEqual(['a\nb'])
    lines.line('c')
    lines.flush()
    expect(writes).toEqual(['a\nb', 'c'])
    lines.flush()
    expect(writes).toHaveLength(2)
  })

  it('writes a buffer past 64 KB at once', () => {
    const writes: string[] = []
    const lines = batchedLines((text) => writes.push(text), 60_000)
    const long = 'x'.repeat(40_000)
    lines.line(long)
    expect(writes).toHaveLength(0)
    lines.line(long)
    expect(writes).toEqual([`${long}\n${long}`])
  })

  it("keeps each job's block whole: a narrated job is one line of the batch", async () => {
    const writes: string[] = []
    const lines = batchedLines((text) => writes.push(text), 10)
    const onEvent = narrate(lines.line)
    const job = { id: 1, serviceId: '7', operation: 'create', attempts: 1 }
    onEvent({ type: 'job-started', job, service: { connector: 'x', actual: 'none' } } as never)
    onEvent({ type: 'job-done', job, durationMs: 1200 } as never)
    lines.flush()
    expect(writes).toEqual([
      '--- Create: service=7 connector=x status=none ---\n--- Create complete: service=7 [1.20s] ---',
    ])
  })
})
