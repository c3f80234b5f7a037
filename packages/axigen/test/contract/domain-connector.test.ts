import { runContractSuite } from '@panelkit/core/contract'
import { generateTestCertificate } from '@panelkit/core/testing'
import { axigenDomainConnector } from '../../src/index.ts'
import { startAxigenSimulator } from '../../src/testing/index.ts'

let n = 0

runContractSuite({
  name: 'axigen-domain over implicit TLS (verified with a CA)',
  connector: axigenDomainConnector,
  async setup() {
    const cert = await generateTestCertificate()
    const sim = await startAxigenSimulator({
      admins: { admin: 'Tls-Admin-Pass-2' },
      tls: { key: cert.key, cert: cert.cert },
    })
    const server = {
      hostname: '127.0.0.1',
      port: sim.tlsPort,
      secure: true,
      username: 'admin',
      password: 'Tls-Admin-Pass-2',
      options: { ca: cert.cert },
    }
    const domainOf = (s: { domain?: string | undefined }) => (s.domain ?? '').toLowerCase()
    return {
      server,
      makeService() {
        n++
        return {
          serviceId: 900 + n,
          clientId: 3,
          domain: `shop${n}-${Math.random().toString(36).slice(2, 8)}.example`,
          password: `Pm-${n}-${Math.random().toString(36).slice(2, 10)}`,
          server,
          settings: {
            groupware: true,
            maxAccounts: 25,
            maxLists: 5,
            maxGroups: 5,
            maxFiles: 4,
            maxFileSizeKb: 262144,
          },
          client: { email: `owner${n}@example.net`, firstName: 'Ada', lastName: 'Byron' },
        }
      },
      async createForeignAccount(service) {
        sim.addDomain(domainOf(service), { location: `/srv/someone-else/${domainOf(service)}` })
      },
      async countAccounts(service) {
        return sim.domains.has(domainOf(service)) ? 1 : 0
      },
      async accountState(service) {
        const d = sim.domains.get(domainOf(service))
        return d ? (d.enabled ? 'active' : 'suspended') : 'missing'
      },
      async writeCount() {
        return sim.writes
      },
      secrets: () => ['Tls-Admin-Pass-2'],
      async close() {
        await sim.close()
      },
    }
  },
})
