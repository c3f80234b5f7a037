import {
  ConflictError,
  defineConnector,
  hasErrorCode,
  NotFoundError,
  type OptionChoice,
  type ServiceContext,
  setting,
  ValidationError,
} from '@panelkit/core'
import type { AxigenClient } from '../client.ts'
import {
  type AccountChanges,
  type AccountDetails,
  type AccountOwnership,
  accountVisitFor,
  OWNERSHIP_BATCH,
} from '../commands/accounts.ts'
import type { AccountQuotas } from '../commands/domains.ts'
import type { CliExecutor } from '../commands/script.ts'
import type { AxigenDialect } from '../dialect.ts'
import { formatMarker, type Marker, parseMarker } from './marker.ts'
import {
  ClientCache,
  diagnoseConnection,
  isAccountEntryRefusal,
  isDomainEntryRefusal,
  mapBounded,
  onDomain,
} from './shared.ts'

const ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/
const SERVICE_WORD = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/
/** Before a domain is chosen, the class dropdown reads the classes of at most this many domains. */
const MAX_DOMAINS_FOR_CLASSES = 50

export const accountSettings = {
  domain: setting.dropdown({
    label: 'Target domain',
    description: 'The existing Axigen domain the mailbox is created in (loaded from the server).',
    required: true,
    loader: async ({ server, calls, signal }) => {
      const cache = new ClientCache()
      try {
        const domains = await cache.get(server, calls, signal).domains.list()
        return domains.map(
          (d): OptionChoice => ({ value: d.name, label: d.enabled ? d.name : `${d.name} (disabled)` }),
        )
      } finally {
        await cache.close()
      }
    },
  }),
  accountClass: setting.dropdown({
    label: 'Account class',
    description:
      'Account class of the mailbox, from the classes of the chosen target domain (pick the domain first; ' +
      'before that the list shows the classes of every domain, labelled with their domains).',
    default: '',
    loader: async ({ server, calls, signal, settings }) => {
      const cache = new ClientCache()
      try {
        const client = cache.get(server, calls, signal)
        const chosen = typeof settings.domain === 'string' ? settings.domain.trim().toLowerCase() : ''
        const inherit: OptionChoice = { value: '', label: "The domain's default class" }
        if (chosen !== '') {
          // One script: UPDATE Domain fails when the domain is gone, and only then is it looked up.
          try {
            const classes = await client.classes.list(chosen)
            return [inherit, ...classes.map((c): OptionChoice => ({ value: c, label: c }))]
          } catch (error) {
            if (hasErrorCode(error, 'COMMAND')) await requireDomain(client, chosen)
            throw error
          }
        }
        // No domain chosen yet: every domain's classes, labelled with where they exist.
        const seen = new Map<string, string[]>()
        for (const d of (await client.domains.list()).slice(0, MAX_DOMAINS_FOR_CLASSES)) {
          for (const c of await client.classes.list(d.name)) seen.set(c, [...(seen.get(c) ?? []), d.name])
        }
        return [
          inherit,
          ...[...seen].map(
            ([c, ds]): OptionChoice => ({
              value: c,
              label: `${c} (${ds.slice(0, 3).join(', ')}${ds.length > 3 ? ', …' : ''})`,
            }),
          ),
        ]
      } finally {
        await cache.close()
      }
    },
  }),
  mailboxSizeMb: setting.number({ label: 'Mailbox size', unit: 'MB', min: 0, integer: true }),
  maxMessages: setting.number({ label: 'Messages in the mailbox', min: 0, integer: true }),
  folderSizeMb: setting.number({ label: 'Size of one folder', unit: 'MB', min: 0, integer: true }),
  folderMessages: setting.number({ label: 'Messages in one folder', min: 0, integer: true }),
  maxFolders: setting.number({ label: 'Folders', min: 0, integer: true }),
  services: setting.text({
    label: 'Services',
    description:
      'Space- or comma-separated service names (e.g. "imap pop3 smtp webmail"); empty inherits them from the account class.',
    default: '',
    pattern: /^[A-Za-z0-9_. ,-]*$/,
  }),
}

type Settings = {
  domain: string
  accountClass: string
  mailboxSizeMb: number | undefined
  maxMessages: number | undefined
  folderSizeMb: number | undefined
  folderMessages: number | undefined
  maxFolders: number | undefined
  services: string
}

export function quotasFrom(s: Settings): AccountQuotas {
  const q: AccountQuotas = {}
  if (s.mailboxSizeMb !== undefined) q.totalMessageSize = s.mailboxSizeMb * 1024
  if (s.maxMessages !== undefined) q.totalMessageCount = s.maxMessages
  if (s.folderSizeMb !== undefined) q.messageSize = s.folderSizeMb * 1024
  if (s.folderMessages !== undefined) q.messageCount = s.folderMessages
  if (s.maxFolders !== undefined) q.mboxCount = s.maxFolders
  return q
}

export function servicesFrom(s: Settings): string[] | undefined {
  const list = s.services.split(/[\s,]+/).filter((x) => x.length > 0)
  for (const item of list) {
    if (!SERVICE_WORD.test(item))
      throw new ValidationError(`Service name ${JSON.stringify(item)} is not valid`, [
        { path: 'service.settings.services', message: 'must be plain words' },
      ])
  }
  return list.length ? list : undefined
}

interface Identity {
  name: string
  domain: string
}

function identity(service: ServiceContext<Settings>): Identity {
  let name = service.username ?? `svc${service.serviceId}`
  let domain = service.settings.domain
  if (name.includes('@')) {
    const [local = '', dom = ''] = name.split('@')
    name = local
    if (dom && dom.toLowerCase() !== domain.toLowerCase()) {
      throw new ValidationError(`The username's domain ${dom} is not the product's target domain ${domain}`, [
        { path: 'service.username', message: 'domain differs from the target domain' },
      ])
    }
    domain = dom || domain
  }
  if (!ACCOUNT_NAME.test(name)) {
    throw new ValidationError('The mailbox name may only hold letters, digits and . _ + - (at most 64)', [
      { path: 'service.username', message: 'is not a valid mailbox name' },
    ])
  }
  if (!domain)
    throw new ValidationError('No target domain is configured', [
      { path: 'service.settings.domain', message: 'is required' },
    ])
  return { name: name.toLowerCase(), domain: domain.toLowerCase() }
}

/** The account and its marker, or undefined when there is no such account. */
async function find(
  client: AxigenClient,
  id: Identity,
): Promise<{ details: AccountDetails; marker: Marker | undefined } | undefined> {
  const names = await onDomain(client, (c) => c.accounts.list(id.domain, id.name))
  if (!names.includes(id.name)) return undefined
  const details = await onDomain(client, (c) => c.accounts.show(id.domain, id.name))
  return { details, marker: parseMarker(details.notes) }
}

async function requireDomain(client: AxigenClient, domain: string): Promise<void> {
  const domains = await client.domains.list(domain)
  if (!domains.some((d) => d.name === domain)) {
    throw new NotFoundError(
      `The target domain ${domain} does not exist on this Axigen server (it may have been removed since the product was set up). Edit the product and pick the target domain again.`,
    )
  }
}

function ownedOrThrow(found: { marker: Marker | undefined }, id: Identity, serviceId: string): void {
  if (found.marker?.serviceId !== serviceId) {
    const owner = found.marker
      ? `service ${found.marker.serviceId}`
      : 'no panelkit service (created by hand or by another tool)'
    const wayOut = found.marker
      ? ''
      : ` If it really is this customer's, an operator can take it over explicitly with the admin action "Link existing mailbox" (${LINK_MAILBOX}) on service ${serviceId}; create never adopts a mailbox.`
    throw new ConflictError(
      `The mailbox ${id.name}@${id.domain} already exists and belongs to ${owner}, not service ${serviceId}.${wayOut}`,
      {
        customerMessage: 'This mailbox name is already taken.',
      },
    )
  }
}

async function requireOwned(client: AxigenClient, id: Identity, serviceId: string) {
  const found = await find(client, id)
  if (!found) throw new NotFoundError(`No mailbox ${id.name}@${id.domain} exists for service ${serviceId}`)
  ownedOrThrow(found, id, serviceId)
  return found
}

/** What a visit read, and where `ownership` left the session (the `from` of `update` and `remove`). */
type Owned = AccountOwnership & { marker: Marker | undefined; at: 'account' | 'limits' }

/** The contact attribute that holds panelkit's marker, set to `marker` (for a write's `contact`). */
const markerContact = (client: AxigenClient, marker: Marker) => ({
  [client.dialect.markerAttribute]: formatMarker(marker),
})

const visitScriptsByDialect = new WeakMap<AxigenDialect, ReturnType<typeof accountVisitFor>>()
/** The visit scripts of a client's dialect, made once per dialect. */
function visitScripts(dialect: AxigenDialect): ReturnType<typeof accountVisitFor> {
  let scripts = visitScriptsByDialect.get(dialect)
  if (!scripts) {
    scripts = accountVisitFor(dialect)
    visitScriptsByDialect.set(dialect, scripts)
  }
  return scripts
}

type VisitNext<T, F> = (
  found: F,
  session: CliExecutor,
  scripts: ReturnType<typeof accountVisitFor>,
) => Promise<T>

/**
 * One visit to the account's domain (`AxigenClient.visit`) running `read` and then `next` in the same
 * session, so a read and the write it decides enter the domain once. A domain that cannot be entered is
 * looked up: a missing one is a NotFoundError naming it (`onMissingDomain` may answer instead), anything
 * else keeps the server's refusal.
 */
async function inDomainVisit<T>(
  client: AxigenClient,
  id: Identity,
  read: (session: CliExecutor, scripts: ReturnType<typeof accountVisitFor>) => Promise<T>,
  onMissingDomain?: () => T,
): Promise<T> {
  try {
    return await onDomain(client, (c) => c.visit((session) => read(session, visitScripts(c.dialect))))
  } catch (error) {
    if (!isDomainEntryRefusal(error)) throw error
    if (onMissingDomain) {
      const domains = await client.domains.list(id.domain)
      if (!domains.some((d) => d.name === id.domain)) return onMissingDomain()
    } else await requireDomain(client, id.domain)
    throw error
  }
}

const owned = (read: AccountOwnership, limits: boolean): Owned => ({
  ...read,
  marker: parseMarker(read.notes),
  at: limits ? 'limits' : 'account',
})

/**
 * Looks first, for create: whether the account exists (`LIST Accounts`) and, if it does, its marker
 * (and with `limits` its services); `next` gets undefined for no such account. ADD is never tried on a
 * name that may exist: how the server answers an ADD of an existing account is not documented (notes
 * §2.5), and a write to a mailbox not proven ours is not risked for one command.
 */
function visitAccount<T>(
  client: AxigenClient,
  id: Identity,
  limits: boolean,
  next: VisitNext<T, Owned | undefined>,
): Promise<T> {
  return inDomainVisit(client, id, async (session, scripts) => {
    if (!(await session.run(scripts.enter(id.domain, id.name)))) return next(undefined, session, scripts)
    return next(
      owned(await session.run(scripts.ownership(id.domain, id.name, limits)), limits),
      session,
      scripts,
    )
  })
}

/**
 * Opens an account that should exist and reads its marker (and with `limits` its services) without a
 * listing first: one command fewer for suspend, unsuspend, terminate and a password change. When the
 * server refuses to open it, the account is looked up (`LIST Accounts`, outside the visit): gone, and
 * `onMissing` answers; there, and the refusal stands. Opening writes nothing, so a missing account costs
 * one refused command and a listing.
 */
async function visitExisting<T>(
  client: AxigenClient,
  id: Identity,
  limits: boolean,
  next: VisitNext<T, Owned>,
  onMissing: () => T,
  onMissingDomain?: () => T,
): Promise<T> {
  try {
    return await inDomainVisit(
      client,
      id,
      async (session, scripts) =>
        next(owned(await session.run(scripts.open(id.domain, id.name, limits)), limits), session, scripts),
      onMissingDomain,
    )
  } catch (error) {
    if (!isAccountEntryRefusal(error)) throw error
    const names = await onDomain(client, (c) => c.accounts.list(id.domain, id.name))
    if (names.includes(id.name)) throw error
    return onMissing()
  }
}

/** The visit of an operation that needs the account to exist and to be this service's. */
function visitOwned<T>(
  client: AxigenClient,
  id: Identity,
  serviceId: string,
  limits: boolean,
  next: VisitNext<T, Owned>,
): Promise<T> {
  return visitExisting(
    client,
    id,
    limits,
    (found, session, scripts) => {
      ownedOrThrow(found, id, serviceId)
      return next(found, session, scripts)
    },
    () => {
      throw new NotFoundError(`No mailbox ${id.name}@${id.domain} exists for service ${serviceId}`)
    },
  )
}

/** Suspended by us (a snapshot in the marker), or no services at all and not merely an empty class. */
const isSuspended = (d: Pick<AccountDetails, 'services' | 'servicesExplicit'>, m: Marker | undefined) =>
  m?.suspended !== undefined || (d.servicesExplicit !== false && d.services.length === 0)

export const LINK_MAILBOX = 'linkExistingMailbox'

/** Runs one account write, opening a disabled domain with EDIT Domain if the server refuses UPDATE. */
const update = (client: AxigenClient, id: Identity, changes: AccountChanges, action: string) =>
  onDomain(client, (c) => c.accounts.update(id.domain, id.name, changes, action))

/**
 * The Axigen Account (mailbox) product. Suspension empties the account's service list (`CONFIG Limits`,
 * `SET services ()`), after saving what it was — explicit list or "inherited" — in the account's marker,
 * so unsuspend restores exactly that. Both are idempotent.
 */
export const axigenAccountConnector = defineConnector({
  id: 'axigen-account',
  metadata: {
    displayName: 'Axigen Account (mailbox)',
    system: 'axigen',
    description: 'A mailbox inside an existing Axigen domain: class, quotas, services.',
    defaultPort: 7000,
    defaultSecurePort: 7001,
  },
  settings: accountSettings,
  resources: () => new ClientCache(),
  dispose: (cache) => cache.close(),
  operations: {
    async create(ctx) {
      const id = identity(ctx.service)
      const password = ctx.service.password
      if (!password)
        throw new ValidationError('A password is needed to create a mailbox', [
          { path: 'service.password', message: 'is required' },
        ])
      const services = servicesFrom(ctx.settings)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      return visitAccount(client, id, false, async (found, session, scripts) => {
        if (found) {
          ownedOrThrow(found, id, ctx.service.serviceId)
          return {
            accountId: `${id.name}@${id.domain}`,
            created: false,
            username: id.name,
            domain: id.domain,
          }
        }
        await session.run(
          scripts.add(id.domain, {
            name: id.name,
            password,
            ...(ctx.settings.accountClass ? { accountClass: ctx.settings.accountClass } : {}),
            quotas: quotasFrom(ctx.settings),
            ...(services ? { limits: { services } } : {}),
            contact: {
              firstName: ctx.service.client.firstName,
              lastName: ctx.service.client.lastName,
              ...markerContact(client, { serviceId: ctx.service.serviceId }),
            },
          }),
        )
        return { accountId: `${id.name}@${id.domain}`, created: true, username: id.name, domain: id.domain }
      })
    },

    async suspend(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      return visitOwned(client, id, ctx.service.serviceId, true, async (found, session, scripts) => {
        const { marker } = found
        if (marker?.suspended !== undefined) {
          if (found.services.length === 0) return { changed: false }
          // Someone gave services back by hand: take them away again, keeping the original snapshot.
          await session.run(
            scripts.update(id.domain, id.name, { limits: { services: [] } }, 'SUSPEND Account', found.at),
          )
          return { changed: true, details: { reapplied: true } }
        }
        // Without an explicit/inherited note in SHOW (a legal variation), the product says which it is.
        const explicit = found.servicesExplicit ?? servicesFrom(ctx.settings) !== undefined
        const snapshot: Marker = {
          serviceId: ctx.service.serviceId,
          suspended: explicit ? found.services : 'inherit',
        }
        await session.run(
          scripts.update(
            id.domain,
            id.name,
            {
              contact: markerContact(client, snapshot),
              limits: { services: [] },
            },
            'SUSPEND Account',
            found.at,
          ),
        )
        return { changed: true, details: { savedServices: snapshot.suspended } }
      })
    },

    async unsuspend(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      return visitOwned(client, id, ctx.service.serviceId, true, async (found, session, scripts) => {
        if (!isSuspended(found, found.marker)) return { changed: false }
        const saved = found.marker?.suspended ?? 'inherit'
        await session.run(
          scripts.update(
            id.domain,
            id.name,
            {
              contact: markerContact(client, { serviceId: ctx.service.serviceId }),
              limits: saved === 'inherit' ? { resetServices: true } : { services: saved },
            },
            'UNSUSPEND Account',
            found.at,
          ),
        )
        return { changed: true, details: { restoredServices: saved } }
      })
    },

    async terminate(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      return visitExisting<{ changed: boolean }>(
        client,
        id,
        false,
        async (found, session, scripts) => {
          ownedOrThrow(found, id, ctx.service.serviceId)
          await session.run(scripts.remove(id.domain, id.name, found.at))
          return { changed: true }
        },
        // Already gone.
        () => ({ changed: false }),
        // The domain is gone, and every mailbox in it.
        () => ({ changed: false }),
      )
    },

    async changePassword(ctx) {
      const id = identity(ctx.service)
      const password = ctx.service.password
      if (!password)
        throw new ValidationError('The new password is missing', [
          { path: 'service.password', message: 'is required' },
        ])
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      return visitOwned(client, id, ctx.service.serviceId, false, async (found, session, scripts) => {
        await session.run(scripts.update(id.domain, id.name, { password }, 'SET password', found.at))
        return { changed: true }
      })
    },

    async changePackage(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const { details, marker } = await requireOwned(client, id, ctx.service.serviceId)
      const applied: string[] = []
      const quotas = quotasFrom(ctx.settings)
      const changedQuotas = Object.fromEntries(
        Object.entries(quotas).filter(([k, v]) => details.quotas[k as keyof AccountQuotas] !== v),
      ) as AccountQuotas
      if (Object.keys(changedQuotas).length) applied.push('quotas')
      const wantClass = ctx.settings.accountClass
      const classChange = wantClass && wantClass !== details.accountClass ? wantClass : undefined
      if (classChange) applied.push('accountClass')
      const services = servicesFrom(ctx.settings)
      // While suspended, the new services go into the snapshot so that unsuspend restores them.
      const suspended = isSuspended(details, marker)
      let limits: { services?: string[]; resetServices?: boolean } | undefined
      let contact: Record<string, string> | undefined
      if (suspended) {
        const next = services ?? 'inherit'
        const current = marker?.suspended ?? 'inherit'
        if (JSON.stringify(next) !== JSON.stringify(current)) {
          contact = markerContact(client, { serviceId: ctx.service.serviceId, suspended: next })
          applied.push('services')
        }
      } else if (
        services &&
        (details.servicesExplicit === false || services.join(' ') !== details.services.join(' '))
      ) {
        limits = { services }
        applied.push('services')
      } else if (!services && details.servicesExplicit === true) {
        limits = { resetServices: true }
        applied.push('services')
      }
      if (applied.length === 0) return { changed: false, applied: [] }
      await update(
        client,
        id,
        {
          ...(Object.keys(changedQuotas).length ? { quotas: changedQuotas } : {}),
          ...(classChange ? { accountClass: classChange } : {}),
          ...(limits ? { limits } : {}),
          ...(contact ? { contact } : {}),
        },
        'CHANGE PACKAGE',
      )
      return { changed: true, applied }
    },

    async usage(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const { details } = await requireOwned(client, id, ctx.service.serviceId)
      const sizeMb = Math.round(((details.registry.mboxSizeKb ?? 0) / 1024) * 100) / 100
      const metrics: { name: string; value: number; unit: string; limit?: number }[] = [
        { name: 'mailbox_size', value: sizeMb, unit: 'MB' },
        { name: 'messages', value: details.registry.messageCount ?? 0, unit: 'messages' },
      ]
      const sizeLimit = details.quotas.totalMessageSize
      if (sizeLimit !== undefined && metrics[0]) metrics[0].limit = sizeLimit / 1024
      const countLimit = details.quotas.totalMessageCount
      if (countLimit !== undefined && metrics[1]) metrics[1].limit = countLimit
      return { collectedAt: new Date().toISOString(), metrics }
    },

    async clientArea(ctx) {
      const id = identity(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const { details, marker } = await requireOwned(client, id, ctx.service.serviceId)
      const field = (
        key: string,
        label: string,
        value: string | number | null,
        unit?: string,
        limit?: number,
      ) => {
        const f: {
          key: string
          label: string
          value: string | number | null
          unit?: string
          limit?: number
        } = { key, label, value }
        if (unit !== undefined) f.unit = unit
        if (limit !== undefined) f.limit = limit
        return f
      }
      return {
        fields: [
          field('address', 'Address', `${id.name}@${id.domain}`),
          field('status', 'Status', isSuspended(details, marker) ? 'suspended' : 'active'),
          field(
            'mailbox',
            'Mailbox used',
            Math.round(((details.registry.mboxSizeKb ?? 0) / 1024) * 100) / 100,
            'MB',
            details.quotas.totalMessageSize === undefined
              ? undefined
              : details.quotas.totalMessageSize / 1024,
          ),
          field(
            'messages',
            'Messages',
            details.registry.messageCount ?? 0,
            undefined,
            details.quotas.totalMessageCount,
          ),
          field('services', 'Services', details.services.join(', ')),
          field('class', 'Account class', details.accountClass ?? null),
        ],
        links: [],
      }
    },

    async testConnection(ctx) {
      return diagnoseConnection(ctx.server, ctx.calls, ctx.signal)
    },

    async listAccounts(ctx) {
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const domains = ctx.settings.domain
        ? [ctx.settings.domain.toLowerCase()]
        : (await client.domains.list()).map((d) => d.name)
      // Batches of accounts, one script each (the domain entered once), run on every pooled session.
      const batches: { domain: string; names: string[] }[] = []
      for (const domain of domains) {
        const names = await onDomain(client, (c) => c.accounts.list(domain))
        for (let i = 0; i < names.length; i += OWNERSHIP_BATCH) {
          batches.push({ domain, names: names.slice(i, i + OWNERSHIP_BATCH) })
        }
      }
      const read = await mapBounded(batches, client.pool.capacity, async (b) => ({
        domain: b.domain,
        owners: await onDomain(client, (c) => c.accounts.ownership(b.domain, b.names)),
      }))
      const accounts = []
      for (const { domain, owners } of read) {
        for (const owner of owners) {
          const name = owner.name
          const marker = parseMarker(owner.notes)
          const account: {
            accountId: string
            username: string
            domain: string
            email: string
            status: 'active' | 'suspended'
            serviceId?: string
          } = {
            accountId: `${name}@${domain}`,
            username: name,
            domain,
            email: `${name}@${domain}`,
            status: isSuspended(owner, marker) ? 'suspended' : 'active',
          }
          if (marker) account.serviceId = marker.serviceId
          accounts.push(account)
        }
      }
      return { accounts }
    },
  },
  actions: {
    [LINK_MAILBOX]: {
      label: 'Link existing mailbox',
      audience: ['admin'],
      access: 'write',
      /**
       * The explicit operator act that takes over an existing mailbox create refused (import): it writes
       * this service's marker on an unmarked mailbox and changes nothing else. A mailbox marked for another
       * service stays a CONFLICT.
       */
      async run(ctx) {
        const id = identity(ctx.service)
        const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
        const missing = () => {
          throw new NotFoundError(`No mailbox ${id.name}@${id.domain} exists to link`)
        }
        const linked = await visitExisting(
          client,
          id,
          false,
          async (found, session, scripts) => {
            if (found.marker?.serviceId === ctx.service.serviceId) return false
            if (found.marker) ownedOrThrow(found, id, ctx.service.serviceId)
            await session.run(
              scripts.update(
                id.domain,
                id.name,
                {
                  contact: markerContact(client, { serviceId: ctx.service.serviceId }),
                },
                'LINK Account',
                found.at,
              ),
            )
            return true
          },
          missing,
        )
        if (!linked)
          return {
            message: `The mailbox ${id.name}@${id.domain} is already linked to service ${ctx.service.serviceId}`,
          }
        return {
          message: `The mailbox ${id.name}@${id.domain} is now linked to service ${ctx.service.serviceId}`,
          data: { mailbox: `${id.name}@${id.domain}`, linked: true },
        }
      },
    },
  },
})
