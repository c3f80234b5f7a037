/** Response shapes the connector reads. Fields are optional where servers differ; numbers may arrive as strings. */

export interface VersionInfo {
  version: string
  release: string
  repoid: string
}

export interface ClusterResource {
  id: string
  type: 'node' | 'storage' | 'pool' | 'qemu' | 'lxc' | 'openvz' | 'sdn' | 'network' | string
  node?: string
  vmid?: number | string
  name?: string
  status?: string
  template?: number | boolean
  lock?: string
  tags?: string
  pool?: string
  cpu?: number
  maxcpu?: number
  mem?: number
  maxmem?: number
  disk?: number
  maxdisk?: number
  netin?: number
  netout?: number
  uptime?: number
  storage?: string
  shared?: number | boolean
  content?: string
  plugintype?: string
}

export interface NodeListEntry {
  node: string
  status: 'online' | 'offline' | 'unknown' | string
  cpu?: number
  maxcpu?: number
  mem?: number
  maxmem?: number
  disk?: number
  maxdisk?: number
  uptime?: number
}

export interface NodeStatus {
  cpu: number
  memory: { total: number; used: number; free: number; available?: number }
  rootfs?: { total: number; used: number; free: number; avail?: number }
  cpuinfo: { cores: number; cpus: number; sockets: number; model?: string }
  pveversion?: string
  'current-kernel'?: Record<string, string>
}

export interface VmStatus {
  vmid: number | string
  status: 'running' | 'stopped' | string
  qmpstatus?: string
  name?: string
  lock?: string
  uptime?: number
  cpu?: number
  cpus?: number
  mem?: number
  maxmem?: number
  maxdisk?: number
  diskread?: number
  diskwrite?: number
  netin?: number
  netout?: number
  tags?: string
}

/** A VM config: fixed keys plus numbered options (`net0`, `scsi1`, …) and `digest`. */
/** One row of `GET …/pending`: the current value, and the value or deletion waiting for a restart. */
export interface VmPendingEntry {
  key: string
  value?: string | number
  pending?: string | number
  /** 1: deletion pending; 2: forced deletion pending. */
  delete?: number
}

export type VmConfig = Record<string, string | number | undefined> & {
  digest?: string
  name?: string
  tags?: string
  description?: string
  lock?: string
  cores?: number | string
  sockets?: number | string
  memory?: number | string
}

export interface VmListEntry {
  vmid: number | string
  name?: string
  status: string
  template?: number | boolean | string
  tags?: string
  lock?: string
  maxmem?: number
  maxdisk?: number
}

export interface SnapshotEntry {
  name: string
  description?: string
  parent?: string
  snaptime?: number
  vmstate?: number | boolean
}

export interface StorageContentEntry {
  volid: string
  format?: string
  size?: number
  ctime?: number
  vmid?: number | string
  notes?: string
  content?: string
  protected?: number | boolean
}

export interface StorageEntry {
  storage: string
  type?: string
  content?: string
  shared?: number | boolean
  active?: number | boolean
  enabled?: number | boolean
  total?: number
  used?: number
  avail?: number
}

export interface RrdPoint {
  time: number
  cpu?: number
  maxcpu?: number
  mem?: number
  maxmem?: number
  disk?: number
  maxdisk?: number
  netin?: number
  netout?: number
  diskread?: number
  diskwrite?: number
}

export interface FirewallOptions {
  enable?: number | boolean
  ipfilter?: number | boolean
  macfilter?: number | boolean
  policy_in?: string
  policy_out?: string
  dhcp?: number | boolean
  ndp?: number | boolean
  radv?: number | boolean
  digest?: string
}

export interface FirewallRule {
  pos: number
  type: string
  action: string
  enable?: number
  source?: string
  dest?: string
  proto?: string
  dport?: string
  iface?: string
  comment?: string
  macro?: string
}

export interface IpSetEntry {
  cidr: string
  comment?: string
  nomatch?: number | boolean
}

export interface VncProxyTicket {
  user: string
  ticket: string
  port: number | string
  upid: string
  cert: string
  password?: string
}

export interface TaskLogLine {
  n: number
  t: string
}
