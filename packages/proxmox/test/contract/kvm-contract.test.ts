import { runContractSuite } from '@panelkit/core/contract'
import {
  createProxmoxKvmConnector,
  hostnameFor,
  MemoryDnsProvider,
  MemoryIpPool,
  SUSPENDED_TAG,
  serviceIdFromDescription,
} from '../../src/index.ts'
import { ProxmoxSimulator } from '../../src/testing/index.ts'

let n = 0
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
        secrets: () => [...sim.issuedSecrets, ...sim.issuedSecrets.map((t) => t.split('::')[1] ?? '')],
        async close() {
          await sim.close()
        },
      }
    },
  })
