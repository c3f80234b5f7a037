/** The simulator's data model: plain objects, easy for tests to read and seed directly. */

export interface SimUsage {
  mboxSizeKb: number
  messageCount: number
  folderCount: number
}

export interface SimAccount {
  name: string
  password: string
  accountClass: string
  /** Explicit attributes of the account context (besides name, password and class). */
  attributes: Record<string, string>
  contact: Record<string, string>
  quotas: Record<string, number>
  /** Explicit services; undefined = inherited from the class. */
  services: string[] | undefined
  webmail: Record<string, string>
  aliases: string[]
  usage: SimUsage
  createdAt: string
}

export interface SimClass {
  name: string
  services: string[] | undefined
  quotas: Record<string, number>
}

export interface SimList {
  name: string
  password: string
  adminEmail: string
  members: Map<string, string>
}

export interface SimGroup {
  name: string
  enabled: boolean
  addresses: string[]
}

export interface SimDomain {
  name: string
  location: string
  postmasterPassword: string
  enabled: boolean
  groupware: boolean
  messagesLocations: string[]
  services: string[]
  adminLimits: Record<string, number>
  defaultQuotas: Record<string, number>
  migration: Record<string, string>
  aliases: string[]
  accounts: Map<string, SimAccount>
  classes: Map<string, SimClass>
  lists: Map<string, SimList>
  groups: Map<string, SimGroup>
}

export const DEFAULT_SERVICES = ['imap', 'pop3', 'smtp', 'webmail']

export function newAccount(name: string, password: string, accountClass = 'default'): SimAccount {
  return {
    name: name.toLowerCase(),
    password,
    accountClass,
    attributes: {},
    contact: {},
    quotas: {},
    services: undefined,
    webmail: {},
    aliases: [],
    usage: { mboxSizeKb: 0, messageCount: 0, folderCount: 5 },
    createdAt: new Date().toUTCString(),
  }
}

export function newDomain(name: string, location: string, postmasterPassword: string): SimDomain {
  const d: SimDomain = {
    name: name.toLowerCase(),
    location,
    postmasterPassword,
    enabled: true,
    groupware: false,
    messagesLocations: [],
    services: [...DEFAULT_SERVICES],
    adminLimits: {},
    defaultQuotas: {},
    migration: {},
    aliases: [],
    accounts: new Map(),
    classes: new Map([['default', { name: 'default', services: undefined, quotas: {} }]]),
    lists: new Map(),
    groups: new Map(),
  }
  d.accounts.set('postmaster', newAccount('postmaster', postmasterPassword))
  return d
}

export function cloneAccount(a: SimAccount): SimAccount {
  return {
    ...a,
    attributes: { ...a.attributes },
    contact: { ...a.contact },
    quotas: { ...a.quotas },
    services: a.services ? [...a.services] : undefined,
    webmail: { ...a.webmail },
    aliases: [...a.aliases],
    usage: { ...a.usage },
  }
}

/** Services in force for an account: its own, else its class's, else the server default. */
export function effectiveServices(domain: SimDomain, account: SimAccount): string[] {
  return account.services ?? domain.classes.get(account.accountClass)?.services ?? DEFAULT_SERVICES
}
