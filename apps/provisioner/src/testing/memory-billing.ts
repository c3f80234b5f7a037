import type { BillableItem, BillingService, BillingSource, WriteBackFields } from '../billing.ts'

/**
 * An in-memory billing system for tests, the benchmark and the demo's fallback: services you edit
 * directly, write-backs and billable items you can count.
 */
export class MemoryBilling implements BillingSource {
  readonly services = new Map<string, BillingService>()
  readonly writeBacks: { serviceId: string; fields: WriteBackFields }[] = []
  readonly items = new Map<string, BillableItem & { id: string }>()
  /** Fail the next `n` calls (fault injection). */
  failNext = 0
  private nextItem = 1

  private gate(): void {
    if (this.failNext > 0) {
      this.failNext--
      const error = new Error('billing: connection reset (injected)') as NodeJS.ErrnoException
      error.code = 'ECONNRESET'
      throw error
    }
  }

  add(service: BillingService): BillingService {
    this.services.set(service.serviceId, structuredClone(service))
    return service
  }

  update(serviceId: string, patch: Partial<BillingService>): void {
    const current = this.services.get(serviceId)
    if (!current) throw new Error(`no service ${serviceId}`)
    this.services.set(serviceId, { ...current, ...structuredClone(patch) })
  }

  async listServices(filter: { clientId?: string; productIds?: readonly string[] } = {}) {
    this.gate()
    return [...this.services.values()]
      .filter((s) => filter.clientId === undefined || s.clientId === filter.clientId)
      .filter((s) => filter.productIds === undefined || filter.productIds.includes(s.productId))
      .map((s) => structuredClone(s))
  }

  async writeBack(serviceId: string, fields: WriteBackFields) {
    this.gate()
    this.writeBacks.push({ serviceId, fields: structuredClone(fields) })
    const s = this.services.get(serviceId)
    if (s && fields.username) s.username = fields.username
  }

  async findBillableItem(item: BillableItem) {
    this.gate()
    for (const existing of this.items.values()) if (existing.key === item.key) return existing.id
    return undefined
  }

  async addBillableItem(item: BillableItem) {
    this.gate()
    const id = String(this.nextItem++)
    this.items.set(id, { ...item, id })
    return id
  }
}
