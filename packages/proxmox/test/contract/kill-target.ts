import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { KillTargetModule } from '@panelkit/core/testing'
import {
  createProxmoxKvmConnector,
  type DnsProvider,
  type DnsRecord,
  type IpLease,
  type IpPool,
  type VmidReservations,
} from '../../src/index.ts'

/**
 * The contract suite's kill children run this: the KVM connector against the simulator in the test's
 * process, with its address pool, VMID reservations and DNS records in files — as the provisioner keeps
 * them in its database — so that what one process allocated is what the next one finds after a kill.
 */

export interface KillParams {
  createMode: 'complete' | 'accept'
  /** Directory of the stores' files (made by the fixture). */
  stateDir: string
}

/** Read, change, write back atomically: one file per store, each call a whole transaction. */
function fileState<T>(file: string, empty: T) {
  return {
    read(): T {
      try {
        return JSON.parse(readFileSync(file, 'utf8')) as T
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return structuredClone(empty)
        throw error
      }
    },
    write(value: T): void {
      writeFileSync(`${file}.tmp`, JSON.stringify(value))
      renameSync(`${file}.tmp`, file)
    },
  }
}

export const poolFile = (dir: string) => join(dir, 'ip-pool.json')
export const vmidFile = (dir: string) => join(dir, 'vmids.json')
export const dnsFile = (dir: string) => join(dir, 'dns.json')

/** The `main` pool of the contract test (203.0.113.0/24 and 2001:db8:10::/64), lowest free first. */
class FileIpPool implements IpPool {
  private readonly state
  constructor(dir: string) {
    this.state = fileState<Record<string, IpLease[]>>(poolFile(dir), {})
  }
  private next(byService: Record<string, IpLease[]>, family: 4 | 6): IpLease {
    const taken = new Set(Object.values(byService).flatMap((ls) => ls.map((l) => l.address)))
    for (let n = 2; n < 250; n++) {
      const address = family === 4 ? `203.0.113.${n}` : `2001:db8:10::${(0xff + n).toString(16)}`
      if (!taken.has(address))
        return family === 4
          ? { family, address, prefix: 24, pool: 'main', gateway: '203.0.113.1' }
          : { family, address, prefix: 64, pool: 'main', gateway: '2001:db8:10::1' }
    }
    throw new Error('the test pool is full')
  }
  async allocate(pool: string, serviceId: string, family: 4 | 6): Promise<IpLease> {
    const all = this.state.read()
    const existing = all[serviceId]?.find((l) => l.pool === pool && l.family === family)
    if (existing) return existing
    const lease = this.next(all, family)
    all[serviceId] = [...(all[serviceId] ?? []), lease]
    this.state.write(all)
    return lease
  }
  async preview(_pool: string, family: 4 | 6): Promise<IpLease | undefined> {
    return this.next(this.state.read(), family)
  }
  async leases(serviceId: string): Promise<IpLease[]> {
    return this.state.read()[serviceId] ?? []
  }
  async release(serviceId: string): Promise<void> {
    const all = this.state.read()
    delete all[serviceId]
    this.state.write(all)
  }
}

class FileVmidReservations implements VmidReservations {
  private readonly state
  constructor(dir: string) {
    // service id → VMID
    this.state = fileState<Record<string, number>>(vmidFile(dir), {})
  }
  async reserve(vmid: number, serviceId: string): Promise<boolean> {
    const all = this.state.read()
    const holder = Object.entries(all).find(([, v]) => v === vmid)?.[0]
    if (holder !== undefined) return holder === serviceId
    all[serviceId] = vmid
    this.state.write(all)
    return true
  }
  async reservedFor(serviceId: string): Promise<number | undefined> {
    return this.state.read()[serviceId]
  }
  async release(vmid: number, serviceId: string): Promise<void> {
    const all = this.state.read()
    if (all[serviceId] === vmid) delete all[serviceId]
    this.state.write(all)
  }
}

class FileDns implements DnsProvider {
  private readonly state
  constructor(dir: string) {
    this.state = fileState<Record<string, DnsRecord[]>>(dnsFile(dir), {})
  }
  async upsert(zone: string, records: DnsRecord[]): Promise<void> {
    const all = this.state.read()
    for (const r of records) {
      const key = `${zone}/${r.type === 'PTR' ? r.value : r.name}`
      all[key] = [...(all[key] ?? []).filter((x) => !(x.type === r.type && x.name === r.name)), r]
    }
    this.state.write(all)
  }
  async remove(zone: string, hostname: string): Promise<void> {
    const all = this.state.read()
    delete all[`${zone}/${hostname}`]
    this.state.write(all)
  }
}

export function connector(params: unknown): ReturnType<KillTargetModule['connector']> {
  const { createMode, stateDir } = params as KillParams
  return createProxmoxKvmConnector({
    createMode,
    ipPool: new FileIpPool(stateDir),
    vmids: new FileVmidReservations(stateDir),
    dns: new FileDns(stateDir),
    client: { tasks: { pollMs: 2, maxPollMs: 20 }, lockRetry: { initialDelayMs: 5, maxDelayMs: 50 } },
  })
}
