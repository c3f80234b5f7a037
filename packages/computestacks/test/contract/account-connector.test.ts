import type { ServiceContextInput } from '@panelkit/core'
import { runContractSuite } from '@panelkit/core/contract'
import { computeStacksAccountConnector } from '../../src/index.ts'
import { type SimUser, startComputeStacksSimulator } from '../../src/testing/index.ts'
import { plantUntiedAccountWithServiceEmail } from './foreign-account.ts'

let n = 0

// The contract asks that terminate removes the account, so the suite runs with the delete setting; the
// suspend-only default is covered in connector.test.ts.
runContractSuite({
  name: 'computestacks-account',
  connector: computeStacksAccountConnector,
  foreignResource: true,
  interruptions: true,
  kills: true,
  async setup() {
    const sim = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
    const pro = [...sim.userGroups.values()].find((g) => g.name === 'pro')
    const starter = [...sim.userGroups.values()].find((g) => g.name === 'starter')
    const server = {
      hostname: '127.0.0.1',
      port: sim.port,
      username: sim.apiKey,
      password: sim.apiSecret,
      options: { ca: sim.cert },
    }
    const emailOf = (service: ServiceContextInput) => String(service.username).toLowerCase()
    const planted = new Map<string, () => unknown>()
    /** The service's account as the simulator holds it, without what differs from one service to the next. */
    const anonymised = (user: SimUser, service: ServiceContextInput) => {
      const ids = [emailOf(service), String(service.serviceId), String(service.clientId), String(user.id)]
      const {
        id: _id,
        createdAt: _c,
        updatedAt: _u,
        confirmedAt,
        authToken: _t,
        authTokenExp: _e,
        ...rest
      } = user
      return JSON.parse(
        JSON.stringify(
          {
            ...rest,
            password: rest.password === service.password,
            confirmed: confirmedAt !== null,
          },
          (_k, v) =>
            // Whole values only: a client id such as 12 is also a substring of a phone number.
            ids.includes(String(v)) ? '<id>' : v,
        ),
      )
    }
    const snapshot = (service: ServiceContextInput) =>
      sim.usersForService(String(service.serviceId)).map((u) => anonymised(u, service))
    return {
      server,
      makeService() {
        n++
        return {
          serviceId: 5000 + n,
          clientId: 70 + n,
          // Capitals on purpose: ComputeStacks stores emails lower-cased but looks them up exactly.
          username: `Jane.Doe${n}@Example.com`,
          password: `Pw-${n}-${Math.random().toString(36).slice(2, 10)}`,
          server,
          settings: { userGroup: String(pro?.id), terminateAction: 'delete' },
          client: {
            email: `jane${n}@example.com`,
            firstName: 'Jane',
            lastName: 'Doe',
            currency: 'EUR',
            company: 'Doe Ltd',
            phone: '+44.1234567',
          },
        }
      },
      async createForeignAccount(service) {
        sim.addUser({
          email: emailOf(service),
          fname: 'Someone',
          lname: 'Else',
          externalId: '999999',
          labels: { whmcs: { client_id: 1, service_id: 999_999 } },
        })
      },
      async countAccounts(service) {
        const byEmail = sim.userByEmail(emailOf(service)) ? 1 : 0
        const byService = sim.usersForService(String(service.serviceId)).length
        return Math.max(byEmail, byService)
      },
      async accountState(service) {
        const user = sim.usersForService(String(service.serviceId))[0]
        if (!user) return 'missing'
        return user.active ? 'active' : 'suspended'
      },
      async writeCount() {
        return sim.writeCount
      },
      foreignResource: {
        async create(service) {
          planted.set(String(service.serviceId), plantUntiedAccountWithServiceEmail(sim, service).snapshot)
        },
        async snapshot(service) {
          return planted.get(String(service.serviceId))?.()
        },
      },
      interruptions: {
        snapshot: async (service) => snapshot(service),
        crashAfterWrite: {
          arm(k) {
            sim.dropAfterWrites = k
          },
          disarm() {
            sim.dropAfterWrites = 0
          },
        },
      },
      kills: {
        module: new URL('./kill-target.ts', import.meta.url),
        snapshot: async (service) => snapshot(service),
        // Create is a pipeline; terminate (delete) and change-package are one write each.
        operations: { create: ['steps', 'writes'], terminate: 'writes', changePackage: 'writes' },
        changedPackage: (service) => ({
          ...service,
          settings: { ...service.settings, userGroup: String(starter?.id) },
        }),
      },
      secrets: () => [sim.apiSecret],
      invalidServices: [],
      async close() {
        await sim.close()
      },
    }
  },
})
