import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ServiceContextInput } from '@panelkit/core'
import { runContractSuite } from '@panelkit/core/contract'
import {
  createProxmoxKvmConnector,
  hostnameFor,
  MemoryDnsProvider,
  MemoryIpPool,
  SUSPENDED_TAG,
  serviceIdFromDescription,
} from '../../src/index.ts'
import { ProxmoxSimulator, type SimVm } from '../../src/testing/index.ts'
import { dnsFile, type KillParams, poolFile, vmidFile } from './kill-target.ts'

let n = 0

/** What the simulator holds about one VM, JSON-serialisable. */
function vmState(vm: SimVm) {
  return {
    vmid: vm.vmid,
    node: vm.node,
    status: vm.status,
    paused: vm.paused,
    lock: vm.lock ?? null,
    config: { ...vm.config },
    pending: { ...vm.pending },
    pendingDelete: [...vm.pendingDelete.keys()],
    snapshots: vm.snapshots.map((s) => s.name),
    firewall: {
      options: vm.firewall.options,
      ipsets: [...vm.firewall.ipsets.entries()],
      rules: vm.firewall.rules,
    },
    cloudinit: vm.cloudinit ?? null,
  }
}

/**
 * Replaces what legitimately differs between two equal creates: the service's own identifiers, the
 * random MACs, the addresses the pool hands out, the password's hash and the node the placement chose.
 */
function anonymise(value: unknown, ids: string[]): unknown {
  const sorted = ids.filter((i) => i.length > 0).sort((a, b) => b.length - a.length)
  return JSON.parse(
    JSON.stringify(value, (k, v) => {
      if (k === 'node') return '<node>'
      if (k === 'cipassword') return typeof v === 'string' && v.length > 0 ? '<set>' : v
      if (typeof v !== 'string') return v
      // Addresses first: a VM id can be a substring of an address.
      let out = v
        .replace(/([0-9A-F]{2}:){5}[0-9A-F]{2}/gi, '<mac>')
        .replace(/203\.0\.113\.\d+/g, '<ipv4>')
        .replace(/2001:db8:10::[0-9a-f:]*/gi, '<ipv6>')
      // A numeric id only as a whole number: VM 102 must not turn `memory: 1024` into `<id>4`.
      for (const id of sorted)
        out = /^\d+$/.test(id)
          ? out.replace(new RegExp(`(?<!\\d)${id}(?!\\d)`, 'g'), '<id>')
          : out.replaceAll(id, '<id>')
      return out
    }),
  )
}

/** The simulator's own notion of a write (its `stats.writes`): every non-GET but the login and consoles. */
const isWrite = (method: string, path: string) =>
  method !== 'GET' && !path.endsWith('/access/ticket') && !path.endsWith('/vncproxy')
const options = (createMode: 'complete' | 'accept') => ({
  createMode,
  ipPool: new MemoryIpPool({
    main: {
      ipv4: { network: '203.0.113.0/24', gateway: '203.0.113.1' },
      ipv6: { network: '2001:db8:10::/64', gateway: '2001:db8:10::1' },
    },
  }),
  dns: new MemoryDnsProvider(),
  client: { tasks: { pollMs: 2, maxPollMs: 20 }, lockRetry: { initialDelayMs: 5, maxDelayMs: 50 } },
})

// Both create modes keep the contract: `accept` answers once the clone runs and finishes in the background.
for (const mode of ['complete', 'accept'] as const)
  runContractSuite({
    name: `proxmox-kvm (create: ${mode})`,
    connector: createProxmoxKvmConnector(options(mode)),
    foreignResource: true,
    interruptions: true,
    // Real processes killed after every step: in complete mode. An accepted create's deploy runs the same
    // steps after its answer, and there the next write on the service (not a re-run create) resumes it;
    // the in-process interruption case covers that mode, and a child start per step would double the cost.
    kills: mode === 'complete',
    async setup() {
      const sim = await new ProxmoxSimulator({ taskDurations: { default: 2 } }).start()
      // The kill case's children keep the pool, VMID reservations and DNS in files here.
      const stateDir = mkdtempSync(join(tmpdir(), 'panelkit-kvm-kill-'))
      const readState = <T>(file: string): Record<string, T> => {
        try {
          return JSON.parse(readFileSync(file, 'utf8')) as Record<string, T>
        } catch {
          return {}
        }
      }
      const server = {
        hostname: '127.0.0.1',
        port: sim.port,
        username: 'root@pam',
        password: 'sim-root-password',
        options: { fingerprint: sim.fingerprint256 },
      }
      const ours = (serviceId: string) =>
        [...sim.vms.values()].filter((vm) => serviceIdFromDescription(vm.config.description) === serviceId)
      const hostnameOf = (service: { clientId: number | string; serviceId: number | string }) =>
        hostnameFor('vps', String(service.clientId), String(service.serviceId))
      const named = (service: { clientId: number | string; serviceId: number | string }) =>
        [...sim.vms.values()].filter((vm) => !vm.template && vm.config.name === hostnameOf(service))
      const vmSnapshot = (service: ServiceContextInput) =>
        ours(String(service.serviceId)).map((vm) => {
          const { vmid, ...rest } = vmState(vm)
          const ids = [hostnameOf(service), String(service.serviceId), String(vmid), service.username ?? '']
          return anonymise(rest, ids)
        })
      return {
        server,
        makeService() {
          n++
          return {
            serviceId: 5000 + n,
            clientId: 42,
            username: `user${n}`,
            password: `Vm-${n}-${Math.random().toString(36).slice(2, 10)}!`,
            server,
            settings: {
              template: '9000',
              ipPool: 'main',
              ipv6: true,
              dnsZone: 'example.net',
              additionalDiskGb: 5,
              diskGb: 20,
            },
            client: { email: `user${n}@example.com`, firstName: 'Ada', lastName: 'Lovelace' },
          }
        },
        async createForeignAccount(service) {
          let vmid = 4000
          while (sim.vms.has(vmid)) vmid++
          sim.addVm({
            vmid,
            node: 'pve2',
            config: {
              name: hostnameFor('vps', String(service.clientId), String(service.serviceId)),
              description: 'hand-made by another admin',
              memory: '512',
            },
          })
        },
        async countAccounts(service) {
          const hostname = hostnameFor('vps', String(service.clientId), String(service.serviceId))
          return [...sim.vms.values()].filter((vm) => !vm.template && vm.config.name === hostname).length
        },
        async accountState(service) {
          const vm = ours(String(service.serviceId))[0]
          if (!vm) return 'missing'
          return (vm.config.tags ?? '').split(';').includes(SUSPENDED_TAG) ? 'suspended' : 'active'
        },
        async writeCount() {
          // In accept mode an earlier test's deploy may still be writing in the background: count once
          // the simulator has been quiet for a moment, so that only this test's writes move the number.
          for (let quiet = 0, last = -1; quiet < 3; ) {
            const busy = [...sim.tasks.values()].some((t) => t.timer !== undefined)
            quiet = !busy && sim.stats.writes === last ? quiet + 1 : 0
            last = sim.stats.writes
            await new Promise((r) => setTimeout(r, 20))
          }
          return sim.stats.writes
        },
        // A VM made by hand with the service's host name, without our tags or description marker.
        foreignResource: {
          async create(service) {
            let vmid = 4500
            while (sim.vms.has(vmid)) vmid++
            sim.addVm({
              vmid,
              node: 'pve1',
              config: { name: hostnameOf(service), memory: '1024', cores: '2', tags: 'production' },
            })
          },
          async snapshot(service) {
            return named(service).map((vm) => vmState(vm))
          },
        },
        interruptions: {
          snapshot: async (service) => vmSnapshot(service),
          crashAfterWrite: {
            arm(k: number) {
              let seen = 0
              sim.dropResponseNext({ match: (method, path) => isWrite(method, path) && ++seen === k })
            },
            disarm() {
              sim.faults.dropResponses = []
            },
          },
        },
        kills: {
          module: new URL('./kill-target.ts', import.meta.url),
          params: { createMode: mode, stateDir } satisfies KillParams,
          // The VMs, and what the stores hold for the service: one lease per family, the VMID reserved for
          // the VM that exists, the host's DNS records (all gone after terminate).
          async snapshot(service) {
            const id = String(service.serviceId)
            const vms = ours(id)
            const reserved = readState<number>(vmidFile(stateDir))[id]
            const fqdn = `${hostnameOf(service)}.example.net`
            return {
              vms: vmSnapshot(service),
              leases: (readState<{ family: number }[]>(poolFile(stateDir))[id] ?? []).map((l) => l.family),
              vmid:
                reserved === undefined ? 'none' : vms.some((vm) => vm.vmid === reserved) ? 'the VM' : 'other',
              dns: Object.entries(readState<{ type: string }[]>(dnsFile(stateDir)))
                .filter(([key]) => key.endsWith(`/${fqdn}`))
                .flatMap(([, records]) => records.map((r) => r.type)),
            }
          },
          // Create and change-package are pipelines; terminate is a stop and a destroy, then the stores.
          operations: { create: 'steps', changePackage: 'steps', terminate: 'writes' },
          changedPackage: (service) => ({
            ...service,
            settings: { ...service.settings, cores: 2, memoryMb: 2048, diskGb: 30, additionalDiskGb: 10 },
          }),
        },
        secrets: () => [...sim.issuedSecrets, ...sim.issuedSecrets.map((t) => t.split('::')[1] ?? '')],
        async close() {
          await sim.close()
          rmSync(stateDir, { recursive: true, force: true })
        },
      }
    },
  })
