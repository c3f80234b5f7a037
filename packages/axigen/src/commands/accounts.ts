import { type AxigenDialect, DEFAULT_DIALECT, refusalHint } from '../dialect.ts'
import { count, identifier, list, secret, value } from '../protocol/encoder.ts'
import { parseShow, type ShowOutput, showNumber, showString } from '../protocol/output.ts'
import type { ScriptStep } from '../session/session.ts'
import type { AccountQuotas } from './domains.ts'
import { shortList, tableNames } from './domains.ts'
import { type CliScript, hinted, replyAt, step } from './script.ts'

export interface AccountLimits {
  /** Services the account may use (`SET services (…)`); service names are not documented publicly. */
  services?: readonly string[]
  /** Re-inherit services from the account class (`RESET services`). */
  resetServices?: boolean
}

/** ContactInfo attributes by name (`firstName`, `lastName`, the marker attribute, …). */
export interface ContactInfo {
  firstName?: string | undefined
  lastName?: string | undefined
  [attribute: string]: string | undefined
}

export interface AccountChanges {
  password?: string
  /** Class assignment (`SET accountClassName` or `INHERIT SETTINGS FROM accountClass`: the dialect). */
  accountClass?: string
  quotas?: AccountQuotas
  limits?: AccountLimits
  contact?: ContactInfo
}

export interface NewAccount extends Omit<AccountChanges, 'password'> {
  name: string
  password: string
}

export interface RegistryInfo {
  /** `Mbox size` in KB (a printed unit wins; a bare number is read in the dialect's `mboxSizeUnit`). */
  mboxSizeKb: number | undefined
  messageCount: number | undefined
  folderCount: number | undefined
  raw: ShowOutput
}

export interface AccountDetails {
  name: string
  accountClass: string | undefined
  contact: ShowOutput
  /** The marker attribute's value (`dialect.markerAttribute`). */
  notes: string | undefined
  quotas: AccountQuotas
  /**
   * Effective services; `servicesExplicit` tells whether the account overrides its class, read from the
   * SHOW note (`[explicit, …]` / `[inherited …]`), undefined when the server prints no such note.
   */
  services: string[]
  servicesExplicit: boolean | undefined
  registry: RegistryInfo
  aliases: string[]
}

const enterDomain = (domain: string) =>
  step('domain', 'UPDATE', 'Domain', 'name', identifier(domain, 'domain'))
const QUOTA_KEYS = [
  'totalMessageSize',
  'totalMessageCount',
  'messageSize',
  'messageCount',
  'mboxCount',
] as const

/** Whether a SHOW note says the value is explicit (true), inherited (false) or nothing (undefined). */
export function explicitFromNote(note: string | undefined): boolean | undefined {
  if (note === undefined) return undefined
  if (/explicit|overrides/i.test(note)) return true
  if (/inherit|default/i.test(note)) return false
  return undefined
}

/** `Mbox size` in KB: a unit printed beside the number wins, else the dialect's unit. */
export function mboxSizeKb(show: ShowOutput, unit: AxigenDialect['mboxSizeUnit']): number | undefined {
  const raw = showString(show, 'Mbox size')
  const m = raw === undefined ? null : /^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$/.exec(raw)
  if (!m) return showNumber(show, 'Mbox size')
  const n = Number(m[1])
  const word = (m[2] ?? '').toLowerCase()
  const factor: Record<string, number> = {
    b: 1 / 1024,
    bytes: 1 / 1024,
    byte: 1 / 1024,
    k: 1,
    kb: 1,
    kib: 1,
    m: 1024,
    mb: 1024,
    mib: 1024,
    g: 1048576,
    gb: 1048576,
    gib: 1048576,
  }
  const f = word === '' ? (unit === 'bytes' ? 1 / 1024 : 1) : factor[word]
  return f === undefined ? undefined : n * f
}

/** The limits steps of an edit, from `CONFIG Limits` (left out when that context is already open). */
function limitsSteps(limits: NonNullable<AccountChanges['limits']>, dialect: AxigenDialect, open: boolean) {
  const steps: ScriptStep[] = open ? [] : [step('domain-account-limits', 'CONFIG', 'Limits')]
  const services = limits.services ?? []
  if (limits.resetServices) steps.push(step(undefined, 'RESET', 'services'))
  else {
    const set = step(undefined, 'SET', 'services', list(services, 'services', dialect.emptyServiceList))
    steps.push(services.length === 0 ? hinted(set, refusalHint('emptyServiceList', dialect)) : set)
  }
  steps.push(step('domain-account', 'DONE'))
  return steps
}

/**
 * The steps of an account edit. `from` is where the session stands: in the account, or in its
 * `CONFIG Limits` left open by `ownership` — then a limits change is made there first, and without one
 * the script steps back to the account.
 */
function editSteps(
  changes: AccountChanges,
  dialect: AxigenDialect,
  from: 'account' | 'limits' = 'account',
): ScriptStep[] {
  const steps: ScriptStep[] = []
  const limits =
    changes.limits && (changes.limits.services || changes.limits.resetServices) ? changes.limits : undefined
  if (from === 'limits') {
    if (limits) steps.push(...limitsSteps(limits, dialect, true))
    else steps.push(step('domain-account', 'BACK'))
  }
  if (changes.password !== undefined)
    steps.push(step('domain-account', 'SET', 'password', secret(changes.password, 'password')))
  if (changes.accountClass !== undefined) {
    const cls = value(changes.accountClass, 'accountClass')
    steps.push(
      hinted(
        dialect.classAssignment === 'inherit-settings'
          ? step('domain-account', 'INHERIT', 'SETTINGS', 'FROM', 'accountClass', cls)
          : step('domain-account', 'SET', 'accountClassName', cls),
        refusalHint('classAssignment', dialect),
      ),
    )
  }
  if (changes.quotas) {
    const sets = QUOTA_KEYS.filter((k) => changes.quotas?.[k] !== undefined)
    if (sets.length) {
      steps.push(step('domain-account-quotas', 'CONFIG', 'Quotas'))
      for (const k of sets)
        steps.push(step(undefined, 'SET', k, count(changes.quotas[k] as number, `quotas.${k}`)))
      steps.push(step('domain-account', 'DONE'))
    }
  }
  if (limits && from === 'account') steps.push(...limitsSteps(limits, dialect, false))
  if (changes.contact) {
    const entries = Object.entries(changes.contact).filter(
      (e): e is [string, string] => typeof e[1] === 'string',
    )
    if (entries.length) {
      steps.push(step('domain-account-contactinfo', 'CONFIG', 'ContactInfo'))
      for (const [k, v] of entries) {
        const set = step(undefined, 'SET', k, value(v, `contact.${k}`))
        steps.push(k === dialect.markerAttribute ? hinted(set, refusalHint('markerAttribute', dialect)) : set)
      }
      steps.push(step('domain-account', 'DONE'))
    }
  }
  return steps
}

/** What import needs per account: the marker (contact notes) and the services, for the state. */
export interface AccountOwnership {
  name: string
  notes: string | undefined
  services: string[]
  servicesExplicit: boolean | undefined
}

/** Most accounts read in one ownership script (bounds one recorded call and its replies). */
export const OWNERSHIP_BATCH = 25

/** Services from a SHOW of `CONFIG Limits`: the list, and whether it is the account's own. */
function servicesOf(limits: ShowOutput): { services: string[]; servicesExplicit: boolean | undefined } {
  const services = limits.get('services')
  return {
    services: Array.isArray(services?.value) ? services.value : services?.value ? [services.value] : [],
    servicesExplicit: explicitFromNote(services?.note),
  }
}

/**
 * The steps that open one account from the domain context and read its marker (and services); the
 * account stays open, so a write that follows needs no second UPDATE Account. With `stay`, the
 * `CONFIG Limits` just read stays open too, so an edit of the services that follows needs no second
 * `CONFIG Limits` (and a `BACK`) to get there: `update(…, 'limits')` starts from it.
 */
function ownershipSteps(name: string, limits: boolean, stay = false): ScriptStep[] {
  return [
    step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account')),
    step('domain-account-contactinfo', 'CONFIG', 'ContactInfo'),
    step('domain-account-contactinfo', 'SHOW'),
    step('domain-account', 'BACK'),
    ...(limits
      ? [
          step('domain-account-limits', 'CONFIG', 'Limits'),
          step('domain-account-limits', 'SHOW'),
          ...(stay ? [] : [step('domain-account', 'BACK')]),
        ]
      : []),
  ]
}

/** Removes an account from the domain context and commits the domain. */
const removeSteps = (name: string): ScriptStep[] => [
  step('domain', 'REMOVE', 'Account', 'name', identifier(name, 'account')),
  step('', 'COMMIT'),
]

/** The ownership read of one account, from the domain or (`enter`) from the root into the domain. */
function ownershipRead(
  domain: string,
  name: string,
  limits: boolean,
  enter: boolean,
  dialect: AxigenDialect,
): CliScript<AccountOwnership> {
  const at = enter ? 1 : 0
  return {
    action: 'SHOW Account ownership',
    access: 'read',
    target: `${name}@${domain}`,
    steps: enter
      ? [enterDomain(domain), ...ownershipSteps(name, limits, true)]
      : ownershipSteps(name, limits, true),
    parse: (r) => ({
      name,
      notes: showString(parseShow(replyAt(r, at + 2).lines), dialect.markerAttribute),
      ...(limits
        ? servicesOf(parseShow(replyAt(r, at + 5).lines))
        : { services: [], servicesExplicit: undefined }),
    }),
  }
}

/**
 * Scripts for a visit (`AxigenClient.visit`) to one domain. `enter` opens the domain; `ownership` opens
 * an account from there and reads it, leaving it open; `update` and `remove` start in that open
 * account, `add` in the domain, and each write ends at the root with its COMMITs. A lifecycle operation
 * reads the account and writes what it decided in one visit: the domain and the account are each
 * entered once, not once per script.
 */
export function accountVisitFor(dialect: AxigenDialect = DEFAULT_DIALECT) {
  return {
    /** Opens the domain and tells whether an account of that exact name exists in it. */
    enter(domain: string, name: string): CliScript<boolean> {
      return {
        action: 'LIST Accounts',
        access: 'read',
        target: `${name}@${domain}`,
        steps: [enterDomain(domain), step('domain', 'LIST', 'Accounts', value(name, 'wildcard'))],
        parse: (r) => tableNames(replyAt(r, 1).lines).includes(name),
      }
    },
    /**
     * Opens an account (from the domain) and reads its marker and, with `limits`, its services; the
     * session is left in the account, or with `limits` in its `CONFIG Limits` (the `from` of `update`).
     */
    ownership(domain: string, name: string, limits = true): CliScript<AccountOwnership> {
      return ownershipRead(domain, name, limits, false, dialect)
    },
    /**
     * Opens the domain and the account straight away and reads it as `ownership` does, without the
     * `LIST Accounts` of `enter`: for an operation on an account that should exist. A missing account
     * makes the server refuse the `UPDATE Account` (its error text is not known, notes §2.5), so a
     * refusal of that step is looked up by the caller; nothing is written before the marker is read.
     */
    open(domain: string, name: string, limits = true): CliScript<AccountOwnership> {
      return ownershipRead(domain, name, limits, true, dialect)
    },
    add(domain: string, account: NewAccount): CliScript<void> {
      const { name, password, ...rest } = account
      return {
        action: 'ADD Account',
        access: 'write',
        target: `${name}@${domain}`,
        steps: [
          step(
            'domain-account',
            'ADD',
            'Account',
            'name',
            identifier(name, 'account'),
            'password',
            secret(password, 'password'),
          ),
          ...editSteps(rest, dialect),
          step('domain', 'COMMIT'),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },
    /**
     * Edits the account `ownership` left open and commits (account, then domain); `from` is where
     * `ownership` left the session ('limits' when it read the services).
     */
    update(
      domain: string,
      name: string,
      changes: AccountChanges,
      action = 'UPDATE Account',
      from: 'account' | 'limits' = 'account',
    ): CliScript<void> {
      return {
        action,
        access: 'write',
        target: `${name}@${domain}`,
        steps: [...editSteps(changes, dialect, from), step('domain', 'COMMIT'), step('', 'COMMIT')],
        parse: () => undefined,
      }
    },
    /** Leaves the account `ownership` left open and removes it from the domain. */
    remove(domain: string, name: string, from: 'account' | 'limits' = 'account'): CliScript<void> {
      return {
        action: 'REMOVE Account',
        access: 'write',
        target: `${name}@${domain}`,
        steps: [
          ...(from === 'limits' ? [step('domain-account', 'BACK')] : []),
          step('domain', 'BACK'),
          ...removeSteps(name),
        ],
        parse: () => undefined,
      }
    },
  }
}

/** The account scripts for one dialect (see `AxigenDialect`). */
export function accountCommandsFor(dialect: AxigenDialect = DEFAULT_DIALECT) {
  const inDomain = accountVisitFor(dialect)
  return {
    /**
     * Reads the contact notes and services of several accounts of one domain in one script: the domain is
     * entered once and each account costs 7 commands (UPDATE, CONFIG ContactInfo, SHOW, BACK, CONFIG
     * Limits, SHOW, BACK) instead of the 16 of a full `show`. The CLI has no listing with these columns.
     */
    ownership(domain: string, names: readonly string[]): CliScript<AccountOwnership[]> {
      const steps: ScriptStep[] = [enterDomain(domain)]
      for (const name of names) steps.push(...ownershipSteps(name, true), step('domain', 'BACK'))
      steps.push(step('', 'BACK'))
      return {
        action: 'SHOW Account ownership',
        access: 'read',
        target: domain,
        steps,
        parse: (r) =>
          names.map((name, i) => {
            const base = 1 + i * 8
            const contact = parseShow(replyAt(r, base + 2).lines)
            return {
              name,
              notes: showString(contact, dialect.markerAttribute),
              ...servicesOf(parseShow(replyAt(r, base + 5).lines)),
            }
          }),
      }
    },
    /** Account names of a domain, lower-cased; with a wildcard (an exact name works) only matches. */
    list(domain: string, wildcard?: string): CliScript<string[]> {
      return {
        action: 'LIST Accounts',
        access: 'read',
        target: domain,
        steps: [
          enterDomain(domain),
          wildcard === undefined
            ? step('domain', 'LIST', 'Accounts')
            : step('domain', 'LIST', 'Accounts', value(wildcard, 'wildcard')),
          step('', 'BACK'),
        ],
        parse: (r) => tableNames(replyAt(r, 1).lines),
      }
    },

    add(domain: string, account: NewAccount): CliScript<void> {
      const script = inDomain.add(domain, account)
      return { ...script, steps: [enterDomain(domain), ...script.steps] }
    },

    update(
      domain: string,
      name: string,
      changes: AccountChanges,
      action = 'UPDATE Account',
    ): CliScript<void> {
      const script = inDomain.update(domain, name, changes, action)
      const open = step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account'))
      return { ...script, steps: [enterDomain(domain), open, ...script.steps] }
    },

    remove(domain: string, name: string): CliScript<void> {
      return {
        action: 'REMOVE Account',
        access: 'write',
        target: `${name}@${domain}`,
        steps: [enterDomain(domain), ...removeSteps(name)],
        parse: () => undefined,
      }
    },

    /** Everything about one account in one read script (entered, shown, left with BACK). */
    show(domain: string, name: string): CliScript<AccountDetails> {
      return {
        action: 'SHOW Account',
        access: 'read',
        target: `${name}@${domain}`,
        steps: [
          enterDomain(domain),
          step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account')),
          step('domain-account', 'SHOW'),
          step('domain-account-contactinfo', 'CONFIG', 'ContactInfo'),
          step('domain-account-contactinfo', 'SHOW'),
          step('domain-account', 'BACK'),
          step('domain-account-quotas', 'CONFIG', 'Quotas'),
          step('domain-account-quotas', 'SHOW'),
          step('domain-account', 'BACK'),
          step('domain-account-limits', 'CONFIG', 'Limits'),
          step('domain-account-limits', 'SHOW'),
          step('domain-account', 'BACK'),
          step('domain-account', 'SHOW', 'RegistryInformation'),
          step('domain-account', 'LIST', 'Aliases'),
          step('domain', 'BACK'),
          step('', 'BACK'),
        ],
        parse: (r) => {
          const general = parseShow(replyAt(r, 2).lines)
          const contact = parseShow(replyAt(r, 4).lines)
          const quotaShow = parseShow(replyAt(r, 7).lines)
          const limits = parseShow(replyAt(r, 10).lines)
          const registry = parseShow(replyAt(r, 12).lines)
          const quotas: AccountQuotas = {}
          for (const k of QUOTA_KEYS) {
            const n = showNumber(quotaShow, k)
            if (n !== undefined) quotas[k] = n
          }
          return {
            name: showString(general, 'name') ?? name,
            accountClass: showString(general, 'accountClassName'),
            contact,
            notes: showString(contact, dialect.markerAttribute),
            quotas,
            ...servicesOf(limits),
            registry: {
              mboxSizeKb: mboxSizeKb(registry, dialect.mboxSizeUnit),
              messageCount: showNumber(registry, 'Mbox message count'),
              folderCount: showNumber(registry, 'Mbox folder count'),
              raw: registry,
            },
            aliases: shortList(replyAt(r, 13).lines),
          }
        },
      }
    },

    /** Only the contact information (where panelkit keeps its marker): a short read script. */
    contact(domain: string, name: string): CliScript<ShowOutput> {
      return {
        action: 'SHOW ContactInfo',
        access: 'read',
        target: `${name}@${domain}`,
        steps: [
          enterDomain(domain),
          step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account')),
          step('domain-account-contactinfo', 'CONFIG', 'ContactInfo'),
          step('domain-account-contactinfo', 'SHOW'),
          step('domain-account', 'BACK'),
          step('domain', 'BACK'),
          step('', 'BACK'),
        ],
        parse: (r) => parseShow(replyAt(r, 3).lines),
      }
    },

    /** Usage counters of many accounts of one domain in one script. */
    registry(domain: string, names: readonly string[]): CliScript<Map<string, RegistryInfo>> {
      const steps: ScriptStep[] = [enterDomain(domain)]
      for (const n of names) {
        steps.push(step('domain-account', 'UPDATE', 'Account', 'name', identifier(n, 'account')))
        steps.push(step('domain-account', 'SHOW', 'RegistryInformation'))
        steps.push(step('domain', 'BACK'))
      }
      steps.push(step('', 'BACK'))
      return {
        action: 'SHOW RegistryInformation',
        access: 'read',
        target: domain,
        steps,
        parse: (r) => {
          const out = new Map<string, RegistryInfo>()
          names.forEach((n, i) => {
            const raw = parseShow(replyAt(r, 2 + i * 3).lines)
            out.set(n, {
              mboxSizeKb: mboxSizeKb(raw, dialect.mboxSizeUnit),
              messageCount: showNumber(raw, 'Mbox message count'),
              folderCount: showNumber(raw, 'Mbox folder count'),
              raw,
            })
          })
          return out
        },
      }
    },

    addAlias(domain: string, name: string, alias: string): CliScript<void> {
      return {
        action: 'ADD Alias',
        access: 'write',
        target: `${name}@${domain}`,
        steps: [
          enterDomain(domain),
          step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account')),
          step('domain-account', 'ADD', 'Alias', identifier(alias, 'alias')),
          step('domain', 'COMMIT'),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },

    removeAlias(domain: string, name: string, alias: string): CliScript<void> {
      return {
        action: 'REMOVE Alias',
        access: 'write',
        target: `${name}@${domain}`,
        steps: [
          enterDomain(domain),
          step('domain-account', 'UPDATE', 'Account', 'name', identifier(name, 'account')),
          step('domain-account', 'REMOVE', 'Alias', identifier(alias, 'alias')),
          step('domain', 'COMMIT'),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },
  }
}

export const accountCommands = accountCommandsFor()
