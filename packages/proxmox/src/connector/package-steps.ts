import { CommandError, isPanelkitError, type StepOutcome, sleep } from '@panelkit/core'
import {
  diskLimitsOf,
  encodeSshKeys,
  formatNet,
  formatSize,
  type NetChange,
  parseDrive,
  parseNet,
  parseSize,
  sameNet,
  updateNet,
  withDiskLimits,
} from '../encoding.ts'
import { ENDPOINTS } from '../endpoints/catalog.ts'
import type { VmConfig } from '../endpoints/types.ts'
import type { KvmSettings } from './settings.ts'
import type { IpLease } from './stores.ts'
import type { KvmRuntime } from './vm.ts'

/**
 * The package, applied one aspect at a time. Each function compares what the VM has with what the
 * package wants and changes only what differs, so every deploy and change-package step is idempotent
 * and says "skip — no change" when there is nothing to do.
 */

type Outcome = StepOutcome<Record<string, unknown>>

export const SYSTEM_DISK_KEYS = ['scsi0', 'virtio0', 'sata0', 'ide0'] as const
export const ADDITIONAL_DISK_KEY = 'scsi1'

export function systemDiskKey(config: VmConfig): string {
  for (const key of SYSTEM_DISK_KEYS) {
    const value = config[key]
    if (typeof value === 'string' && !value.includes('media=cdrom')) return key
  }
  throw new CommandError('The VM has no system disk (scsi0, virtio0, sata0 or ide0)')
}

export async function readConfig(rt: KvmRuntime, node: string, vmid: number): Promise<VmConfig> {
  return rt.client.api.vmConfig({ node, vmid }, { signal: rt.signal })
}

async function postConfig(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  params: Record<string, string | number | boolean>,
): Promise<void> {
  await rt.client.run(ENDPOINTS.vmConfigUpdate, { node, vmid, ...params } as never, { signal: rt.signal })
}

const skip = (reason = 'no change'): Outcome => ({ status: 'skipped', reason })
const done = (note?: string): Outcome => (note ? { status: 'done', note } : { status: 'done' })

export function wantedCpuRam(s: KvmSettings) {
  return { sockets: s.sockets, cores: s.cores, memory: s.memoryMb }
}

export async function applyCpuRam(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  config?: VmConfig,
): Promise<Outcome> {
  const c = config ?? (await readConfig(rt, node, vmid))
  const want = wantedCpuRam(rt.settings)
  const memory = Number(
    String(c.memory ?? '512')
      .replace(/^current=/, '')
      .split(',')[0],
  )
  if (
    Number(c.sockets ?? 1) === want.sockets &&
    Number(c.cores ?? 1) === want.cores &&
    memory === want.memory
  )
    return skip()
  await postConfig(rt, node, vmid, { sockets: want.sockets, cores: want.cores, memory: String(want.memory) })
  return done()
}

function diskSize(value: string): number {
  return parseSize(parseDrive(value).options.size ?? '0')
}

async function resizeTo(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  key: string,
  value: string,
  gb: number,
): Promise<Outcome> {
  const current = diskSize(value)
  const wanted = gb * 1024 ** 3
  if (current === wanted) return skip()
  if (current > wanted) return skip(`shrinking is not supported (has ${formatSize(current)}, package ${gb}G)`)
  await rt.client.run(ENDPOINTS.vmResize, { node, vmid, disk: key, size: `${gb}G` }, { signal: rt.signal })
  return done()
}

export async function applySystemDiskSize(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  const c = await readConfig(rt, node, vmid)
  const key = systemDiskKey(c)
  return resizeTo(rt, node, vmid, key, String(c[key]), rt.settings.diskGb)
}

async function applyLimits(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  key: string,
  value: string,
  limits: Record<string, number>,
): Promise<Outcome> {
  const current = diskLimitsOf(value)
  const same = Object.entries(limits).every(([k, v]) => (current[k as keyof typeof current] ?? 0) === v)
  if (same) return skip()
  await postConfig(rt, node, vmid, { [key]: withDiskLimits(value, limits) })
  return done()
}

export function systemDiskLimits(s: KvmSettings): Record<string, number> {
  return { mbps_rd: s.diskMbpsRd, mbps_wr: s.diskMbpsWr, iops_rd: s.diskIopsRd, iops_wr: s.diskIopsWr }
}

export function additionalDiskLimits(s: KvmSettings): Record<string, number> {
  return {
    mbps_rd: s.additionalDiskMbps,
    mbps_wr: s.additionalDiskMbps,
    iops_rd: s.additionalDiskIops,
    iops_wr: s.additionalDiskIops,
  }
}

export async function applySystemDiskIo(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  const c = await readConfig(rt, node, vmid)
  const key = systemDiskKey(c)
  return applyLimits(rt, node, vmid, key, String(c[key]), systemDiskLimits(rt.settings))
}

export async function applyAdditionalDisk(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  if (rt.settings.additionalDiskGb <= 0) return skip('no additional disk in the package')
  const c = await readConfig(rt, node, vmid)
  if (typeof c[ADDITIONAL_DISK_KEY] === 'string') return skip('already present')
  const storage = rt.settings.additionalDiskStorage || rt.settings.storage
  const unusedBefore = new Set(unusedVolumes(c).map(([, volid]) => volid))
  try {
    // The client never resends this write (it allocates a volume; see `allocatesVolume`).
    await postConfig(rt, node, vmid, {
      [ADDITIONAL_DISK_KEY]: `${storage}:${rt.settings.additionalDiskGb},discard=on`,
    })
  } catch (error) {
    if (!isPanelkitError(error) || (error.kind !== 'CONNECTION' && error.kind !== 'TIMEOUT')) throw error
    // The answer was lost: the volume may or may not exist. Read the config back until the disk
    // shows (the task may still be running); adopt it, and free any volume a duplicate left unused.
    const adopted = await awaitAdditionalDisk(rt, node, vmid)
    if (!adopted)
      throw new CommandError(
        `The answer to adding ${ADDITIONAL_DISK_KEY} was lost and the disk has not appeared; the next run checks again before adding it`,
        { retryable: true, cause: error },
      )
    const freed = await freeNewUnused(rt, node, vmid, storage, unusedBefore)
    return done(`adopted after a lost answer${freed.length > 0 ? `; freed ${freed.join(', ')}` : ''}`)
  }
  if (rt.dryRun) return done()
  const freed = await freeNewUnused(rt, node, vmid, storage, unusedBefore)
  return done(freed.length > 0 ? `freed ${freed.join(', ')}` : undefined)
}

/** `unusedN` entries: key and volume. */
function unusedVolumes(config: VmConfig): [string, string][] {
  return Object.entries(config)
    .filter(([key, value]) => /^unused\d+$/.test(key) && typeof value === 'string')
    .map(([key, value]) => [key, parseDrive(String(value)).file])
}

async function awaitAdditionalDisk(rt: KvmRuntime, node: string, vmid: number): Promise<boolean> {
  let delay = 100
  for (let waited = 0; waited < 30_000; waited += delay, delay = Math.min(delay * 2, 2_000)) {
    const c = await readConfig(rt, node, vmid)
    if (typeof c[ADDITIONAL_DISK_KEY] === 'string') return true
    await sleep(delay, rt.signal)
  }
  return false
}

/**
 * Frees `unusedN` volumes that appeared during our own write, on the storage we allocated on, named
 * for this VM: the leftovers of a duplicate allocation. Anything that was there before is not ours to
 * touch. Deleting `unusedN` frees its volume (qemu-server API2/Qemu.pm update_vm_api).
 */
async function freeNewUnused(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  storage: string,
  before: Set<string>,
): Promise<string[]> {
  const c = await readConfig(rt, node, vmid)
  const doomed = unusedVolumes(c).filter(
    ([, volid]) =>
      !before.has(volid) &&
      volid.startsWith(`${storage}:`) &&
      new RegExp(`(^|[:/])vm-${vmid}-disk-\\d+`).test(volid),
  )
  if (doomed.length === 0) return []
  await postConfig(rt, node, vmid, { delete: doomed.map(([key]) => key).join(',') })
  return doomed.map(([, volid]) => volid)
}

export async function applyAdditionalDiskSize(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  if (rt.settings.additionalDiskGb <= 0) return skip('no additional disk in the package')
  const c = await readConfig(rt, node, vmid)
  const value = c[ADDITIONAL_DISK_KEY]
  if (typeof value !== 'string')
    throw new CommandError(`The additional disk ${ADDITIONAL_DISK_KEY} is missing`, { retryable: true })
  return resizeTo(rt, node, vmid, ADDITIONAL_DISK_KEY, value, rt.settings.additionalDiskGb)
}

export async function applyAdditionalDiskIo(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  if (rt.settings.additionalDiskGb <= 0) return skip('no additional disk in the package')
  const c = await readConfig(rt, node, vmid)
  const value = c[ADDITIONAL_DISK_KEY]
  if (typeof value !== 'string')
    throw new CommandError(`The additional disk ${ADDITIONAL_DISK_KEY} is missing`, { retryable: true })
  return applyLimits(rt, node, vmid, ADDITIONAL_DISK_KEY, value, additionalDiskLimits(rt.settings))
}

export function wantedNet(s: KvmSettings): NetChange {
  return {
    bridge: s.bridge,
    tag: s.vlan > 0 ? s.vlan : null,
    rate: s.rateMbps > 0 ? s.rateMbps : null,
    firewall: s.firewall,
  }
}

/** Bridge, VLAN, rate and the per-NIC firewall flag; the MAC is kept (or set back to `mac` after a reinstall). */
export async function applyNetwork(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  mac?: string,
): Promise<Outcome & { mac?: string }> {
  const c = await readConfig(rt, node, vmid)
  const current = typeof c.net0 === 'string' ? c.net0 : `virtio,bridge=${rt.settings.bridge}`
  const device = parseNet(updateNet(current, wantedNet(rt.settings)))
  if (mac) device.macaddr = mac.toUpperCase()
  const next = formatNet(device)
  const keptMac = parseNet(next).macaddr
  // Parsed values are compared, never strings: PVE re-prints every net string its own way.
  if (typeof c.net0 === 'string' && sameNet(next, c.net0))
    return { ...skip(), ...(keptMac ? { data: { mac: keptMac } } : {}) }
  await postConfig(rt, node, vmid, { net0: next })
  const after = rt.dryRun ? next : String((await readConfig(rt, node, vmid)).net0 ?? next)
  const finalMac = parseNet(after).macaddr
  return { status: 'done', ...(finalMac ? { data: { mac: finalMac } } : {}) }
}

export const FIREWALL_COMMENT = 'panelkit anti-spoofing'

/** VM firewall options, the `ipfilter-net0` IP set with the VM's own addresses, and enabled rules for them. */
export async function applyFirewall(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  leases: IpLease[],
): Promise<Outcome> {
  const s = rt.settings
  const signal = { signal: rt.signal }
  const options = await rt.client.api.firewallOptions({ node, vmid }, signal)
  const wantOptions = {
    enable: s.firewall ? 1 : 0,
    ipfilter: s.firewall && s.antiSpoofing && leases.length > 0 ? 1 : 0,
    policy_in: s.policyIn ?? 'ACCEPT',
    policy_out: s.policyOut ?? 'ACCEPT',
  }
  let changed = false
  const differs =
    Number(options.enable ?? 0) !== wantOptions.enable ||
    Number(options.ipfilter ?? 0) !== wantOptions.ipfilter ||
    (options.policy_in ?? 'DROP') !== wantOptions.policy_in ||
    (options.policy_out ?? 'ACCEPT') !== wantOptions.policy_out
  if (differs) {
    await rt.client.api.firewallSetOptions(
      {
        node,
        vmid,
        enable: wantOptions.enable === 1,
        ipfilter: wantOptions.ipfilter === 1,
        policy_in: wantOptions.policy_in,
        policy_out: wantOptions.policy_out,
      },
      signal,
    )
    changed = true
  }
  if (!s.firewall) return changed ? done('firewall disabled') : skip('firewall disabled')
  if (s.antiSpoofing && leases.length > 0) {
    const set = 'ipfilter-net0'
    const sets = await rt.client.api.ipSetList({ node, vmid }, signal)
    let entries: string[] = []
    if (!sets.some((x) => x.name === set)) {
      await rt.client.api.ipSetCreate(
        { node, vmid, name: set, comment: 'panelkit: addresses of net0' },
        signal,
      )
      changed = true
    } else if (!rt.dryRun) {
      entries = (await rt.client.api.ipSetEntries({ node, vmid, name: set }, signal)).map((e) => e.cidr)
    }
    const wanted = leases.map((l) => l.address)
    for (const address of wanted) {
      if (entries.includes(address)) continue
      await rt.client.api.ipSetAdd({ node, vmid, name: set, cidr: address, comment: 'panelkit' }, signal)
      changed = true
    }
    for (const stale of entries.filter((e) => !wanted.includes(e))) {
      await rt.client.api.ipSetRemove({ node, vmid, name: set, cidr: stale }, signal)
      changed = true
    }
    const rules = await rt.client.api.firewallRules({ node, vmid }, signal)
    for (const address of wanted) {
      const comment = `${FIREWALL_COMMENT} ${address}`
      if (rules.some((r) => r.comment === comment)) continue
      // Permit traffic from the VM's own address; the datacenter's DROP policy does the rest.
      await rt.client.api.firewallAddRule(
        { node, vmid, type: 'out', action: 'ACCEPT', source: address, iface: 'net0', enable: 1, comment },
        signal,
      )
      changed = true
    }
  }
  return changed ? done() : skip()
}

export function ipconfigFor(leases: IpLease[]): string {
  const v4 = leases.find((l) => l.family === 4)
  const v6 = leases.find((l) => l.family === 6)
  const parts: string[] = []
  parts.push(v4 ? `ip=${v4.address}/${v4.prefix}` : 'ip=dhcp')
  if (v4?.gateway) parts.push(`gw=${v4.gateway}`)
  if (v6) {
    parts.push(`ip6=${v6.address}/${v6.prefix}`)
    if (v6.gateway) parts.push(`gw6=${v6.gateway}`)
  }
  return parts.join(',')
}

/** User, password, keys, network and host name for cloud-init, then the drive is regenerated. */
export async function applyCloudinit(
  rt: KvmRuntime,
  node: string,
  vmid: number,
  leases: IpLease[],
): Promise<Outcome> {
  const params: Record<string, string> = {
    ciuser: rt.ciUser,
    ipconfig0: ipconfigFor(leases),
    nameserver: rt.settings.nameservers,
    name: rt.hostname,
  }
  if (rt.password) params.cipassword = rt.password
  if (rt.sshKeys) params.sshkeys = encodeSshKeys(rt.sshKeys)
  await postConfig(rt, node, vmid, params)
  await rt.client.api.vmCloudinitRegenerate({ node, vmid }, { signal: rt.signal })
  return done()
}

/** The storage ID of a drive's volume (`local-lvm:vm-100-disk-0` → `local-lvm`). */
function storageOf(drive: string): string {
  return parseDrive(drive).file.split(':')[0] as string
}

/**
 * Puts the system disk on the package's storage and the additional disk on its own (a restore, or
 * a package change, can leave them elsewhere): `move_disk` with the source deleted. The VM is
 * stopped by the caller.
 */
export async function applyDiskStorage(rt: KvmRuntime, node: string, vmid: number): Promise<Outcome> {
  const c = await readConfig(rt, node, vmid)
  const wanted: [string, string][] = [[systemDiskKey(c), rt.settings.storage]]
  if (rt.settings.additionalDiskGb > 0 && typeof c[ADDITIONAL_DISK_KEY] === 'string')
    wanted.push([ADDITIONAL_DISK_KEY, rt.settings.additionalDiskStorage || rt.settings.storage])
  const moved: string[] = []
  for (const [key, storage] of wanted) {
    if (storageOf(String(c[key])) === storage) continue
    await rt.client.run(
      ENDPOINTS.vmMoveDisk,
      { node, vmid, disk: key, storage, delete: true },
      { signal: rt.signal },
    )
    moved.push(`${key} → ${storage}`)
  }
  return moved.length > 0 ? done(moved.join(', ')) : skip()
}
