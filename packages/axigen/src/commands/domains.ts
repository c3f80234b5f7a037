import { type AxigenDialect, DEFAULT_DIALECT, refusalHint } from '../dialect.ts'
import { count, identifier, list, secret, value } from '../protocol/encoder.ts'
import { parseShow, parseTable, type ShowOutput, showNumber, showString } from '../protocol/output.ts'
import { type CliScript, hinted, replyAt, step, yesNo } from './script.ts'

export interface DomainListEntry {
  name: string
  enabled: boolean
}

export interface StorageLocation {
  /** Server-side path (or `file://` URI). */
  path: string
  /** Most storage files in this location (`maxFiles`). */
  maxFiles?: number
  /** Largest storage file in KB (`maxFileSize`). */
  maxFileSize?: number
}

export interface CreateDomainInput {
  name: string
  /** Where the domain lives on the server, e.g. `/var/opt/axigen/domains/example.com`. */
  location: string
  postmasterPassword: string
  groupware?: boolean
  messagesLocation?: StorageLocation
  /** Writes the running configuration to disk afterwards (`SAVE CONFIG`). Default true. */
  saveConfig?: boolean
}

export interface DomainAdminLimits {
  maxAccounts?: number
  maxMaillists?: number
  maxGroups?: number
  maxAccountClasses?: number
  maxAccountMessageSizeQuota?: number
}

export interface AccountQuotas {
  /** Mailbox storage in KB. */
  totalMessageSize?: number
  /** Messages in the whole mailbox. */
  totalMessageCount?: number
  /** Default size of one folder in KB. */
  messageSize?: number
  /** Default message count of one folder. */
  messageCount?: number
  /** Folders. */
  mboxCount?: number
}

export interface DomainInfo {
  name: string
  location: string | undefined
  groupware: boolean | undefined
  raw: ShowOutput
}

/** Builds `path?maxFiles=..&maxFileSize=..` (the storage URI format from the HELP). */
export function storageUri(location: StorageLocation): string {
  const q: string[] = []
  if (location.maxFiles !== undefined) q.push(`maxFiles=${Math.trunc(location.maxFiles)}`)
  if (location.maxFileSize !== undefined) q.push(`maxFileSize=${Math.trunc(location.maxFileSize)}`)
  return q.length ? `${location.path}?${q.join('&')}` : location.path
}

function setNumbers(record: Record<string, number | undefined>, field: string) {
  return Object.entries(record)
    .filter((e): e is [string, number] => typeof e[1] === 'number')
    .map(([k, v]) => step(undefined, 'SET', k, count(v, `${field}.${k}`)))
}

const enterDomain = (name: string) => step('domain', 'UPDATE', 'Domain', 'name', identifier(name, 'domain'))

/** The domain scripts for one dialect (see `AxigenDialect`). */
export function domainCommandsFor(dialect: AxigenDialect = DEFAULT_DIALECT) {
  return {
    /**
     * Every domain, active or not, with its state. The state is not read from a column (the layout is
     * unconfirmed: a `name status used` table would put a size last): `LIST Domains` lists the active
     * domains only and `LIST AllDomains` all of them (notes §3.1, C: S3), so a domain is enabled exactly
     * when the first listing names it. Both run in one script.
     */
    list(wildcard?: string): CliScript<DomainListEntry[]> {
      const tail = wildcard === undefined ? [] : [value(wildcard, 'wildcard')]
      return {
        action: 'LIST AllDomains',
        access: 'read',
        steps: [step('', 'LIST', 'AllDomains', ...tail), step('', 'LIST', 'Domains', ...tail)],
        parse: (r) => {
          const active = new Set(tableNames(replyAt(r, 1).lines))
          return tableNames(replyAt(r, 0).lines).map((name) => ({ name, enabled: active.has(name) }))
        },
      }
    },

    show(name: string): CliScript<DomainInfo> {
      return {
        action: 'SHOW Domain',
        access: 'read',
        target: name,
        steps: [step('', 'SHOW', 'Domain', 'name', identifier(name, 'domain'))],
        parse: (r) => {
          const raw = parseShow(replyAt(r, 0).lines)
          const gw = showString(raw, 'groupwareSupport')
          return {
            name: showString(raw, 'name') ?? name,
            location: showString(raw, 'domainLocation'),
            groupware: gw === undefined ? undefined : gw === 'yes',
            raw,
          }
        },
      }
    },

    create(input: CreateDomainInput): CliScript<void> {
      const steps = [
        step(
          'domain-create',
          'CREATE',
          'Domain',
          'name',
          identifier(input.name, 'domain'),
          'domainLocation',
          value(input.location, 'location'),
          'postmasterPassword',
          secret(input.postmasterPassword, 'postmasterPassword'),
        ),
      ]
      if (input.groupware !== undefined)
        steps.push(step('domain-create', 'SET', 'groupwareSupport', yesNo(input.groupware)))
      if (input.messagesLocation)
        steps.push(
          step(
            'domain-create',
            'ADD',
            'MessagesLocation',
            value(storageUri(input.messagesLocation), 'messagesLocation'),
          ),
        )
      steps.push(step('', 'COMMIT'))
      if (input.saveConfig ?? true) steps.push(step('', 'SAVE', 'CONFIG'))
      return { action: 'CREATE Domain', access: 'write', target: input.name, steps, parse: () => undefined }
    },

    enable(name: string): CliScript<void> {
      return {
        action: 'ENABLE Domain',
        access: 'write',
        target: name,
        steps: [step('', 'ENABLE', 'Domain', 'name', identifier(name, 'domain'))],
        parse: () => undefined,
      }
    },

    disable(name: string): CliScript<void> {
      return {
        action: 'DISABLE Domain',
        access: 'write',
        target: name,
        steps: [step('', 'DISABLE', 'Domain', 'name', identifier(name, 'domain'))],
        parse: () => undefined,
      }
    },

    /** Deletes a domain; with `keepCopy` the server keeps a copy of its data (the CLI default). */
    delete(name: string, options: { keepCopy?: boolean } = {}): CliScript<void> {
      const tokens = ['DELETE', 'Domain', 'name', identifier(name, 'domain')] as const
      return {
        action: 'DELETE Domain',
        access: 'write',
        target: name,
        steps: [
          options.keepCopy === false ? step('', ...tokens, 'dontKeepCopy') : step('', ...tokens),
          step('', 'SAVE', 'CONFIG'),
        ],
        parse: () => undefined,
      }
    },

    /**
     * Changes groupware support. The HELP offers `groupwareSupport` only in domain-create and domain-edit,
     * and EDIT Domain works on inactive domains: the caller disables the domain around this script.
     */
    editGroupware(name: string, groupware: boolean): CliScript<void> {
      return {
        action: 'EDIT Domain',
        access: 'write',
        target: name,
        steps: [
          step('domain-edit', 'EDIT', 'Domain', 'name', identifier(name, 'domain')),
          step('domain-edit', 'SET', 'groupwareSupport', yesNo(groupware)),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },

    /** Domain admin limits, the default quotas of new accounts and the migration source, in one script. */
    configure(
      name: string,
      settings: { adminLimits?: DomainAdminLimits; defaultQuotas?: AccountQuotas; migrationSource?: string },
    ): CliScript<void> {
      // The DONE-closed parts first: nothing is written until a COMMIT, so a refused attribute there (the
      // migration attributes are unconfirmed) leaves the domain untouched. adminLimits is an object with
      // a COMMIT of its own, which writes at once (notes §2.3), so it comes last.
      const steps = [enterDomain(name)]
      if (settings.defaultQuotas) {
        steps.push(step('domain-accountdefaultquotas', 'CONFIG', 'accountDefaultQuotas'))
        steps.push(...setNumbers({ ...settings.defaultQuotas }, 'defaultQuotas'))
        steps.push(step('domain', 'DONE'))
      }
      if (settings.migrationSource !== undefined) {
        // The attribute names inside MIGRATIONDATA are not confirmed (see the README): the dialect picks.
        const hint = refusalHint('migrationAttributes', dialect)
        steps.push(step('domain-migrationdata', 'CONFIG', 'MigrationData'))
        if (dialect.migrationAttributes === 'remoteServer') {
          steps.push(
            hinted(
              step(undefined, 'SET', 'remoteServer', value(settings.migrationSource, 'migrationSource')),
              hint,
            ),
          )
        } else {
          const { host, port } = splitHostPort(settings.migrationSource)
          steps.push(hinted(step(undefined, 'SET', 'remoteImapHost', value(host, 'migrationSource')), hint))
          if (port !== undefined)
            steps.push(hinted(step(undefined, 'SET', 'remoteImapPort', count(port, 'migrationSource')), hint))
        }
        steps.push(step('domain', 'DONE'))
      }
      if (settings.adminLimits) {
        steps.push(step('domain-adminlimits', 'CONFIG', 'adminLimits'))
        steps.push(...setNumbers({ ...settings.adminLimits }, 'adminLimits'))
        steps.push(step('domain', 'COMMIT'))
      }
      steps.push(step('', 'COMMIT'))
      return { action: 'CONFIG Domain', access: 'write', target: name, steps, parse: () => undefined }
    },

    /** Admin limits as the server holds them. */
    showAdminLimits(name: string): CliScript<DomainAdminLimits> {
      return {
        action: 'SHOW adminLimits',
        access: 'read',
        target: name,
        steps: [
          enterDomain(name),
          step('domain-adminlimits', 'CONFIG', 'adminLimits'),
          step(undefined, 'SHOW'),
          step('domain', 'BACK'),
          step('', 'BACK'),
        ],
        parse: (r) => {
          const show = parseShow(replyAt(r, 2).lines)
          const out: DomainAdminLimits = {}
          for (const k of ['maxAccounts', 'maxMaillists', 'maxGroups', 'maxAccountClasses'] as const) {
            const n = showNumber(show, k)
            if (n !== undefined) out[k] = n
          }
          return out
        },
      }
    },

    /** The migration source as the server holds it (see `configure`). */
    showMigration(name: string): CliScript<string | undefined> {
      return {
        action: 'SHOW MigrationData',
        access: 'read',
        target: name,
        steps: [
          enterDomain(name),
          step('domain-migrationdata', 'CONFIG', 'MigrationData'),
          step(undefined, 'SHOW'),
          step('domain', 'BACK'),
          step('', 'BACK'),
        ],
        parse: (r) => {
          const show = parseShow(replyAt(r, 2).lines)
          if (dialect.migrationAttributes === 'remoteServer') return showString(show, 'remoteServer')
          const host = showString(show, 'remoteImapHost')
          const port = showString(show, 'remoteImapPort')
          return host ? (port ? `${host}:${port}` : host) : undefined
        },
      }
    },

    addAlias(name: string, alias: string): CliScript<void> {
      return {
        action: 'ADD Alias',
        access: 'write',
        target: name,
        steps: [
          enterDomain(name),
          step('domain', 'ADD', 'Alias', identifier(alias, 'alias')),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },

    removeAlias(name: string, alias: string): CliScript<void> {
      return {
        action: 'REMOVE Alias',
        access: 'write',
        target: name,
        steps: [
          enterDomain(name),
          step('domain', 'REMOVE', 'Alias', identifier(alias, 'alias')),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },

    listAliases(name: string): CliScript<string[]> {
      return {
        action: 'LIST Aliases',
        access: 'read',
        target: name,
        steps: [enterDomain(name), step('domain', 'LIST', 'Aliases'), step('', 'BACK')],
        parse: (r) => shortList(replyAt(r, 1).lines),
      }
    },

    /** Domain services (`SET services (…)`); service names are not documented publicly. */
    setServices(name: string, services: readonly string[]): CliScript<void> {
      return {
        action: 'SET services',
        access: 'write',
        target: name,
        steps: [
          enterDomain(name),
          step('domain', 'SET', 'services', list(services, 'services')),
          step('', 'COMMIT'),
        ],
        parse: () => undefined,
      }
    },
  }
}

export const domainCommands = domainCommandsFor()

/** `host:port` (or `[v6]:port`, or a bare host) as the two MigrationData attributes. */
export function splitHostPort(source: string): { host: string; port?: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(source) ?? /^([^:]+)(?::(\d+))?$/.exec(source)
  if (!m) return { host: source }
  return m[2] === undefined ? { host: m[1] ?? source } : { host: m[1] ?? source, port: Number(m[2]) }
}

/** The names of a table's rows (first token, lower-cased): never a column cut by the header. */
export function tableNames(lines: readonly string[]): string[] {
  return parseTable(lines).cells.map((c) => (c[0] ?? '').toLowerCase())
}

/** Short lists (`LIST Aliases`, `LIST Addresses`): a title, then items until a blank line. */
export function shortList(lines: readonly string[]): string[] {
  const out: string[] = []
  let started = false
  for (const line of lines.slice(1)) {
    if (line.trim() === '') {
      if (started) break
      continue
    }
    started = true
    out.push(line.trim())
  }
  return out
}
