import {
  CapacityError,
  CommandError,
  definePipeline,
  isPanelkitError,
  type StepOutcome,
  ValidationError,
} from '@panelkit/core'
import { diskLimitsOf, parseDrive, parseSize, sameNet, toBoolean, toNumber, updateNet } from '../encoding.ts'
import { ENDPOINTS } from '../endpoints/catalog.ts'
import type { VmConfig } from '../endpoints/types.ts'
import { isPveFailure, PveFailureKind } from '../errors.ts'
import {
  ADDITIONAL_DISK_KEY,
  additionalDiskLimits,
  applyAdditionalDisk,
  applyAdditionalDiskIo,
  applyAdditionalDiskSize,
  applyCloudinit,
  applyCpuRam,
  applyFirewall,
  applyNetwork,
  applySystemDiskIo,
  applySystemDiskSize,
  readConfig,
  systemDiskKey,
  systemDiskLimits,
  wantedCpuRam,
  wantedNet,
} from './package-steps.ts'
import type { IpLease } from './stores.ts'
import {
  descriptionFor,
  ensureRunning,
  ensureStopped,
  type KvmRuntime,
  listVms,
  locateVm,
  serviceIdFromDescription,
  tagsFor,
  tagsOf,
  vmStatus,
  waitUnlocked,
} from './vm.ts'

/** What a deploy remembers between steps and across resumes (persisted in the checkpoint). */
export interface DeployData extends Record<string, unknown> {
  targetNode?: string
  templateNode?: string
  templateVmid?: number
  vmid?: number
  /** The node the VM is on now. */
  node?: string
  leases?: IpLease[]
  mac?: string
  dns?: string
}

type Outcome = StepOutcome<DeployData>

// ---- shared steps ------------------------------------------------------------------------------

/** Finds the template by VMID or name: its node and id. */
export async function resolveTemplate(rt: KvmRuntime, ref: string): Promise<{ vmid: number; node: string }> {
  const vms = await listVms(rt.client, rt.signal)
  const asId = toNumber(ref)
  const template = vms.find((vm) => vm.template && (vm.vmid === asId || vm.name === ref))
  if (!template) {
    throw new ValidationError(`No template ${ref} on the cluster`, [
      { path: 'service.settings.template', message: `no template ${ref} on the cluster` },
    ])
  }
  return { vmid: template.vmid, node: template.node }
}

/**
 * Picks the node with the most free memory that fits the package (CPU, RAM and storage); `prefer`
 * (the template's node, for linked clones, which cannot leave it) wins whenever it fits.
 */
export async function placeVm(rt: KvmRuntime, prefer?: string): Promise<string> {
  const s = rt.settings
  const rows = await rt.client.api.clusterResources({}, { signal: rt.signal })
  const needMem = s.memoryMb * 1024 ** 2
  const needDisk = (s.diskGb + s.additionalDiskGb) * 1024 ** 3
  const reasons: string[] = []
  const fits: { node: string; free: number }[] = []
  for (const row of rows.filter((r) => r.type === 'node')) {
    const node = row.node ?? ''
    if (s.node !== 'auto' && node !== s.node) continue
    if (row.status !== 'online') {
      reasons.push(`${node}: ${row.status ?? 'offline'}`)
      continue
    }
    const freeMem = (toNumber(row.maxmem) ?? 0) - (toNumber(row.mem) ?? 0)
    const cpus = toNumber(row.maxcpu) ?? 0
    const store = rows.find((r) => r.type === 'storage' && r.node === node && r.storage === s.storage)
    const freeDisk = store ? (toNumber(store.maxdisk) ?? 0) - (toNumber(store.disk) ?? 0) : -1
    if (freeMem < needMem)
      reasons.push(`${node}: ${Math.floor(freeMem / 1024 ** 2)} MiB free memory, needs ${s.memoryMb}`)
    else if (cpus < s.cores * s.sockets) reasons.push(`${node}: ${cpus} CPUs, needs ${s.cores * s.sockets}`)
    else if (!store) reasons.push(`${node}: no storage ${s.storage}`)
    else if (freeDisk < needDisk)
      reasons.push(
        `${node}: ${Math.floor(freeDisk / 1024 ** 3)} GiB free on ${s.storage}, needs ${needDisk / 1024 ** 3}`,
      )
    else fits.push({ node, free: freeMem })
  }
  if (s.node !== 'auto' && !rows.some((r) => r.type === 'node' && r.node === s.node)) {
    throw new ValidationError(`Node ${s.node} is not in the cluster`, [
      { path: 'service.settings.node', message: 'is not in the cluster' },
    ])
  }
  if (fits.length === 0)
    throw new CapacityError(`No node fits the package: ${reasons.join('; ') || 'no online node'}`, {
      retryable: false,
    })
  if (prefer !== undefined && fits.some((f) => f.node === prefer)) return prefer
  // Most free memory first; ties broken at random so parallel deploys spread out.
  fits.sort((a, b) => b.free - a.free || Math.random() - 0.5)
  return (fits[0] as { node: string }).node
}

/**
 * A VMID for the service that nobody else will use: the cluster's suggestion, claimed in the shared
 * reservation store (which settles races between processes), then confirmed free by the cluster.
 */
export async function allocateVmid(rt: KvmRuntime): Promise<number> {
  const held = await rt.stores.vmids.reservedFor(rt.serviceId)
  if (held !== undefined) return held
  let candidate = await rt.client.nextId(undefined, { signal: rt.signal })
  if (rt.dryRun) return candidate
  for (let attempts = 0; attempts < 1000; attempts++, candidate++) {
    if (!(await rt.stores.vmids.reserve(candidate, rt.serviceId))) continue
    try {
      await rt.client.nextId(candidate, { signal: rt.signal })
      return candidate
    } catch (error) {
      if (isPanelkitError(error) && (error as { status?: number }).status === 400) {
        await rt.stores.vmids.release(candidate, rt.serviceId)
        continue
      }
      await rt.stores.vmids.release(candidate, rt.serviceId)
      throw error
    }
  }
  throw new CapacityError('No free VMID found after 1000 attempts')
}

async function isOurs(rt: KvmRuntime, vmid: number): Promise<{ node: string } | false | undefined> {
  const vm = await locateVm(rt.client, vmid, rt.signal)
  if (!vm) return undefined
  const config = await readConfig(rt, vm.node, vmid)
  return serviceIdFromDescription(config.description) === rt.serviceId ? { node: vm.node } : false
}

/**
 * The clone's last write: the service's tags. A clone found already made (its answer lost, or the run
 * stopped right after it) may still lack them, so they are checked and written whichever way it got here.
 */
async function tagClone(rt: KvmRuntime, node: string, vmid: number, known?: VmConfig): Promise<void> {
  const config = known ?? (await readConfig(rt, node, vmid))
  const have = tagsOf(config.tags)
  const want = tagsOf(tagsFor(rt.serviceId))
  if (want.every((t) => have.includes(t))) return
  await rt.client.run(
    ENDPOINTS.vmConfigUpdate,
    { node, vmid, tags: tagsFor(rt.serviceId) },
    { signal: rt.signal },
  )
}

/** Clones the template into a reserved VMID; a clone that already happened (ours) counts as done. */
export async function cloneStep(rt: KvmRuntime, data: DeployData, fixedVmid?: number): Promise<Outcome> {
  const templateVmid = data.templateVmid as number
  const templateNode = data.templateNode as string
  for (let attempt = 0; attempt < 20; attempt++) {
    const vmid = fixedVmid ?? (await allocateVmid(rt))
    if (!rt.dryRun) {
      const existing = await isOurs(rt, vmid)
      if (existing) {
        // An earlier attempt cloned it (its answer may have been lost): wait for the clone to finish.
        rt.onCloneStarted?.({ vmid, node: existing.node })
        await waitUnlocked(rt.client, existing.node, vmid, rt.signal)
        await tagClone(rt, existing.node, vmid)
        return { status: 'done', note: `VM ${vmid} already cloned`, data: { vmid, node: existing.node } }
      }
      if (existing === false) {
        if (fixedVmid !== undefined) throw new CommandError(`VMID ${vmid} is taken by another VM`)
        await rt.stores.vmids.release(vmid, rt.serviceId)
        continue
      }
    }
    // A linked clone stays on the template's node: PVE refuses to migrate a volume that is a clone
    // of a base on local storage (qemu-server QemuMigrate.pm: "can't migrate … as it's a clone of
    // …"). When the VM belongs on another node, the clone is full.
    const full =
      !rt.settings.linkedClone || (data.targetNode !== undefined && data.targetNode !== templateNode)
    try {
      const params = {
        node: templateNode,
        vmid: templateVmid,
        newid: vmid,
        name: rt.hostname,
        description: descriptionFor(rt.serviceId, rt.clientId),
        full,
        ...(full ? { storage: rt.settings.storage } : {}),
      }
      const upid = await rt.client.call(ENDPOINTS.vmClone, params, { signal: rt.signal })
      rt.onCloneStarted?.({ vmid, node: templateNode })
      await rt.client.waitForTask(upid, { signal: rt.signal })
      await tagClone(rt, templateNode, vmid, {})
      const note =
        rt.settings.linkedClone && full
          ? `full clone: the VM belongs on ${data.targetNode}, the template is on ${templateNode}`
          : undefined
      return { status: 'done', ...(note ? { note } : {}), data: { vmid, node: templateNode } }
    } catch (error) {
      if (isPveFailure(error, PveFailureKind.EXISTS)) {
        const owner = await isOurs(rt, vmid)
        if (owner) {
          rt.onCloneStarted?.({ vmid, node: owner.node })
          await waitUnlocked(rt.client, owner.node, vmid, rt.signal)
          await tagClone(rt, owner.node, vmid)
          return { status: 'done', note: `VM ${vmid} already cloned`, data: { vmid, node: owner.node } }
        }
        if (fixedVmid !== undefined) throw error
        // Someone outside the reservation store took the id: pick another.
        await rt.stores.vmids.release(vmid, rt.serviceId)
        continue
      }
      if (isPveFailure(error, PveFailureKind.LOCK) && attempt < 19) {
        // A failed clone task leaves nothing behind; a storage lock timeout is worth another try.
        continue
      }
      throw error
    }
  }
  throw new CommandError('Could not clone after 20 attempts (VMIDs kept being taken)', { retryable: true })
}

export async function migrateStep(rt: KvmRuntime, data: DeployData): Promise<Outcome> {
  const vmid = data.vmid as number
  const target = data.targetNode as string
  const where = rt.dryRun ? { node: data.node as string } : await locateVm(rt.client, vmid, rt.signal)
  if (!where) throw new CommandError(`VM ${vmid} vanished before migration`, { retryable: false })
  if (where.node === target)
    return { status: 'skipped', reason: 'already on the target node', data: { node: target } }
  if (!rt.dryRun) await waitUnlocked(rt.client, where.node, vmid, rt.signal)
  await rt.client.run(
    ENDPOINTS.vmMigrate,
    { node: where.node, vmid, target, 'with-local-disks': true, targetstorage: rt.settings.storage },
    { signal: rt.signal },
  )
  return { status: 'done', data: { node: target } }
}

function leasesOf(data: DeployData): IpLease[] {
  return (data.leases ?? []) as IpLease[]
}

/** Reads under dry-run when the VM does not exist yet: the template stands in for it. */
/** Under dry-run the additional disk was never created, so its size and I/O steps have nothing to change. */
function onExistingAdditionalDisk(rt: KvmRuntime, apply: () => Promise<Outcome>): Promise<Outcome> {
  if (rt.dryRun && rt.settings.additionalDiskGb > 0) {
    return Promise.resolve({ status: 'skipped', reason: 'dry-run: the disk does not exist yet' })
  }
  return apply()
}

function vmRef(rt: KvmRuntime, data: DeployData): { node: string; vmid: number } {
  if (rt.dryRun && data.vmid !== undefined && data.templateVmid !== undefined) {
    return { node: data.templateNode as string, vmid: data.templateVmid }
  }
  return { node: data.node as string, vmid: data.vmid as number }
}

const packageSteps = [
  {
    name: 'cpu-ram',
    label: 'Set CPU & RAM',
    state: 'set_cpu_ram',
    run: (rt: KvmRuntime, d: DeployData) => applyCpuRam(rt, vmRef(rt, d).node, vmRef(rt, d).vmid),
  },
  {
    name: 'system-disk-size',
    label: 'Resize system disk',
    state: 'set_system_disk_size',
    run: (rt: KvmRuntime, d: DeployData) => applySystemDiskSize(rt, vmRef(rt, d).node, vmRef(rt, d).vmid),
  },
  {
    name: 'system-disk-io',
    label: 'Set system disk I/O',
    state: 'set_system_disk_bandwidth',
    run: (rt: KvmRuntime, d: DeployData) => applySystemDiskIo(rt, vmRef(rt, d).node, vmRef(rt, d).vmid),
  },
  {
    name: 'additional-disk',
    label: 'Create additional disk',
    state: 'set_created_additional_disk',
    run: (rt: KvmRuntime, d: DeployData) => applyAdditionalDisk(rt, vmRef(rt, d).node, vmRef(rt, d).vmid),
  },
  {
    name: 'additional-disk-size',
    label: 'Resize additional disk',
    state: 'set_additional_disk_size',
    run: (rt: KvmRuntime, d: DeployData) =>
      onExistingAdditionalDisk(rt, () => applyAdditionalDiskSize(rt, vmRef(rt, d).node, vmRef(rt, d).vmid)),
  },
  {
    name: 'additional-disk-io',
    label: 'Set additional disk I/O',
    state: 'set_additional_disk_bandwidth',
    run: (rt: KvmRuntime, d: DeployData) =>
      onExistingAdditionalDisk(rt, () => applyAdditionalDiskIo(rt, vmRef(rt, d).node, vmRef(rt, d).vmid)),
  },
  {
    name: 'network',
    label: 'Configure network',
    state: 'set_network',
    run: (rt: KvmRuntime, d: DeployData) =>
      applyNetwork(rt, vmRef(rt, d).node, vmRef(rt, d).vmid, d.mac) as Promise<Outcome>,
  },
  {
    name: 'firewall',
    label: 'Configure firewall',
    state: 'set_firewall',
    run: (rt: KvmRuntime, d: DeployData) =>
      rt.dryRun
        ? Promise.resolve<Outcome>({ status: 'skipped', reason: 'dry-run: the VM does not exist yet' })
        : applyFirewall(rt, vmRef(rt, d).node, vmRef(rt, d).vmid, leasesOf(d)),
  },
  {
    name: 'cloud-init',
    label: 'Configure cloud-init',
    state: 'set_cloudinit',
    run: (rt: KvmRuntime, d: DeployData) =>
      applyCloudinit(rt, vmRef(rt, d).node, vmRef(rt, d).vmid, leasesOf(d)),
  },
] as const

const startStep = {
  name: 'start',
  label: 'Start VM',
  state: 'starting',
  async run({ data, context: rt }: { data: Readonly<DeployData>; context: KvmRuntime }): Promise<Outcome> {
    if (rt.dryRun) {
      await rt.client.run(
        ENDPOINTS.vmStart,
        { node: data.node as string, vmid: data.vmid as number },
        { signal: rt.signal },
      )
      return { status: 'done' }
    }
    let started: boolean
    try {
      started = await ensureRunning(rt.client, data.node as string, data.vmid as number, rt.signal)
    } catch (error) {
      // A VM that does not come up is usually transient (memory pressure, a storage hiccup): retry later.
      if (isPanelkitError(error) && error.kind === 'COMMAND') {
        throw new CommandError(`VM failed to start: ${error.message}`, { cause: error, retryable: true })
      }
      throw error
    }
    return started ? { status: 'done' } : { status: 'skipped', reason: 'already running' }
  },
}

const verifyStep = {
  name: 'verify',
  label: 'Verify running + notify',
  state: 'ready',
  async run({ data, context: rt }: { data: Readonly<DeployData>; context: KvmRuntime }): Promise<Outcome> {
    const node = data.node as string
    const vmid = data.vmid as number
    if (!rt.dryRun) {
      const status = await vmStatus(rt.client, node, vmid, rt.signal)
      if (status !== 'running')
        throw new CommandError(`VM failed to start (status: ${status})`, { retryable: true })
    }
    const ips = leasesOf(data).map((l) => l.address)
    if (rt.notify && !rt.dryRun) {
      try {
        await rt.notify({
          serviceId: rt.serviceId,
          vmid,
          node,
          hostname: rt.hostname,
          ips,
          username: rt.ciUser,
        })
      } catch (error) {
        return { status: 'done', note: `notify hook failed: ${(error as Error).message}` }
      }
    }
    return { status: 'done' }
  },
}

function asStep(step: (typeof packageSteps)[number]) {
  return {
    name: step.name,
    label: step.label,
    state: step.state,
    run: ({ data, context }: { data: Readonly<DeployData>; context: KvmRuntime }) =>
      step.run(context, data as DeployData),
  }
}

// ---- deploy ------------------------------------------------------------------------------------

export const deployPipeline = definePipeline<DeployData, KvmRuntime>({
  name: 'proxmox-deploy',
  title: 'Deploy',
  initialState: 'creation',
  steps: [
    {
      name: 'place',
      label: 'Choose target node',
      state: 'placed',
      async run({ data, context: rt }) {
        if (data.targetNode && data.templateVmid !== undefined)
          return { status: 'skipped', reason: `already placed on ${data.targetNode}` }
        const template = await resolveTemplate(rt, rt.settings.template)
        const targetNode = await placeVm(rt, rt.settings.linkedClone ? template.node : undefined)
        return {
          status: 'done',
          note: `on ${targetNode}`,
          data: { targetNode, templateNode: template.node, templateVmid: template.vmid },
        }
      },
    },
    {
      name: 'ip',
      label: 'Allocate IP',
      state: 'set_ip',
      async run({ context: rt }) {
        const pool = rt.settings.ipPool
        if (!pool) return { status: 'skipped', reason: 'DHCP (no IP pool)' }
        const families: (4 | 6)[] = rt.settings.ipv6 ? [4, 6] : [4]
        const leases: IpLease[] = []
        for (const family of families) {
          const lease = rt.dryRun
            ? await rt.stores.ipPool.preview(pool, family)
            : await rt.stores.ipPool.allocate(pool, rt.serviceId, family)
          if (!lease) throw new CapacityError(`IP pool ${pool} has no free IPv${family} address`)
          leases.push(lease)
        }
        return { status: 'done', note: leases.map((l) => l.address).join(', '), data: { leases } }
      },
    },
    {
      name: 'dns',
      label: 'Set DNS records',
      state: 'set_dns',
      async run({ data, context: rt }) {
        const zone = rt.settings.dnsZone
        if (!zone || !rt.stores.dns) return { status: 'skipped', reason: 'no DNS zone' }
        if (rt.dryRun) return { status: 'skipped', reason: 'dry-run' }
        const fqdn = `${rt.hostname}.${zone}`
        const records = leasesOf(data).flatMap((l) => [
          { name: fqdn, type: l.family === 4 ? ('A' as const) : ('AAAA' as const), value: l.address },
          { name: l.address, type: 'PTR' as const, value: fqdn },
        ])
        try {
          await rt.stores.dns.upsert(zone, records)
          return { status: 'done', data: { dns: 'ok' } }
        } catch (error) {
          // DNS never blocks a deploy: note it and carry on.
          return {
            status: 'done',
            note: `DNS failed (non-blocking): ${(error as Error).message}`,
            data: { dns: 'failed' },
          }
        }
      },
    },
    {
      name: 'clone',
      label: 'Clone from template',
      state: 'clone',
      run: ({ data, context: rt }) => cloneStep(rt, data as DeployData),
    },
    {
      name: 'migrate',
      label: 'Migrate to target node',
      state: 'migrated',
      run: ({ data, context: rt }) => migrateStep(rt, data as DeployData),
    },
    ...packageSteps.map(asStep),
    startStep,
    verifyStep,
  ],
})

// ---- change package ----------------------------------------------------------------------------

export interface ChangePackageData extends DeployData {
  wasRunning?: boolean
  pending?: string[]
}

/** Which package aspects differ from the VM right now (what the stop must make room for). */
async function pendingChanges(rt: KvmRuntime, node: string, vmid: number): Promise<string[]> {
  const config = await readConfig(rt, node, vmid)
  const out: string[] = []
  const want = wantedCpuRam(rt.settings)
  const memory = Number(
    String(config.memory ?? '512')
      .replace(/^current=/, '')
      .split(',')[0],
  )
  if (
    Number(config.sockets ?? 1) !== want.sockets ||
    Number(config.cores ?? 1) !== want.cores ||
    memory !== want.memory
  )
    out.push('cpu-ram')
  const key = systemDiskKey(config)
  const system = String(config[key])
  if (parseSize(parseDrive(system).options.size ?? '0') < rt.settings.diskGb * 1024 ** 3)
    out.push('system-disk-size')
  const limitsDiffer = (value: string, limits: Record<string, number>) => {
    const current = diskLimitsOf(value) as Record<string, number>
    return Object.entries(limits).some(([k, v]) => (current[k] ?? 0) !== v)
  }
  if (limitsDiffer(system, systemDiskLimits(rt.settings))) out.push('system-disk-io')
  const extra = config[ADDITIONAL_DISK_KEY]
  if (rt.settings.additionalDiskGb > 0) {
    if (typeof extra !== 'string') out.push('additional-disk', 'additional-disk-size', 'additional-disk-io')
    else {
      if (parseSize(parseDrive(extra).options.size ?? '0') < rt.settings.additionalDiskGb * 1024 ** 3)
        out.push('additional-disk-size')
      if (limitsDiffer(extra, additionalDiskLimits(rt.settings))) out.push('additional-disk-io')
    }
  }
  // Parsed values, never strings: PVE prints `netN` in its own order (model=MAC, then keys sorted).
  if (
    typeof config.net0 === 'string' &&
    !sameNet(updateNet(config.net0, wantedNet(rt.settings)), config.net0)
  )
    out.push('network')
  return out
}

export const changePackagePipeline = definePipeline<ChangePackageData, KvmRuntime>({
  name: 'proxmox-change-package',
  title: 'ChangePackage',
  initialState: 'change_package',
  steps: [
    {
      name: 'stop',
      label: 'Stop VM',
      state: 'cp_stop',
      async run({ data, context: rt }) {
        const pending = await pendingChanges(rt, data.node as string, data.vmid as number)
        if (pending.length === 0)
          return { status: 'skipped', reason: 'no change', data: { pending, wasRunning: false } }
        const status = await vmStatus(rt.client, data.node as string, data.vmid as number, rt.signal)
        if (status !== 'running')
          return { status: 'skipped', reason: 'already stopped', data: { pending, wasRunning: false } }
        await ensureStopped(rt.client, data.node as string, data.vmid as number, rt.signal)
        return { status: 'done', data: { pending, wasRunning: true } }
      },
    },
    ...packageSteps
      .filter((s) => s.name !== 'cloud-init')
      .map((step) => ({
        name: step.name,
        label: step.label,
        state: `cp_${step.state.replace(/^set_/, '')}`,
        run: ({ data, context }: { data: Readonly<ChangePackageData>; context: KvmRuntime }) => {
          if (step.name === 'firewall')
            return applyFirewall(context, data.node as string, data.vmid as number, leasesOf(data))
          return step.run(context, data as DeployData)
        },
      })),
    {
      name: 'start',
      label: 'Start VM',
      state: 'ready',
      async run({ data, context: rt }) {
        if (!data.wasRunning) return { status: 'skipped', reason: 'was not running' }
        await ensureRunning(rt.client, data.node as string, data.vmid as number, rt.signal)
        const status = await vmStatus(rt.client, data.node as string, data.vmid as number, rt.signal)
        if (status !== 'running')
          throw new CommandError(`VM failed to start (status: ${status})`, { retryable: true })
        return { status: 'done' }
      },
    },
  ],
})

// ---- reinstall ---------------------------------------------------------------------------------

export const reinstallPipeline = definePipeline<DeployData, KvmRuntime>({
  name: 'proxmox-reinstall',
  title: 'Reinstall',
  initialState: 'reinstall',
  steps: [
    {
      name: 'delete-snapshots',
      label: 'Delete snapshots',
      state: 'snapshots_deleted',
      async run({ data, context: rt }) {
        const node = data.node as string
        const vmid = data.vmid as number
        if (!(await locateVm(rt.client, vmid, rt.signal)))
          return { status: 'skipped', reason: 'VM already removed' }
        const snaps = (await rt.client.api.snapshotList({ node, vmid }, { signal: rt.signal })).filter(
          (s) => s.name !== 'current',
        )
        if (snaps.length === 0) return { status: 'skipped', reason: 'no snapshots' }
        for (const snap of snaps.reverse()) {
          await rt.client.run(
            ENDPOINTS.snapshotDelete,
            { node, vmid, snapname: snap.name },
            { signal: rt.signal },
          )
        }
        return { status: 'done', note: `${snaps.length} deleted; backups kept` }
      },
    },
    {
      name: 'remove',
      label: 'Remove VM',
      state: 'removed',
      async run({ data, context: rt }) {
        const vmid = data.vmid as number
        const where = await locateVm(rt.client, vmid, rt.signal)
        if (!where) return { status: 'skipped', reason: 'already removed' }
        const config = await readConfig(rt, where.node, vmid)
        if (serviceIdFromDescription(config.description) !== rt.serviceId) {
          throw new CommandError(
            `VM ${vmid} does not belong to service ${rt.serviceId}; refusing to remove it`,
          )
        }
        await ensureStopped(rt.client, where.node, vmid, rt.signal, 'stop')
        await rt.client.run(
          ENDPOINTS.vmDestroy,
          { node: where.node, vmid, purge: true, 'destroy-unreferenced-disks': true },
          { signal: rt.signal },
        )
        return { status: 'done' }
      },
    },
    {
      name: 'place',
      label: 'Choose target node',
      state: 'placed',
      async run({ data, context: rt }) {
        const template = await resolveTemplate(rt, rt.settings.template)
        return {
          status: 'done',
          data: { targetNode: data.node as string, templateNode: template.node, templateVmid: template.vmid },
        }
      },
    },
    {
      name: 'clone',
      label: 'Clone from template',
      state: 'clone',
      run: ({ data, context: rt }) => cloneStep(rt, data as DeployData, data.vmid as number),
    },
    {
      name: 'migrate',
      label: 'Migrate to target node',
      state: 'migrated',
      run: ({ data, context: rt }) => migrateStep(rt, data as DeployData),
    },
    ...packageSteps.map(asStep),
    startStep,
    verifyStep,
  ],
})

export function isTemplateRow(row: { template?: unknown }): boolean {
  return toBoolean(row.template)
}
