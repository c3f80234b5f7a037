import { type Failure, toFailure, ValidationError } from '@panelkit/core'
import type { AddBillableItemParams, WhmcsClient } from '../client.ts'
import { isNotSent } from '../http.ts'
import type { Ledger, LedgerEntry } from './ledger.ts'

/** What WHMCS should know about a provisioned service. Only given fields are written. */
export interface ServiceWriteBack {
  serviceId: string | number
  username?: string
  dedicatedIp?: string
  assignedIps?: readonly string[]
  serverId?: string | number
}

export type WriteBackResult = { ok: true; written: string[] } | { ok: false; error: Failure }

/** UpdateClientProduct with the service's username, addresses and server. Never throws. */
export async function writeBackService(
  client: WhmcsClient,
  update: ServiceWriteBack,
  options: { signal?: AbortSignal } = {},
): Promise<WriteBackResult> {
  try {
    const params: Parameters<WhmcsClient['updateClientProduct']>[0] = { serviceid: update.serviceId }
    const written: string[] = []
    if (update.username !== undefined) {
      params.serviceusername = update.username
      written.push('username')
    }
    if (update.dedicatedIp !== undefined) {
      params.dedicatedip = update.dedicatedIp
      written.push('dedicatedip')
    }
    if (update.assignedIps !== undefined) {
      params.assignedips = update.assignedIps
      written.push('assignedips')
    }
    if (update.serverId !== undefined) {
      params.serverid = update.serverId
      written.push('serverid')
    }
    if (written.length === 0) return { ok: true, written }
    await client.updateClientProduct(params, options)
    return { ok: true, written }
  } catch (error) {
    return { ok: false, error: toFailure(error) }
  }
}

export type LedgerWriteResult =
  | { status: 'written'; key: string; result: string }
  /** Done by an earlier call: nothing was sent this time. */
  | { status: 'already-done'; key: string; result: string | undefined }
  /** An earlier call's outcome is unknown (or still running); nothing is sent until an operator decides. */
  | { status: 'uncertain'; key: string; entry: LedgerEntry }
  /** This call failed; `retryable` says whether a later retry may send again (the key was freed). */
  | { status: 'failed'; key: string; error: Failure; retryable: boolean }

async function exactlyOnce(
  ledger: Ledger,
  key: string,
  send: () => Promise<string>,
): Promise<LedgerWriteResult> {
  let existing: LedgerEntry | undefined
  try {
    existing = await ledger.claim(key)
  } catch (error) {
    return { status: 'failed', key, error: toFailure(error), retryable: true }
  }
  if (existing) {
    if (existing.state === 'done') return { status: 'already-done', key, result: existing.result }
    return { status: 'uncertain', key, entry: existing }
  }
  let result: string
  try {
    result = await send()
  } catch (error) {
    if (isNotSent(error)) {
      // WHMCS refused it or never saw it: nothing was written, so the key is free again.
      await ledger.release(key).catch(() => undefined)
      const failure = toFailure(error)
      return { status: 'failed', key, error: failure, retryable: failure.retryable }
    }
    const failure = toFailure(error)
    await ledger.markUncertain(key, failure.detail).catch(() => undefined)
    return { status: 'failed', key, error: failure, retryable: false }
  }
  try {
    await ledger.complete(key, result)
  } catch {
    // The write happened; a ledger that cannot record it must not let a retry write again.
    await ledger.markUncertain(key, `written (${result}) but not recorded`).catch(() => undefined)
  }
  return { status: 'written', key, result }
}

export interface UsagePush {
  serviceId: string | number
  clientId: string | number
  /** The billing period, e.g. `2026-05`: one billable item per service, period and metric. */
  period: string
  /** Distinguishes several items in one period (`bandwidth`, `storage`). Default `usage`. */
  metric?: string
  description: string
  /** Exact decimal string, e.g. `"12.34"`. */
  amount: string
  quantity?: string | number
  unit?: 'hours' | 'quantity'
  invoiceaction?: AddBillableItemParams['invoiceaction']
  duedate?: string
}

/** The ledger key of a usage push. */
export function usageKey(push: Pick<UsagePush, 'serviceId' | 'period' | 'metric'>): string {
  return `whmcs:usage:${push.serviceId}:${push.period}:${push.metric ?? 'usage'}`
}

/** AddBillableItem exactly once per service, period and metric. Never throws. */
export async function pushUsage(
  client: WhmcsClient,
  ledger: Ledger,
  push: UsagePush,
  options: { signal?: AbortSignal } = {},
): Promise<LedgerWriteResult> {
  const key = usageKey(push)
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(push.period)) {
    return {
      status: 'failed',
      key,
      error: toFailure(
        new ValidationError('period must be a plain label such as 2026-05', [
          { path: 'period', message: 'is not a plain label' },
        ]),
      ),
      retryable: false,
    }
  }
  return exactlyOnce(ledger, key, async () => {
    const params: AddBillableItemParams = {
      clientid: push.clientId,
      description: push.description,
      amount: push.amount,
      unit: push.unit ?? 'quantity',
      quantity: push.quantity ?? 1,
      invoiceaction: push.invoiceaction ?? 'nextinvoice',
    }
    if (push.duedate !== undefined) params.duedate = push.duedate
    const r = await client.addBillableItem(params, options)
    return r.billableid
  })
}

export interface DepositCredit {
  clientId: string | number
  /** What makes the deposit unique (the order or service id it was paid with). */
  depositId: string
  amount: string
  description: string
}

export function depositKey(deposit: Pick<DepositCredit, 'depositId'>): string {
  return `whmcs:credit:${deposit.depositId}`
}

/** AddCredit for a deposit exactly once. Never throws. */
export async function creditDeposit(
  client: WhmcsClient,
  ledger: Ledger,
  deposit: DepositCredit,
  options: { signal?: AbortSignal } = {},
): Promise<LedgerWriteResult> {
  return exactlyOnce(ledger, depositKey(deposit), async () => {
    const r = await client.addCredit(
      { clientid: deposit.clientId, amount: deposit.amount, description: deposit.description },
      options,
    )
    return r.newbalance
  })
}
