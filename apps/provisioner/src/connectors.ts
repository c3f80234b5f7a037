import { axigenAccountConnector, axigenDomainConnector } from '@panelkit/axigen'
import { computeStacksAccountConnector } from '@panelkit/computestacks'
import { CapacityError } from '@panelkit/core'
import {
  createProxmoxKvmConnector,
  type DnsProvider,
  type IpLease,
  type IpPool,
  MemoryDnsProvider,
  type VmidReservations,
} from '@panelkit/proxmox'
import type { Config, IpPoolConfig } from './config.ts'
import type { ConnectorRegistration } from './engine/engine.ts'
import type { Store } from './store/store.ts'

/**
 * The connectors this provisioner ships with. Proxmox gets its address pools and VMID reservations from
 * the store, so every worker process on every machine shares them (no IP or VMID handed out twice).
 */
export function builtinConnectors(
  store: Store,
  config: Config,
  options: { dns?: DnsProvider; proxmoxClient?: Parameters<typeof createProxmoxKvmConnector>[0] } = {},
): ConnectorRegistration[] {
  return [
    { definition: axigenDomainConnector },
    { definition: axigenAccountConnector },
    { definition: computeStacksAccountConnector },
    {
      definition: createProxmoxKvmConnector({
        ...(options.proxmoxClient ?? {}),
        ipPool: new StoreIpPool(store, config.ipPools),
        vmids: new StoreVmidReservations(store),
        dns: options.dns ?? new MemoryDnsProvider(),
      }),
    },
  ]
}

/** The storage key of a pool's addresses of one family. */
function poolKey(pool: string, family: 4 | 6): string {
  return family === 6 ? `${pool}#v6` : pool
}

/** `@panelkit/proxmox`'s `IpPool` on the store's address table. */
export class StoreIpPool implements IpPool {
  private readonly store: Store
  private readonly pools: Map<string, IpPoolConfig>
  private seeded: Promise<void> | undefined

  constructor(store: Store, pools: readonly IpPoolConfig[]) {
    this.store = store
    this.pools = new Map(pools.map((p) => [p.id, p]))
  }

  /** Puts each configured address in its family's pool once (allocations are kept). */
  private seed(): Promise<void> {
    this.seeded ??= (async () => {
      for (const pool of this.pools.values()) {
        const v6 = pool.addresses.filter((a) => a.includes(':'))
        const v4 = pool.addresses.filter((a) => !a.includes(':'))
        if (v4.length) await this.store.ipPool(poolKey(pool.id, 4)).seed(v4)
        if (v6.length) await this.store.ipPool(poolKey(pool.id, 6)).seed(v6)
      }
    })()
    return this.seeded
  }

  private lease(pool: string, address: string): IpLease {
    const config = this.pools.get(pool)
    const family = address.includes(':') ? 6 : 4
    const lease: IpLease = {
      family,
      address,
      prefix: family === 6 ? (config?.prefix6 ?? 64) : (config?.prefix ?? 24),
      pool,
    }
    const gateway = family === 6 ? config?.gateway6 : config?.gateway
    if (gateway) lease.gateway = gateway
    return lease
  }

  async allocate(pool: string, serviceId: string, family: 4 | 6): Promise<IpLease> {
    if (!this.pools.has(pool))
      throw new CapacityError(`No IP pool ${pool} is configured (ipPools in the config)`)
    await this.seed()
    const address = await this.store.ipPool(poolKey(pool, family)).allocate(serviceId)
    if (!address) throw new CapacityError(`IP pool ${pool} has no free IPv${family} address`)
    return this.lease(pool, address)
  }

  async preview(pool: string, family: 4 | 6): Promise<IpLease | undefined> {
    await this.seed()
    const row = await this.store.db
      .selectFrom('ip_addresses')
      .select('address')
      .where('pool_id', '=', poolKey(pool, family))
      .where('service_id', 'is', null)
      .orderBy('address')
      .limit(1)
      .executeTakeFirst()
    return row ? this.lease(pool, row.address) : undefined
  }

  async leases(serviceId: string): Promise<IpLease[]> {
    const rows = await this.store.db
      .selectFrom('ip_addresses')
      .select(['pool_id', 'address'])
      .where('service_id', '=', serviceId)
      .execute()
    return rows.map((r) => this.lease(r.pool_id.replace(/#v6$/, ''), r.address))
  }

  async release(serviceId: string): Promise<void> {
    await this.store.db
      .updateTable('ip_addresses')
      .set({ service_id: null })
      .where('service_id', '=', serviceId)
      .execute()
  }
}

/** `@panelkit/proxmox`'s `VmidReservations` on the store (a unique VMID and a unique service). */
export class StoreVmidReservations implements VmidReservations {
  private readonly store: Store
  constructor(store: Store) {
    this.store = store
  }

  async reserve(vmid: number, serviceId: string): Promise<boolean> {
    return this.store.tx(async (trx) => {
      const holder = await trx
        .selectFrom('vmid_reservations')
        .select('service_id')
        .where('vmid', '=', vmid)
        .executeTakeFirst()
      if (holder) return holder.service_id === serviceId
      // A service holds one VMID: a new reservation replaces its previous one.
      await trx.deleteFrom('vmid_reservations').where('service_id', '=', serviceId).execute()
      const inserted = await trx
        .insertInto('vmid_reservations')
        .values({ vmid, service_id: serviceId, reserved_at: Date.now() })
        .onConflict((oc) => oc.doNothing())
        .returning('vmid')
        .executeTakeFirst()
      return inserted !== undefined
    })
  }

  async reservedFor(serviceId: string): Promise<number | undefined> {
    return this.store.vmids.vmidOf(serviceId)
  }

  async release(vmid: number, serviceId: string): Promise<void> {
    await this.store.db
      .deleteFrom('vmid_reservations')
      .where('vmid', '=', vmid)
      .where('service_id', '=', serviceId)
      .execute()
  }
}
