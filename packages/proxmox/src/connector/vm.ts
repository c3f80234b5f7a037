import { ConflictError, NotFoundError, sleep, TimeoutError, ValidationError } from '@panelkit/core'
import type { ProxmoxClient } from '../client.ts'
import { sshPublicKeyProblem, toBoolean, toNumber } from '../encoding.ts'
import { ENDPOINTS } from '../endpoints/catalog.ts'
import type { ClusterResource, VmConfig } from '../endpoints/types.ts'
import { isPveFailure, PveFailureKind } from '../errors.ts'
import type { KvmSettings } from './settings.ts'
import type { DnsProvider, IpLease, IpPool, VmidReservations } from './stores.ts'

/** How a VM is recognised as ours: a `panelkit` tag, a per-service tag, and the service id in the description. */
export const MANAGED_TAG = 'panelkit'
export const SUSPENDED_TAG = 'pk-suspended'
const MARKER = 'panelkit-service:'

export function serviceTag(serviceId: string): string {
  return `pk-${serviceId.toLowerCase().replace(/[^a-z0-9_+.-]/g, '_')}`
}

/**
 * The VM name: one DNS label of at most 63 characters. PVE's `name` has format `dns-name`, which must
 * not start or end with `-` (pve-common `src/PVE/JSONSchema.pm` `pve_verify_dns_name`), so dashes are
 * trimmed after the cut as well as before.
 */
export function hostnameFor(prefix: string, clientId: string, serviceId: string): string {
  const label = `${prefix}-${clientId}-${serviceId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
  return label.slice(0, 63).replace(/-+$/, '')
}

/**
 * Refuses, before anything is deployed, SSH keys PVE would refuse at the cloud-init step (it checks
 * each line with `ssh-keygen -l`: pve-common `src/PVE/Tools.pm` `validate_ssh_public_keys`), naming
 * the bad key by its position, type and comment.
 */
export function checkSshKeys(text: string | undefined): void {
  if (!text) return
  const lines = text.split(/\r?\n/).map((l) => l.trim())
  const issues: { path: string; message: string }[] = []
  lines.forEach((line, i) => {
    if (line === '') return
    const problem = sshPublicKeyProblem(line)
    if (problem === undefined) return
    const fields = line.split(/\s+/)
    const label = [fields[0], fields.length > 2 ? fields.slice(2).join(' ') : undefined]
      .filter(Boolean)
      .join(' … ')
      .slice(0, 80)
    issues.push({ path: 'service.customFields.sshkeys', message: `line ${i + 1} (${label}): ${problem}` })
  })
  if (issues.length > 0)
    throw new ValidationError(
      `SSH key not accepted by Proxmox: ${issues.map((x) => x.message).join('; ')}`,
      issues,
    )
}

export function descriptionFor(serviceId: string, clientId: string): string {
  return `Managed by panelkit; do not edit the lines below.\n${MARKER} ${serviceId}\npanelkit-client: ${clientId}\n`
}

export function serviceIdFromDescription(description: unknown): string | undefined {
  if (typeof description !== 'string') return undefined
  const line = description.split('\n').find((l) => l.startsWith(MARKER))
  return line?.slice(MARKER.length).trim() || undefined
}

export function tagsOf(text: unknown): string[] {
  return typeof text === 'string' ? text.split(/[;,\s]+/).filter(Boolean) : []
}

export function tagsFor(serviceId: string, extra: string[] = []): string {
  return [...new Set([MANAGED_TAG, serviceTag(serviceId), ...extra])].join(';')
}

export interface KvmStores {
  ipPool: IpPool
  vmids: VmidReservations
  dns?: DnsProvider
}

/** Everything a pipeline step needs; passed as the pipeline's context (never persisted). */
export interface KvmRuntime {
  client: ProxmoxClient
  settings: KvmSettings
  serviceId: string
  clientId: string
  hostname: string
  password: string | undefined
  ciUser: string
  sshKeys: string | undefined
  stores: KvmStores
  dryRun: boolean
  signal: AbortSignal
  /** Called when a VM is ready (the welcome mail with access details). */
  notify?: (event: ReadyEvent) => Promise<void>
  /**
   * Called once the clone task runs (or an earlier attempt's clone is found): the moment an accepted
   * create may answer, since the VMID, the addresses and the VM itself now exist.
   */
  onCloneStarted?: (clone: { vmid: number; node: string }) => void
}

export interface ReadyEvent {
  serviceId: string
  vmid: number
  node: string
  hostname: string
  ips: string[]
  username: string
}

export interface LocatedVm {
  vmid: number
  node: string
  name: string | undefined
  status: string
  tags: string[]
  lock: string | undefined
  template: boolean
}

function located(r: ClusterResource): LocatedVm {
  return {
    vmid: toNumber(r.vmid) ?? 0,
    node: r.node ?? '',
    name: r.name,
    status: r.status ?? 'unknown',
    tags: tagsOf(r.tags),
    lock: r.lock || undefined,
    template: toBoolean(r.template),
  }
}

export async function listVms(client: ProxmoxClient, signal?: AbortSignal): Promise<LocatedVm[]> {
  const rows = await client.api.clusterResources({ type: 'vm' }, signal ? { signal } : {})
  return rows.filter((r) => r.type === 'qemu').map(located)
}

export async function locateVm(
  client: ProxmoxClient,
  vmid: number,
  signal?: AbortSignal,
): Promise<LocatedVm | undefined> {
  return (await listVms(client, signal)).find((vm) => vm.vmid === vmid)
}

/**
 * The service's VM: a VM whose description names the service. A VM with the service's host name
 * that belongs to someone else is a conflict (the host name is the service's identity on the cluster).
 */
export async function findServiceVm(
  client: ProxmoxClient,
  serviceId: string,
  hostname: string,
  signal?: AbortSignal,
): Promise<(LocatedVm & { config: VmConfig }) | undefined> {
  const tag = serviceTag(serviceId)
  const candidates = (await listVms(client, signal)).filter(
    (vm) => !vm.template && (vm.tags.includes(tag) || vm.name === hostname),
  )
  let foreign: LocatedVm | undefined
  for (const vm of candidates) {
    let config: VmConfig
    try {
      config = await client.api.vmConfig({ node: vm.node, vmid: vm.vmid }, signal ? { signal } : {})
    } catch (error) {
      if (isPveFailure(error, PveFailureKind.MISSING)) continue
      throw error
    }
    const owner = serviceIdFromDescription(config.description)
    if (owner === serviceId) return { ...vm, config }
    if (vm.name === hostname) foreign = vm
  }
  if (foreign) {
    throw new ConflictError(
      `VM ${foreign.vmid} on ${foreign.node} is already named ${hostname} and does not belong to service ${serviceId}`,
      {
        details: { vmid: foreign.vmid, node: foreign.node },
      },
    )
  }
  return undefined
}

export async function requireServiceVm(rt: Pick<KvmRuntime, 'client' | 'serviceId' | 'hostname' | 'signal'>) {
  const vm = await findServiceVm(rt.client, rt.serviceId, rt.hostname, rt.signal)
  if (!vm) throw new NotFoundError(`No VM for service ${rt.serviceId} on this cluster`)
  return vm
}

/** Waits until a VM carries no config lock (a clone or backup still running). */
export async function waitUnlocked(
  client: ProxmoxClient,
  node: string,
  vmid: number,
  signal: AbortSignal,
  timeoutMs = 600_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let delay = 20
  for (;;) {
    const status = await client.api.vmStatus({ node, vmid }, { signal })
    if (!status.lock) return
    if (Date.now() + delay > deadline) throw new TimeoutError(`VM ${vmid} is still locked (${status.lock})`)
    await sleep(delay, signal)
    delay = Math.min(1000, delay * 2)
  }
}

export async function vmStatus(
  client: ProxmoxClient,
  node: string,
  vmid: number,
  signal: AbortSignal,
): Promise<string> {
  return (await client.api.vmStatus({ node, vmid }, { signal })).status
}

/** Stops the VM if it runs; true when it had to. */
export async function ensureStopped(
  client: ProxmoxClient,
  node: string,
  vmid: number,
  signal: AbortSignal,
  /** `shutdown`: ACPI power-off, forced after a minute (the guest keeps its file systems); `stop`: kill. */
  mode: 'shutdown' | 'stop' = 'shutdown',
): Promise<boolean> {
  if ((await vmStatus(client, node, vmid, signal)) !== 'running') return false
  if (mode === 'stop') await client.run(ENDPOINTS.vmStop, { node, vmid }, { signal })
  else await client.run(ENDPOINTS.vmShutdown, { node, vmid, timeout: 60, forceStop: true }, { signal })
  return true
}

/** Starts the VM if it is stopped; true when it had to. */
export async function ensureRunning(
  client: ProxmoxClient,
  node: string,
  vmid: number,
  signal: AbortSignal,
): Promise<boolean> {
  if ((await vmStatus(client, node, vmid, signal)) === 'running') return false
  try {
    await client.run(ENDPOINTS.vmStart, { node, vmid }, { signal })
  } catch (error) {
    if (isPveFailure(error, PveFailureKind.RUNNING)) return false
    throw error
  }
  return true
}

export function leasesText(leases: IpLease[]): string[] {
  return leases.map((l) => l.address)
}
