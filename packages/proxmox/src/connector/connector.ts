import { createHash, randomUUID } from 'node:crypto'
import {
  AbortedError,
  type ActionResult,
  CapacityError,
  CommandError,
  type ConnectorDefinition,
  type CreateResult,
  defineConnector,
  formatPipelineRun,
  formatStepLine,
  NotFoundError,
  type PipelineRun,
  type Server,
  type ServiceOperationContext,
  ValidationError,
} from '@panelkit/core'
import type { Dispatcher } from 'undici'
import { z } from 'zod'
import type { ProxmoxCredentials } from '../auth.ts'
import { createProxmoxClient, type ProxmoxClient, type ProxmoxClientOptions } from '../client.ts'
import { parseDrive, toNumber } from '../encoding.ts'
import { ENDPOINTS } from '../endpoints/catalog.ts'
import type { RrdPoint, VmConfig } from '../endpoints/types.ts'
import type { TlsOptions } from '../http.ts'
import { groupIsos } from './iso.ts'
import { withOptionLoaders } from './option-loaders.ts'
import {
  applyAdditionalDisk,
  applyAdditionalDiskIo,
  applyAdditionalDiskSize,
  applyCpuRam,
  applyDiskStorage,
  applyNetwork,
  applySystemDiskIo,
  applySystemDiskSize,
  readConfig,
  systemDiskKey,
} from './package-steps.ts'
import { changePackagePipeline, type DeployData, deployPipeline, reinstallPipeline } from './pipelines.ts'
import { effectiveSettings, type KvmSettings, kvmSettings } from './settings.ts'
import { MemoryIpPool, MemoryVmidReservations } from './stores.ts'
import {
  checkSshKeys,
  ensureRunning,
  ensureStopped,
  findServiceVm,
  hostnameFor,
  type KvmRuntime,
  type KvmStores,
  listVms,
  MANAGED_TAG,
  type ReadyEvent,
  requireServiceVm,
  SUSPENDED_TAG,
  serviceIdFromDescription,
  tagsOf,
  waitUnlocked,
} from './vm.ts'

export interface ProxmoxKvmConnectorOptions {
  /** Connector id (default `proxmox-kvm`). */
  id?: string
  /** Address pools; the app passes a durable implementation. Default: an empty in-memory pool set. */
  ipPool?: KvmStores['ipPool']
  vmids?: KvmStores['vmids']
  dns?: KvmStores['dns']
  /** Sent for every transport (a shared Agent, a MockAgent); TLS then comes from that dispatcher. */
  dispatcher?: Dispatcher
  /** Client tuning (task polling, lock backoff, timeouts). */
  client?: Pick<
    ProxmoxClientOptions,
    | 'tasks'
    | 'lockRetry'
    | 'networkRetry'
    | 'headersTimeoutMs'
    | 'bodyTimeoutMs'
    | 'connections'
    | 'renewAfterMs'
    | 'warn'
  >
  /** Called when a deploy (or reinstall) reaches ready: the welcome mail with access details. */
  notify?: (event: ReadyEvent) => Promise<void>
  /**
   * `complete` (default): `create` returns when the VM is ready, which suits a job runner such as the
   * provisioner. `accept`: `create` returns as soon as the VMID and addresses are reserved and the clone
   * task runs; the rest of the deploy continues in this process, visible through progress events and
   * the `deployStatus` action. Any later write on the service waits for it (or resumes it after a
   * crash); `terminate` cancels it.
   */
  createMode?: 'complete' | 'accept'
}

/** A deploy that runs on after an accepted `create` returned. */
interface DeployInFlight {
  /** Settles (never rejects) when the run ends, whatever its outcome. */
  done: Promise<void>
  /** Settles once the clone runs (never rejects; may stay pending when the run fails earlier). */
  started: Promise<unknown>
  controller: AbortController
  vmid?: number
  node?: string
}

const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const

interface Resources {
  clients: Map<string, ProxmoxClient>
  deploys: Map<string, DeployInFlight>
  /** Creates of one service in this process run one at a time (the tail of each key's queue). */
  creates: Map<string, Promise<void>>
}

/** Credentials from the server record: an API token when the user names one (`user@realm!id`), else a ticket login. */
/** Where a CD-ROM can sit: the IDE and SATA slots, the usual ones first. */
const CDROM_SLOTS = ['ide2', 'ide3', 'ide0', 'ide1', 'sata0', 'sata1', 'sata2', 'sata3', 'sata4', 'sata5']

/** The VM's CD-ROM drive for ISOs (any `media=cdrom` drive but the cloud-init one), if it has one. */
function cdromSlot(config: VmConfig): string | undefined {
  return CDROM_SLOTS.find((slot) => {
    const value = config[slot]
    if (typeof value !== 'string') return false
    const drive = parseDrive(value)
    return drive.options.media === 'cdrom' && !drive.file.includes('cloudinit')
  })
}

function freeCdromSlot(config: VmConfig): string {
  const slot = CDROM_SLOTS.find((s) => config[s] === undefined)
  if (!slot) throw new CommandError('The VM has no free IDE or SATA slot for a CD-ROM drive')
  return slot
}

/** Whether a change to `key` waits for a restart (`GET …/pending`). */
async function isPending(rt: KvmRuntime, vm: { node: string; vmid: number }, key: string): Promise<boolean> {
  const rows = await rt.client.api.vmPending({ node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
  return rows.some((row) => row.key === key && (row.pending !== undefined || row.delete !== undefined))
}

export function credentialsFor(server: Server): ProxmoxCredentials {
  const username = server.username ?? 'root@pam'
  if (username.includes('!')) {
    const secret = server.accessHash ?? server.password
    if (!secret)
      throw new ValidationError('An API token needs its secret in the password or access hash', [
        { path: 'server.password', message: 'is required' },
      ])
    return { type: 'token', tokenId: username, secret }
  }
  if (!server.password)
    throw new ValidationError('The Proxmox password is missing', [
      { path: 'server.password', message: 'is required' },
    ])
  return {
    type: 'password',
    username: username.includes('@') ? username : `${username}@pam`,
    password: server.password,
  }
}

function baseUrlOf(server: Server): string {
  return `${server.secure === false ? 'http' : 'https'}://${server.hostname}:${server.port ?? 8006}`
}

export function tlsFor(server: Server): TlsOptions {
  const o = server.options
  const tls: TlsOptions = {}
  if (typeof o.fingerprint === 'string' && o.fingerprint) tls.fingerprint = o.fingerprint
  if (typeof o.ca === 'string' && o.ca) tls.ca = o.ca
  if (o.insecure === true || o.insecure === 'true' || o.insecure === '1') tls.insecure = true
  return tls
}

/**
 * The Proxmox KVM product: one service is one VM, deployed by a resumable pipeline and managed with
 * the lifecycle operations plus actions (reinstall, snapshots, backups, ISO, console, power).
 */
export function createProxmoxKvmConnector(
  options: ProxmoxKvmConnectorOptions = {},
): ConnectorDefinition<typeof kvmSettings, Resources> {
  const stores: KvmStores = {
    ipPool: options.ipPool ?? new MemoryIpPool({}),
    vmids: options.vmids ?? new MemoryVmidReservations(),
    ...(options.dns ? { dns: options.dns } : {}),
  }
  const id = options.id ?? 'proxmox-kvm'
  const createMode = options.createMode ?? 'complete'

  function clientFor(ctx: {
    server: Server
    calls: ServiceOperationContext<KvmSettings, Resources>['calls']
    resources: Resources
  }): ProxmoxClient {
    const { server } = ctx
    const credentials = credentialsFor(server)
    const tls = tlsFor(server)
    const baseUrl = baseUrlOf(server)
    const key = createHash('sha256')
      .update(JSON.stringify([baseUrl, credentials, tls]))
      .digest('hex')
    let base = ctx.resources.clients.get(key)
    if (!base) {
      const clientOptions: ProxmoxClientOptions = { baseUrl, credentials, tls, ...options.client }
      if (options.dispatcher) clientOptions.dispatcher = options.dispatcher
      base = createProxmoxClient(clientOptions)
      ctx.resources.clients.set(key, base)
    }
    return base.withRecorder(ctx.calls)
  }

  function runtime(ctx: ServiceOperationContext<KvmSettings, Resources>): KvmRuntime {
    const settings = effectiveSettings(ctx.settings, ctx.service.configOptions)
    const rt: KvmRuntime = {
      client: clientFor(ctx),
      settings,
      serviceId: ctx.service.serviceId,
      clientId: ctx.service.clientId,
      hostname: hostnameFor(settings.hostnamePrefix, ctx.service.clientId, ctx.service.serviceId),
      password: ctx.service.password,
      ciUser: settings.ciUser || ctx.service.username || 'root',
      sshKeys: ctx.service.customFields.sshkeys ?? ctx.service.customFields['SSH keys'],
      stores,
      dryRun: ctx.dryRun,
      signal: ctx.signal,
    }
    if (options.notify) rt.notify = options.notify
    return rt
  }

  const pipelineKey = (ctx: ServiceOperationContext<KvmSettings, Resources>, name: string) =>
    `${id}:${ctx.service.serviceId}:${name}${ctx.dryRun ? ':dry-run' : ''}`

  /**
   * Runs a pipeline with a checkpoint key that fits it. The deploy is keyed by service only: there is
   * one VM per service, so any later job for it must resume that same deploy. Change-package and
   * reinstall use core's key (service, operation and the job's run key), so each job is its own run.
   * A dry-run gets a throw-away key and leaves no checkpoint behind.
   */
  async function runTracked<D extends Record<string, unknown>>(
    ctx: ServiceOperationContext<KvmSettings, Resources>,
    pipeline: Parameters<typeof ctx.runPipeline<D, KvmRuntime>>[0],
    data: D,
    rt: KvmRuntime,
    scope: 'service' | 'job' = 'job',
  ): Promise<PipelineRun<D>> {
    const key = ctx.dryRun
      ? `${pipelineKey(ctx, pipeline.name)}:${randomUUID()}`
      : scope === 'service'
        ? pipelineKey(ctx, pipeline.name)
        : undefined
    try {
      return await ctx.runPipeline(pipeline, { data, context: rt, ...(key ? { key } : {}) })
    } finally {
      if (ctx.dryRun && key) await ctx.checkpoints.delete(key)
    }
  }

  /**
   * Runs (or resumes) the deploy in the background and answers once the clone task runs — or at once
   * when an earlier run got past the clone. A failure before that point is the create's failure.
   */
  async function acceptDeploy(
    ctx: ServiceOperationContext<KvmSettings, Resources>,
    rt: KvmRuntime,
    key: string,
    cloned: { vmid: number; node: string } | undefined,
  ): Promise<{ vmid: number; node: string }> {
    const controller = new AbortController()
    const entry: DeployInFlight = { controller, done: Promise.resolve(), started: Promise.resolve() }
    let onClone: (clone: { vmid: number; node: string }) => void = () => {}
    const started = new Promise<{ vmid: number; node: string }>((resolve) => {
      onClone = (clone) => {
        entry.vmid = clone.vmid
        entry.node = clone.node
        resolve(clone)
      }
    })
    entry.started = started
    if (cloned) onClone(cloned)
    const background: KvmRuntime = {
      ...rt,
      signal: AbortSignal.any([rt.signal, controller.signal]),
      onCloneStarted: onClone,
    }
    const run = runTracked<DeployData>(ctx, deployPipeline, {}, background, 'service')
    entry.done = run.then(
      () => {},
      () => {},
    )
    ctx.resources.deploys.set(key, entry)
    void entry.done.then(() => {
      if (ctx.resources.deploys.get(key) === entry) ctx.resources.deploys.delete(key)
    })
    const first = await Promise.race([started, run])
    if ('vmid' in first) return first
    const data = first.checkpoint.data
    return { vmid: data.vmid as number, node: data.node as string }
  }

  /**
   * Before a write on a service: waits for a deploy still running in this process and, in accept mode,
   * resumes an unfinished one (a crash, or a failed background run) so that nothing races the deploy.
   */
  async function settleDeploy(ctx: ServiceOperationContext<KvmSettings, Resources>): Promise<void> {
    if (ctx.dryRun) return
    const key = pipelineKey(ctx, deployPipeline.name)
    const inFlight = ctx.resources.deploys.get(key)
    if (inFlight) await inFlight.done
    if (createMode !== 'accept') return
    const checkpoint = await ctx.checkpoints.load(key)
    if (checkpoint && !checkpoint.completed)
      await runTracked<DeployData>(ctx, deployPipeline, {}, runtime(ctx), 'service')
  }

  async function owned(ctx: ServiceOperationContext<KvmSettings, Resources>) {
    const rt = runtime(ctx)
    const vm = await requireServiceVm(rt)
    return { rt, vm }
  }

  async function setTags(rt: KvmRuntime, node: string, vmid: number, tags: string[]): Promise<void> {
    await rt.client.run(ENDPOINTS.vmConfigUpdate, { node, vmid, tags: tags.join(';') }, { signal: rt.signal })
  }

  const snapshotName = () => {
    const d = new Date()
    const p = (n: number) => String(n).padStart(2, '0')
    return `pk${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${String(d.getUTCMilliseconds()).padStart(3, '0')}`
  }

  /**
   * Deletes snapshots past the product's lifetime, then the oldest ones until `room` more fit under
   * the limit. Returns the names deleted, oldest first.
   */
  async function pruneSnapshots(rt: KvmRuntime, node: string, vmid: number, room: number): Promise<string[]> {
    const list = (await rt.client.api.snapshotList({ node, vmid }, { signal: rt.signal }))
      .filter((s) => s.name !== 'current')
      .sort((a, b) => (toNumber(a.snaptime) ?? 0) - (toNumber(b.snaptime) ?? 0))
    const cutoff = Date.now() / 1000 - rt.settings.snapshotLifetimeDays * 86400
    const expired = list.filter((s) => (toNumber(s.snaptime) ?? Number.POSITIVE_INFINITY) < cutoff)
    const kept = list.filter((s) => !expired.includes(s))
    const over = Math.max(0, kept.length + room - rt.settings.snapshotLimit)
    const doomed = [...expired, ...kept.slice(0, over)]
    for (const snap of doomed) {
      await rt.client.run(
        ENDPOINTS.snapshotDelete,
        { node, vmid, snapname: snap.name },
        { signal: rt.signal },
      )
    }
    return doomed.map((s) => s.name)
  }

  /** Refuses a volume that is not one of this VM's backups (a client must not touch another VM's). */
  async function requireBackup(
    rt: KvmRuntime,
    vm: { node: string; vmid: number },
    volid: string,
  ): Promise<void> {
    const backups = await backupsOf(rt, vm.node, vm.vmid)
    if (!backups.some((b) => b.volid === volid)) throw new NotFoundError(`No backup ${volid} of this VM`)
  }

  async function backupsOf(rt: KvmRuntime, node: string, vmid: number) {
    const list = await rt.client.api.storageContent(
      { node, storage: rt.settings.backupStorage, content: 'backup', vmid },
      { signal: rt.signal },
    )
    return list.sort((a, b) => (toNumber(a.ctime) ?? 0) - (toNumber(b.ctime) ?? 0))
  }

  /** A backup within the plan's slots: the oldest ones go first to make room. */
  async function takeBackup(
    rt: KvmRuntime,
    node: string,
    vmid: number,
    known?: Awaited<ReturnType<typeof backupsOf>>,
  ): Promise<{ deleted: string[] }> {
    if (rt.settings.backupSlots <= 0) throw new CapacityError('The plan has no backup slots')
    const existing = known ?? (await backupsOf(rt, node, vmid))
    const deleted: string[] = []
    for (const old of existing.slice(0, Math.max(0, existing.length - rt.settings.backupSlots + 1))) {
      await rt.client.run(
        ENDPOINTS.storageDeleteVolume,
        { node, storage: rt.settings.backupStorage, volume: old.volid },
        { signal: rt.signal },
      )
      deleted.push(old.volid)
    }
    await rt.client.run(
      ENDPOINTS.vzdump,
      {
        node,
        vmid: String(vmid),
        storage: rt.settings.backupStorage,
        mode: 'snapshot',
        compress: 'zstd',
        'notes-template': '{{guestname}} (panelkit)',
      },
      { signal: rt.signal },
    )
    return { deleted }
  }

  const vmAction = <P extends z.ZodType>(
    label: string,
    audience: readonly ('admin' | 'client')[],
    access: 'read' | 'write',
    params: P,
    run: (
      rt: KvmRuntime,
      vm: Awaited<ReturnType<typeof requireServiceVm>>,
      params: z.infer<P>,
      ctx: ServiceOperationContext<KvmSettings, Resources>,
    ) => Promise<ActionResult>,
  ) => ({
    label,
    audience,
    access,
    params,
    async run(ctx: ServiceOperationContext<KvmSettings, Resources>, raw: Record<string, unknown>) {
      if (access === 'write') await settleDeploy(ctx)
      const { rt, vm } = await owned(ctx)
      return run(rt, vm, raw as z.infer<P>, ctx)
    },
  })

  const none = z.object({}).strip()
  const snapParam = z.object({
    name: z.string().regex(/^[a-zA-Z][a-zA-Z0-9_-]{0,39}$/, 'must be a snapshot name'),
  })
  const volumeParam = z.object({
    volid: z
      .string()
      .regex(/^[A-Za-z0-9][\w.-]*:[\w./-]+$/, 'must be a volume id')
      .max(255),
  })

  return defineConnector({
    id,
    metadata: {
      displayName: 'Proxmox VE KVM',
      system: 'proxmox',
      description: 'KVM virtual machines on a Proxmox VE cluster, deployed by a resumable pipeline',
      defaultPort: 8006,
      defaultSecurePort: 8006,
    },
    settings: withOptionLoaders(kvmSettings, async (server, calls, use) => {
      const clientOptions: ProxmoxClientOptions = {
        baseUrl: baseUrlOf(server),
        credentials: credentialsFor(server),
        tls: tlsFor(server),
        recorder: calls,
        ...options.client,
      }
      if (options.dispatcher) clientOptions.dispatcher = options.dispatcher
      const client = createProxmoxClient(clientOptions)
      try {
        return await use(client)
      } finally {
        await client.close()
      }
    }),
    secretKeys: ['cipassword', 'PVEAuthCookie', 'CSRFPreventionToken'],
    resources: () => ({
      clients: new Map<string, ProxmoxClient>(),
      deploys: new Map<string, DeployInFlight>(),
      creates: new Map<string, Promise<void>>(),
    }),
    async dispose(resources) {
      const running = [...resources.deploys.values()]
      for (const deploy of running) deploy.controller.abort(new AbortedError('The connector was closed'))
      await Promise.all(running.map((d) => d.done))
      await Promise.all([...resources.clients.values()].map((c) => c.close()))
      resources.clients.clear()
    },
    operations: {
      async create(ctx) {
        // Two creates of one service at once would run two pipelines on one checkpoint: queue them,
        // so the second sees what the first did (a VM, or a deploy in flight) and answers created: false.
        const key = pipelineKey(ctx, deployPipeline.name)
        const prior = ctx.resources.creates.get(key)
        let release: () => void = () => {}
        const mine = new Promise<void>((resolve) => {
          release = resolve
        })
        const tail = (prior ?? Promise.resolve()).then(() => mine)
        ctx.resources.creates.set(key, tail)
        try {
          if (prior) await prior
          return await createOnce()
        } finally {
          release()
          if (ctx.resources.creates.get(key) === tail) ctx.resources.creates.delete(key)
        }

        async function createOnce(): Promise<CreateResult> {
          const rt = runtime(ctx)
          checkSshKeys(rt.sshKeys)
          const accept = createMode === 'accept' && !ctx.dryRun
          const inFlight = accept ? ctx.resources.deploys.get(key) : undefined
          // A create racing the first one's placement waits for its clone (not for the whole deploy).
          if (inFlight && inFlight.vmid === undefined) await Promise.race([inFlight.started, inFlight.done])
          if (inFlight?.vmid !== undefined) {
            // A repeated create while the accepted deploy runs: the same account, not a new one.
            const leases = await stores.ipPool.leases(rt.serviceId)
            return {
              accountId: String(inFlight.vmid),
              created: false,
              username: rt.ciUser,
              serverId: ctx.server.id ?? ctx.server.hostname,
              ips: leases.map((l) => l.address),
              details: { vmid: inFlight.vmid, node: inFlight.node, hostname: rt.hostname, deploy: 'running' },
            }
          }
          if (inFlight) await inFlight.done
          const checkpoint = await ctx.checkpoints.load(key)
          const existing = await findServiceVm(rt.client, rt.serviceId, rt.hostname, rt.signal)
          const unfinished = checkpoint !== undefined && !checkpoint.completed
          if (existing && !unfinished) {
            const leases = await stores.ipPool.leases(rt.serviceId)
            return {
              accountId: String(existing.vmid),
              created: false,
              username: rt.ciUser,
              serverId: ctx.server.id ?? ctx.server.hostname,
              ips: leases.map((l) => l.address),
              details: { vmid: existing.vmid, node: existing.node, hostname: rt.hostname },
            }
          }
          if (accept) {
            const past = checkpoint?.data as DeployData | undefined
            const vm = await acceptDeploy(
              ctx,
              rt,
              key,
              past?.vmid !== undefined && past.node !== undefined
                ? { vmid: past.vmid, node: past.node }
                : undefined,
            )
            const leases = await stores.ipPool.leases(rt.serviceId)
            const running = ctx.resources.deploys.has(key)
            return {
              accountId: String(vm.vmid),
              created: !existing || unfinished,
              username: rt.ciUser,
              serverId: ctx.server.id ?? ctx.server.hostname,
              ips: leases.map((l) => l.address),
              details: {
                vmid: vm.vmid,
                node: vm.node,
                hostname: rt.hostname,
                deploy: running ? 'running' : 'ready',
              },
            }
          }
          const run = await runTracked<DeployData>(ctx, deployPipeline, {}, rt, 'service')
          const data = run.checkpoint.data
          return {
            accountId: String(data.vmid ?? ''),
            // A resumed deploy finishes the account an earlier, failed call started: it is new to the caller.
            created: !existing || unfinished,
            username: rt.ciUser,
            serverId: ctx.server.id ?? ctx.server.hostname,
            ips: (data.leases ?? []).map((l) => l.address),
            details: {
              vmid: data.vmid,
              node: data.node,
              hostname: rt.hostname,
              mac: data.mac,
              log: formatPipelineRun(run, { subject: `service=${rt.serviceId} vm=${data.vmid ?? '?'}` }),
            },
          }
        }
      },

      async suspend(ctx) {
        await settleDeploy(ctx)
        const { rt, vm } = await owned(ctx)
        const tagged = vm.tags.includes(SUSPENDED_TAG)
        if (tagged && vm.status !== 'running') return { changed: false }
        if (!tagged) await setTags(rt, vm.node, vm.vmid, [...vm.tags, SUSPENDED_TAG])
        await ensureStopped(rt.client, vm.node, vm.vmid, rt.signal)
        return { changed: true, details: { vmid: vm.vmid } }
      },

      async unsuspend(ctx) {
        await settleDeploy(ctx)
        const { rt, vm } = await owned(ctx)
        const tagged = vm.tags.includes(SUSPENDED_TAG)
        if (!tagged && vm.status === 'running') return { changed: false }
        if (tagged)
          await setTags(
            rt,
            vm.node,
            vm.vmid,
            vm.tags.filter((t) => t !== SUSPENDED_TAG),
          )
        await ensureRunning(rt.client, vm.node, vm.vmid, rt.signal)
        return { changed: true, details: { vmid: vm.vmid } }
      },

      async terminate(ctx) {
        // A deploy still running here is cancelled rather than awaited: the VM goes anyway.
        const inFlight = ctx.dryRun
          ? undefined
          : ctx.resources.deploys.get(pipelineKey(ctx, deployPipeline.name))
        if (inFlight) {
          inFlight.controller.abort(new AbortedError('The service is being terminated'))
          await inFlight.done
        }
        const rt = runtime(ctx)
        const vm = await findServiceVm(rt.client, rt.serviceId, rt.hostname, rt.signal)
        const leases = await stores.ipPool.leases(rt.serviceId)
        if (vm) {
          // A clone or backup still holding the VM (a cancelled deploy's clone runs on server-side)
          // would refuse the destroy for its whole duration: wait for the lock to go first.
          if (vm.lock && !ctx.dryRun) await waitUnlocked(rt.client, vm.node, vm.vmid, rt.signal)
          await ensureStopped(rt.client, vm.node, vm.vmid, rt.signal, 'stop')
          await rt.client.run(
            ENDPOINTS.vmDestroy,
            { node: vm.node, vmid: vm.vmid, purge: true, 'destroy-unreferenced-disks': true },
            { signal: rt.signal },
          )
        }
        if (ctx.dryRun) return { changed: vm !== undefined }
        let dns: string | undefined
        if (rt.settings.dnsZone && stores.dns) {
          try {
            await stores.dns.remove(rt.settings.dnsZone, `${rt.hostname}.${rt.settings.dnsZone}`)
          } catch (error) {
            dns = `DNS clean-up failed: ${(error as Error).message}`
          }
        }
        await stores.ipPool.release(rt.serviceId)
        const reserved = await stores.vmids.reservedFor(rt.serviceId)
        if (reserved !== undefined) await stores.vmids.release(reserved, rt.serviceId)
        await ctx.checkpoints.delete(pipelineKey(ctx, deployPipeline.name))
        return {
          changed: vm !== undefined,
          details: {
            ...(vm ? { vmid: vm.vmid } : {}),
            released: leases.map((l) => l.address),
            ...(dns ? { dns } : {}),
          },
        }
      },

      async changePassword(ctx) {
        await settleDeploy(ctx)
        const { rt, vm } = await owned(ctx)
        if (!rt.password)
          throw new ValidationError('A new password is required', [
            { path: 'service.password', message: 'is required' },
          ])
        const wasRunning = await ensureStopped(rt.client, vm.node, vm.vmid, rt.signal)
        await rt.client.run(
          ENDPOINTS.vmConfigUpdate,
          { node: vm.node, vmid: vm.vmid, ciuser: rt.ciUser, cipassword: rt.password },
          { signal: rt.signal },
        )
        await rt.client.api.vmCloudinitRegenerate({ node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
        if (wasRunning || !vm.tags.includes(SUSPENDED_TAG))
          await ensureRunning(rt.client, vm.node, vm.vmid, rt.signal)
        return { changed: true, details: { vmid: vm.vmid } }
      },

      async changePackage(ctx) {
        await settleDeploy(ctx)
        const { rt, vm } = await owned(ctx)
        const leases = await stores.ipPool.leases(rt.serviceId)
        const run = await runTracked(ctx, changePackagePipeline, { vmid: vm.vmid, node: vm.node, leases }, rt)
        const applied = run.steps
          .filter((s) => s.outcome === 'success' && s.name !== 'stop' && s.name !== 'start')
          .map((s) => s.name)
        return {
          changed: applied.length > 0,
          applied,
          details: {
            vmid: vm.vmid,
            log: formatPipelineRun(run, { subject: `service=${rt.serviceId} vm=${vm.vmid}` }),
          },
        }
      },

      async usage(ctx) {
        const { rt, vm } = await owned(ctx)
        const rows: RrdPoint[] = await rt.client.api.vmRrdData(
          { node: vm.node, vmid: vm.vmid, timeframe: 'month', cf: 'AVERAGE' },
          { signal: rt.signal },
        )
        const status = await rt.client.api.vmStatus({ node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
        // rrd rates are bytes per second averaged over each step: integrate rate × step for totals.
        const step = rows.length > 1 ? (rows[1] as RrdPoint).time - (rows[0] as RrdPoint).time : 1800
        let netIn = 0
        let netOut = 0
        let cpuSum = 0
        let cpuCount = 0
        for (const row of rows) {
          netIn += (toNumber(row.netin) ?? 0) * step
          netOut += (toNumber(row.netout) ?? 0) * step
          if (row.cpu !== undefined) {
            cpuSum += toNumber(row.cpu) ?? 0
            cpuCount++
          }
        }
        return {
          collectedAt: new Date().toISOString(),
          metrics: [
            {
              name: 'disk',
              value: toNumber(status.maxdisk) ?? 0,
              unit: 'bytes',
              limit: (rt.settings.diskGb + rt.settings.additionalDiskGb) * 1024 ** 3,
            },
            { name: 'network_in', value: Math.round(netIn), unit: 'bytes' },
            { name: 'network_out', value: Math.round(netOut), unit: 'bytes' },
            {
              name: 'cpu',
              value: cpuCount ? Math.round((cpuSum / cpuCount) * 10000) / 100 : 0,
              unit: 'percent',
            },
            {
              name: 'memory',
              value: toNumber(status.mem) ?? 0,
              unit: 'bytes',
              limit: rt.settings.memoryMb * 1024 ** 2,
            },
          ],
        }
      },

      async clientArea(ctx) {
        const { rt, vm } = await owned(ctx)
        const status = await rt.client.api.vmStatus({ node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
        const leases = await stores.ipPool.leases(rt.serviceId)
        const v4 = leases.find((l) => l.family === 4)
        const v6 = leases.find((l) => l.family === 6)
        return {
          fields: [
            {
              key: 'status',
              label: 'Status',
              value: vm.tags.includes(SUSPENDED_TAG) ? 'suspended' : status.status,
            },
            { key: 'hostname', label: 'Host name', value: rt.hostname },
            { key: 'ipv4', label: 'IPv4 address', value: v4?.address ?? null },
            { key: 'ipv6', label: 'IPv6 address', value: v6?.address ?? null },
            { key: 'username', label: 'User', value: rt.ciUser },
            { key: 'cpu', label: 'CPU', value: rt.settings.sockets * rt.settings.cores, unit: 'cores' },
            { key: 'memory', label: 'Memory', value: rt.settings.memoryMb, unit: 'MiB' },
            { key: 'disk', label: 'Disk', value: rt.settings.diskGb, unit: 'GiB' },
            { key: 'uptime', label: 'Uptime', value: toNumber(status.uptime) ?? 0, unit: 's' },
            { key: 'vmid', label: 'VM id', value: vm.vmid },
            { key: 'node', label: 'Node', value: vm.node },
          ],
          links: [],
        }
      },

      async testConnection(ctx) {
        const started = performance.now()
        const client = clientFor(ctx as never)
        const version = await client.api.version({}, { signal: ctx.signal })
        const nodes = await client.api.nodes({}, { signal: ctx.signal })
        return {
          version: version.version,
          latencyMs: performance.now() - started,
          details: {
            release: version.release,
            authentication: client.auth.kind,
            nodes: nodes.map((n) => ({ node: n.node, status: n.status })),
            online: nodes.filter((n) => n.status === 'online').length,
          },
        }
      },

      async listAccounts(ctx) {
        const client = clientFor(ctx as never)
        const vms = (await listVms(client, ctx.signal)).filter(
          (vm) => !vm.template && vm.tags.includes(MANAGED_TAG),
        )
        const accounts = []
        for (const vm of vms) {
          const config = await client.api.vmConfig({ node: vm.node, vmid: vm.vmid }, { signal: ctx.signal })
          const serviceId = serviceIdFromDescription(config.description)
          accounts.push({
            accountId: String(vm.vmid),
            username: String(config.ciuser ?? ''),
            ...(serviceId ? { serviceId } : {}),
            status: vm.tags.includes(SUSPENDED_TAG)
              ? ('suspended' as const)
              : vm.lock
                ? ('pending' as const)
                : ('active' as const),
            details: { node: vm.node, name: vm.name, power: vm.status, tags: tagsOf(config.tags) },
          })
        }
        return { accounts }
      },
    },

    actions: {
      reinstall: {
        label: 'Reinstall',
        audience: ['admin', 'client'],
        access: 'write',
        params: z.object({ template: z.string().max(64).optional() }),
        async run(ctx, raw) {
          await settleDeploy(ctx)
          const { rt, vm } = await owned(ctx)
          // Before the VM is destroyed: a key PVE would refuse must not strand the reinstall.
          checkSshKeys(rt.sshKeys)
          const params = raw as { template?: string }
          if (params.template) {
            const choices = Object.fromEntries(
              rt.settings.templates
                .split(',')
                .map((p) => p.trim().split('='))
                .filter((p) => p.length === 2)
                .map(([k, v]) => [String(k).trim(), String(v).trim()]),
            )
            const chosen = choices[params.template]
            if (!chosen)
              throw new ValidationError(`Unknown OS ${params.template}`, [
                { path: 'params.template', message: 'is not offered' },
              ])
            rt.settings = { ...rt.settings, template: chosen }
          }
          const config = await readConfig(rt, vm.node, vm.vmid)
          const mac =
            typeof config.net0 === 'string'
              ? (/=([0-9A-Fa-f:]{17})/.exec(config.net0)?.[1] ?? undefined)
              : undefined
          const leases = await stores.ipPool.leases(rt.serviceId)
          const data: DeployData = { vmid: vm.vmid, node: vm.node, leases, ...(mac ? { mac } : {}) }
          const run = await runTracked(ctx, reinstallPipeline, data, rt)
          return {
            message: `VM ${vm.vmid} reinstalled`,
            data: { log: formatPipelineRun(run, { subject: `service=${rt.serviceId} vm=${vm.vmid}` }) },
          }
        },
      },
      deployStatus: {
        label: 'Deploy status',
        audience: ['admin', 'client'],
        access: 'read',
        params: z.object({ wait: z.boolean().optional() }),
        async run(ctx, raw) {
          const key = pipelineKey(ctx, deployPipeline.name)
          const inFlight = ctx.resources.deploys.get(key)
          if ((raw as { wait?: boolean }).wait && inFlight) await inFlight.done
          const checkpoint = await ctx.checkpoints.load(key)
          const running = ctx.resources.deploys.has(key)
          if (!checkpoint)
            return { message: 'No deploy recorded', data: { status: 'none', state: 'none', running } }
          const data = checkpoint.data as DeployData
          const total = deployPipeline.steps.length
          // Align the step lines as core's run log does: the widest label, skip reason included.
          const labelWidth = Math.max(
            0,
            ...checkpoint.history.map(
              (r) =>
                r.label.length +
                (r.outcome === 'skipped' ? ` (skip — ${r.reason ?? 'no change'})`.length : 0),
            ),
          )
          const status = checkpoint.completed
            ? 'ready'
            : running
              ? 'running'
              : checkpoint.lastError && checkpoint.lastError.code !== 'ABORTED'
                ? 'failed'
                : 'interrupted'
          return {
            message: `Deploy ${status} at ${checkpoint.state} (${checkpoint.nextStep}/${total} steps)`,
            data: {
              status,
              state: checkpoint.state,
              completed: checkpoint.completed,
              running,
              stepsDone: checkpoint.nextStep,
              steps: total,
              ...(data.vmid !== undefined ? { vmid: data.vmid, node: data.node } : {}),
              ...(checkpoint.lastError
                ? {
                    lastError: {
                      code: checkpoint.lastError.code,
                      detail: checkpoint.lastError.detail,
                      retryable: checkpoint.lastError.retryable,
                    },
                  }
                : {}),
              log: checkpoint.history.map((r) => formatStepLine(r, { labelWidth })),
            },
          }
        },
      },
      start: vmAction('Start', ['admin', 'client'], 'write', none, async (rt, vm) => {
        if (vm.tags.includes(SUSPENDED_TAG)) throw new CommandError('The service is suspended')
        const changed = await ensureRunning(rt.client, vm.node, vm.vmid, rt.signal)
        return { message: changed ? 'Started' : 'Already running' }
      }),
      stop: vmAction('Stop', ['admin', 'client'], 'write', none, async (rt, vm) => {
        const changed = await ensureStopped(rt.client, vm.node, vm.vmid, rt.signal)
        return { message: changed ? 'Stopped' : 'Already stopped' }
      }),
      reboot: vmAction('Reboot', ['admin', 'client'], 'write', none, async (rt, vm) => {
        await rt.client.run(ENDPOINTS.vmReboot, { node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
        return { message: 'Rebooted' }
      }),
      listSnapshots: vmAction('Snapshots', ['admin', 'client'], 'read', none, async (rt, vm) => {
        const list = (
          await rt.client.api.snapshotList({ node: vm.node, vmid: vm.vmid }, { signal: rt.signal })
        ).filter((s) => s.name !== 'current')
        return { data: { snapshots: list, limit: rt.settings.snapshotLimit } }
      }),
      createSnapshot: vmAction(
        'Create snapshot',
        ['admin', 'client'],
        'write',
        z.object({ description: z.string().max(200).optional() }),
        async (rt, vm, params) => {
          if (rt.settings.snapshotLimit <= 0)
            throw new CapacityError('The plan allows no snapshots', {
              customerMessage: 'Your plan does not include snapshots.',
            })
          // Lifetime clean-up is part of taking a snapshot: expired ones go first, then the oldest
          // until there is room for the new one, so the limit never blocks a customer.
          const pruned = await pruneSnapshots(rt, vm.node, vm.vmid, 1)
          const name = snapshotName()
          await rt.client.run(
            ENDPOINTS.snapshotCreate,
            { node: vm.node, vmid: vm.vmid, snapname: name, description: params.description ?? '' },
            { signal: rt.signal },
          )
          return {
            message: `Snapshot ${name} created${pruned.length ? ` (${pruned.length} older deleted)` : ''}`,
            data: { name, deleted: pruned },
          }
        },
      ),
      deleteSnapshot: vmAction(
        'Delete snapshot',
        ['admin', 'client'],
        'write',
        snapParam,
        async (rt, vm, params) => {
          await rt.client.run(
            ENDPOINTS.snapshotDelete,
            { node: vm.node, vmid: vm.vmid, snapname: params.name },
            { signal: rt.signal },
          )
          return { message: `Snapshot ${params.name} deleted` }
        },
      ),
      rollbackSnapshot: vmAction(
        'Restore snapshot',
        ['admin', 'client'],
        'write',
        snapParam,
        async (rt, vm, params) => {
          await rt.client.run(
            ENDPOINTS.snapshotRollback,
            { node: vm.node, vmid: vm.vmid, snapname: params.name, start: true },
            { signal: rt.signal },
          )
          return { message: `Snapshot ${params.name} restored` }
        },
      ),
      cleanupSnapshots: vmAction('Delete expired snapshots', ['admin'], 'write', none, async (rt, vm) => {
        // Also trims a list that is over a lowered limit; the app calls this on its own schedule.
        const deleted = await pruneSnapshots(rt, vm.node, vm.vmid, 0)
        return { message: `${deleted.length} expired snapshots deleted`, data: { deleted } }
      }),
      listBackups: vmAction('Backups', ['admin', 'client'], 'read', none, async (rt, vm) => {
        return { data: { backups: await backupsOf(rt, vm.node, vm.vmid), slots: rt.settings.backupSlots } }
      }),
      createBackup: vmAction('Create backup', ['admin', 'client'], 'write', none, async (rt, vm) => {
        const { deleted } = await takeBackup(rt, vm.node, vm.vmid)
        return { message: 'Backup created', data: { deleted } }
      }),
      scheduledBackup: vmAction(
        'Scheduled backup',
        ['admin'],
        'write',
        z.object({
          days: z.array(z.enum(WEEKDAYS)).min(1),
          after: z
            .string()
            .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM')
            .optional(),
        }),
        async (rt, vm, params) => {
          // Seed 003's cron tick, made idempotent so an app can call it as often as it likes: due on
          // the chosen days (UTC) from the chosen time on, once a day, within the slots.
          const now = new Date()
          const today = WEEKDAYS[(now.getUTCDay() + 6) % 7] as (typeof WEEKDAYS)[number]
          const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) / 1000
          const [hh, mm] = (params.after ?? '00:00').split(':').map(Number)
          const dueAt = midnight + (hh ?? 0) * 3600 + (mm ?? 0) * 60
          if (!params.days.includes(today) || now.getTime() / 1000 < dueAt)
            return { message: 'No backup due now', data: { created: false } }
          const existing = await backupsOf(rt, vm.node, vm.vmid)
          if (existing.some((b) => (toNumber(b.ctime) ?? 0) >= midnight))
            return { message: "Today's backup exists", data: { created: false } }
          const { deleted } = await takeBackup(rt, vm.node, vm.vmid, existing)
          return { message: 'Backup created', data: { created: true, deleted } }
        },
      ),
      deleteBackup: vmAction(
        'Delete backup',
        ['admin', 'client'],
        'write',
        volumeParam,
        async (rt, vm, params) => {
          await requireBackup(rt, vm, params.volid)
          await rt.client.run(
            ENDPOINTS.storageDeleteVolume,
            { node: vm.node, storage: rt.settings.backupStorage, volume: params.volid },
            { signal: rt.signal },
          )
          return { message: 'Backup deleted' }
        },
      ),
      restoreBackup: vmAction(
        'Restore backup',
        ['admin', 'client'],
        'write',
        volumeParam,
        async (rt, vm, params) => {
          await requireBackup(rt, vm, params.volid)
          await ensureStopped(rt.client, vm.node, vm.vmid, rt.signal)
          await rt.client.run(
            ENDPOINTS.vmCreateOrRestore,
            {
              node: vm.node,
              vmid: vm.vmid,
              archive: params.volid,
              force: true,
              // No `storage`: it would send every disk to one storage. Without it each disk goes back
              // to the storage it was backed up from (qemu-server restore: a device's own storage
              // unless `storage` overrides all), and the package check below moves what is elsewhere.
            },
            { signal: rt.signal },
          )
          // The backup may predate a package change: re-apply the package (CPU/RAM, disks and their
          // limits, the additional disk, network with the MAC), then start.
          const applied: string[] = []
          const steps: [string, () => Promise<{ status: string }>][] = [
            ['disk-storage', () => applyDiskStorage(rt, vm.node, vm.vmid)],
            ['cpu-ram', () => applyCpuRam(rt, vm.node, vm.vmid)],
            ['system-disk-size', () => applySystemDiskSize(rt, vm.node, vm.vmid)],
            ['system-disk-io', () => applySystemDiskIo(rt, vm.node, vm.vmid)],
            ['additional-disk', () => applyAdditionalDisk(rt, vm.node, vm.vmid)],
            ['additional-disk-size', () => applyAdditionalDiskSize(rt, vm.node, vm.vmid)],
            ['additional-disk-io', () => applyAdditionalDiskIo(rt, vm.node, vm.vmid)],
            ['network', () => applyNetwork(rt, vm.node, vm.vmid)],
          ]
          for (const [name, step] of steps) if ((await step()).status === 'done') applied.push(name)
          await ensureRunning(rt.client, vm.node, vm.vmid, rt.signal)
          return { message: 'Backup restored', data: { applied } }
        },
      ),
      listIsos: vmAction('ISO images', ['admin', 'client'], 'read', none, async (rt, vm) => {
        const stores = rt.settings.isoStorage
          ? [rt.settings.isoStorage]
          : (await rt.client.api.storageList({ node: vm.node, content: 'iso' }, { signal: rt.signal })).map(
              (s) => s.storage,
            )
        const images = []
        for (const storage of stores) {
          for (const item of await rt.client.api.storageContent(
            { node: vm.node, storage, content: 'iso' },
            { signal: rt.signal },
          )) {
            const name = item.volid.split('/').pop() ?? item.volid
            images.push({ volid: item.volid, name, ...(item.size !== undefined ? { size: item.size } : {}) })
          }
        }
        return { data: { groups: groupIsos(images) } }
      }),
      mountIso: vmAction('Mount ISO', ['admin', 'client'], 'write', volumeParam, async (rt, vm, params) => {
        if (!params.volid.includes(':iso/'))
          throw new ValidationError('Not an ISO volume', [
            { path: 'params.volid', message: 'must be an ISO volume' },
          ])
        const config = await readConfig(rt, vm.node, vm.vmid)
        // Changing the media of an existing CD-ROM drive takes effect at once, even while the VM runs
        // (qemu-server QemuServer.pm vmconfig_update_disk → change_medium); a new IDE/SATA drive on a
        // running VM stays pending until a restart (vmconfig_hotplug_pending skips ide/sata).
        const slot = cdromSlot(config) ?? freeCdromSlot(config)
        await rt.client.run(
          ENDPOINTS.vmConfigUpdate,
          { node: vm.node, vmid: vm.vmid, [slot]: `${params.volid},media=cdrom` } as never,
          { signal: rt.signal },
        )
        const waiting = rt.dryRun ? false : await isPending(rt, vm, slot)
        if (waiting)
          return {
            message: `${params.volid} is attached on a new CD-ROM drive (${slot}), which the VM sees only after a restart (stop and start, or reboot)`,
            data: { slot, restartRequired: true },
          }
        return { message: `Mounted ${params.volid}`, data: { slot, restartRequired: false } }
      }),
      unmountIso: vmAction('Eject ISO', ['admin', 'client'], 'write', none, async (rt, vm) => {
        const config = await readConfig(rt, vm.node, vm.vmid)
        for (const slot of CDROM_SLOTS) {
          const value = config[slot]
          if (typeof value === 'string' && value.includes(':iso/')) {
            await rt.client.run(
              ENDPOINTS.vmConfigUpdate,
              { node: vm.node, vmid: vm.vmid, [slot]: 'none,media=cdrom' } as never,
              { signal: rt.signal },
            )
            const waiting = rt.dryRun ? false : await isPending(rt, vm, slot)
            return waiting
              ? {
                  message: `Ejected ${parseDrive(value).file}; the change takes effect after a restart`,
                  data: { slot, restartRequired: true },
                }
              : { message: `Ejected ${parseDrive(value).file}`, data: { slot, restartRequired: false } }
          }
        }
        return { message: 'No ISO mounted' }
      }),
      console: vmAction('Console', ['admin', 'client'], 'read', none, async (rt, vm, _p, ctx) => {
        if (!rt.settings.consoleUrl)
          throw new CommandError('No noVNC proxy is configured for this product (setting consoleUrl)')
        const ticket = await rt.client.api.vmVncProxy(
          { node: vm.node, vmid: vm.vmid, websocket: true },
          { signal: rt.signal },
        )
        const url = new URL(rt.settings.consoleUrl)
        url.searchParams.set('host', ctx.server.hostname)
        url.searchParams.set('port', String(ctx.server.port ?? 8006))
        url.searchParams.set('node', vm.node)
        url.searchParams.set('vmid', String(vm.vmid))
        url.searchParams.set('vncport', String(ticket.port))
        // The ticket lives about 40 seconds and is bound to this VM and port. The parameter is not
        // called `…ticket`: the result passes the redactor, which masks values of secret-looking keys.
        url.searchParams.set('session', ticket.ticket)
        // The ticket is bound to this user: the proxy opens `vncwebsocket` with that user's API
        // credentials (its own; they never travel in the URL).
        url.searchParams.set('user', ticket.user)
        // The ticket is valid for 40 s, but the vncproxy process waits only about 10 s for the
        // WebSocket, so the link is good for that long.
        return { data: { url: url.toString(), expiresAt: new Date(Date.now() + 10_000).toISOString() } }
      }),
      systemDisk: vmAction('System disk', ['admin'], 'read', none, async (rt, vm) => {
        const config = await readConfig(rt, vm.node, vm.vmid)
        const key = systemDiskKey(config)
        return { data: { key, value: config[key] } }
      }),
    },
  })
}

/** The connector with in-memory stores (tests, demos); production passes durable stores. */
export const proxmoxKvmConnector = createProxmoxKvmConnector()
