import type { ServiceContextInput } from '@panelkit/core'
import type { ContractFixture } from '@panelkit/core/contract'
import { generateTestCertificate } from '@panelkit/core/testing'
import { parseMarker } from '../../src/index.ts'
import {
  type AxigenSimulator,
  NAMED_VARIATIONS,
  type NamedVariation,
  startAxigenSimulator,
} from '../../src/testing/index.ts'

/** The default simulator, then every named variation: what the parameterised suites run against. */
export const VARIANTS: readonly (NamedVariation | undefined)[] = [undefined, ...NAMED_VARIATIONS]

export const variantName = (v: NamedVariation | undefined) => v?.name ?? 'the default simulator'

let n = 0

/** The module the contract suite's kill children run. */
const KILL_TARGET = new URL('./kill-target.ts', import.meta.url)

/** Replaces a service's own identifiers inside strings so that two services' states compare equal. */
function anonymise(value: unknown, ...identity: string[]): unknown {
  const ids = identity.filter((i) => i.length > 0).sort((a, b) => b.length - a.length)
  const text = JSON.stringify(value, (_k, v) => {
    if (v instanceof Map) return Object.fromEntries(v)
    if (typeof v !== 'string') return v
    let out = v
    for (const id of ids) out = out.replaceAll(id, '<id>')
    return out
  })
  return JSON.parse(text)
}

function crashPoints(sim: AxigenSimulator) {
  return {
    arm(k: number) {
      sim.faults.dropAfterWrites = k
    },
    disarm() {
      sim.faults.dropAfterWrites = 0
    },
  }
}

/** The domain product's fixture: over implicit TLS verified with a CA on the default simulator. */
export function domainFixture(variation: NamedVariation | undefined): () => Promise<ContractFixture> {
  return async () => {
    const password = 'Tls-Admin-Pass-2'
    const tls = variation === undefined ? await generateTestCertificate() : undefined
    const sim = await startAxigenSimulator({
      admins: { admin: password },
      ...(tls ? { tls: { key: tls.key, cert: tls.cert } } : {}),
      ...(variation ? { variations: variation.variations } : {}),
    })
    const server = {
      hostname: '127.0.0.1',
      port: tls ? sim.tlsPort : sim.port,
      secure: tls !== undefined,
      username: 'admin',
      password,
      options: { ...(tls ? { ca: tls.cert } : {}), ...variation?.serverOptions },
    }
    const domainOf = (s: { domain?: string | undefined }) => (s.domain ?? '').toLowerCase()
    const state = (service: { domain?: string | undefined }) => {
      const d = sim.domains.get(domainOf(service))
      if (!d) return null
      const { accounts, ...rest } = d
      return { ...rest, accounts: [...accounts.values()] }
    }
    const domainSnapshot = (service: ServiceContextInput) => {
      const d = state(service)
      if (!d) return null
      const postmaster = d.accounts.find((a) => a.name === 'postmaster')
      const marker = parseMarker(postmaster?.contact[variation?.serverOptions.markerAttribute ?? 'notes'])
      return anonymise(
        {
          enabled: d.enabled,
          groupware: d.groupware,
          location: d.location,
          messagesLocations: d.messagesLocations,
          adminLimits: d.adminLimits,
          migration: d.migration,
          owner: marker?.serviceId,
          postmasterPassword: postmaster?.password === service.password,
          accounts: d.accounts.map((a) => a.name),
        },
        domainOf(service),
        String(service.serviceId),
      )
    }
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
            migrationSource: 'imap.old.example:993',
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
      secrets: () => [password],
      // Made by hand at the very location this product would use: still not ours.
      foreignResource: {
        async create(service) {
          sim.addDomain(domainOf(service))
        },
        async snapshot(service) {
          return state(service)
        },
      },
      interruptions: {
        async snapshot(service) {
          return domainSnapshot(service)
        },
        crashAfterWrite: crashPoints(sim),
      },
      kills: {
        module: KILL_TARGET,
        params: { product: 'domain' },
        async snapshot(service) {
          return domainSnapshot(service)
        },
        // Create by steps and by writes (CREATE and TAG are two writes of one step); terminate and
        // change-package are a few writes each.
        operations: { create: ['steps', 'writes'], terminate: 'writes', changePackage: 'writes' },
        changedPackage: (service) => ({
          ...service,
          settings: { ...service.settings, groupware: false, maxAccounts: 50, maxLists: 9 },
        }),
      },
      async close() {
        await sim.close()
      },
    }
  }
}

export const MAILBOX_DOMAIN = 'mail.example.org'

/** The mailbox product's fixture, over plain TCP. */
export function accountFixture(variation: NamedVariation | undefined): () => Promise<ContractFixture> {
  return async () => {
    const password = 'Cli-Admin-Pass-1'
    const sim = await startAxigenSimulator({
      admins: { admin: password },
      ...(variation ? { variations: variation.variations } : {}),
    })
    sim.addDomain(MAILBOX_DOMAIN)
    const server = {
      hostname: '127.0.0.1',
      port: sim.port,
      secure: false,
      username: 'admin',
      password,
      options: { ...variation?.serverOptions },
    }
    const account = (service: { username?: string | undefined }) =>
      sim.account(MAILBOX_DOMAIN, service.username ?? '')
    const accountSnapshot = (service: ServiceContextInput) => {
      const a = account(service)
      if (!a) return null
      const { createdAt: _created, usage: _usage, password: pw, ...rest } = a
      return anonymise(
        { ...rest, passwordSet: pw === service.password },
        service.username ?? '',
        String(service.serviceId),
      )
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
          settings: {
            domain: MAILBOX_DOMAIN,
            mailboxSizeMb: 512,
            maxMessages: 10000,
            services: 'imap pop3 smtp',
          },
          client: { email: `owner${n}@example.net`, firstName: 'Grace', lastName: 'Hopper' },
        }
      },
      async createForeignAccount(service) {
        sim.addAccount(MAILBOX_DOMAIN, service.username ?? '')
      },
      async countAccounts(service) {
        return account(service) ? 1 : 0
      },
      async accountState(service) {
        const a = account(service)
        if (!a) return 'missing'
        return a.services !== undefined && a.services.length === 0 ? 'suspended' : 'active'
      },
      async writeCount() {
        return sim.writes
      },
      secrets: () => [password],
      invalidServices: [
        {
          name: 'mailbox name with a quote',
          service: {
            serviceId: 1,
            clientId: 1,
            username: 'bad"name',
            password: 'Pw-123456',
            server,
            settings: { domain: MAILBOX_DOMAIN },
            client: { email: 'x@example.com' },
          },
        },
      ],
      foreignResource: {
        async create(service) {
          sim.addAccount(MAILBOX_DOMAIN, service.username ?? '')
        },
        async snapshot(service) {
          return account(service) ?? null
        },
      },
      interruptions: {
        async snapshot(service) {
          return accountSnapshot(service)
        },
        crashAfterWrite: crashPoints(sim),
      },
      kills: {
        module: KILL_TARGET,
        params: { product: 'account' },
        async snapshot(service) {
          return accountSnapshot(service)
        },
        // None of the mailbox operations is a pipeline: each is cut after every write that got an answer.
        operations: { create: 'writes', terminate: 'writes', changePackage: 'writes' },
        changedPackage: (service) => ({
          ...service,
          settings: { ...service.settings, mailboxSizeMb: 1024, maxMessages: 20000, services: 'imap smtp' },
        }),
      },
      async close() {
        await sim.close()
      },
    }
  }
}
