import { createHmac, randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { generateTestCertificate } from '@panelkit/core/testing'
import {
  configOptionFormat,
  type Drive,
  decodeForm,
  decodeSshKeys,
  formatDrive,
  formatNet,
  NET_MODELS,
  parseDrive,
  parseNet,
  parsePropertyStringWith,
  parseSize,
  printPropertyString,
  splitIndexedKey,
  sshPublicKeyProblem,
} from '../encoding.ts'
import { ENDPOINTS } from '../endpoints/catalog.ts'
import type { EndpointDefinition } from '../endpoints/define.ts'
import { PVE_SCHEMA_FACTS } from '../endpoints/pve-schema.generated.ts'
import { formatUpid, parseUpid } from '../tasks.ts'
import {
  configDigest,
  newFirewall,
  randomMac,
  type SimNode,
  type SimStorage,
  type SimVm,
  type SimVolume,
} from './cluster-state.ts'
import { loadSchema, type SchemaMethod, validateParams } from './schema-validation.ts'

/**
 * A stateful Proxmox VE cluster over HTTPS on 127.0.0.1:0, for contract tests: nodes, storages,
 * templates, VMs and their config, tasks that take time, locks with the real error texts, `nextid`
 * without reservation, ticket and token auth, parameter validation with `errors` objects, firewall,
 * snapshots, backups, rrddata, and fault injection.
 */

/** Facts the protocol notes could not confirm, as switches. Defaults follow PVE 9.1.5+. */
export interface SimulatorBehaviour {
  /** `unified`: every failed ticket/token check says `Authentication failed!` (9.1.5+); `legacy`: the older texts. */
  authFailureText: 'unified' | 'legacy'
  /** Body of an auth-phase 401: empty, `{"data":null}`, or with `message`. */
  authFailureBody: 'empty' | 'null' | 'message'
  /** Real servers delay every 401 by 3 s; tests keep it at 0. */
  authFailureDelayMs: number
  /** Put the error text in the JSON body as `message` (pve-http-server ≥ 5.2). */
  messageInBody: boolean
  /** `GET /cluster/nextid` returns a JSON string (as real servers do). */
  nextIdAsString: boolean
  /** Resize runs as a task (PVE ≥ 8); false answers null synchronously (PVE 7). */
  resizeAsTask: boolean
  /**
   * vncproxy `port` as a JSON string or integer. The schema says integer, but qemu-server passes the
   * port to the terminal proxy's command line first, and Perl's JSON encoder writes a scalar once used
   * as a string as a string — unknown which a node sends, so both are offered.
   */
  vncPortAsString: boolean
  /**
   * How `/cluster/resources` writes the `template` and `shared` flags: PVE sends the integer 1
   * (schema type integer); proxies and hand-written fixtures send "1" or true. Clients must take all.
   */
  resourceFlags: 'number' | 'string' | 'boolean'
  /** How long a synchronous call waits for a VM's file lock before `got timeout` (real: 10 s). */
  lockWaitMs: number
  /** Ticket lifetime (real: 2 h). */
  ticketLifetimeMs: number
}

export interface SimulatorTemplate {
  vmid: number
  name: string
  node: string
  storage?: string
  diskGb?: number
}

export interface ProxmoxSimulatorOptions {
  nodes?: string[]
  /** Per-node memory in GiB (default 64) and CPUs (default 16). */
  nodeMemoryGb?: number
  nodeCpus?: number
  templates?: SimulatorTemplate[]
  users?: Record<string, string>
  /** `user@realm!tokenid` → secret. */
  tokens?: Record<string, string>
  /** Task durations in ms by task type (`qmclone`, `qmstart`, …); `default` for the rest. */
  taskDurations?: Partial<Record<string, number>> & { default?: number }
  behaviour?: Partial<SimulatorBehaviour>
  /**
   * Parameter validation: by default the schema facts generated from PVE 9.1's official schema; a path
   * to a full official schema file (apidata.js as JSON) to use that instead; `false` to use only this
   * package's endpoint definitions.
   */
  schemaFile?: string | URL | false
  /** ISO file names on the shared ISO storage. */
  isos?: string[]
  version?: string
}

export const DEFAULT_BEHAVIOUR: SimulatorBehaviour = {
  authFailureText: 'unified',
  authFailureBody: 'empty',
  authFailureDelayMs: 0,
  messageInBody: true,
  nextIdAsString: true,
  resizeAsTask: true,
  vncPortAsString: true,
  resourceFlags: 'number',
  lockWaitMs: 30,
  ticketLifetimeMs: 2 * 3600 * 1000,
}

class SimError extends Error {
  readonly status: number
  readonly errors: Record<string, string> | undefined
  constructor(status: number, message: string, errors?: Record<string, string>) {
    super(message)
    this.status = status
    this.errors = errors
  }
}

const fail = (message: string, status = 500): never => {
  throw new SimError(status, message)
}
const paramError = (errors: Record<string, string>): never => {
  throw new SimError(400, 'Parameter verification failed.', errors)
}

interface SimTask {
  upid: string
  node: string
  type: string
  id: string
  user: string
  starttime: number
  status: 'running' | 'stopped'
  exitstatus?: string
  log: string[]
  timer?: NodeJS.Timeout | undefined
  finish?: () => void
}

interface RequestFault {
  status: number
  message: string
  count: number
  match?: (method: string, path: string) => boolean
}

interface TaskFault {
  exitstatus: string
  /** The task does its work and ends with `WARNINGS: n` (a success) instead of failing. */
  warnings?: number
  count: number
  type?: string
  id?: string
}

interface Route {
  method: string
  pattern: RegExp
  template: string
  names: string[]
  endpoint?: EndpointDefinition
  public?: boolean
  handler: (req: SimRequest) => unknown | Promise<unknown>
}

interface SimRequest {
  method: string
  params: Record<string, string>
  path: Record<string, string>
  user: string
  raw: Record<string, string | string[]>
}

const STATIC_TOKEN_RE = /^PVEAPIToken[= ](.+)$/

/** Key → type of the options `GET …/config` returns, from the schema facts. */
const CONFIG_TYPES: Record<string, string | undefined> = Object.fromEntries(
  Object.entries(PVE_SCHEMA_FACTS['GET /nodes/{node}/qemu/{vmid}/config']?.returns?.properties ?? {}).map(
    ([k, v]) => [k, v.type],
  ),
)

/** Memory the simulated host itself uses (kernel, pmxcfs, daemons). */
const HOST_BASE_MEMORY = 2 * 1024 ** 3

/** What a running guest holds: 40% of its configured memory (a guest seldom touches all of it). */
function guestMemoryInUse(vm: SimVm): number {
  const mib = Number(
    String(vm.config.memory ?? '512')
      .replace(/^current=/, '')
      .split(',')[0],
  )
  return Math.round(mib * 1024 ** 2 * 0.4)
}

/** Option bases that are drives (qemu-server Drive.pm `is_valid_drivename`, less efidisk/tpmstate). */
const DRIVE_BASES = ['ide', 'sata', 'scsi', 'virtio']

/** A new volume: `STORAGE:SIZE_GB` (qemu-server Drive.pm `$NEW_DISK_RE`, storage required here). */
const NEW_DISK_RE = /^([^/:\s]+):(\d+(?:\.\d+)?)$/

/**
 * Options applied at once on a running VM (qemu-server QemuServer.pm `$fast_plug_option`, plus every
 * cloud-init option, which that file adds to it).
 */
const FAST_PLUG = new Set([
  'description',
  'hookscript',
  'lock',
  'migrate_downtime',
  'migrate_speed',
  'name',
  'onboot',
  'protection',
  'shares',
  'startup',
  'tags',
  'vmstatestorage',
  'cicustom',
  'cipassword',
  'citype',
  'ciupgrade',
  'ciuser',
  'nameserver',
  'searchdomain',
  'sshkeys',
])

/** The VM's `hotplug` features; unset or `1` means network, disk and usb (QemuServer.pm `parse_hotplug_features`). */
function hotplugFeatures(vm: SimVm): Set<string> {
  const text = vm.config.hotplug ?? '1'
  if (text === '1') return new Set(['network', 'disk', 'usb'])
  if (text === '0') return new Set()
  return new Set(text.split(',').map((x) => x.trim()))
}

/** Drive options `vmconfig_update_disk` cannot change on a running disk (they wait for a restart). */
const COLD_DRIVE_OPTIONS = ['aio', 'discard', 'iothread', 'queues', 'product', 'cache', 'ssd', 'vendor', 'ro']

/**
 * Whether a change takes effect at once on a running VM, after qemu-server QemuServer.pm
 * `vmconfig_hotplug_pending`, `vmconfig_update_net` and `vmconfig_update_disk`: fast-plug and
 * cloud-init options always; `netN` with network hot-plug; a CD-ROM's media change always; a new or
 * replaced scsi/virtio disk with disk hot-plug (never ide/sata); an existing disk when only its
 * throttling changes. Everything else (memory, cores, sockets, …, the cloud-init drive) stays pending.
 */
function hotApplicable(vm: SimVm, key: string, value: string): boolean {
  if (FAST_PLUG.has(key) || /^ipconfig\d+$/.test(key)) return true
  const features = hotplugFeatures(vm)
  if (/^net\d+$/.test(key)) return features.has('network')
  const split = splitIndexedKey(key)
  if (!split || !DRIVE_BASES.includes(split.base)) return key === 'cpuunits' || key === 'cpulimit'
  const drive = parseDrive(value)
  if (drive.file.includes('cloudinit')) return false
  const oldText = vm.config[key]
  if (oldText !== undefined) {
    const old = parseDrive(oldText)
    if (old.options.media === 'cdrom') return true
    if (old.file !== drive.file) return features.has('disk') && !['ide', 'sata'].includes(split.base)
    return COLD_DRIVE_OPTIONS.every((k) => old.options[k] === drive.options[k])
  }
  return features.has('disk') && !['ide', 'sata'].includes(split.base)
}

/** Whether deleting an option takes effect at once on a running VM (same source, the delete loop). */
function hotDeletable(vm: SimVm, key: string): boolean {
  if (FAST_PLUG.has(key) || /^ipconfig\d+$/.test(key) || key === 'cpuunits' || key === 'cpulimit') return true
  const features = hotplugFeatures(vm)
  if (/^net\d+$/.test(key)) return features.has('network')
  const split = splitIndexedKey(key)
  if (split && DRIVE_BASES.includes(split.base))
    return features.has('disk') && !['ide', 'sata'].includes(split.base)
  return false
}

export class ProxmoxSimulator {
  readonly nodes = new Map<string, SimNode>()
  readonly storages: SimStorage[] = []
  readonly vms = new Map<number, SimVm>()
  readonly tasks = new Map<string, SimTask>()
  readonly users: Map<string, string>
  readonly tokens: Map<string, string>
  readonly behaviour: SimulatorBehaviour
  readonly stats = {
    requests: 0,
    writes: 0,
    logins: 0,
    renewals: 0,
    unauthorized: 0,
    /** Calls refused with a lock text (`can't lock file`, `VM is locked`). */
    lockRefusals: 0,
    byRoute: new Map<string, number>(),
  }
  readonly faults = {
    requests: [] as RequestFault[],
    drop: 0,
    /** Requests that are carried out, then answered by a closed connection (the answer is lost). */
    dropResponses: [] as {
      count: number
      match?: (method: string, path: string, params: Record<string, string>) => boolean
    }[],
    tasks: [] as TaskFault[],
    /** Fraction of config/resize writes that fail with a file-lock timeout. */
    lockStorm: undefined as { probability: number; until: number; vmids?: Set<number> } | undefined,
    slowTaskFactor: 1,
    /** Extra latency per request in ms. */
    latencyMs: 0,
  }
  /** Shifts the simulator's clock (ticket ages, task start times). */
  clockOffsetMs = 0
  private readonly options: ProxmoxSimulatorOptions
  private readonly taskDurations: Partial<Record<string, number>> & { default?: number }
  private readonly routes: Route[] = []
  private readonly secret = randomBytes(32)
  private readonly schema: Map<string, SchemaMethod> | undefined
  private server: Server | undefined
  private pidCounter = 0x1000
  private vncPort = 5900
  private cert = ''
  /** @deprecated use `fingerprint` */
  fingerprint256 = ''
  /** `https://127.0.0.1:{port}` once started. */
  url = ''
  readonly version: string

  constructor(options: ProxmoxSimulatorOptions = {}) {
    this.options = options
    this.behaviour = { ...DEFAULT_BEHAVIOUR, ...options.behaviour }
    this.taskDurations = options.taskDurations ?? { default: 5 }
    this.users = new Map(Object.entries(options.users ?? { 'root@pam': 'sim-root-password' }))
    this.tokens = new Map(Object.entries(options.tokens ?? {}))
    this.version = options.version ?? '9.1.5'
    this.schema = options.schemaFile === false ? undefined : loadSchema(options.schemaFile)
    const nodeNames = options.nodes ?? ['pve1', 'pve2', 'pve3']
    for (const name of nodeNames) {
      this.nodes.set(name, {
        name,
        online: true,
        cpus: options.nodeCpus ?? 16,
        memoryBytes: (options.nodeMemoryGb ?? 64) * 1024 ** 3,
        load: 0.05,
      })
      this.storages.push({
        id: 'local-lvm',
        type: 'lvmthin',
        shared: false,
        content: ['images', 'rootdir'],
        totalBytes: 2 * 1024 ** 4,
        node: name,
        volumes: new Map(),
      })
      this.storages.push({
        id: 'local',
        type: 'dir',
        shared: false,
        content: ['iso', 'vztmpl', 'backup'],
        totalBytes: 100 * 1024 ** 3,
        node: name,
        volumes: new Map(),
      })
    }
    this.storages.push({
      id: 'nfs-backup',
      type: 'nfs',
      shared: true,
      content: ['backup'],
      totalBytes: 10 * 1024 ** 4,
      volumes: new Map(),
    })
    this.storages.push({
      id: 'nfs-iso',
      type: 'nfs',
      shared: true,
      content: ['iso'],
      totalBytes: 1024 ** 4,
      volumes: new Map(),
    })
    this.storages.push({
      id: 'ceph',
      type: 'rbd',
      shared: true,
      content: ['images'],
      totalBytes: 20 * 1024 ** 4,
      volumes: new Map(),
    })
    const isoStore = this.storages.find((s) => s.id === 'nfs-iso') as SimStorage
    for (const iso of options.isos ?? [
      'Debian-12.5.0-amd64-netinst.iso',
      'Debian-13.0.0-amd64-netinst.iso',
      'Ubuntu-22.04.4-live-server-amd64.iso',
      'Ubuntu-24.04.1-live-server-amd64.iso',
      'proxmox-ve_8.1-2.iso',
      'myfile.iso',
    ]) {
      const volid = `nfs-iso:iso/${iso}`
      isoStore.volumes.set(volid, {
        volid,
        content: 'iso',
        size: 700 * 1024 ** 2,
        ctime: this.nowSeconds(),
        format: 'iso',
      })
    }
    for (const t of options.templates ?? [
      { vmid: 9000, name: 'debian-12-cloud', node: nodeNames[0] as string },
      { vmid: 9001, name: 'ubuntu-24-04-cloud', node: nodeNames[0] as string },
    ]) {
      this.addTemplate(t)
    }
    this.defineRoutes()
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  async start(): Promise<this> {
    const { key, cert, fingerprint256 } = await generateTestCertificate()
    this.cert = cert
    this.fingerprint256 = fingerprint256
    this.server = createServer({ key, cert }, (req, res) => {
      this.onRequest(req, res).catch((error) => {
        if (!res.headersSent) {
          res.writeHead(500, 'internal simulator error')
          res.end(String(error))
        }
      })
    })
    this.server.keepAliveTimeout = 5000
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve))
    const { port } = this.server.address() as AddressInfo
    this.url = `https://127.0.0.1:${port}`
    return this
  }

  private flag(on: boolean): number | string | boolean {
    if (this.behaviour.resourceFlags === 'boolean') return on
    if (this.behaviour.resourceFlags === 'string') return on ? '1' : '0'
    return on ? 1 : 0
  }

  /** `METHOD /path/{param}` of every route the simulator serves. */
  routeKeys(): string[] {
    return this.routes.map((r) => `${r.method} ${r.template}`)
  }

  get port(): number {
    return Number(new URL(this.url).port)
  }

  /** The PEM certificate the simulator serves (self-signed): pass it as the client's `tls.ca`. */
  get ca(): string {
    return this.cert
  }

  /** The SHA-256 fingerprint of that certificate, for `tls.fingerprint`. */
  get fingerprint(): string {
    return this.fingerprint256
  }

  /** @deprecated use `ca` */
  get certificate(): string {
    return this.cert
  }

  async close(): Promise<void> {
    for (const task of this.tasks.values()) if (task.timer) clearTimeout(task.timer)
    const server = this.server
    if (!server) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    this.server = undefined
  }

  now(): number {
    return Date.now() + this.clockOffsetMs
  }

  nowSeconds(): number {
    return Math.floor(this.now() / 1000)
  }

  // ---- fault injection -----------------------------------------------------------------------------

  /** The next `count` matching requests fail with this status and message. */
  failNext(options: {
    status?: number
    message?: string
    count?: number
    match?: (method: string, path: string) => boolean
  }): void {
    const fault: RequestFault = {
      status: options.status ?? 503,
      message: options.message ?? 'Service Unavailable',
      count: options.count ?? 1,
    }
    if (options.match) fault.match = options.match
    this.faults.requests.push(fault)
  }

  /** The next `count` requests get their connection closed without an answer. */
  dropNext(count = 1): void {
    this.faults.drop += count
  }

  /**
   * The next `count` matching requests are carried out, but the connection closes before the answer.
   * `match` also sees the request's parameters (body and query).
   */
  dropResponseNext(
    options: {
      count?: number
      match?: (method: string, path: string, params: Record<string, string>) => boolean
    } = {},
  ): void {
    const fault: {
      count: number
      match?: (method: string, path: string, params: Record<string, string>) => boolean
    } = {
      count: options.count ?? 1,
    }
    if (options.match) fault.match = options.match
    this.faults.dropResponses.push(fault)
  }

  /** The next `count` tasks of this type (and id) end with this exit status. */
  failTask(options: { exitstatus: string; type?: string; id?: string | number; count?: number }): void {
    const fault: TaskFault = { exitstatus: options.exitstatus, count: options.count ?? 1 }
    if (options.type) fault.type = options.type
    if (options.id !== undefined) fault.id = String(options.id)
    this.faults.tasks.push(fault)
  }

  /** The next `count` tasks of this type (and id) do their work but end with `WARNINGS: n`, which is a success. */
  warnTask(options: { warnings: number; type?: string; id?: string | number; count?: number }): void {
    const fault: TaskFault = {
      exitstatus: `WARNINGS: ${options.warnings}`,
      warnings: options.warnings,
      count: options.count ?? 1,
    }
    if (options.type) fault.type = options.type
    if (options.id !== undefined) fault.id = String(options.id)
    this.faults.tasks.push(fault)
  }

  /** For `durationMs`, config writes fail with `can't lock file … got timeout` with this probability. */
  lockStorm(options: { probability: number; durationMs: number; vmids?: number[] }): void {
    this.faults.lockStorm = { probability: options.probability, until: Date.now() + options.durationMs }
    if (options.vmids) this.faults.lockStorm.vmids = new Set(options.vmids)
  }

  clearFaults(): void {
    this.faults.requests = []
    this.faults.drop = 0
    this.faults.dropResponses = []
    this.faults.tasks = []
    this.faults.lockStorm = undefined
    this.faults.slowTaskFactor = 1
    this.faults.latencyMs = 0
  }

  // ---- direct state access (for tests and fixtures) -------------------------------------------------

  addTemplate(t: SimulatorTemplate): SimVm {
    const storage = t.storage ?? 'local-lvm'
    const vm = this.addVm({
      vmid: t.vmid,
      node: t.node,
      template: true,
      config: {
        name: t.name,
        cores: '1',
        sockets: '1',
        memory: '2048',
        ostype: 'l26',
        scsihw: 'virtio-scsi-single',
        boot: 'order=scsi0;ide2;net0',
        agent: '1',
        net0: formatNet({ model: 'virtio', macaddr: randomMac(), bridge: 'vmbr0', extra: {} }),
        ide2: `${storage}:vm-${t.vmid}-cloudinit,media=cdrom`,
        template: '1',
      },
    })
    this.allocateDisk(vm, 'scsi0', storage, (t.diskGb ?? 10) * 1024 ** 3, 'base')
    return vm
  }

  /** Adds a VM directly (a foreign VM, a template), bypassing the API. */
  addVm(input: {
    vmid: number
    node: string
    config: Record<string, string>
    template?: boolean
    status?: 'running' | 'stopped'
  }): SimVm {
    if (this.vms.has(input.vmid)) throw new Error(`VM ${input.vmid} exists`)
    const vm: SimVm = {
      vmid: input.vmid,
      node: input.node,
      config: { ...input.config },
      status: input.status ?? 'stopped',
      paused: false,
      template: input.template ?? false,
      flockUntil: 0,
      snapshots: [],
      firewall: newFirewall(),
      pending: {},
      pendingDelete: new Map(),
      createdAt: this.now(),
      usage: {
        cpu: 0.1 + (input.vmid % 5) / 20,
        netinRate: 1000 * ((input.vmid % 7) + 1),
        netoutRate: 2000 * ((input.vmid % 5) + 1),
        since: this.now(),
      },
    }
    this.vms.set(vm.vmid, vm)
    return vm
  }

  storage(node: string, id: string): SimStorage | undefined {
    return this.storages.find((s) => s.id === id && (s.shared || s.node === node))
  }

  /** Allocates a new volume of this VM (`vm-<vmid>-disk-<n>`) and returns its drive string. */
  private allocateVolume(
    vm: SimVm,
    storageId: string,
    size: number,
    options: Record<string, string> = {},
    kind: 'disk' | 'base' = 'disk',
  ): string {
    const store = this.storage(vm.node, storageId) ?? fail(`storage '${storageId}' does not exist`)
    let n = 0
    const prefix = kind === 'base' ? 'base' : 'vm'
    const taken = (name: string) =>
      [...store.volumes.keys()].some((v) => v === name || v.endsWith(`/${name.split(':')[1]}`))
    while (taken(`${storageId}:${prefix}-${vm.vmid}-disk-${n}`)) n++
    const volid = `${storageId}:${prefix}-${vm.vmid}-disk-${n}`
    store.volumes.set(volid, {
      volid,
      content: 'images',
      size,
      ctime: this.nowSeconds(),
      vmid: vm.vmid,
      format: 'raw',
    })
    return formatDrive({ file: volid, options: { ...options, size: sizeText(size) } })
  }

  private allocateDisk(
    vm: SimVm,
    key: string,
    storageId: string,
    size: number,
    kind: 'disk' | 'base' = 'disk',
    options: Record<string, string> = {},
  ): string {
    const drive = this.allocateVolume(vm, storageId, size, options, kind)
    vm.config[key] = drive
    return parseDrive(drive).file
  }

  /**
   * A linked clone of a base volume (pve-storage `vdisk_clone` → the plugin's `clone_image`): on
   * lvmthin a thin snapshot named like any disk (`vm-<id>-disk-<n>`, LvmThinPlugin.pm `clone_image`,
   * whose `parse_volname` reports no base); on the other types the name carries the base
   * (`base-9000-disk-0/vm-101-disk-0`), which `parse_volname` returns as the base name.
   */
  private linkedVolume(vm: SimVm, base: Drive): string {
    const [storeId, baseName] = base.file.split(':') as [string, string]
    const store = this.storage(vm.node, storeId) ?? fail(`storage '${storeId}' does not exist`)
    let n = 0
    const taken = (name: string) =>
      [...store.volumes.keys()].some((v) => v.split(':')[1]?.split('/').pop() === name)
    while (taken(`vm-${vm.vmid}-disk-${n}`)) n++
    const name = `vm-${vm.vmid}-disk-${n}`
    const volid = store.type === 'lvmthin' ? `${storeId}:${name}` : `${storeId}:${baseName}/${name}`
    const size = parseSize(base.options.size ?? '1G')
    store.volumes.set(volid, {
      volid,
      content: 'images',
      size,
      ctime: this.nowSeconds(),
      vmid: vm.vmid,
      format: 'raw',
    })
    return formatDrive({ file: volid, options: { ...base.options, size: sizeText(size) } })
  }

  private volumeOf(vm: SimVm, volid: string): SimVolume | undefined {
    const storeId = volid.split(':')[0] as string
    return this.storage(vm.node, storeId)?.volumes.get(volid)
  }

  private removeVolume(node: string, volid: string): void {
    const storeId = volid.split(':')[0] as string
    this.storage(node, storeId)?.volumes.delete(volid)
  }

  // ---- tasks -----------------------------------------------------------------------------------------

  private duration(type: string): number {
    const ms = this.taskDurations[type] ?? this.taskDurations.default ?? 5
    return ms * this.faults.slowTaskFactor
  }

  /**
   * Starts a task: it runs `work` after its duration and stops with `OK`, `WARNINGS: n` or the error.
   * `lock` sets the VM's config lock for the duration; `flock` holds its file lock.
   */
  startTask(
    node: string,
    type: string,
    id: string,
    user: string,
    work: (task: SimTask) => unknown,
    options: { vm?: SimVm; lock?: string; flock?: boolean; durationMs?: number; onError?: () => void } = {},
  ): string {
    const duration = options.durationMs ?? this.duration(type)
    const upid = formatUpid({
      node,
      pid: this.pidCounter++,
      pstart: 0x100000 + this.pidCounter,
      starttime: this.nowSeconds(),
      type,
      id,
      user,
    })
    const task: SimTask = {
      upid,
      node,
      type,
      id,
      user,
      starttime: this.nowSeconds(),
      status: 'running',
      log: [],
    }
    this.tasks.set(upid, task)
    const vm = options.vm
    if (vm && options.lock) vm.lock = options.lock
    if (vm && options.flock) vm.flockUntil = Date.now() + duration + 1
    const faultIndex = this.faults.tasks.findIndex(
      (f) => (!f.type || f.type === type) && (f.id === undefined || f.id === id),
    )
    const finish = () => {
      if (task.status === 'stopped') return
      task.timer = undefined
      try {
        const fault = faultIndex === -1 ? undefined : (this.faults.tasks[faultIndex] as TaskFault)
        if (fault) {
          fault.count--
          if (fault.count <= 0) this.faults.tasks.splice(this.faults.tasks.indexOf(fault), 1)
          if (fault.warnings === undefined) throw new Error(fault.exitstatus)
        }
        const done = work(task) as number | undefined
        const warnings = fault?.warnings ?? done
        task.exitstatus = typeof warnings === 'number' && warnings > 0 ? `WARNINGS: ${warnings}` : 'OK'
        task.log.push(`TASK ${task.exitstatus}`)
      } catch (error) {
        task.exitstatus = error instanceof Error ? error.message : String(error)
        task.log.push(`TASK ERROR: ${task.exitstatus}`)
        options.onError?.()
      } finally {
        if (vm && options.lock && vm.lock === options.lock) delete vm.lock
        if (vm && options.flock) vm.flockUntil = 0
        task.status = 'stopped'
      }
    }
    task.finish = finish
    if (duration <= 0) queueMicrotask(finish)
    else task.timer = setTimeout(finish, duration)
    return upid
  }

  /** Finishes every running task now (tests that do not want to wait). */
  finishAllTasks(): void {
    for (const task of this.tasks.values()) {
      if (task.status === 'running') {
        if (task.timer) clearTimeout(task.timer)
        task.finish?.()
      }
    }
  }

  // ---- HTTP ------------------------------------------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.requests++
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of req) {
      size += (chunk as Buffer).length
      if (size > 512 * 1024) return this.sendError(res, new SimError(501, 'for data too large'), true)
      chunks.push(chunk as Buffer)
    }
    if (this.faults.drop > 0) {
      this.faults.drop--
      req.socket.destroy()
      return
    }
    if (this.faults.latencyMs > 0) await delay(this.faults.latencyMs)
    const url = new URL(req.url ?? '/', 'https://sim')
    const method = req.method ?? 'GET'
    if (!url.pathname.startsWith('/api2/json/') && url.pathname !== '/api2/json') {
      return this.sendError(res, new SimError(501, 'no such uri'), true)
    }
    const body = Buffer.concat(chunks).toString('utf8')
    if ((method === 'GET' || method === 'DELETE') && body.length > 0) {
      return this.sendError(res, new SimError(501, `Unexpected content for method '${method}'`), true)
    }
    const contentType = String(req.headers['content-type'] ?? '')
    let bodyParams: Record<string, string | string[]> = {}
    if (body.length > 0) {
      if (contentType.startsWith('application/json')) {
        const parsed = JSON.parse(body) as Record<string, unknown>
        for (const [k, v] of Object.entries(parsed))
          bodyParams[k] = typeof v === 'boolean' ? (v ? '1' : '0') : String(v)
      } else if (contentType.startsWith('application/x-www-form-urlencoded')) {
        bodyParams = decodeForm(body)
      } else {
        return this.sendError(
          res,
          new SimError(506, `upload 'Content-Type ${contentType}' not implemented`),
          true,
        )
      }
    }
    const queryParams = decodeForm(url.search.slice(1))
    const raw = { ...bodyParams, ...queryParams }
    delete raw._dc
    const apiPath = url.pathname.slice('/api2/json'.length) || '/'
    const route = this.match(method, apiPath)
    if (!route) return this.sendError(res, new SimError(501, `Method '${method} ${apiPath}' not implemented`))
    this.stats.byRoute.set(
      `${method} ${route.route.template}`,
      (this.stats.byRoute.get(`${method} ${route.route.template}`) ?? 0) + 1,
    )

    let user = ''
    if (!route.route.public) {
      const auth = this.authenticate(req, method)
      if ('error' in auth) {
        this.stats.unauthorized++
        if (this.behaviour.authFailureDelayMs > 0) await delay(this.behaviour.authFailureDelayMs)
        res.setHeader('connection', 'close')
        res.writeHead(401, auth.error)
        if (this.behaviour.authFailureBody === 'null') res.end('{"data":null}')
        else if (this.behaviour.authFailureBody === 'message')
          res.end(JSON.stringify({ data: null, message: `${auth.error}\n` }))
        else res.end()
        return
      }
      user = auth.user
    }

    const flat: Record<string, string> = {}
    for (const [k, v] of Object.entries(raw)) flat[k] = Array.isArray(v) ? v.join(',') : v
    for (const [k, v] of Object.entries(route.path)) {
      if (flat[k] !== undefined && flat[k] !== v) {
        return this.sendError(
          res,
          new SimError(400, 'Parameter verification failed.', {
            [k]: 'duplicate parameter (already defined in URI) with conflicting values!',
          }),
        )
      }
    }
    const errors = validateParams(
      raw,
      route.path,
      this.schema?.get(`${method} ${route.route.template}`),
      route.route.endpoint,
    )
    if (errors) return this.sendError(res, new SimError(400, 'Parameter verification failed.', errors))

    const faultIndex = this.faults.requests.findIndex((f) => !f.match || f.match(method, apiPath))
    if (faultIndex !== -1) {
      const fault = this.faults.requests[faultIndex] as RequestFault
      fault.count--
      if (fault.count <= 0) this.faults.requests.splice(faultIndex, 1)
      return this.sendError(res, new SimError(fault.status, fault.message))
    }
    const isWrite =
      method !== 'GET' &&
      route.route.template !== '/access/ticket' &&
      !route.route.template.endsWith('/vncproxy')
    if (isWrite) this.stats.writes++
    try {
      const data = await route.route.handler({ method, params: flat, path: route.path, user, raw })
      const dropIndex = this.faults.dropResponses.findIndex((f) => !f.match || f.match(method, apiPath, flat))
      if (dropIndex !== -1) {
        const fault = this.faults.dropResponses[dropIndex] as { count: number }
        fault.count--
        if (fault.count <= 0) this.faults.dropResponses.splice(dropIndex, 1)
        req.socket.destroy()
        return
      }
      const text = JSON.stringify({ data: data === undefined ? null : data })
      res.writeHead(200, 'OK', {
        'content-type': 'application/json;charset=UTF-8',
        'cache-control': 'max-age=0',
        pragma: 'no-cache',
        server: 'pve-api-daemon/3.0',
      })
      res.end(text)
    } catch (error) {
      if (error instanceof SimError) return this.sendError(res, error)
      return this.sendError(res, new SimError(500, error instanceof Error ? error.message : String(error)))
    }
  }

  private sendError(res: ServerResponse, error: SimError, plain = false): void {
    const firstLine = (error.message.split('\n')[0] ?? '').replace(/[^\x20-\x7e]/g, '?')
    // After any status >= 400 the real server closes the connection.
    res.setHeader('connection', 'close')
    if (plain) {
      res.writeHead(error.status, firstLine, { 'content-type': 'text/plain;charset=UTF-8' })
      res.end(`${error.message}\n`)
      return
    }
    const body: Record<string, unknown> = { data: null }
    if (error.errors) body.errors = error.errors
    if (this.behaviour.messageInBody) body.message = `${error.message}\n`
    res.writeHead(error.status, firstLine, { 'content-type': 'application/json;charset=UTF-8' })
    res.end(JSON.stringify(body))
  }

  private match(method: string, path: string): { route: Route; path: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue
      const m = route.pattern.exec(path)
      if (!m) continue
      const params: Record<string, string> = {}
      route.names.forEach((name, i) => {
        params[name] = decodeURIComponent(m[i + 1] as string)
      })
      return { route, path: params }
    }
    return undefined
  }

  // ---- auth ------------------------------------------------------------------------------------------

  private sign(text: string): string {
    return createHmac('sha256', this.secret).update(text).digest('base64')
  }

  /** Every ticket and CSRF token handed out (tests check that none reaches a log). */
  readonly issuedSecrets: string[] = []

  issueTicket(user: string): { ticket: string; csrf: string } {
    const time = this.nowSeconds().toString(16).toUpperCase().padStart(8, '0')
    const plain = `PVE:${user}:${time}`
    const ticket = `${plain}::${this.sign(plain)}`
    const csrf = `${time}:${this.sign(`csrf:${time}:${user}`).replace(/=+$/, '')}`
    this.issuedSecrets.push(ticket, csrf)
    return { ticket, csrf }
  }

  /** The user a ticket belongs to, or undefined when it is forged or outside its lifetime. */
  verifyTicket(ticket: string): string | undefined {
    const m = /^(PVE:([^:]+):([0-9A-F]{8}))::(.+)$/.exec(ticket)
    if (!m) return undefined
    if (this.sign(m[1] as string) !== m[4]) return undefined
    const age = this.now() - Number.parseInt(m[3] as string, 16) * 1000
    if (age < -300_000 || age > this.behaviour.ticketLifetimeMs) return undefined
    return m[2]
  }

  private verifyCsrf(token: string, user: string): boolean {
    const m = /^([0-9A-F]{8}):(.+)$/.exec(token)
    if (!m) return false
    if (this.sign(`csrf:${m[1]}:${user}`).replace(/=+$/, '') !== m[2]) return false
    const age = this.now() - Number.parseInt(m[1] as string, 16) * 1000
    return age > -300_000 && age < this.behaviour.ticketLifetimeMs
  }

  private authenticate(req: IncomingMessage, method: string): { user: string } | { error: string } {
    const unified = this.behaviour.authFailureText === 'unified'
    const authorization = req.headers.authorization
    if (authorization) {
      const token = STATIC_TOKEN_RE.exec(authorization)
      if (token) {
        const value = token[1] as string
        const cut = value.lastIndexOf('=')
        const id = cut === -1 ? value : value.slice(0, cut)
        const secret = cut === -1 ? '' : value.slice(cut + 1)
        const expected = this.tokens.get(id)
        if (expected === undefined)
          return { error: unified ? 'Authentication failed!' : `no such token '${id}'` }
        if (expected !== secret) return { error: unified ? 'Authentication failed!' : 'invalid token value!' }
        return { user: id }
      }
    }
    const cookieHeader = String(req.headers.cookie ?? '')
    const fromCookie = /(?:^|\s|;)PVEAuthCookie=([^;]*)/.exec(cookieHeader)?.[1]
    const fromHeader = authorization
      ? /(?:^|\s)PVEAuthCookie(?:=| )([^;]*)/.exec(authorization)?.[1]
      : undefined
    const raw = fromCookie ?? fromHeader
    if (!raw) return { error: 'No ticket' }
    const user = this.verifyTicket(decodeURIComponent(raw))
    if (!user) return { error: unified ? 'Authentication failed!' : 'permission denied - invalid PVE ticket' }
    if (method !== 'GET') {
      const csrf = req.headers.csrfpreventiontoken
      if (typeof csrf !== 'string' || !this.verifyCsrf(csrf, user))
        return { error: 'Permission denied - invalid csrf token' }
    }
    return { user }
  }

  // ---- helpers -----------------------------------------------------------------------------------------

  private node(name: string): SimNode {
    const node = this.nodes.get(name)
    if (!node)
      fail(
        `hostname lookup '${name}' failed - failed to get address info for: ${name}: Name or service not known`,
        595,
      )
    return node as SimNode
  }

  /** The VM on this node, with the real "does not exist" text otherwise. */
  private vmOn(node: string, vmidText: string | undefined): SimVm {
    this.node(node)
    const vmid = Number(vmidText)
    const vm = this.vms.get(vmid)
    if (!vm || vm.node !== node)
      fail(`Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`)
    return vm as SimVm
  }

  private checkLock(vm: SimVm): void {
    if (vm.lock) {
      this.stats.lockRefusals++
      fail(`VM is locked (${vm.lock})`)
    }
  }

  /** Waits for the VM's file lock like `lock_config` does, then fails with the real timeout text. */
  private async takeFileLock(vm: SimVm): Promise<void> {
    const storm = this.faults.lockStorm
    if (
      storm &&
      Date.now() < storm.until &&
      (!storm.vmids || storm.vmids.has(vm.vmid)) &&
      Math.random() < storm.probability
    ) {
      await delay(Math.min(this.behaviour.lockWaitMs, 5))
      this.stats.lockRefusals++
      fail(`can't lock file '/var/lock/qemu-server/lock-${vm.vmid}.conf' - got timeout`)
    }
    const waitUntil = Date.now() + this.behaviour.lockWaitMs
    while (vm.flockUntil > Date.now()) {
      if (Date.now() >= waitUntil) {
        this.stats.lockRefusals++
        fail(`can't lock file '/var/lock/qemu-server/lock-${vm.vmid}.conf' - got timeout`)
      }
      await delay(Math.min(5, vm.flockUntil - Date.now() + 1))
    }
  }

  /**
   * The config as `GET …/config` answers it. Types follow qemu-server QemuServer.pm `check_type`,
   * which `parse_vm_config` applies to every value read from the file: a boolean becomes 1 or 0 and an
   * integer a number (`int`); a `number` (cpulimit) and every string — `memory` and `agent` are
   * property strings in PVE 9 — stay strings. The type of each key comes from the schema facts.
   */
  private publicConfig(vm: SimVm, current = false): Record<string, string | number> {
    const out: Record<string, string | number> = {}
    for (const [k, v] of Object.entries(this.effectiveConfig(vm, current))) {
      if (k === 'cipassword') {
        out[k] = '**********'
        continue
      }
      const type = CONFIG_TYPES[k] ?? CONFIG_TYPES[`${/^([a-z]+)\d+$/.exec(k)?.[1] ?? ''}[n]`]
      if (type === 'integer' && /^\d+$/.test(v)) out[k] = Number(v)
      else if (type === 'boolean' && /^(1|on|yes|true)$/i.test(v)) out[k] = 1
      else if (type === 'boolean' && /^(0|off|no|false)$/i.test(v)) out[k] = 0
      else out[k] = v
    }
    if (vm.lock) out.lock = vm.lock
    out.digest = configDigest(vm.config)
    return out
  }

  private diskKeys(config: Record<string, string>): string[] {
    return Object.keys(config).filter((k) => {
      const split = splitIndexedKey(k)
      return (
        (split !== undefined && ['scsi', 'virtio', 'sata', 'ide', 'unused'].includes(split.base)) ||
        k === 'efidisk0' ||
        k === 'tpmstate0'
      )
    })
  }

  private volumesOf(config: Record<string, string>): string[] {
    const out: string[] = []
    for (const key of this.diskKeys(config)) {
      const value = config[key] as string
      const file = parseDrive(value).file
      if (file === 'none' || file.includes(':iso/') || file.includes('cloudinit')) continue
      out.push(file)
    }
    return out
  }

  /**
   * Applies config changes with the server's checks, as qemu-server's `update_vm_api`
   * (`src/PVE/API2/Qemu.pm`) does: net and drive values re-printed in canonical order
   * (`add_random_macs`/`print_net`, `$check_drive_param`/`print_drive`), new volumes (`STORAGE:SIZE`)
   * allocated, deletions first, a replaced or deleted disk registered as `unusedN`
   * (`vmconfig_register_unused_drive`), deleting `unusedN` frees the volume (`try_deallocate_drive`).
   * On a running VM only what `vmconfig_hotplug_pending` applies at once takes effect; the rest
   * stays pending until the next start. `stage` runs the checks only (nothing allocated or changed):
   * the synchronous part of an asynchronous POST, before the worker forks.
   */
  private applyConfig(vm: SimVm, params: Record<string, string>, stage = false): void {
    const errors: Record<string, string> = {}
    const changes: Record<string, string> = {}
    for (const [key, value] of Object.entries(params)) {
      if (
        ['node', 'vmid', 'digest', 'delete', 'revert', 'force', 'skiplock', 'background_delay'].includes(key)
      )
        continue
      const split = splitIndexedKey(key)
      if (split?.base === 'net') {
        try {
          const format = configOptionFormat(key) ?? {}
          const net = parsePropertyStringWith(value, format)
          const model = net.get('model')
          if (!model || !NET_MODELS.includes(model))
            throw new Error(`invalid model '${model ?? ''}' (not one of the schema's net models)`)
          // qemu-server Network.pm parse_net: a missing MAC is generated.
          if (!net.get('macaddr')) net.set('macaddr', randomMac())
          changes[key] = printPropertyString(net, format)
        } catch (error) {
          errors[key] = `invalid format - ${(error as Error).message}`
        }
        continue
      }
      if (split && DRIVE_BASES.includes(split.base)) {
        try {
          changes[key] = formatDrive(parseDrive(value))
        } catch (error) {
          errors[key] = `invalid format - ${(error as Error).message}`
        }
        continue
      }
      if (key === 'sshkeys') {
        let keys: string[] = []
        try {
          keys = decodeSshKeys(value)
        } catch {
          errors[key] = `invalid format - invalid urlencoded string: ${value}`
          continue
        }
        const bad = keys.find((k) => sshPublicKeyProblem(k) !== undefined)
        if (bad !== undefined) fail(`SSH public key validation error`)
        changes[key] = value
        continue
      }
      if (key === 'cipassword') {
        changes[key] = /^\$(1|5|6|2a|2y)\$/.test(value)
          ? value
          : `$5$sim$${createHmac('sha256', 'salt').update(value).digest('base64')}`
        continue
      }
      changes[key] = value
    }
    if (Object.keys(errors).length > 0) paramError(errors)
    // Checks on new volumes and ISO images, before anything changes.
    for (const [key, value] of Object.entries(changes)) {
      const split = splitIndexedKey(key)
      if (!split || !DRIVE_BASES.includes(split.base)) continue
      const drive = parseDrive(value)
      const m = NEW_DISK_RE.exec(drive.file)
      if (m && !this.storage(vm.node, m[1] as string)) fail(`storage '${m[1]}' does not exist`)
      if (drive.file !== 'none' && drive.file.includes(':iso/')) {
        const store = this.storage(vm.node, drive.file.split(':')[0] as string)
        if (!store?.volumes.has(drive.file)) fail(`volume '${drive.file}' does not exist`)
      }
      const old = vm.config[key]
      if (old !== undefined && vm.status === 'running') {
        const before = parseDrive(old).options.media ?? 'disk'
        const after = drive.options.media ?? 'disk'
        // qemu-server QemuServer.pm vmconfig_update_disk
        if (before !== after) paramError({ [key]: 'hotplug problem - unable to change media type' })
      }
    }
    if (stage) return
    const running = vm.status === 'running'
    const deletions = (params.delete ?? '').split(/[,;\s]+/).filter(Boolean)
    const force = params.force === '1'
    for (const key of deletions) {
      const split = splitIndexedKey(key)
      if (split?.base === 'unused') {
        const value = vm.config[key]
        if (value === undefined) continue
        this.removeVolume(vm.node, parseDrive(value).file)
        delete vm.config[key]
        continue
      }
      if (vm.config[key] === undefined && vm.pending[key] === undefined) continue
      const dropped = vm.pending[key]
      delete vm.pending[key]
      // A pending disk that never took effect is registered as unused, not lost.
      if (dropped !== undefined && split && DRIVE_BASES.includes(split.base)) this.registerUnused(vm, dropped)
      if (vm.config[key] === undefined) continue
      if (running && !hotDeletable(vm, key)) vm.pendingDelete.set(key, force)
      else this.deleteOption(vm, key, force)
    }
    for (const [key, raw] of Object.entries(changes)) {
      let value = raw
      const split = splitIndexedKey(key)
      if (split && DRIVE_BASES.includes(split.base)) {
        const drive = parseDrive(value)
        const m = NEW_DISK_RE.exec(drive.file)
        if (m) {
          const options = { ...drive.options }
          delete options.size
          value = this.allocateVolume(vm, m[1] as string, Number(m[2]) * 1024 ** 3, options)
        }
        // A pending value replaced before it took effect: its volume becomes unused.
        const superseded = vm.pending[key]
        if (superseded !== undefined) this.registerUnused(vm, superseded)
      }
      vm.pendingDelete.delete(key)
      if (running && !hotApplicable(vm, key, value)) vm.pending[key] = value
      else {
        delete vm.pending[key]
        this.setOption(vm, key, value)
      }
    }
  }

  /** Sets an option; a drive whose volume changes leaves the old one as `unusedN`. */
  private setOption(vm: SimVm, key: string, value: string): void {
    const old = vm.config[key]
    const split = splitIndexedKey(key)
    if (old !== undefined && split && DRIVE_BASES.includes(split.base)) {
      if (parseDrive(old).file !== parseDrive(value).file) this.registerUnused(vm, old)
    }
    vm.config[key] = value
  }

  private deleteOption(vm: SimVm, key: string, force: boolean): void {
    const value = vm.config[key]
    if (value === undefined) return
    delete vm.config[key]
    const split = splitIndexedKey(key)
    if (split && DRIVE_BASES.includes(split.base)) {
      // qemu-server QemuServer.pm vmconfig_delete_or_detach_drive: force frees, else unusedN.
      if (force) this.removeVolume(vm.node, parseDrive(value).file)
      else this.registerUnused(vm, value)
    }
  }

  /**
   * qemu-server QemuServer.pm vmconfig_register_unused_drive: a cloud-init volume is freed, a CD-ROM
   * is dropped, any other volume of this VM goes to the first free `unusedN` (`add_unused_volume`).
   */
  private registerUnused(vm: SimVm, driveText: string): void {
    const drive = parseDrive(driveText)
    if (drive.file === 'none' || drive.options.media === 'cdrom') return
    if (drive.file.includes('cloudinit')) return
    if (!new RegExp(`(^|[:/])(vm|base)-${vm.vmid}-`).test(drive.file)) return
    if (Object.values(vm.config).some((v) => v === drive.file)) return
    let n = 0
    while (vm.config[`unused${n}`] !== undefined) n++
    vm.config[`unused${n}`] = drive.file
  }

  /** Applies pending changes, as `vmconfig_apply_pending` does when the VM starts. */
  private applyPending(vm: SimVm): void {
    for (const [key, force] of [...vm.pendingDelete].sort()) this.deleteOption(vm, key, force)
    vm.pendingDelete.clear()
    for (const [key, value] of Object.entries(vm.pending)) this.setOption(vm, key, value)
    vm.pending = {}
  }

  /** The config as `GET …/config` shows it: pending values included unless `current`. */
  private effectiveConfig(vm: SimVm, current: boolean): Record<string, string> {
    if (current) return { ...vm.config }
    const out = { ...vm.config, ...vm.pending }
    for (const key of vm.pendingDelete.keys()) delete out[key]
    return out
  }

  private nextFreeId(): number {
    let id = 100
    while (this.vms.has(id)) id++
    return id
  }

  // ---- routes ------------------------------------------------------------------------------------------

  private route(
    method: string,
    template: string,
    handler: Route['handler'],
    options: { endpoint?: EndpointDefinition; public?: boolean } = {},
  ): void {
    const names: string[] = []
    const pattern = new RegExp(
      `^${template.replace(/\{([^}]+)\}/g, (_m, name: string) => {
        names.push(name)
        return name === 'volume' ? '(.+)' : '([^/]+)'
      })}$`,
    )
    const endpoint =
      options.endpoint ??
      (Object.values(ENDPOINTS) as EndpointDefinition[]).find(
        (e) => e.method === method && e.path === template,
      )
    const route: Route = { method, template, pattern, names, handler }
    if (endpoint) route.endpoint = endpoint
    if (options.public) route.public = true
    this.routes.push(route)
  }

  private defineRoutes(): void {
    const r = this.route.bind(this)

    r('GET', '/version', () => ({
      version: this.version,
      release: this.version.split('.').slice(0, 2).join('.'),
      repoid: 'f0e1d2c3',
    }))

    r(
      'POST',
      '/access/ticket',
      (req) => {
        let username = req.params.username ?? ''
        if (!username.includes('@') && req.params.realm) username = `${username}@${req.params.realm}`
        const password = req.params.password ?? ''
        let ok = this.users.get(username) === password && password !== ''
        if (ok) this.stats.logins++
        if (!ok) {
          const owner = this.verifyTicket(password)
          if (owner && (owner === username || owner === 'root@pam')) {
            ok = true
            this.stats.renewals++
          }
        }
        if (!ok) fail('authentication failure', 401)
        const { ticket, csrf } = this.issueTicket(username)
        return { username, ticket, CSRFPreventionToken: csrf, clustername: 'simcluster', cap: {} }
      },
      { public: true },
    )

    r('GET', '/nodes', () =>
      [...this.nodes.values()].map((n) => ({
        node: n.name,
        status: n.online ? 'online' : 'offline',
        cpu: n.load,
        maxcpu: n.cpus,
        mem: this.usedMemory(n.name),
        maxmem: n.memoryBytes,
        uptime: 86400,
        level: '',
        type: 'node',
        id: `node/${n.name}`,
      })),
    )

    // pve-manager PVE/API2/Nodes.pm `status`: uptime, idle, loadavg (strings), kversion,
    // current-kernel, boot-info, cpuinfo, cpu, wait, memory (from /proc/meminfo: host usage), ksm,
    // swap, pveversion, rootfs.
    r('GET', '/nodes/{node}/status', (req) => {
      const n = this.node(req.path.node as string)
      const used = this.usedMemory(n.name)
      return {
        uptime: 86400,
        idle: 0,
        loadavg: ['0.10', '0.20', '0.30'],
        kversion: 'Linux 6.17.2-1-pve #1 SMP PREEMPT_DYNAMIC PMX 6.17.2-1 (2026-01-01T00:00Z)',
        'current-kernel': { sysname: 'Linux', release: '6.17.2-1-pve', version: '#1 SMP', machine: 'x86_64' },
        'boot-info': { mode: 'efi', secureboot: 0 },
        cpuinfo: {
          cores: n.cpus,
          cpus: n.cpus,
          sockets: 1,
          model: 'Simulated CPU',
          mhz: '2400.000',
          hvm: '1',
        },
        cpu: n.load,
        wait: 0,
        memory: { total: n.memoryBytes, used, free: n.memoryBytes - used, available: n.memoryBytes - used },
        ksm: { shared: 0 },
        swap: { total: 8 * 1024 ** 3, used: 0, free: 8 * 1024 ** 3 },
        pveversion: `pve-manager/${this.version}/f0e1d2c3`,
        rootfs: { total: 100 * 1024 ** 3, used: 10 * 1024 ** 3, free: 90 * 1024 ** 3, avail: 90 * 1024 ** 3 },
      }
    })

    r('GET', '/cluster/resources', (req) => {
      const type = req.params.type
      const rows: Record<string, unknown>[] = []
      if (!type || type === 'node') {
        for (const n of this.nodes.values()) {
          rows.push({
            id: `node/${n.name}`,
            type: 'node',
            node: n.name,
            status: n.online ? 'online' : 'offline',
            cpu: n.load,
            maxcpu: n.cpus,
            mem: this.usedMemory(n.name),
            maxmem: n.memoryBytes,
            disk: 10 * 1024 ** 3,
            maxdisk: 100 * 1024 ** 3,
          })
        }
      }
      if (!type || type === 'vm') {
        for (const vm of this.vms.values()) rows.push(this.resourceRow(vm))
      }
      if (!type || type === 'storage') {
        for (const n of this.nodes.values()) {
          for (const s of this.storages.filter((x) => x.shared || x.node === n.name)) {
            rows.push({
              id: `storage/${n.name}/${s.id}`,
              type: 'storage',
              node: n.name,
              storage: s.id,
              status: 'available',
              shared: this.flag(s.shared),
              content: s.content.join(','),
              plugintype: s.type,
              disk: this.usedBytes(s),
              maxdisk: s.totalBytes,
            })
          }
        }
      }
      return rows
    })

    r('GET', '/cluster/nextid', (req) => {
      if (req.params.vmid !== undefined) {
        const id = Number(req.params.vmid)
        if (this.vms.has(id)) paramError({ vmid: `VM ${id} already exists` })
        return this.behaviour.nextIdAsString ? String(id) : id
      }
      const id = this.nextFreeId()
      return this.behaviour.nextIdAsString ? String(id) : id
    })

    r('GET', '/nodes/{node}/qemu', (req) => {
      this.node(req.path.node as string)
      return [...this.vms.values()]
        .filter((vm) => vm.node === req.path.node)
        .map((vm) => {
          const row = this.resourceRow(vm)
          delete row.id
          delete row.type
          return row
        })
    })

    r('POST', '/nodes/{node}/qemu', (req) => {
      const node = req.path.node as string
      this.node(node)
      const vmid = Number(req.params.vmid)
      const archive = req.params.archive
      const existing = this.vms.get(vmid)
      if (!archive) {
        if (existing)
          fail(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`)
        const vm = this.addVm({
          vmid,
          node,
          config: { name: req.params.name ?? `vm${vmid}`, memory: '512', cores: '1' },
        })
        vm.lock = 'create'
        return this.startTask(node, 'qmcreate', String(vmid), req.user, () => {}, { vm, lock: 'create' })
      }
      const volume = this.findVolume(archive) ?? fail(`volume '${archive}' does not exist`)
      if (existing) {
        if (req.params.force !== '1')
          fail(`unable to restore VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`)
        if (existing.node !== node)
          fail(`unable to restore VM ${vmid} - VM ${vmid} already exists on node '${existing.node}'`)
        if (existing.status === 'running') fail(`unable to restore VM ${vmid} - vm is running`)
        this.checkLock(existing)
      }
      const vm = existing ?? this.addVm({ vmid, node, config: {} })
      return this.startTask(
        node,
        'qmrestore',
        String(vmid),
        req.user,
        () => {
          for (const volid of this.volumesOf(vm.config)) this.removeVolume(vm.node, volid)
          const restored = { ...(volume.config ?? {}) }
          vm.config = {}
          for (const [k, v] of Object.entries(restored)) {
            const split = splitIndexedKey(k)
            if (split && ['scsi', 'virtio', 'sata'].includes(split.base)) {
              const drive = parseDrive(v)
              const storeId = req.params.storage ?? (drive.file.split(':')[0] as string)
              const sizeBytes = parseSize(drive.options.size ?? '1G')
              const options = { ...drive.options }
              delete options.size
              this.allocateDisk(vm, k, storeId, sizeBytes, 'disk', options)
            } else vm.config[k] = v
          }
          vm.snapshots = []
          vm.status = req.params.start === '1' ? 'running' : 'stopped'
        },
        { vm, lock: 'create' },
      )
    })

    r('GET', '/nodes/{node}/qemu/{vmid}/config', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      if (req.params.snapshot) {
        const snap =
          vm.snapshots.find((s) => s.name === req.params.snapshot) ??
          fail(`snapshot '${req.params.snapshot}' does not exist`)
        return { ...snap.config, digest: configDigest(snap.config) }
      }
      return this.publicConfig(vm, req.params.current === '1')
    })

    // qemu-server API2/Qemu.pm `vm_pending`: every option with its current value, and `pending` /
    // `delete` (1, or 2 when forced) where a change waits for the next start.
    r('GET', '/nodes/{node}/qemu/{vmid}/pending', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const keys = new Set([
        ...Object.keys(vm.config),
        ...Object.keys(vm.pending),
        ...vm.pendingDelete.keys(),
      ])
      const rows: Record<string, string | number>[] = []
      for (const key of [...keys].sort()) {
        const row: Record<string, string | number> = { key }
        const value = vm.config[key]
        if (value !== undefined) row.value = key === 'cipassword' ? '**********' : value
        const pending = vm.pending[key]
        if (pending !== undefined) row.pending = key === 'cipassword' ? '**********' : pending
        const force = vm.pendingDelete.get(key)
        if (force !== undefined) row.delete = force ? 2 : 1
        rows.push(row)
      }
      return rows
    })

    const updateConfig = async (req: SimRequest, asTask: boolean) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const keys = Object.keys(req.params).filter(
        (k) => !['node', 'vmid', 'digest', 'background_delay', 'skiplock', 'force'].includes(k),
      )
      if (keys.length === 0) fail('no options specified')
      this.checkLock(vm)
      await this.takeFileLock(vm)
      this.checkLock(vm)
      if (req.params.digest && req.params.digest !== configDigest(vm.config))
        fail('checksum mismatch (file change by other user?)')
      if (!asTask) {
        this.applyConfig(vm, req.params)
        return null
      }
      // Checks that fail before the fork are synchronous; the rest (allocation included) happens in
      // the worker, once.
      this.applyConfig(vm, req.params, true)
      const params = { ...req.params }
      return this.startTask(
        req.path.node as string,
        'qmconfig',
        String(vm.vmid),
        req.user,
        () => this.applyConfig(vm, params),
        { vm, flock: true },
      )
    }
    r('POST', '/nodes/{node}/qemu/{vmid}/config', (req) => updateConfig(req, true))
    r('PUT', '/nodes/{node}/qemu/{vmid}/config', (req) => updateConfig(req, false))

    r('PUT', '/nodes/{node}/qemu/{vmid}/resize', async (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      this.checkLock(vm)
      await this.takeFileLock(vm)
      const disk = req.params.disk as string
      const value = vm.config[disk]
      if (value === undefined) fail(`disk '${disk}' does not exist`)
      const drive = parseDrive(value as string)
      if (drive.options.media === 'cdrom') fail("you can't resize a cdrom")
      const current = parseSize(drive.options.size ?? '0')
      const text = req.params.size as string
      const wanted = text.startsWith('+') ? current + parseSize(text.slice(1)) : parseSize(text)
      if (wanted < current) fail('shrinking disks is not supported')
      const apply = () => {
        drive.options.size = sizeText(wanted)
        vm.config[disk] = formatDrive(drive)
        const vol = this.volumeOf(vm, drive.file)
        if (vol) vol.size = wanted
      }
      if (!this.behaviour.resizeAsTask) {
        apply()
        return null
      }
      return this.startTask(req.path.node as string, 'resize', String(vm.vmid), req.user, apply, {
        vm,
        flock: true,
      })
    })

    r('GET', '/nodes/{node}/qemu/{vmid}/status/current', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const row = this.resourceRow(vm)
      delete row.id
      delete row.type
      return { ...row, qmpstatus: vm.paused ? 'paused' : vm.status, ha: { managed: 0 }, agent: 1 }
    })

    const power =
      (op: 'start' | 'stop' | 'shutdown' | 'reboot' | 'suspend' | 'resume') => (req: SimRequest) => {
        const vm = this.vmOn(req.path.node as string, req.path.vmid)
        if (vm.template) fail(`VM ${vm.vmid} is a template`)
        if (req.params.skiplock !== '1') this.checkLock(vm)
        const types = {
          start: 'qmstart',
          stop: 'qmstop',
          shutdown: 'qmshutdown',
          reboot: 'qmreboot',
          suspend: 'qmpause',
          resume: 'qmresume',
        }
        return this.startTask(req.path.node as string, types[op], String(vm.vmid), req.user, () => {
          if (op === 'start') {
            if (vm.status === 'running') throw new Error(`VM ${vm.vmid} already running`)
            // qemu-server QemuServer.pm vm_start_nolock: pending changes are applied first.
            this.applyPending(vm)
            vm.status = 'running'
            vm.startedAt = this.now()
            vm.cloudinit = this.cloudinitValues(vm)
          } else if (op === 'stop' || op === 'shutdown') {
            vm.status = 'stopped'
            vm.paused = false
            delete vm.startedAt
          } else if (op === 'reboot') {
            if (vm.status !== 'running') throw new Error(`VM ${vm.vmid} not running`)
            // A reboot is a shutdown and a start: pending changes take effect.
            this.applyPending(vm)
            vm.startedAt = this.now()
            vm.cloudinit = this.cloudinitValues(vm)
          } else if (op === 'suspend') {
            if (vm.status !== 'running') throw new Error(`VM ${vm.vmid} not running`)
            vm.paused = true
          } else {
            vm.paused = false
          }
        })
      }
    for (const op of ['start', 'stop', 'shutdown', 'reboot', 'suspend', 'resume'] as const) {
      r('POST', `/nodes/{node}/qemu/{vmid}/status/${op}`, power(op))
    }

    r('DELETE', '/nodes/{node}/qemu/{vmid}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      if (vm.status === 'running') fail(`VM ${vm.vmid} is running - destroy failed`)
      if (vm.config.protection === '1') fail(`can't remove VM ${vm.vmid} - protection mode enabled`)
      if (req.params.skiplock !== '1') this.checkLock(vm)
      return this.startTask(
        req.path.node as string,
        'qmdestroy',
        String(vm.vmid),
        req.user,
        () => {
          for (const volid of this.volumesOf(vm.config)) this.removeVolume(vm.node, volid)
          for (const s of vm.snapshots)
            for (const volid of this.volumesOf(s.config)) this.removeVolume(vm.node, volid)
          if (req.params['destroy-unreferenced-disks'] === '1') {
            for (const store of this.storages) {
              for (const [volid, vol] of store.volumes)
                if (vol.content === 'images' && vol.vmid === vm.vmid) store.volumes.delete(volid)
            }
          }
          this.vms.delete(vm.vmid)
        },
        { vm, lock: 'destroyed' },
      )
    })

    r('POST', '/nodes/{node}/qemu/{vmid}/clone', (req) => {
      const source = this.vmOn(req.path.node as string, req.path.vmid)
      const newid = Number(req.params.newid)
      if (source.lock) fail(`VM is locked (${source.lock})`)
      if (this.vms.has(newid)) fail(`unable to create VM ${newid}: config file already exists`)
      const full = req.params.full === undefined ? !source.template : req.params.full === '1'
      if (!full && (req.params.storage || req.params.format))
        fail(`parameter '${req.params.storage ? 'storage' : 'format'}' not allowed for linked clones`)
      const target = req.params.target ?? source.node
      this.node(target)
      if (target !== source.node) {
        const local = this.volumesOf(source.config).some(
          (v) => !this.storage(source.node, v.split(':')[0] as string)?.shared,
        )
        if (local) fail(`can't clone VM to node '${target}' (VM uses local storage)`)
      }
      const config: Record<string, string> = {}
      for (const [k, v] of Object.entries(source.config)) {
        if (k === 'template' || splitIndexedKey(k)?.base === 'unused') continue
        config[k] = v
      }
      if (req.params.name) config.name = req.params.name
      if (req.params.description !== undefined) config.description = req.params.description
      for (const [k, v] of Object.entries(config)) {
        if (splitIndexedKey(k)?.base === 'net') {
          const net = parseNet(v)
          net.macaddr = randomMac()
          config[k] = formatNet(net)
        }
      }
      const vm = this.addVm({ vmid: newid, node: target, config: {} })
      vm.lock = 'clone'
      const diskPlan = this.diskKeys(config).filter(
        (k) => !config[k]?.includes('cloudinit') && !config[k]?.includes('media=cdrom'),
      )
      for (const [k, v] of Object.entries(config))
        if (!diskPlan.includes(k))
          vm.config[k] = v.includes('cloudinit') ? v.replace(/vm-\d+-cloudinit/, `vm-${newid}-cloudinit`) : v
      const sourceDisks = Object.fromEntries(diskPlan.map((k) => [k, config[k] as string]))
      return this.startTask(
        source.node,
        'qmclone',
        String(source.vmid),
        req.user,
        () => {
          for (const [k, v] of Object.entries(sourceDisks)) {
            const drive = parseDrive(v)
            const storeId = req.params.storage ?? (drive.file.split(':')[0] as string)
            const options = { ...drive.options }
            delete options.size
            if (full)
              this.allocateDisk(vm, k, storeId, parseSize(drive.options.size ?? '1G'), 'disk', options)
            else vm.config[k] = this.linkedVolume(vm, drive)
          }
          // qemu-server API2/Qemu.pm clone_vm: PVE::Firewall::clone_vmfw_conf copies the firewall.
          vm.firewall = structuredClone(source.firewall)
        },
        {
          vm,
          lock: 'clone',
          // A failed clone removes what it made, as qemu-server does.
          onError: () => {
            for (const volid of this.volumesOf(vm.config)) this.removeVolume(vm.node, volid)
            this.vms.delete(vm.vmid)
          },
        },
      )
    })

    // qemu-server API2/Qemu.pm move_vm_disk: copies the volume to the storage; the source is freed
    // with `delete`, else kept as `unusedN`.
    r('POST', '/nodes/{node}/qemu/{vmid}/move_disk', async (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const disk = req.params.disk as string
      const value = vm.config[disk] ?? fail(`disk '${disk}' does not exist`)
      const drive = parseDrive(value)
      const storeId = req.params.storage ?? fail('you must specify a target storage')
      if (!this.storage(vm.node, storeId)) fail(`storage '${storeId}' does not exist`)
      if (drive.file.startsWith(`${storeId}:`)) fail('unable to move disk to same storage')
      this.checkLock(vm)
      return this.startTask(
        vm.node,
        'qmmove',
        String(vm.vmid),
        req.user,
        () => {
          const options = { ...drive.options }
          delete options.size
          vm.config[disk] = this.allocateVolume(vm, storeId, parseSize(drive.options.size ?? '1G'), options)
          if (req.params.delete === '1') this.removeVolume(vm.node, drive.file)
          else this.registerUnused(vm, value)
        },
        { vm, lock: 'move' },
      )
    })

    r('POST', '/nodes/{node}/qemu/{vmid}/migrate', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const target = req.params.target as string
      this.node(target)
      if (target === vm.node) fail('target is local node.')
      if (vm.status === 'running' && req.params.online !== '1')
        fail("can't migrate running VM without --online")
      this.checkLock(vm)
      return this.startTask(
        vm.node,
        'qmigrate',
        String(vm.vmid),
        req.user,
        () => {
          const from = vm.node
          const moves: [string, string][] = []
          for (const key of this.diskKeys(vm.config)) {
            const drive = parseDrive(vm.config[key] as string)
            if (drive.file === 'none' || drive.file.includes(':iso/')) continue
            const storeId = drive.file.split(':')[0] as string
            const store = this.storage(from, storeId)
            // qemu-server QemuMigrate.pm scan_local_volumes: a volume on shared storage stays where it
            // is, `targetstorage` or not (the storage map applies to local volumes only).
            if (store?.shared) continue
            // Same file, the local-storage checks: a linked clone (a volume name with a base) cannot
            // be migrated.
            const volname = drive.file.slice(storeId.length + 1)
            const slash = volname.indexOf('/')
            if (slash !== -1 && /^base-/.test(volname))
              throw new Error(`can't migrate '${drive.file}' as it's a clone of '${volname.slice(0, slash)}'`)
            moves.push([
              key,
              req.params.targetstorage && req.params.targetstorage !== '1'
                ? req.params.targetstorage
                : storeId,
            ])
          }
          const old = moves.map(([key]) => parseDrive(vm.config[key] as string))
          vm.node = target
          moves.forEach(([key, storeId], i) => {
            const drive = old[i] as ReturnType<typeof parseDrive>
            if (drive.file.includes('cloudinit')) {
              vm.config[key] = formatDrive({
                file: `${storeId}:vm-${vm.vmid}-cloudinit`,
                options: drive.options,
              })
              return
            }
            this.removeVolume(from, drive.file)
            const options = { ...drive.options }
            delete options.size
            this.allocateDisk(vm, key, storeId, parseSize(drive.options.size ?? '1G'), 'disk', options)
          })
        },
        { vm, lock: 'migrate' },
      )
    })

    r('PUT', '/nodes/{node}/qemu/{vmid}/cloudinit', async (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      this.checkLock(vm)
      await this.takeFileLock(vm)
      vm.cloudinit = this.cloudinitValues(vm)
      return null
    })

    r('GET', '/nodes/{node}/qemu/{vmid}/rrddata', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const frames: Record<string, [number, number]> = {
        hour: [60, 60],
        day: [60, 1440],
        week: [1800, 336],
        month: [1800, 1440],
        year: [21600, 1440],
      }
      const frame =
        frames[req.params.timeframe as string] ??
        fail(
          `value '${req.params.timeframe}' does not have a value in the enumeration 'hour, day, week, month, year'`,
          400,
        )
      const [step, count] = frame
      const end = Math.floor(this.nowSeconds() / step) * step
      const rows: Record<string, number>[] = []
      const maxmem = Number(vm.config.memory ?? 512) * 1024 ** 2
      const maxdisk = this.volumesOf(vm.config).reduce((sum, v) => sum + (this.volumeOf(vm, v)?.size ?? 0), 0)
      for (let i = count - 1; i >= 0; i--) {
        const time = end - i * step
        if (time * 1000 < vm.usage.since) {
          rows.push({ time })
          continue
        }
        rows.push({
          time,
          cpu: vm.usage.cpu,
          maxcpu: Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1),
          mem: Math.round(maxmem * 0.4),
          maxmem,
          disk: 0,
          maxdisk,
          netin: vm.usage.netinRate,
          netout: vm.usage.netoutRate,
          diskread: 512,
          diskwrite: 1024,
        })
      }
      return rows
    })

    r('POST', '/nodes/{node}/qemu/{vmid}/vncproxy', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const port = this.vncPort++
      if (this.vncPort > 5999) this.vncPort = 5900
      const password = randomBytes(6).toString('hex')
      const ticket = `${password}:PVEVNC:${this.nowSeconds().toString(16).toUpperCase()}::${this.sign(`vnc:${vm.vmid}:${port}`)}`
      const upid = this.startTask(req.path.node as string, 'vncproxy', String(vm.vmid), req.user, () => {}, {
        durationMs: 10,
      })
      return {
        user: req.user,
        ticket,
        port: this.behaviour.vncPortAsString ? String(port) : port,
        upid,
        cert: this.cert,
        password,
      }
    })

    r('GET', '/nodes/{node}/qemu/{vmid}/snapshot', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const last = vm.snapshots.at(-1)
      return [
        ...vm.snapshots.map((s) => ({
          name: s.name,
          description: s.description,
          snaptime: s.snaptime,
          ...(s.parent ? { parent: s.parent } : {}),
          vmstate: 0,
        })),
        {
          name: 'current',
          description: 'You are here!',
          digest: configDigest(vm.config),
          running: vm.status === 'running' ? 1 : 0,
          ...(last ? { parent: last.name } : {}),
        },
      ]
    })

    r('POST', '/nodes/{node}/qemu/{vmid}/snapshot', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const name = req.params.snapname as string
      if (!/^[a-zA-Z][a-zA-Z0-9_-]*$/.test(name))
        paramError({ snapname: `invalid format - invalid configuration ID '${name}'` })
      if (vm.snapshots.some((s) => s.name === name)) fail(`snapshot name '${name}' already used`)
      this.checkLock(vm)
      return this.startTask(
        vm.node,
        'qmsnapshot',
        String(vm.vmid),
        req.user,
        () => {
          const parent = vm.snapshots.at(-1)?.name
          vm.snapshots.push({
            name,
            description: req.params.description ?? '',
            snaptime: this.nowSeconds(),
            config: { ...vm.config },
            ...(parent ? { parent } : {}),
          })
        },
        { vm, lock: 'snapshot' },
      )
    })

    r('DELETE', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const name = req.path.snapname as string
      if (!vm.snapshots.some((s) => s.name === name)) fail(`snapshot '${name}' does not exist`)
      this.checkLock(vm)
      return this.startTask(
        vm.node,
        'qmdelsnapshot',
        String(vm.vmid),
        req.user,
        () => {
          vm.snapshots = vm.snapshots.filter((s) => s.name !== name)
        },
        { vm, lock: 'snapshot-delete' },
      )
    })

    r('POST', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const name = req.path.snapname as string
      const snap = vm.snapshots.find((s) => s.name === name) ?? fail(`snapshot '${name}' does not exist`)
      this.checkLock(vm)
      return this.startTask(
        vm.node,
        'qmrollback',
        String(vm.vmid),
        req.user,
        () => {
          vm.config = { ...snap.config }
          vm.status = req.params.start === '1' ? 'running' : 'stopped'
          const index = vm.snapshots.indexOf(snap)
          vm.snapshots = vm.snapshots.slice(0, index + 1)
        },
        { vm, lock: 'rollback' },
      )
    })

    // Firewall
    r('GET', '/nodes/{node}/qemu/{vmid}/firewall/options', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const out: Record<string, string | number> = {}
      for (const [k, v] of Object.entries(vm.firewall.options)) out[k] = /^\d+$/.test(v) ? Number(v) : v
      return { ...out, digest: configDigest(vm.firewall.options) }
    })
    r('PUT', '/nodes/{node}/qemu/{vmid}/firewall/options', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      if (req.params.digest && req.params.digest !== configDigest(vm.firewall.options))
        fail('detected modified configuration - file changed by other user? Try again.')
      for (const [k, v] of Object.entries(req.params)) {
        if (['node', 'vmid', 'digest', 'delete'].includes(k)) continue
        vm.firewall.options[k] = v
      }
      for (const k of (req.params.delete ?? '').split(/[,;\s]+/).filter(Boolean))
        delete vm.firewall.options[k]
      return null
    })
    r('GET', '/nodes/{node}/qemu/{vmid}/firewall/ipset', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      return [...vm.firewall.ipsets.entries()].map(([name, set]) => ({
        name,
        ...(set.comment ? { comment: set.comment } : {}),
        digest: 'x',
      }))
    })
    r('POST', '/nodes/{node}/qemu/{vmid}/firewall/ipset', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const name = req.params.name as string
      if (!/^[A-Za-z][A-Za-z0-9\-_]+$/.test(name) || name.length > 64)
        paramError({ name: 'value does not match the regex pattern' })
      if (vm.firewall.ipsets.has(name)) fail(`IPSet '${name}' already exists`, 400)
      vm.firewall.ipsets.set(name, {
        ...(req.params.comment ? { comment: req.params.comment } : {}),
        entries: [],
      })
      return null
    })
    r('GET', '/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const set = vm.firewall.ipsets.get(req.path.name as string) ?? fail(`no such IPSet '${req.path.name}'`)
      return set.entries.map((e) => ({
        cidr: e.cidr,
        ...(e.comment ? { comment: e.comment } : {}),
        nomatch: e.nomatch ? 1 : 0,
        digest: 'x',
      }))
    })
    r('POST', '/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const set = vm.firewall.ipsets.get(req.path.name as string) ?? fail(`no such IPSet '${req.path.name}'`)
      const cidr = req.params.cidr as string
      if (set.entries.some((e) => e.cidr === cidr)) paramError({ cidr: `address '${cidr}' already exists` })
      set.entries.push({
        cidr,
        ...(req.params.comment ? { comment: req.params.comment } : {}),
        nomatch: req.params.nomatch === '1',
      })
      return null
    })
    r('DELETE', '/nodes/{node}/qemu/{vmid}/firewall/ipset/{name}/{cidr}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const set = vm.firewall.ipsets.get(req.path.name as string) ?? fail(`no such IPSet '${req.path.name}'`)
      const before = set.entries.length
      set.entries = set.entries.filter((e) => e.cidr !== req.path.cidr)
      if (set.entries.length === before) fail(`no such IP/Network '${req.path.cidr}'`)
      return null
    })
    r('GET', '/nodes/{node}/qemu/{vmid}/firewall/rules', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      return vm.firewall.rules.map((rule, pos) => ({ pos, ...rule }))
    })
    r('POST', '/nodes/{node}/qemu/{vmid}/firewall/rules', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const rule: SimVm['firewall']['rules'][number] = {
        type: req.params.type as string,
        action: req.params.action as string,
        enable: Number(req.params.enable ?? 0),
      }
      for (const k of ['source', 'dest', 'proto', 'dport', 'iface', 'comment', 'macro'] as const) {
        if (req.params[k] !== undefined) rule[k] = req.params[k]
      }
      // New rules go to the top unless a position is given (and are disabled unless enable=1).
      const pos =
        req.params.pos === undefined ? 0 : Math.min(Number(req.params.pos), vm.firewall.rules.length)
      vm.firewall.rules.splice(pos, 0, rule)
      return null
    })
    r('DELETE', '/nodes/{node}/qemu/{vmid}/firewall/rules/{pos}', (req) => {
      const vm = this.vmOn(req.path.node as string, req.path.vmid)
      const pos = Number(req.path.pos)
      if (pos >= vm.firewall.rules.length) fail(`no rule at position ${pos}`)
      vm.firewall.rules.splice(pos, 1)
      return null
    })

    // Backups and storage
    r('POST', '/nodes/{node}/vzdump', (req) => {
      const node = req.path.node as string
      this.node(node)
      const ids = (req.params.vmid ?? '')
        .split(/[,;\s]+/)
        .filter(Boolean)
        .map(Number)
      if (ids.length === 0) paramError({ vmid: 'property is missing and it is not optional' })
      const storeId = req.params.storage ?? 'local'
      const store = this.storage(node, storeId) ?? fail(`storage '${storeId}' does not exist`)
      if (!store.content.includes('backup')) fail(`storage '${storeId}' does not support backups`)
      const vm = this.vmOn(node, String(ids[0]))
      this.checkLock(vm)
      return this.startTask(
        node,
        'vzdump',
        String(vm.vmid),
        req.user,
        () => {
          const d = new Date(this.now())
          const p = (n: number) => String(n).padStart(2, '0')
          let stamp = `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}-${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}`
          let volid = `${storeId}:backup/vzdump-qemu-${vm.vmid}-${stamp}.vma.zst`
          for (let i = 1; store.volumes.has(volid); i++) {
            stamp = `${stamp}${i}`
            volid = `${storeId}:backup/vzdump-qemu-${vm.vmid}-${stamp}.vma.zst`
          }
          const notes = (req.params['notes-template'] ?? '{{guestname}}')
            .replaceAll('{{guestname}}', vm.config.name ?? '')
            .replaceAll('{{vmid}}', String(vm.vmid))
            .replaceAll('{{node}}', node)
            .replaceAll('{{cluster}}', 'simcluster')
          store.volumes.set(volid, {
            volid,
            content: 'backup',
            size: 1024 ** 3,
            ctime: this.nowSeconds() + store.volumes.size / 1000,
            vmid: vm.vmid,
            notes,
            format: 'vma.zst',
            config: { ...vm.config },
          })
        },
        { vm, lock: 'backup' },
      )
    })

    r('GET', '/nodes/{node}/storage', (req) => {
      const node = req.path.node as string
      this.node(node)
      return this.storages
        .filter((s) => s.shared || s.node === node)
        .filter((s) => !req.params.content || s.content.includes(req.params.content))
        .filter((s) => !req.params.storage || s.id === req.params.storage)
        .map((s) => ({
          storage: s.id,
          type: s.type,
          content: s.content.join(','),
          shared: this.flag(s.shared),
          active: 1,
          enabled: 1,
          total: s.totalBytes,
          used: this.usedBytes(s),
          avail: s.totalBytes - this.usedBytes(s),
        }))
    })

    r('GET', '/nodes/{node}/storage/{storage}/content', (req) => {
      const node = req.path.node as string
      const store =
        this.storage(node, req.path.storage as string) ?? fail(`storage '${req.path.storage}' does not exist`)
      return [...store.volumes.values()]
        .filter((v) => !req.params.content || v.content === req.params.content)
        .filter((v) => req.params.vmid === undefined || v.vmid === Number(req.params.vmid))
        .map((v) => ({
          volid: v.volid,
          content: v.content,
          format: v.format,
          size: v.size,
          ctime: Math.floor(v.ctime),
          ...(v.vmid !== undefined ? { vmid: v.vmid } : {}),
          ...(v.notes !== undefined ? { notes: v.notes } : {}),
        }))
    })

    r('DELETE', '/nodes/{node}/storage/{storage}/content/{volume}', (req) => {
      const node = req.path.node as string
      const volid = req.path.volume as string
      const storeId = req.path.storage ?? volid.split(':')[0]
      const store = this.storage(node, storeId as string) ?? fail(`storage '${storeId}' does not exist`)
      if (!store.volumes.has(volid)) fail(`volume '${volid}' does not exist`)
      const upid = this.startTask(node, 'imgdel', volid.replace(/[:/]/g, '_'), req.user, () => {
        store.volumes.delete(volid)
      })
      return req.params.delay !== undefined ? null : upid
    })

    // Tasks
    r('GET', '/nodes/{node}/tasks/{upid}/status', (req) => {
      const task = this.task(req.path.upid as string)
      const u = parseUpid(task.upid)
      return {
        upid: task.upid,
        node: task.node,
        pid: u.pid,
        pstart: u.pstart,
        starttime: task.starttime,
        type: task.type,
        id: task.id,
        user: task.user,
        status: task.status,
        ...(task.status === 'stopped' ? { exitstatus: task.exitstatus } : {}),
      }
    })
    r('GET', '/nodes/{node}/tasks/{upid}/log', (req) => {
      const task = this.task(req.path.upid as string)
      const start = Number(req.params.start ?? 0)
      const limit = Number(req.params.limit ?? 50)
      const lines = task.log.map((t, i) => ({ n: i + 1, t }))
      return limit === 0 ? lines.slice(start) : lines.slice(start, start + limit)
    })
    r('DELETE', '/nodes/{node}/tasks/{upid}', (req) => {
      const task = this.task(req.path.upid as string)
      if (task.status === 'running') {
        if (task.timer) clearTimeout(task.timer)
        task.status = 'stopped'
        task.exitstatus = 'interrupted by signal'
      }
      return null
    })
  }

  private task(upid: string): SimTask {
    try {
      parseUpid(upid)
    } catch {
      paramError({ upid: 'unable to parse worker upid' })
    }
    return this.tasks.get(upid) ?? paramError({ upid: 'no such task' })
  }

  private findVolume(volid: string): SimVolume | undefined {
    for (const s of this.storages) {
      const v = s.volumes.get(volid)
      if (v) return v
    }
    return undefined
  }

  private cloudinitValues(vm: SimVm): Record<string, string> {
    const out: Record<string, string> = {}
    for (const [k, v] of Object.entries(vm.config)) {
      if (/^(ciuser|cipassword|sshkeys|nameserver|searchdomain|ipconfig\d+|citype)$/.test(k)) out[k] = v
    }
    return out
  }

  private resourceRow(vm: SimVm): Record<string, unknown> {
    const maxmem = Number(vm.config.memory ?? 512) * 1024 ** 2
    const maxdisk = this.volumesOf(vm.config).reduce((sum, v) => sum + (this.volumeOf(vm, v)?.size ?? 0), 0)
    const running = vm.status === 'running'
    const row: Record<string, unknown> = {
      id: `qemu/${vm.vmid}`,
      type: 'qemu',
      node: vm.node,
      vmid: vm.vmid,
      name: vm.config.name ?? `VM ${vm.vmid}`,
      status: vm.status,
      template: this.flag(vm.template),
      cpu: running ? vm.usage.cpu : 0,
      maxcpu: Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1),
      mem: running ? guestMemoryInUse(vm) : 0,
      maxmem,
      disk: 0,
      maxdisk,
      netin: running ? vm.usage.netinRate * 60 : 0,
      netout: running ? vm.usage.netoutRate * 60 : 0,
      diskread: 0,
      diskwrite: 0,
      uptime: running && vm.startedAt ? Math.floor((this.now() - vm.startedAt) / 1000) : 0,
    }
    if (vm.config.tags) row.tags = vm.config.tags
    if (vm.lock) row.lock = vm.lock
    return row
  }

  /**
   * A node's used memory as PVE reports it: what the host uses (pve-manager PVE/API2/Nodes.pm
   * `status` reads /proc/meminfo; /cluster/resources carries pvestatd's copy of the same), i.e. the
   * host's own share plus what running guests hold — not the configured memory of every VM. Stopped
   * VMs and templates use none.
   */
  usedMemory(node: string): number {
    let used = HOST_BASE_MEMORY
    for (const vm of this.vms.values()) {
      if (vm.node === node && vm.status === 'running') used += guestMemoryInUse(vm)
    }
    return used
  }

  private usedBytes(store: SimStorage): number {
    let used = 0
    for (const v of store.volumes.values()) used += v.size
    return used
  }

  /** VMs whose tags contain `tag`. */
  vmsTagged(tag: string): SimVm[] {
    return [...this.vms.values()].filter((vm) => (vm.config.tags ?? '').split(/[;,\s]+/).includes(tag))
  }
}

function sizeText(bytes: number): string {
  for (const [unit, size] of [
    ['T', 1024 ** 4],
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Starts a simulator on 127.0.0.1:0 with a fresh certificate. */
export async function startProxmoxSimulator(
  options: ProxmoxSimulatorOptions = {},
): Promise<ProxmoxSimulator> {
  return new ProxmoxSimulator(options).start()
}
