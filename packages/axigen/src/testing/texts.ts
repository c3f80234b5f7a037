/**
 * Every human-readable text the simulator prints, in one table. Only a few are confirmed from real
 * servers (marked C in the protocol notes: the banner's first line, `Authentication successful`,
 * `command successful`, the COMMIT text and `have a nice day`); the rest are placeholders, to be
 * replaced with captures from a real server — pass `texts` to the simulator. `{name}` placeholders
 * are filled in by `formatText`.
 */
export interface SimulatorTexts {
  banner: string[]
  versionRecord: string
  ok: string
  /** Status line printed after `USER` before the `<password>` prompt; `null` prints none (unknown). */
  afterUser: string | null
  authOk: string
  authFailed: string
  tooManyAuthErrors: string
  loginFirst: string
  commit: string
  done: string
  back: string
  exit: string
  unknownCommand: string
  syntaxError: string
  notHere: string
  noContextToLeave: string
  domainExists: string
  domainNotFound: string
  domainMustBeDisabled: string
  domainNotActive: string
  accountExists: string
  accountNotFound: string
  classExists: string
  classNotFound: string
  listExists: string
  listNotFound: string
  groupExists: string
  groupNotFound: string
  aliasExists: string
  aliasNotFound: string
  memberNotFound: string
  unknownAttribute: string
  badValue: string
  limitReached: string
  domainsTitle: string
  allDomainsTitle: string
  accountsTitle: string
  classesTitle: string
  listsTitle: string
  groupsTitle: string
  usersTitle: string
  aliasesTitle: string
  addressesTitle: string
  showTitle: string
  registryTitle: string
  /** Note after an explicit value in SHOW output. */
  explicitNote: string
  /** Note after an inherited value in SHOW output. */
  inheritedNote: string
  domainColumns: string[]
  allDomainColumns: string[]
  accountColumns: string[]
  nameColumn: string[]
  enabledWord: string
  disabledWord: string
}

export const DEFAULT_TEXTS: SimulatorTexts = {
  banner: ["Welcome to AXIGEN's Command Line Interface", 'You must login first.'],
  versionRecord: '10.6.30|Linux|x86_64',
  ok: 'command successful',
  afterUser: null,
  authOk: 'Authentication successful',
  authFailed: 'Authentication failed',
  tooManyAuthErrors: 'Too many authentication errors, closing connection',
  loginFirst: 'You must login first',
  commit: 'committing changes and switching back to previous context',
  done: 'saving changes and switching back to previous context',
  back: 'canceling changes and switching back to previous context',
  exit: 'have a nice day',
  unknownCommand: 'Unknown command',
  syntaxError: 'Invalid syntax: {detail}',
  notHere: 'Command not available in this context',
  noContextToLeave: 'No previous context',
  domainExists: 'Domain {name} already exists',
  domainNotFound: 'Domain {name} does not exist',
  domainMustBeDisabled: 'Domain {name} must be disabled first',
  domainNotActive: 'Domain {name} is not active',
  accountExists: 'Account {name} already exists',
  accountNotFound: 'Account {name} does not exist',
  classExists: 'Account class {name} already exists',
  classNotFound: 'Account class {name} does not exist',
  listExists: 'List {name} already exists',
  listNotFound: 'List {name} does not exist',
  groupExists: 'Group {name} already exists',
  groupNotFound: 'Group {name} does not exist',
  aliasExists: 'Alias {name} already exists',
  aliasNotFound: 'Alias {name} does not exist',
  memberNotFound: 'User {name} is not a member',
  unknownAttribute: 'Unknown attribute {name}',
  badValue: 'Invalid value for {name}',
  limitReached: 'Limit {name} reached',
  domainsTitle: 'The list of active domains:',
  allDomainsTitle: 'The list of all domains:',
  accountsTitle: 'The list of accounts:',
  classesTitle: 'The list of account classes:',
  listsTitle: 'The list of mailing lists:',
  groupsTitle: 'The list of groups:',
  usersTitle: 'The list of users:',
  aliasesTitle: 'The list of aliases:',
  addressesTitle: 'The list of addresses:',
  showTitle: 'General parameters:',
  registryTitle: 'Registry information:',
  explicitNote: 'explicit, overrides inherited value: {inherited}',
  inheritedNote: 'inherited from {from}',
  domainColumns: ['name', 'used', 'total'],
  allDomainColumns: ['name', 'status'],
  accountColumns: ['name'],
  nameColumn: ['name'],
  enabledWord: 'enabled',
  disabledWord: 'disabled',
}

export function formatText(template: string, values: Record<string, string | number> = {}): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => (k in values ? String(values[k]) : m))
}
