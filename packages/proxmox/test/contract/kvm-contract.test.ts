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
      for (const id of sorted) out = out.replaceAll(id, '<id>')
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
    async setup() {
      const sim = await new ProxmoxSimulator({ taskDurations: { default: 2 } }).start()
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
          async snapshot(service) {
            const vms = ours(String(service.serviceId))
            return vms.map((vm) => {
              const { vmid, ...rest } = vmState(vm)
              const ids = [
                hostnameOf(service),
                String(service.serviceId),
                String(vmid),
                service.username ?? '',
              ]
              return anonymise(rest, ids)
            })
          },
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
        secrets: () => [...sim.issuedSecrets, ...sim.issuedSecrets.map((t) => t.split('::')[1] ?? '')],
        async close() {
          await sim.close()
        },
      }
    },
  })
