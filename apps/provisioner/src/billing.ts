/**
 * What the engine needs from the billing system (WHMCS): the services of the mapped products, a place
 * to write back what it learned, and billable items that can be found again by their idempotency key.
 * `@panelkit/whmcs` backs this for a real WHMCS; tests and the demo can also use the in-memory one.
 */

/** WHMCS's service statuses (`domainstatus`). */
export type BillingStatus =
  | 'Pending'
  | 'Active'
  | 'Suspended'
  | 'Terminated'
  | 'Cancelled'
  | 'Fraud'
  | 'Completed'

export interface BillingService {
  serviceId: string
  clientId: string
  productId: string
  status: BillingStatus | string
  username?: string | undefined
  password?: string | undefined
  domain?: string | undefined
  /** Configurable options, by option name → chosen value. */
  configOptions: Record<string, string>
  customFields: Record<string, string>
  client: { email: string; firstName: string; lastName: string; currency?: string | undefined }
  dueDate?: string | undefined
}

export interface WriteBackFields {
  username?: string | undefined
  dedicatedIp?: string | undefined
  assignedIps?: string[] | undefined
  serverId?: string | undefined
  accountId?: string | undefined
}

export interface BillableItem {
  clientId: string
  serviceId: string
  description: string
  amount: string
  /** The idempotency key; the source must be able to find the item by it later. */
  key: string
}

export interface BillingSource {
  listServices(filter?: { clientId?: string; productIds?: readonly string[] }): Promise<BillingService[]>
  writeBack(serviceId: string, fields: WriteBackFields): Promise<void>
  /**
   * The remote id of a billable item pushed earlier under `key`, if there is one. Optional: WHMCS has
   * no API to list billable items, so an interrupted push there is reported as uncertain instead.
   */
  findBillableItem?(item: BillableItem): Promise<string | undefined>
  addBillableItem(item: BillableItem): Promise<string>
  close?(): Promise<void>
}

/** The lifecycle state billing asks for. Pending and Fraud ask for nothing (yet). */
export type DesiredState = 'none' | 'active' | 'suspended' | 'terminated'

export function desiredStateOf(status: string): DesiredState {
  switch (status) {
    case 'Active':
      return 'active'
    case 'Suspended':
      return 'suspended'
    case 'Terminated':
    case 'Cancelled':
      return 'terminated'
    default:
      return 'none'
  }
}
