import { runContractSuite } from '../../src/testing/contract.ts'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  serveMemoryPanel,
  unregisterMemoryPanel,
} from '../../src/testing/index.ts'

let n = 0
runContractSuite({
  name: 'memory-panel (the example connector)',
  connector: memoryPanelConnector,
  foreignResource: true,
  interruptions: true,
  kills: true,
  async setup() {
    const hostname = `panel-${process.pid}-${Date.now()}`
    const panel = registerMemoryPanel(hostname, new MemoryPanel({ apiPassword: 'Api-Secret-123' }))
    // The kill case's child processes reach this same panel over HTTP.
    const served = await serveMemoryPanel(panel)
    const snapshot = async (service: { username?: string | undefined }) => {
      const a = panel.find(service.username ?? '')
      return a ? { plan: a.plan, suspended: a.suspended, diskUsedMb: a.diskUsedMb } : null
    }
    const server = { hostname, password: 'Api-Secret-123' }
    return {
      server,
      makeService() {
        n++
        return {
          serviceId: 1000 + n,
          clientId: 7,
          username: `user${n}x`,
          password: `Pw-${n}-${Math.random().toString(36).slice(2, 10)}`,
          server,
          settings: { plan: 'pro' },
          client: { email: `user${n}@example.com`, firstName: 'Ada', lastName: 'Lovelace' },
        }
      },
      async createForeignAccount(service) {
        panel.handle(panel.apiPassword, 'create', {
          username: service.username ?? '',
          serviceId: 'someone-else',
          email: 'x@example.com',
        })
      },
      async countAccounts(service) {
        return panel.find(service.username ?? '') ? 1 : 0
      },
      async accountState(service) {
        const a = panel.find(service.username ?? '')
        return a ? (a.suspended ? 'suspended' : 'active') : 'missing'
      },
      async writeCount() {
        return panel.writes
      },
      invalidServices: [],
      foreignResource: {
        async create(service) {
          // Made by hand: no service id recorded at all.
          panel.handle(panel.apiPassword, 'create', {
            username: service.username ?? '',
            email: 'x@example.com',
          })
        },
        async snapshot(service) {
          return panel.find(service.username ?? '') ?? null
        },
      },
      interruptions: {
        snapshot,
        crashAfterWrite: {
          arm(k) {
            panel.crashAfterWrites = k
          },
          disarm() {
            panel.crashAfterWrites = 0
          },
        },
      },
      kills: {
        module: new URL('./memory-panel.kill-target.ts', import.meta.url),
        params: { hostname, url: served.url },
        snapshot,
        // Create is a pipeline; terminate and change-package are one write each (killed before the answer).
        operations: { create: 'steps', terminate: 'writes', changePackage: 'writes' },
        changedPackage: (service) => ({ ...service, settings: { plan: 'enterprise' } }),
      },
      async close() {
        await served.close()
        unregisterMemoryPanel(hostname)
      },
    }
  },
})
