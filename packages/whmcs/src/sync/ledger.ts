/**
 * Exactly-once bookkeeping for writes WHMCS cannot deduplicate (AddBillableItem, AddCredit). A key is
 * claimed before the call and completed after it; a call whose outcome is unknown (the connection
 * dropped after sending) leaves the key `uncertain`, and an uncertain key is never sent again
 * automatically: billing twice is worse than asking an operator to look.
 */

export type LedgerState = 'pending' | 'done' | 'uncertain'

export interface LedgerEntry {
  key: string
  state: LedgerState
  /** What WHMCS returned (billable item id, new balance). */
  result?: string
  /** Why the entry is uncertain. */
  reason?: string
  updatedAt: string
}

export interface Ledger {
  /** Atomically claims `key`: undefined when it was free (now `pending`), else the existing entry. */
  claim(key: string): Promise<LedgerEntry | undefined>
  complete(key: string, result: string): Promise<void>
  /** Frees a claim whose call certainly did not write anything. */
  release(key: string): Promise<void>
  markUncertain(key: string, reason: string): Promise<void>
  get(key: string): Promise<LedgerEntry | undefined>
}

/** The in-memory ledger, for tests and single-process demos; the app supplies a durable one. */
export class MemoryLedger implements Ledger {
  readonly entries = new Map<string, LedgerEntry>()
  private readonly now: () => Date
  constructor(now: () => Date = () => new Date()) {
    this.now = now
  }
  async claim(key: string): Promise<LedgerEntry | undefined> {
    const existing = this.entries.get(key)
    if (existing) return { ...existing }
    this.entries.set(key, { key, state: 'pending', updatedAt: this.now().toISOString() })
    return undefined
  }
  async complete(key: string, result: string): Promise<void> {
    this.entries.set(key, { key, state: 'done', result, updatedAt: this.now().toISOString() })
  }
  async release(key: string): Promise<void> {
    this.entries.delete(key)
  }
  async markUncertain(key: string, reason: string): Promise<void> {
    this.entries.set(key, { key, state: 'uncertain', reason, updatedAt: this.now().toISOString() })
  }
  async get(key: string): Promise<LedgerEntry | undefined> {
    const e = this.entries.get(key)
    return e ? { ...e } : undefined
  }
}
