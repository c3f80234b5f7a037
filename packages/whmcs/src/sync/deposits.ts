import type { WhmcsClient } from '../client.ts'
import { normaliseMoney } from '../protocol/values.ts'
import type { DepositCredit } from './write-back.ts'

/**
 * Paid deposits: the one-time fee of an order for a product whose "Apply Credit" setting is on, which
 * ComputeStacks' WHMCS module turns into account credit when the order is paid (its `OrderPaid` hook in
 * `hooks.php`: GetInvoice, then each item's service, then AddCredit "Credit for Cloud Services Order
 * #{orderId}"). Here the same fact is read through the External API instead of a hook, so it can be
 * found again after any outage: the order must be paid (`paymentstatus` is its invoice's status) and not
 * cancelled or fraud, and only the order's own line items for services of those products with a
 * one-time billing cycle count (the module's hook adds every invoice item whose `relid` matches a
 * service, whatever the item's type). One credit per order, as the module gives.
 */

export interface PaidDeposit extends DepositCredit {
  /** `whmcs-order-{id}`: one credit per order, whatever runs the detection and however often. */
  depositId: string
  orderId: string
  invoiceId: string
  /** The order's services that make up the deposit, with each one's part (exact decimals). */
  services: { serviceId: string; pid: string; amount: string }[]
}

export interface FindPaidDepositsOptions {
  /** WHMCS product ids whose one-time fee is a deposit (the products with "Apply Credit" on). */
  productIds: readonly (string | number)[]
  /** Only this client's services. */
  clientId?: string | number
  /** Only this service. */
  serviceId?: string | number
  /** Orders already handled by the caller: not read again (one GetOrders call saved per order). */
  skipOrderIds?: ReadonlySet<string>
  signal?: AbortSignal
}

const ONE_TIME = new Set(['one time', 'onetime'])
const CLOSED_ORDERS = new Set(['cancelled', 'fraud'])

/** Adds two exact decimal strings (as `normaliseMoney` gives them). */
function addMoney(a: string, b: string): string {
  const scale = (s: string) => (s.split('.')[1] ?? '').length
  const places = Math.max(scale(a), scale(b), 2)
  const units = (s: string) => {
    const negative = s.startsWith('-')
    const [whole = '0', fraction = ''] = (negative ? s.slice(1) : s).split('.')
    const value = BigInt(whole + fraction.padEnd(places, '0'))
    return negative ? -value : value
  }
  const sum = units(a) + units(b)
  const digits = (sum < 0n ? -sum : sum).toString().padStart(places + 1, '0')
  return `${sum < 0n ? '-' : ''}${digits.slice(0, -places)}.${digits.slice(-places)}`
}

const isPositive = (amount: string) => /[1-9]/.test(amount) && !amount.startsWith('-')

/**
 * The paid deposits of the given products' services, one per order, read from GetClientsProducts and
 * GetOrders. Reads only; crediting them exactly once is `creditDeposit`'s job (keyed by `depositId`).
 */
export async function findPaidDeposits(
  client: WhmcsClient,
  options: FindPaidDepositsOptions,
): Promise<PaidDeposit[]> {
  const products = new Set(options.productIds.map(String))
  if (products.size === 0) return []
  const signal = options.signal ? { signal: options.signal } : {}
  // Services that can hold a deposit, grouped by their order.
  const orders = new Map<string, Map<string, string>>()
  const consider = (service: { id: string; pid: string; orderid: string | null; billingcycle: string }) => {
    if (!products.has(service.pid) || service.orderid === null) return
    if (!ONE_TIME.has(service.billingcycle.trim().toLowerCase())) return
    let services = orders.get(service.orderid)
    if (!services) {
      services = new Map()
      orders.set(service.orderid, services)
    }
    services.set(service.id, service.pid)
  }
  if (options.serviceId !== undefined) {
    const found = await client.getClientsProducts({ serviceid: options.serviceId }, signal)
    for (const service of found.products) consider(service)
  } else {
    for (const pid of products) {
      const params = {
        pid,
        ...(options.clientId !== undefined ? { clientid: options.clientId } : {}),
      }
      for await (const service of client.iterateClientsProducts(params, signal)) consider(service)
    }
  }

  const deposits: PaidDeposit[] = []
  for (const [orderId, services] of orders) {
    if (options.skipOrderIds?.has(orderId)) continue
    const answer = await client.getOrders({ id: orderId }, signal)
    const order = answer.orders.find((o) => o.id === orderId)
    if (!order || order.invoiceid === null) continue
    if (order.paymentstatus.trim().toLowerCase() !== 'paid') continue
    if (CLOSED_ORDERS.has(order.status.trim().toLowerCase())) continue
    const parts: PaidDeposit['services'] = []
    let total = '0.00'
    for (const item of order.lineitems) {
      if (item.type.trim().toLowerCase() !== 'product' || item.relid === null) continue
      const pid = services.get(item.relid)
      if (pid === undefined || !ONE_TIME.has(item.billingcycle.trim().toLowerCase())) continue
      const amount = normaliseMoney(item.amount)
      if (amount === null || !isPositive(amount)) continue
      parts.push({ serviceId: item.relid, pid, amount })
      total = addMoney(total, amount)
    }
    if (parts.length === 0) continue
    deposits.push({
      depositId: `whmcs-order-${orderId}`,
      clientId: order.userid,
      amount: total,
      // The description ComputeStacks' module gives its credit (hooks.php).
      description: `Credit for Cloud Services Order #${orderId}`,
      orderId,
      invoiceId: order.invoiceid,
      services: parts,
    })
  }
  return deposits
}
