import type { AxigenClient } from '../../src/index.ts'
import type { AxigenSimulator } from '../../src/testing/index.ts'

export const ADMIN = { username: 'admin', password: 'Adm1n-Secret' }

/** The state every golden transcript starts from. */
export function seedGolden(sim: AxigenSimulator): void {
  sim.admins.set(ADMIN.username, ADMIN.password)
  const d = sim.addDomain('example.org', { postmasterPassword: 'pm-secret' })
  d.adminLimits = { maxAccounts: 50 }
  const postmaster = d.accounts.get('postmaster')
  if (postmaster) postmaster.createdAt = 'Tue, 01 Mar 2022 15:44:12 GMT'
  const alice = sim.addAccount('example.org', 'alice', 'alice-pw')
  alice.createdAt = 'Tue, 01 Mar 2022 15:44:12 GMT'
  alice.usage = { mboxSizeKb: 2048, messageCount: 17, folderCount: 6 }
  alice.contact = { firstName: 'Alice', lastName: 'Liddell' }
  sim.addDomain('parked.net', { enabled: false })
}

export interface Scenario {
  name: string
  description: string
  run(client: AxigenClient): Promise<unknown>
}

const expectReject = async (p: Promise<unknown>) => {
  try {
    await p
  } catch (error) {
    return { rejected: (error as { code?: string }).code }
  }
  throw new Error('expected a rejection')
}

export const SCENARIOS: Scenario[] = [
  {
    name: 'login-and-version',
    description:
      'Banner, GET VERSION before login (once per session), USER, password line; the version comes from the login, nothing is sent after it',
    run: (c) => c.server.version(),
  },
  {
    name: 'list-domains',
    description:
      'LIST AllDomains then LIST Domains (the active ones): tables with preamble, dashed separator, rows and a blank line',
    run: (c) => c.domains.list(),
  },
  {
    name: 'create-domain',
    description:
      'CREATE Domain with groupware and a messages location with storage limits, COMMIT, SAVE CONFIG',
    run: (c) =>
      c.domains.create({
        name: 'example.com',
        location: '/var/opt/axigen/domains/example.com',
        postmasterPassword: 'P0stm@ster "quoted"',
        groupware: true,
        messagesLocation: {
          path: '/var/opt/axigen/domains/example.com/messages',
          maxFiles: 4,
          maxFileSize: 262144,
        },
      }),
  },
  {
    name: 'create-account-with-quota',
    description: 'UPDATE Domain, ADD Account, CONFIG Quotas, SET, DONE, COMMIT, COMMIT',
    run: (c) =>
      c.accounts.add('example.org', {
        name: 'john',
        password: 'Str0ng pass',
        quotas: { totalMessageSize: 1048576, totalMessageCount: 50000 },
      }),
  },
  {
    name: 'show-account',
    description:
      'One read script: account SHOW, contact info, quotas, limits, registry information, aliases, BACK to root',
    run: (c) => c.accounts.show('example.org', 'alice'),
  },
  {
    name: 'error-in-context',
    description: '-ERR inside the domain context, after which the client goes BACK to the root',
    run: (c) => expectReject(c.accounts.show('example.org', 'ghost')),
  },
  {
    name: 'error-at-root',
    description: '-ERR at the root: the context is unchanged',
    run: (c) => expectReject(c.domains.enable('nosuch.example')),
  },
]
