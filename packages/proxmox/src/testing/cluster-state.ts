import { createHash, randomBytes } from 'node:crypto'

/** The simulated cluster's data: nodes, storages and their volumes, VMs with config, firewall, snapshots. */

export interface SimNode {
  name: string
  online: boolean
  cpus: number
  memoryBytes: number
  /** CPU load fraction shown by node status. */
  load: number
}

export interface SimVolume {
  volid: string
  content: 'images' | 'iso' | 'backup' | 'vztmpl'
  size: number
  ctime: number
  vmid?: number
  notes?: string
  format: string
  /** For backups: the VM config at backup time, so a restore brings it back. */
  config?: Record<string, string>
}

export interface SimStorage {
  id: string
  type: string
  shared: boolean
  content: string[]
  totalBytes: number
  /** For local storages the node it belongs to; shared ones exist once for every node. */
  node?: string
  volumes: Map<string, SimVolume>
}

export interface SimSnapshot {
  name: string
  description: string
  snaptime: number
  parent?: string
  config: Record<string, string>
}

export interface SimFirewallRule {
  type: string
  action: string
  enable: number
  source?: string
  dest?: string
  proto?: string
  dport?: string
  iface?: string
  comment?: string
  macro?: string
}

export interface SimVm {
  vmid: number
  node: string
  config: Record<string, string>
  status: 'running' | 'stopped'
  paused: boolean
  template: boolean
  /** The config `lock` property (clone, backup, snapshot, …). */
  lock?: string
  /** The per-VM file lock held by a running task until this time (ms). */
  flockUntil: number
  snapshots: SimSnapshot[]
  firewall: {
    options: Record<string, string>
    ipsets: Map<
      string,
      { comment?: string; entries: { cidr: string; comment?: string; nomatch?: boolean }[] }
    >
    rules: SimFirewallRule[]
  }
  createdAt: number
  startedAt?: number
  /** Cloud-init values at the last regeneration. */
  cloudinit?: Record<string, string>
  /**
   * Changes made while the VM ran that need a restart (qemu-server `vmconfig_hotplug_pending`
   * skips them): new values, and deletions (with their `force` flag). Applied on the next start.
   */
  pending: Record<string, string>
  pendingDelete: Map<string, boolean>
  usage: { cpu: number; netinRate: number; netoutRate: number; since: number }
}

export function configDigest(config: Record<string, string>): string {
  return createHash('sha1')
    .update(JSON.stringify(Object.entries(config).sort()))
    .digest('hex')
}

export function randomMac(): string {
  // BC:24:11 is the prefix Proxmox uses for generated addresses.
  const tail = [...randomBytes(3)].map((b) => b.toString(16).padStart(2, '0').toUpperCase())
  return ['BC', '24', '11', ...tail].join(':')
}

export function newFirewall(): SimVm['firewall'] {
  return { options: {}, ipsets: new Map(), rules: [] }
}
