import { runContractSuite } from '@panelkit/core/contract'
import { axigenAccountConnector } from '../../src/index.ts'
import { type AxigenSimulator, startAxigenSimulator } from '../../src/testing/index.ts'

let n = 0
const DOMAIN = 'mail.example.org'

runContractSuite({
  name: 'axigen-account over plain TCP',
  connector: axigenAccountConnector,
  async setup() {
    const sim: AxigenSimulator = await startAxigenSimulator({ admins: { admin: 'Cli-Admin-Pass-1' } })
    sim.addDomain(DOMAIN)
    const server = {
      hostname: '127.0.0.1',
      port: sim.port,
      secure: false,
      username: 'admin',
      password: 'Cli-Admin-Pass-1',
    }
    return {
      server,
      makeService() {
        n++
        return {
          serviceId: 500 + n,
          clientId: 9,
          username: `box${n}`,
          password: `Box-${n}-${Math.random().toString(36).slice(2, 10)}`,
          server,
          settings: { domain: DOMAIN, mailboxSizeMb: 512, maxMessages: 10000, services: 'imap pop3 smtp' },
          client: { email: `owner${n}@example.net`, firstName: 'Grace', lastName: 'Hopper' },
        }
      },
      async createForeignAccount(service) {
        sim.addAccount(DOMAIN, service.username ?? '')
      },
      async countAccounts(service) {
        return sim.account(DOMAIN, service.username ?? '') ? 1 : 0
      },
      async accountState(service) {
        const a = sim.account(DOMAIN, service.username ?? '')
        if (!a) return 'missing'
        return a.services !== undefined && a.services.length === 0 ? 'suspended' : 'active'
      },
      async writeCount() {
        return sim.writes
      },
      secrets: () => ['Cli-Admin-Pass-1'],
      invalidServices: [
        {
          name: 'mailbox name with a quote',
          service: {
            serviceId: 1,
            clientId: 1,
            username: 'bad"name',
            password: 'Pw-123456',
            server,
            settings: { domain: DOMAIN },
            client: { email: 'x@example.com' },
          },
        },
      ],
      async close() {
        await sim.close()
      },
    }
  },
})
