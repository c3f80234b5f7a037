import { randomUUID } from 'node:crypto'
import {
  ConnectionError,
  type ConnectorInstance,
  type Failure,
  type OperationResult,
  type Result,
  toFailure,
} from '@panelkit/core'
import {
  creditDeposit as creditDepositOnce,
  type DepositCredit,
  depositKey,
  type LedgerWriteResult,
  pushUsage,
  usageKey,
  type WhmcsClient,
} from '@panelkit/whmcs'
import type { DurableLedger } from '../store/store.ts'
import { type EngineContext, permanent, productFor, wake } from './context.ts'
import { enqueue, type Job, retryParked } from './jobs.ts'
import { listServices, type ServiceRecord } from './services.ts'

/**
 * Billing jobs: usage pushes (AddBillableItem) and deposits credited to a client (AddCredit). Each
 * item goes to WHMCS at most once, by its ledger key; an item that may or may not have arrived is
 * never sent again automatically, but parked for an operator to `settle`.
 */

/** Queues one usage push per provisioned service of a usage-billed product for the period. */
export async function scheduleUsage(ctx: EngineContext, period: string): Promise<number> {
  let created = 0
  for (const s of await listServices(ctx.store.db)) {
    if (s.actual !== 'active' && s.actual !== 'suspended') continue
    // A terminate is queued: the push would run after it, against an account that is gone.
    if (s.desired === 'terminated') continue
    const product = productFor(ctx, s.productId)
    if (!product?.usageBilling) continue
    const out = await enqueue(ctx.store.db, {
      key: `usage:${s.serviceId}:${period}`,
      serviceId: s.serviceId,
      operation: 'pushUsage',
      payload: { period },
      source: 'engine',
    })
    if (out.created) created++
  }
  if (created > 0) wake(ctx)
  return created
}

/** Queues a deposit to be credited to a WHMCS client (AddCredit exactly once per deposit id). */
export async function creditDeposit(
  ctx: EngineContext,
  deposit: DepositCredit,
  source: string,
): Promise<{ job: Job; created: boolean }> {
  const out = await enqueue(ctx.store.db, {
    key: `credit:${deposit.depositId}`,
    serviceId: `client:${deposit.clientId}`,
    operation: 'creditDeposit',
    payload: { ...deposit, clientId: String(deposit.clientId) },
    source,
  })
  if (out.created) wake(ctx)
  return out
}

/**
 * An uncertain ledger entry decided by an operator: `done` (the item did reach WHMCS; the parked
 * job finishes without sending) or `release` (it did not; the parked job may send it once more).
 */
export async function settle(
  ctx: EngineContext,
  key: string,
  outcome: 'done' | 'release',
): Promise<{ settled: boolean; retried: number }> {
  const ledger = ctx.store.ledger
  const entry = await ledger.get(key)
  if (!entry || entry.state === 'done') return { settled: false, retried: 0 }
  if (outcome === 'done') await ledger.complete(key, entry.result ?? 'settled by an operator')
  else await ledger.release(key)
  const jobKey = jobKeyOfLedgerKey(key)
  let retried = 0
  if (jobKey) {
    const job = await ctx.store.db
      .selectFrom('jobs')
      .select('id')
      .where('key', '=', jobKey)
      .executeTakeFirst()
    if (job) {
      retried = await retryParked(ctx.store.db, { jobId: Number(job.id) })
      if (retried > 0) wake(ctx)
    }
  }
  return { settled: true, retried }
}

/** Runs a `pushUsage` job: reads the period's usage from the connector and bills it once. */
export async function runPushUsage(
  ctx: EngineContext,
  job: Job,
  service: ServiceRecord,
  instance: ConnectorInstance,
  serviceInput: Record<string, unknown>,
  invokeOptions: { runKey: string; signal: AbortSignal },
): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
  const product = productFor(ctx, service.productId)
  const pricing = product?.usageBilling
  if (!pricing || !ctx.whmcs) return { ok: true, data: { skipped: 'no usage billing configured' } }
  const period = String(job.payload.period)
  const usage = (await instance.invoke('usage', { service: serviceInput } as never, invokeOptions)) as Result<
    OperationResult<'usage'>
  >
  if (!usage.ok) return { ok: false, error: usage.error }
  const metric = usage.data.metrics.find((m) => m.name === pricing.metric)
  const quantity = Number(metric?.value ?? 0)
  const amount = (Math.round(quantity * Number(pricing.unitPrice) * 100) / 100).toFixed(2)
  const push = {
    serviceId: service.serviceId,
    clientId: service.clientId,
    period: period.replace(/[^A-Za-z0-9_.:-]/g, '-'),
    description:
      `${pricing.description ?? pricing.metric} ${period}: ${quantity} ${metric?.unit ?? ''} (service ${service.serviceId})`.trim(),
    amount,
  }
  const ledger = ctx.store.ledgerFor(attemptHolder(ctx.owner, job))
  const out = await pushUsage(ledgerBoundClient(ctx.whmcs, ledger, usageKey(push)), ledger, push, {
    signal: invokeOptions.signal,
  })
  return ledgerOutcome(`Usage of service ${service.serviceId} for ${period}`, out)
}

/** Runs a `creditDeposit` job: AddCredit, once per deposit id. */
export async function runCreditDeposit(
  ctx: EngineContext,
  job: Job,
  signal: AbortSignal,
): Promise<{ ok: true; data: unknown } | { ok: false; error: Failure }> {
  if (!ctx.whmcs) return permanent('No WHMCS connection is configured (the `whmcs` section)')
  const d = job.payload as unknown as DepositCredit
  const ledger = ctx.store.ledgerFor(attemptHolder(ctx.owner, job))
  const out = await creditDepositOnce(ledgerBoundClient(ctx.whmcs, ledger, depositKey(d)), ledger, d, {
    signal,
  })
  return ledgerOutcome(`Deposit ${d.depositId} of client ${d.clientId}`, out)
}

/** The library's ledger outcome as the job's outcome. */
function ledgerOutcome(
  what: string,
  out: LedgerWriteResult,
): { ok: true; data: unknown } | { ok: false; error: Failure } {
  switch (out.status) {
    case 'written':
      return { ok: true, data: { key: out.key, result: out.result, sent: true } }
    case 'already-done':
      return { ok: true, data: { key: out.key, result: out.result ?? null, sent: false } }
    case 'uncertain':
      // Never sent again automatically: billing twice is worse than asking an operator.
      return permanent(
        `${what} may or may not have reached WHMCS (ledger ${out.key} is ${out.entry.state}${out.entry.reason ? `: ${out.entry.reason}` : ''}). Check WHMCS, then \`provisioner settle --key ${out.key} --as done\` (it is there) or \`--as release\` (it is not; it will be sent once).`,
        'CONFLICT',
      )
    case 'failed':
      return { ok: false, error: { ...out.error, retryable: out.retryable && out.error.retryable } }
  }
}

/** One attempt of one job, as a ledger claim's holder (unique: a re-run is a new attempt). */
function attemptHolder(owner: string, job: Job): string {
  return `${owner}:job-${job.id}:${job.attempts}:${randomUUID().slice(0, 8)}`
}

/**
 * The WHMCS client with AddBillableItem and AddCredit bracketed by the ledger. First the connection
 * is made — TCP, TLS and an authenticated read (`WhmcsDetails`) over the client's keep-alive pool —
 * and only then is `sending` recorded (durably, fenced on the claim), immediately before the request
 * goes out on that warm connection; `sent` is recorded with WHMCS's answer right after. A WHMCS that
 * cannot be reached, a handshake that stalls, or a worker killed while connecting leaves a claim that
 * was never sent: released and sent once by the next attempt, not an `uncertain` entry for an operator.
 */
function ledgerBoundClient(client: WhmcsClient, ledger: DurableLedger, key: string): WhmcsClient {
  const bound = Object.create(client) as WhmcsClient
  const connectFirst = async (action: string, options: { signal?: AbortSignal } | undefined) => {
    try {
      await client.whmcsDetails(options?.signal ? { signal: options.signal } : {})
    } catch (error) {
      const f = toFailure(error)
      throw new ConnectionError(`WHMCS could not be reached before ${action} was sent: ${f.detail}`, {
        cause: error,
        retryable: f.retryable || f.code === 'CONNECTION' || f.code === 'TIMEOUT',
        // Nothing went out: the ledger frees the key instead of marking it uncertain.
        details: { notSent: true },
      })
    }
  }
  bound.addBillableItem = async (params, options) => {
    await connectFirst('AddBillableItem', options)
    await ledger.beginSend(key)
    const r = await client.addBillableItem(params, options)
    await ledger.markSent(key, r.billableid)
    return r
  }
  bound.addCredit = async (params, options) => {
    await connectFirst('AddCredit', options)
    await ledger.beginSend(key)
    const r = await client.addCredit(params, options)
    await ledger.markSent(key, r.newbalance)
    return r
  }
  return bound
}

/** The job that pushes a ledger key's item (usage: `usage:<service>:<period>`; credit: `credit:<id>`). */
function jobKeyOfLedgerKey(key: string): string | undefined {
  const usage = /^whmcs:usage:([^:]+):(.+):[^:]+$/.exec(key)
  if (usage) return `usage:${usage[1]}:${usage[2]}`
  const credit = /^whmcs:credit:(.+)$/.exec(key)
  if (credit) return `credit:${credit[1]}`
  return undefined
}
