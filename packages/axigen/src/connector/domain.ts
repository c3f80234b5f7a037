import {
  CommandError,
  ConflictError,
  defineConnector,
  definePipeline,
  isPanelkitError,
  NotFoundError,
  type ServiceContext,
  setting,
  ValidationError,
} from '@panelkit/core'
import type { AxigenClient } from '../client.ts'
import type { DomainAdminLimits } from '../commands/domains.ts'
import { showString } from '../protocol/output.ts'
import { formatMarker, type Marker, parseMarker } from './marker.ts'
import { ClientCache, diagnoseConnection, mapBounded, onDomain } from './shared.ts'

const DOMAIN_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/
const PATH = /^(file:\/\/)?\/[^?"]*$/

export const domainSettings = {
  groupware: setting.yesNo({
    label: 'Groupware',
    description: 'Enable groupware (MACL) support on the domain.',
    default: false,
  }),
  domainLocation: setting.text({
    label: 'Domain location',
    description: 'Server-side path of the domain; {domain} is replaced by the domain name.',
    default: '/var/opt/axigen/domains/{domain}',
    pattern: PATH,
  }),
  messagesLocation: setting.text({
    label: 'Messages location',
    description:
      'Server-side path of the message storage; {domain} and {domainLocation} are replaced. Empty: the server default.',
    default: '{domainLocation}/messages',
  }),
  maxFiles: setting.number({ label: 'Storage: most files', min: 1, max: 128, integer: true }),
  maxFileSizeKb: setting.number({ label: 'Storage: largest file', unit: 'KB', min: 1, integer: true }),
  migrationSource: setting.text({
    label: 'Migration source',
    description: 'IMAP source (host:port) for migration of new accounts on first login.',
    default: '',
  }),
  maxAccounts: setting.number({ label: 'Most accounts', min: 0, integer: true }),
  maxLists: setting.number({ label: 'Most mailing lists', min: 0, integer: true }),
  maxGroups: setting.number({ label: 'Most groups', min: 0, integer: true }),
  keepCopyOnTerminate: setting.yesNo({ label: 'Keep a copy of the data on terminate', default: true }),
}

type Settings = {
  groupware: boolean
  domainLocation: string
  messagesLocation: string
  maxFiles: number | undefined
  maxFileSizeKb: number | undefined
  migrationSource: string
  maxAccounts: number | undefined
  maxLists: number | undefined
  maxGroups: number | undefined
  keepCopyOnTerminate: boolean
}

function domainOf(service: ServiceContext<Settings>): string {
  const d = service.domain?.toLowerCase()
  if (!d || !DOMAIN_NAME.test(d)) {
    throw new ValidationError('The service needs a valid domain name (example.com)', [
      { path: 'service.domain', message: 'must be a domain name' },
    ])
  }
  return d
}

export function locations(domain: string, s: Settings): { location: string; messages: string | undefined } {
  const location = s.domainLocation.replaceAll('{domain}', domain)
  const messages = s.messagesLocation
    ? s.messagesLocation.replaceAll('{domainLocation}', location).replaceAll('{domain}', domain)
    : undefined
  for (const [field, v] of [
    ['domainLocation', location],
    ['messagesLocation', messages],
  ] as const) {
    if (v !== undefined && !PATH.test(v))
      throw new ValidationError(`${field} must be an absolute server path`, [
        { path: `service.settings.${field}`, message: 'must be an absolute path' },
      ])
  }
  return { location, messages }
}

export function adminLimitsFrom(s: Settings): DomainAdminLimits | undefined {
  const l: DomainAdminLimits = {}
  if (s.maxAccounts !== undefined) l.maxAccounts = s.maxAccounts
  if (s.maxLists !== undefined) l.maxMaillists = s.maxLists
  if (s.maxGroups !== undefined) l.maxGroups = s.maxGroups
  return Object.keys(l).length ? l : undefined
}

interface DomainState {
  exists: boolean
  enabled: boolean
}

async function domainState(client: AxigenClient, domain: string): Promise<DomainState> {
  const row = (await client.domains.list(domain)).find((d) => d.name === domain)
  return { exists: row !== undefined, enabled: row?.enabled ?? false }
}

/** The marker in the postmaster's contact information (a disabled domain is opened with EDIT if need be). */
async function ownerMarker(client: AxigenClient, domain: string): Promise<Marker | undefined> {
  const contact = await onDomain(client, (c) => c.accounts.contact(domain, 'postmaster'))
  return parseMarker(showString(contact, client.dialect.markerAttribute))
}

/** A domain that exists and is not this service's: never adopted, never touched. */
function notOurs(domain: string, marker: Marker | undefined, serviceId: string): ConflictError {
  const owner = marker ? `service ${marker.serviceId}` : 'no panelkit service (it carries no panelkit marker)'
  const wayOut = marker
    ? ''
    : ` If this domain really is this customer's, an operator can take it over explicitly with the admin action "${LINK_ACTION_LABEL}" (${LINK_ACTION}) on service ${serviceId}; create never adopts a domain.`
  return new ConflictError(
    `The domain ${domain} already exists on this server and belongs to ${owner}, not service ${serviceId}.${wayOut}`,
    { customerMessage: 'This domain is already hosted on the mail server.' },
  )
}

async function requireOwned(client: AxigenClient, domain: string, serviceId: string): Promise<DomainState> {
  const state = await domainState(client, domain)
  if (!state.exists) throw new NotFoundError(`No domain ${domain} exists for service ${serviceId}`)
  const marker = await ownerMarker(client, domain)
  if (marker?.serviceId !== serviceId) throw notOurs(domain, marker, serviceId)
  return state
}

export const LINK_ACTION = 'linkExistingDomain'
const LINK_ACTION_LABEL = 'Link existing domain'

interface CreateData extends Record<string, unknown> {
  domain: string
  /** The domain existed and carried this service's marker when the job began. */
  preexisting?: boolean
  /** The domain did not exist when the job began (so a later unmarked one at our location is ours). */
  absent?: boolean
  /** This job created the domain (its limits are applied without reading them first). */
  createdByUs?: boolean
}

interface CreateContext {
  client: AxigenClient
  settings: Settings
  serviceId: string
  password: string
}

/**
 * Create as a resumable pipeline. Every step is safe to run again, and a retry converges on the plan
 * whatever step a crash interrupted: an owned domain is not an early "already exists" — its marker and
 * limits are checked and completed first. Ownership is proven by the marker, or, between CREATE and the
 * marker, by this job's checkpoint (the domain was absent when the job began, and it is at the location
 * the job asked for).
 */
const createDomainPipeline = definePipeline<CreateData, CreateContext>({
  name: 'axigen-domain-create',
  title: 'Create mail domain',
  initialState: 'new',
  steps: [
    {
      name: 'check-domain',
      label: 'Check the domain is free or this service’s',
      state: 'checked',
      async run({ data, context }) {
        const state = await domainState(context.client, data.domain)
        if (!state.exists) return { status: 'done', data: { absent: true } }
        const marker = await ownerMarker(context.client, data.domain)
        if (marker?.serviceId !== context.serviceId) throw notOurs(data.domain, marker, context.serviceId)
        return { status: 'skipped', reason: 'exists, marked as this service’s', data: { preexisting: true } }
      },
    },
    {
      name: 'create-domain',
      label: 'Create the domain and mark it as this service’s',
      state: 'created',
      async run({ data, context }) {
        if (data.preexisting) return { status: 'skipped', reason: 'exists, already marked' }
        const { location, messages } = locations(data.domain, context.settings)
        const state = await domainState(context.client, data.domain)
        if (state.exists) {
          // Absent when this job began: an earlier attempt of this step created it and did not hear back
          // (or stopped before marking it). Finish the marking.
          const info = await context.client.domains.show(data.domain)
          if (!data.absent || info.location !== location)
            throw notOurs(data.domain, undefined, context.serviceId)
          await markOrRollBack(context.client, data.domain, context.serviceId)
          return {
            status: 'done',
            note: 'created by an earlier attempt of this job',
            data: { createdByUs: true },
          }
        }
        const messagesLocation =
          messages === undefined
            ? undefined
            : {
                path: messages,
                ...(context.settings.maxFiles !== undefined ? { maxFiles: context.settings.maxFiles } : {}),
                ...(context.settings.maxFileSizeKb !== undefined
                  ? { maxFileSize: context.settings.maxFileSizeKb }
                  : {}),
              }
        await context.client.domains.create({
          name: data.domain,
          location,
          postmasterPassword: context.password,
          groupware: context.settings.groupware,
          ...(messagesLocation ? { messagesLocation } : {}),
        })
        await markOrRollBack(context.client, data.domain, context.serviceId)
        return { status: 'done', data: { createdByUs: true } }
      },
    },
    {
      name: 'apply-limits',
      label: 'Apply admin limits and migration source',
      state: 'configured',
      async run({ data, context }) {
        const wanted = adminLimitsFrom(context.settings)
        const migration = context.settings.migrationSource || undefined
        if (!wanted && !migration) return { status: 'skipped', reason: 'nothing to apply' }
        // A domain this job created gets the whole plan (nothing to read back, and dry-run works);
        // one that already existed gets what differs.
        const applied = data.createdByUs
          ? await applyPlan(context.client, data.domain, wanted, migration)
          : await convergePlan(context.client, data.domain, wanted, migration)
        return applied.length
          ? { status: 'done', note: applied.join(', ') }
          : { status: 'skipped', reason: 'no change' }
      },
    },
  ],
})

interface PackageData extends Record<string, unknown> {
  domain: string
  /** Whether the domain was enabled when the job began: a suspended domain stays disabled. */
  wasEnabled?: boolean
  /** The groupware flag differs from the package's (the domain is disabled for the edit). */
  groupware?: boolean
  /** Admin limits and migration source this job changed. */
  applied?: string[]
}

/**
 * Change-package as a resumable pipeline. Groupware support can only be edited on a disabled domain, so
 * an enabled domain is disabled for the edit and enabled again: the checkpoint remembers that it was
 * enabled, so that a retry after a crash between the disable and the enable does not take the domain it
 * finds disabled for a suspended one and leave it down.
 */
const changePackagePipeline = definePipeline<PackageData, Omit<CreateContext, 'password'>>({
  name: 'axigen-domain-change-package',
  title: 'Change mail domain package',
  initialState: 'current',
  steps: [
    {
      name: 'check-domain',
      label: 'Check the domain is this service’s',
      state: 'checked',
      async run({ data, context }) {
        const state = await requireOwned(context.client, data.domain, context.serviceId)
        const info = await context.client.domains.show(data.domain)
        const groupware = info.groupware !== undefined && info.groupware !== context.settings.groupware
        return { status: 'done', data: { wasEnabled: state.enabled, groupware } }
      },
    },
    {
      name: 'groupware',
      label: 'Change groupware support on the disabled domain',
      state: 'groupware-set',
      async run({ data, context }) {
        if (!data.groupware) return { status: 'skipped', reason: 'no change' }
        // groupwareSupport is only editable on an inactive domain (EDIT Domain): a short disable.
        const { enabled } = await domainState(context.client, data.domain)
        if (enabled) await context.client.domains.disable(data.domain)
        try {
          await context.client.domains.editGroupware(data.domain, context.settings.groupware)
        } catch (error) {
          // Not left down while the job waits for its retry (which disables it again).
          if (data.wasEnabled) await context.client.domains.enable(data.domain).catch(() => undefined)
          throw error
        }
        return { status: 'done' }
      },
    },
    {
      name: 'enable',
      label: 'Enable the domain again',
      state: 'enabled',
      async run({ data, context }) {
        if (!data.groupware || !data.wasEnabled)
          return { status: 'skipped', reason: 'not disabled by this job' }
        const { enabled } = await domainState(context.client, data.domain)
        if (enabled) return { status: 'skipped', reason: 'already enabled' }
        await context.client.domains.enable(data.domain)
        return { status: 'done' }
      },
    },
    {
      name: 'apply-limits',
      label: 'Apply admin limits and migration source',
      state: 'configured',
      async run({ data, context }) {
        const applied = await convergePlan(
          context.client,
          data.domain,
          adminLimitsFrom(context.settings),
          context.settings.migrationSource || undefined,
        )
        return applied.length
          ? { status: 'done', note: applied.join(', '), data: { applied } }
          : { status: 'skipped', reason: 'no change' }
      },
    },
  ],
})

/**
 * Marks a domain this job has just created. When the server refuses the marker attribute (an unconfirmed
 * fact, see the dialect), the new, empty domain is deleted again so that nothing is left half done, and
 * the refusal — which names the option to change — is what the caller sees.
 */
async function markOrRollBack(client: AxigenClient, domain: string, serviceId: string): Promise<void> {
  try {
    await tagOwner(client, domain, serviceId)
  } catch (error) {
    if (!isPanelkitError(error) || error.kind !== 'COMMAND' || error.details?.hint === undefined) throw error
    try {
      await client.domains.disable(domain)
      await client.domains.delete(domain, { keepCopy: false })
    } catch (rollback) {
      throw new CommandError(
        `${error.message} The domain ${domain} this job had just created could not be removed again (${
          isPanelkitError(rollback) ? rollback.message : String(rollback)
        }): remove it by hand, or link it with the "${LINK_ACTION_LABEL}" action once the option is set.`,
        { cause: error, details: { ...error.details } },
      )
    }
    throw error
  }
}

async function tagOwner(client: AxigenClient, domain: string, serviceId: string): Promise<void> {
  await onDomain(client, (c) =>
    c.accounts.update(
      domain,
      'postmaster',
      { contact: { [c.dialect.markerAttribute]: formatMarker({ serviceId }) } },
      'TAG Domain',
    ),
  )
}

async function applyPlan(
  client: AxigenClient,
  domain: string,
  adminLimits: DomainAdminLimits | undefined,
  migrationSource: string | undefined,
): Promise<string[]> {
  if (!adminLimits && !migrationSource) return []
  await onDomain(client, (c) =>
    c.domains.configure(domain, {
      ...(adminLimits ? { adminLimits } : {}),
      ...(migrationSource ? { migrationSource } : {}),
    }),
  )
  return [...(adminLimits ? ['adminLimits'] : []), ...(migrationSource ? ['migration'] : [])]
}

/** Applies only the admin limits and migration source that differ from the server's. */
async function convergePlan(
  client: AxigenClient,
  domain: string,
  wanted: DomainAdminLimits | undefined,
  migrationSource: string | undefined,
): Promise<string[]> {
  let diff: DomainAdminLimits | undefined
  if (wanted) {
    const current = await onDomain(client, (c) => c.domains.showAdminLimits(domain))
    const changed = Object.entries(wanted).filter(([k, v]) => current[k as keyof DomainAdminLimits] !== v)
    if (changed.length) diff = Object.fromEntries(changed)
  }
  const migration =
    migrationSource && migrationSource !== (await onDomain(client, (c) => c.domains.showMigration(domain)))
      ? migrationSource
      : undefined
  return applyPlan(client, domain, diff, migration)
}

/** The Axigen Domain product: a whole mail domain; the postmaster password is the service password. */
export const axigenDomainConnector = defineConnector({
  id: 'axigen-domain',
  metadata: {
    displayName: 'Axigen Domain',
    system: 'axigen',
    description: 'A whole Axigen mail domain: groupware, storage, admin limits, postmaster password.',
    defaultPort: 7000,
    defaultSecurePort: 7001,
  },
  settings: domainSettings,
  resources: () => new ClientCache(),
  dispose: (cache) => cache.close(),
  operations: {
    async create(ctx) {
      const domain = domainOf(ctx.service)
      const password = ctx.service.password
      if (!password)
        throw new ValidationError('The postmaster password is missing', [
          { path: 'service.password', message: 'is required' },
        ])
      locations(domain, ctx.settings)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const run = await ctx.runPipeline(createDomainPipeline, {
        data: { domain },
        context: { client, settings: ctx.settings, serviceId: ctx.service.serviceId, password },
      })
      return { accountId: domain, created: run.checkpoint.data.createdByUs === true, domain }
    },

    async suspend(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const state = await requireOwned(client, domain, ctx.service.serviceId)
      if (!state.enabled) return { changed: false }
      await client.domains.disable(domain)
      return { changed: true }
    },

    async unsuspend(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const state = await requireOwned(client, domain, ctx.service.serviceId)
      if (state.enabled) return { changed: false }
      await client.domains.enable(domain)
      return { changed: true }
    },

    async terminate(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const state = await domainState(client, domain)
      if (!state.exists) return { changed: false }
      await requireOwned(client, domain, ctx.service.serviceId)
      // Whether DELETE needs a disabled domain is unknown; disabling first works either way.
      if (state.enabled) await client.domains.disable(domain)
      await client.domains.delete(domain, { keepCopy: ctx.settings.keepCopyOnTerminate })
      return { changed: true, details: { keptCopy: ctx.settings.keepCopyOnTerminate } }
    },

    async changePassword(ctx) {
      const domain = domainOf(ctx.service)
      const password = ctx.service.password
      if (!password)
        throw new ValidationError('The new postmaster password is missing', [
          { path: 'service.password', message: 'is required' },
        ])
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      await requireOwned(client, domain, ctx.service.serviceId)
      await onDomain(client, (c) =>
        c.accounts.update(domain, 'postmaster', { password }, 'SET postmaster password'),
      )
      return { changed: true }
    },

    async changePackage(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const run = await ctx.runPipeline(changePackagePipeline, {
        data: { domain },
        context: { client, settings: ctx.settings, serviceId: ctx.service.serviceId },
      })
      const data = run.checkpoint.data
      const applied = [...(data.groupware ? ['groupware'] : []), ...(data.applied ?? [])]
      return {
        changed: applied.length > 0,
        applied,
        details: { storage: 'storage locations are not changed on an existing domain' },
      }
    },

    async usage(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      await requireOwned(client, domain, ctx.service.serviceId)
      return {
        collectedAt: new Date().toISOString(),
        metrics: await domainMetrics(client, domain, ctx.settings),
      }
    },

    async clientArea(ctx) {
      const domain = domainOf(ctx.service)
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const state = await requireOwned(client, domain, ctx.service.serviceId)
      const metrics = await domainMetrics(client, domain, ctx.settings)
      const lists = (await onDomain(client, (c) => c.lists.list(domain))).length
      const groups = (await onDomain(client, (c) => c.groups.list(domain))).length
      const limit = (v: number | undefined) => (v === undefined ? {} : { limit: v })
      const m = (name: string) => metrics.find((x) => x.name === name)
      return {
        fields: [
          { key: 'domain', label: 'Domain', value: domain },
          { key: 'status', label: 'Status', value: state.enabled ? 'active' : 'suspended' },
          { key: 'storage', label: 'Storage used', value: m('storage')?.value ?? 0, unit: 'MB' },
          {
            key: 'accounts',
            label: 'Accounts',
            value: m('accounts')?.value ?? 0,
            ...limit(ctx.settings.maxAccounts),
          },
          { key: 'lists', label: 'Mailing lists', value: lists, ...limit(ctx.settings.maxLists) },
          { key: 'groups', label: 'Groups', value: groups, ...limit(ctx.settings.maxGroups) },
          { key: 'messages', label: 'Messages', value: m('messages')?.value ?? 0 },
          { key: 'groupware', label: 'Groupware', value: ctx.settings.groupware },
        ],
        links: [],
      }
    },

    async testConnection(ctx) {
      return diagnoseConnection(ctx.server, ctx.calls, ctx.signal)
    },

    async listAccounts(ctx) {
      const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
      const accounts = []
      const list = await client.domains.list()
      // One marker read per domain (the postmaster's notes), on every pooled session at once.
      const markers = await mapBounded(list, client.pool.capacity, (d) =>
        ownerMarker(client, d.name).catch(() => undefined),
      )
      for (const [i, d] of list.entries()) {
        const marker = markers[i]
        const account: {
          accountId: string
          domain: string
          status: 'active' | 'suspended'
          serviceId?: string
        } = {
          accountId: d.name,
          domain: d.name,
          status: d.enabled ? 'active' : 'suspended',
        }
        if (marker) account.serviceId = marker.serviceId
        accounts.push(account)
      }
      return { accounts }
    },
  },
  actions: {
    [LINK_ACTION]: {
      label: LINK_ACTION_LABEL,
      audience: ['admin'],
      access: 'write',
      /**
       * The explicit operator act that takes over an existing domain create refused (import): it marks an
       * unmarked domain as this service's and changes nothing else (the next changePackage applies the
       * plan). A domain marked for another service stays a CONFLICT.
       */
      async run(ctx) {
        const domain = domainOf(ctx.service)
        const client = ctx.resources.get(ctx.server, ctx.calls, ctx.signal)
        const state = await domainState(client, domain)
        if (!state.exists) throw new NotFoundError(`No domain ${domain} exists on this server to link`)
        const marker = await ownerMarker(client, domain)
        if (marker?.serviceId === ctx.service.serviceId)
          return { message: `The domain ${domain} is already linked to service ${ctx.service.serviceId}` }
        if (marker) throw notOurs(domain, marker, ctx.service.serviceId)
        await tagOwner(client, domain, ctx.service.serviceId)
        return {
          message: `The domain ${domain} is now linked to service ${ctx.service.serviceId}; run changePackage to apply the plan`,
          data: { domain, linked: true },
        }
      },
    },
  },
})

async function domainMetrics(client: AxigenClient, domain: string, settings: Settings) {
  const names = (await onDomain(client, (c) => c.accounts.list(domain))).filter((n) => n !== 'postmaster')
  let sizeKb = 0
  let messages = 0
  // Chunks keep each script (and its reply) a bounded size on large domains.
  for (let i = 0; i < names.length; i += 200) {
    const registry = await onDomain(client, (c) => c.accounts.registry(domain, names.slice(i, i + 200)))
    for (const r of registry.values()) {
      sizeKb += r.mboxSizeKb ?? 0
      messages += r.messageCount ?? 0
    }
  }
  const accounts: { name: string; value: number; unit: string; limit?: number } = {
    name: 'accounts',
    value: names.length,
    unit: 'accounts',
  }
  if (settings.maxAccounts !== undefined) accounts.limit = settings.maxAccounts
  return [
    { name: 'storage', value: Math.round((sizeKb / 1024) * 100) / 100, unit: 'MB' },
    accounts,
    { name: 'messages', value: messages, unit: 'messages' },
  ]
}
