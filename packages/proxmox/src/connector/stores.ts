import { CapacityError, ValidationError } from '@panelkit/core'

/**
 * The state a Proxmox deployment needs beyond the cluster itself — addresses, VMIDs, DNS — behind
 * interfaces. The in-memory implementations serve tests and single-process use; the app supplies
 * durable ones (a table with a unique constraint does for both pools).
 */

// ---- IP pools ----------------------------------------------------------------------------------

export interface IpLease {
  family: 4 | 6
  address: string
  prefix: number
  gateway?: string
  pool: string
}

export interface IpPool {
  /** The lease this service holds in this pool and family, allocating one if it has none (idempotent). */
  allocate(pool: string, serviceId: string, family: 4 | 6): Promise<IpLease>
  /** The next address that would be handed out, without taking it (dry-run). */
  preview(pool: string, family: 4 | 6): Promise<IpLease | undefined>
  /** Every lease of the service. */
  leases(serviceId: string): Promise<IpLease[]>
  /** Returns every lease of the service to its pool. */
  release(serviceId: string): Promise<void>
}

export interface IpRangeConfig {
  /** `203.0.113.0/24` or `2001:db8:10::/64`. */
  network: string
  gateway?: string
  /** First and last address handed out (default: the whole network minus network, gateway and broadcast). */
  first?: string
  last?: string
}

export interface IpPoolConfig {
  ipv4?: IpRangeConfig
  ipv6?: IpRangeConfig
}

function ipv4ToInt(ip: string): number {
  const parts = ip.split('.').map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new Error(`invalid IPv4 address ${ip}`)
  return (
    (((parts[0] as number) << 24) >>> 0) +
    ((parts[1] as number) << 16) +
    ((parts[2] as number) << 8) +
    (parts[3] as number)
  )
}

function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

export function ipv6ToBigInt(ip: string): bigint {
  const [head, tail] = ip.includes('::') ? (ip.split('::') as [string, string]) : [ip, undefined]
  const h = head ? head.split(':') : []
  const t = tail !== undefined && tail !== '' ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  if (groups.length !== 8) throw new Error(`invalid IPv6 address ${ip}`)
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(Number.parseInt(g || '0', 16)), 0n)
}

export function bigIntToIpv6(n: bigint): string {
  const groups: string[] = []
  for (let i = 7; i >= 0; i--) groups.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16))
  // Compress the longest run of zero groups, as RFC 5952 asks.
  let best = { start: -1, len: 0 }
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > best.len && j - i > 1) best = { start: i, len: j - i }
    i = j
  }
  if (best.start === -1) return groups.join(':')
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.len).join(':')}`
}

interface Range {
  family: 4 | 6
  prefix: number
  gateway?: string
  first: bigint
  last: bigint
}

function parseRange(family: 4 | 6, config: IpRangeConfig): Range {
  const [net, prefixText] = config.network.split('/')
  const prefix = Number(prefixText)
  if (!net || !Number.isInteger(prefix)) throw new ValidationError(`invalid network ${config.network}`)
  const toBig = (ip: string) => (family === 4 ? BigInt(ipv4ToInt(ip)) : ipv6ToBigInt(ip))
  const bits = family === 4 ? 32 : 128
  const base = toBig(net)
  const size = 1n << BigInt(bits - prefix)
  const range: Range = {
    family,
    prefix,
    first: config.first ? toBig(config.first) : base + (family === 4 ? 2n : 0x100n),
    last: config.last ? toBig(config.last) : family === 4 ? base + size - 2n : base + size - 1n,
  }
  if (config.gateway) range.gateway = config.gateway
  return range
}

/** An in-memory pool: addresses are handed out lowest first, and a released address is reused. */
export class MemoryIpPool implements IpPool {
  private readonly ranges = new Map<string, { v4?: Range; v6?: Range }>()
  private readonly taken = new Map<string, Map<bigint, string>>()
  private readonly byService = new Map<string, IpLease[]>()

  constructor(pools: Record<string, IpPoolConfig>) {
    for (const [name, config] of Object.entries(pools)) {
      const entry: { v4?: Range; v6?: Range } = {}
      if (config.ipv4) entry.v4 = parseRange(4, config.ipv4)
      if (config.ipv6) entry.v6 = parseRange(6, config.ipv6)
      this.ranges.set(name, entry)
    }
  }

  private range(pool: string, family: 4 | 6): Range {
    const r = this.ranges.get(pool)?.[family === 4 ? 'v4' : 'v6']
    if (!r)
      throw new ValidationError(`IP pool '${pool}' has no IPv${family} range`, [
        { path: 'settings.ipPool', message: `has no IPv${family} range` },
      ])
    return r
  }

  private format(r: Range, n: bigint): string {
    return r.family === 4 ? intToIpv4(Number(n)) : bigIntToIpv6(n)
  }

  private free(pool: string, r: Range): bigint | undefined {
    const taken = this.taken.get(`${pool}/${r.family}`) ?? new Map()
    const gateway = r.gateway
      ? r.family === 4
        ? BigInt(ipv4ToInt(r.gateway))
        : ipv6ToBigInt(r.gateway)
      : undefined
    for (let n = r.first; n <= r.last; n++) {
      if (n !== gateway && !taken.has(n)) return n
    }
    return undefined
  }

  async allocate(pool: string, serviceId: string, family: 4 | 6): Promise<IpLease> {
    const existing = this.byService.get(serviceId)?.find((l) => l.pool === pool && l.family === family)
    if (existing) return { ...existing }
    const r = this.range(pool, family)
    const n = this.free(pool, r)
    if (n === undefined) throw new CapacityError(`IP pool '${pool}' has no free IPv${family} address`)
    const key = `${pool}/${family}`
    if (!this.taken.has(key)) this.taken.set(key, new Map())
    this.taken.get(key)?.set(n, serviceId)
    const lease: IpLease = { family, address: this.format(r, n), prefix: r.prefix, pool }
    if (r.gateway) lease.gateway = r.gateway
    this.byService.set(serviceId, [...(this.byService.get(serviceId) ?? []), lease])
    return { ...lease }
  }

  async preview(pool: string, family: 4 | 6): Promise<IpLease | undefined> {
    const r = this.range(pool, family)
    const n = this.free(pool, r)
    if (n === undefined) return undefined
    const lease: IpLease = { family, address: this.format(r, n), prefix: r.prefix, pool }
    if (r.gateway) lease.gateway = r.gateway
    return lease
  }

  async leases(serviceId: string): Promise<IpLease[]> {
    return (this.byService.get(serviceId) ?? []).map((l) => ({ ...l }))
  }

  async release(serviceId: string): Promise<void> {
    for (const lease of this.byService.get(serviceId) ?? []) {
      const r = this.range(lease.pool, lease.family)
      const n = r.family === 4 ? BigInt(ipv4ToInt(lease.address)) : ipv6ToBigInt(lease.address)
      this.taken.get(`${lease.pool}/${lease.family}`)?.delete(n)
    }
    this.byService.delete(serviceId)
  }

  /** Every address currently handed out (tests check for duplicates). */
  allocated(): string[] {
    return [...this.byService.values()].flat().map((l) => l.address)
  }
}

// ---- VMIDs --------------------------------------------------------------------------------------

/**
 * VMID reservations shared by every process that creates VMs on the cluster. `nextid` alone is not a
 * reservation (two callers get the same answer); the store is, and the cluster confirms it.
 */
export interface VmidReservations {
  /** Claims `vmid` for the service; false when another service holds it. Must be atomic. */
  reserve(vmid: number, serviceId: string): Promise<boolean>
  /** The VMID this service holds, if any. */
  reservedFor(serviceId: string): Promise<number | undefined>
  release(vmid: number, serviceId: string): Promise<void>
}

export class MemoryVmidReservations implements VmidReservations {
  private readonly byVmid = new Map<number, string>()
  private readonly byService = new Map<string, number>()
  async reserve(vmid: number, serviceId: string): Promise<boolean> {
    const holder = this.byVmid.get(vmid)
    if (holder !== undefined) return holder === serviceId
    const previous = this.byService.get(serviceId)
    if (previous !== undefined && previous !== vmid) this.byVmid.delete(previous)
    this.byVmid.set(vmid, serviceId)
    this.byService.set(serviceId, vmid)
    return true
  }
  async reservedFor(serviceId: string): Promise<number | undefined> {
    return this.byService.get(serviceId)
  }
  async release(vmid: number, serviceId: string): Promise<void> {
    if (this.byVmid.get(vmid) === serviceId) this.byVmid.delete(vmid)
    if (this.byService.get(serviceId) === vmid) this.byService.delete(serviceId)
  }
}

// ---- DNS ------------------------------------------------------------------------------------------

export interface DnsRecord {
  name: string
  type: 'A' | 'AAAA' | 'PTR'
  value: string
}

export interface DnsProvider {
  /** Creates or replaces the records of a host (forward and reverse). */
  upsert(zone: string, records: DnsRecord[]): Promise<void>
  /** Removes every record of the host name (and its reverse entries). */
  remove(zone: string, hostname: string): Promise<void>
}

export class MemoryDnsProvider implements DnsProvider {
  readonly records = new Map<string, DnsRecord[]>()
  /** Fail the next n calls (to show that DNS never blocks a deploy). */
  failNext = 0
  async upsert(zone: string, records: DnsRecord[]): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--
      throw new Error('DNS provider unavailable (injected)')
    }
    for (const r of records) {
      const key = `${zone}/${r.type === 'PTR' ? r.value : r.name}`
      const others = (this.records.get(key) ?? []).filter((x) => !(x.type === r.type && x.name === r.name))
      this.records.set(key, [...others, r])
    }
  }
  async remove(zone: string, hostname: string): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--
      throw new Error('DNS provider unavailable (injected)')
    }
    this.records.delete(`${zone}/${hostname}`)
  }
}
