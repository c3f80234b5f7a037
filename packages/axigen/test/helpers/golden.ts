import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

/** One golden exchange: what the client sent (null for the banner) and the exact server bytes. */
export interface GoldenExchange {
  client: string | null
  server: string
}

export interface GoldenTranscript {
  name: string
  description: string
  exchanges: GoldenExchange[]
}

export const FIXTURES = join(import.meta.dirname, '..', 'fixtures')

export function loadGoldenTranscripts(): GoldenTranscript[] {
  return readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(join(FIXTURES, f), 'utf8')) as GoldenTranscript)
}
