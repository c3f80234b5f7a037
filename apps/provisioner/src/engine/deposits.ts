import { type Failure, toFailure } from '@panelkit/core'
import { depositKey, findPaidDeposits, type PaidDeposit } from '@panelkit/whmcs'
import { creditDeposit } from './billing.ts'
import { type EngineContext, type SyncSummary, serverFor, serverInput } from './context.ts'
import { getService } from './services.ts'

/**
 * Deposits as account credit, automatically (ComputeStacks' "Apply Credit", seed 001): during a sync
 * pass, the paid one-time fee of each order of a product whose connector declares an `applyCredit`
 * setting that is on is found in WHMCS (`findPaidDeposits`) and queued with `creditDeposit` (billing.ts) —
 * the same job and ledger key (`whmcs:credit:whmcs-order-{id}`) an operator's `provisioner credit`
 * uses, so AddCredit runs exactly once per order however often sync finds it. Once the ledger says
 * the credit is done, each of the order's services gets the `recordDeposit` connector action, so the
 * client area shows the deposit. Progress is kept in the store's `meta` table (no migration): an
 * order whose credit is done and shown everywhere is not read from WHMCS again.
 */

const YES = new Set(['on', 'yes', 'true', '1', 'y'])
const shownKey = (depositId: string, serviceId: string) => `deposit-shown:${depositId}:${serviceId}`
const completeKey = (orderId: string) => `deposit-complete:${orderId}`

/**
 * WHMCS product ids whose connector has `applyCredit` on (the product's value, else the connector
 * default). Takes an `Engine` or its context.
 */
export function applyCreditProducts(engine: Pick<EngineContext, 'config' | 'definitions'>): string[] {
  const out: string[] = []
  for (const product of engine.config.products) {
    const spec = engine.definitions.get(product.connector)?.settings?.applyCredit as
      | { type?: string; default?: unknown }
      | undefined
    if (spec?.type !== 'yesno') continue
    const value = product.settings.applyCredit ?? spec.default
    if (value === true || (typeof value === 'string' && YES.has(value.trim().toLowerCase())))
      out.push(String(product.whmcsProductId))
  }
  return out
}

async function metaKeys(ctx: EngineContext, prefix: string): Promise<Set<string>> {
  const rows = await ctx.store.db
    .selectFrom('meta')
    .select('key')
    .where('key', 'like', `${prefix}%`)
    .execute()
  return new Set(rows.map((r) => r.key.slice(prefix.length)))
}

async function markMeta(ctx: EngineContext, key: string): Promise<void> {
  await ctx.store.db
    .insertInto('meta')
    .values({ key, value: new Date().toISOString() })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute()
}

/** Shows a credited deposit on each of its services' accounts; `all` when every one shows it. */
async function showDeposit(
  ctx: EngineContext,
  deposit: PaidDeposit,
  shown: Set<string>,
): Promise<{ all: boolean; error?: Failure }> {
  let all = true
  for (const part of deposit.services) {
    if (shown.has(`${deposit.depositId}:${part.serviceId}`)) continue
    const service = await getService(ctx.store.db, part.serviceId)
    const serverId = service?.serverId ?? (await ctx.store.assignments.get(part.serviceId))
    const server = serverId ? serverFor(ctx, serverId) : undefined
    const connector = service ? ctx.connectors.get(service.connector)?.instance : undefined
    // A service on its way out has no client area to show the deposit in: nothing left to do for it.
    if (service && (service.desired === 'terminated' || service.actual === 'terminated')) continue
    // Not provisioned yet (or not by us): shown on a later pass, once the account exists.
    if (
      !service ||
      !server ||
      !connector ||
      (service.actual !== 'active' && service.actual !== 'suspended')
    ) {
      all = false
      continue
    }
    if (!connector.definition.actions?.recordDeposit) continue
    const result = await connector.invoke('action', {
      action: 'recordDeposit',
      params: { reference: deposit.depositId, amount: part.amount },
      service: {
        ...(service.context as Record<string, never>),
        settings: service.settings,
        ...(service.username ? { username: service.username } : {}),
        server: serverInput(server),
      },
    } as never)
    if (!result.ok) return { all: false, error: result.error }
    await markMeta(ctx, shownKey(deposit.depositId, part.serviceId))
  }
  return { all }
}

/**
 * Finds paid deposits in scope, queues their credit and shows credited ones. Never throws: problems
 * come back as sync errors (stage `deposit`).
 */
export async function syncDeposits(
  ctx: EngineContext,
  scope: { clientId?: string; serviceId?: string; signal?: AbortSignal } = {},
): Promise<{ found: number; queued: number; errors: SyncSummary['errors'] }> {
  const errors: SyncSummary['errors'] = []
  const whmcs = ctx.whmcs
  const productIds = applyCreditProducts(ctx)
  if (!whmcs || productIds.length === 0) return { found: 0, queued: 0, errors }
  let found = 0
  let queued = 0
  try {
    const complete = await metaKeys(ctx, 'deposit-complete:')
    const shown = await metaKeys(ctx, 'deposit-shown:')
    const deposits = await findPaidDeposits(whmcs, {
      productIds,
      skipOrderIds: complete,
      ...(scope.clientId !== undefined ? { clientId: scope.clientId } : {}),
      ...(scope.serviceId !== undefined ? { serviceId: scope.serviceId } : {}),
      ...(scope.signal ? { signal: scope.signal } : {}),
    })
    for (const deposit of deposits) {
      found++
      try {
        const out = await creditDeposit(
          ctx,
          {
            clientId: deposit.clientId,
            depositId: deposit.depositId,
            amount: deposit.amount,
            description: deposit.description,
          },
          'deposit-sync',
        )
        if (out.created) queued++
        const entry = await ctx.store.ledger.get(depositKey(deposit))
        if (entry?.state !== 'done') continue
        const show = await showDeposit(ctx, deposit, shown)
        if (show.error) {
          errors.push({
            stage: 'deposit',
            code: show.error.code,
            message: `Deposit ${deposit.depositId} is credited but not yet shown: ${show.error.detail}`,
            clientId: String(deposit.clientId),
          })
        } else if (show.all) await markMeta(ctx, completeKey(deposit.orderId))
      } catch (error) {
        const f = toFailure(error)
        errors.push({
          stage: 'deposit',
          code: f.code,
          message: `Deposit ${deposit.depositId}: ${f.detail}`,
          clientId: String(deposit.clientId),
        })
      }
    }
  } catch (error) {
    const f = toFailure(error)
    errors.push({ stage: 'deposit', code: f.code, message: f.detail })
  }
  return { found, queued, errors }
}
