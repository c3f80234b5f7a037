import { ValidationError } from '@panelkit/core'
import { sameId } from '@panelkit/whmcs'
import type { App } from '../app.ts'
import { serverInput } from './context.ts'
import { getService, settingsFor } from './services.ts'

export interface ImportReport {
  listed: number
  adopted: number
  already: number
  unmatched: number
  adoptedServices: string[]
  /** Jobs the follow-up sync queued for adopted services (e.g. a suspension WHMCS asks for). */
  jobsQueued: number
}

/**
 * The admin actions by which a connector takes over an existing account that carries no ownership
 * marker (Axigen's domain and mailbox links, ComputeStacks' account link). The operator's import is the
 * explicit act these actions wait for: without it, an unmarked account stays foreign and every later
 * operation on it answers CONFLICT.
 */
const LINK_ACTIONS = ['linkExistingDomain', 'linkExistingMailbox', 'linkAccount'] as const

/**
 * Adopts accounts that already exist on a server: each is matched to a WHMCS service of a product
 * mapped to this server's connector (by the service id the connector reports, else by username),
 * recorded as provisioned on that server — intended and confirmed, with WHMCS's plan and password
 * fingerprint — so no create runs. An account that carries no service id (no ownership marker) is
 * linked first with the connector's link action when it has one, and is not adopted if the link fails.
 * Then a sync of each adopted service queues whatever else WHMCS
 * asks for (a suspension, a termination, another plan).
 */
export async function importAccounts(
  app: App,
  serverId: string,
  options: { onProgress?: (done: number, total: number) => void } = {},
): Promise<ImportReport> {
  const { engine, store } = app
  const server = engine.server(serverId)
  if (!server)
    throw new ValidationError(`No server ${serverId} in the config`, [{ path: 'server', message: 'unknown' }])
  const connector = engine.connector(server.connector)
  if (!connector) throw new ValidationError(`Connector ${server.connector} is not available`)
  if (!engine.whmcs) throw new ValidationError('No WHMCS connection is configured (the `whmcs` section)')
  const listed = await connector.invoke('listAccounts', {
    server: serverInput(server),
  })
  if (!listed.ok)
    throw new Error(`listAccounts on ${serverId} failed: ${listed.error.code}: ${listed.error.detail}`)
  const products = app.config.products.filter((p) => p.connector === server.connector)
  const reverse = engine.reverseSync('intended')
  const whmcsServices = []
  for (const p of products)
    for await (const page of engine.whmcs.syncServicePages({ pid: p.whmcsProductId }))
      whmcsServices.push(...page.items)
  const report: ImportReport = {
    listed: listed.data.accounts.length,
    adopted: 0,
    already: 0,
    unmatched: 0,
    adoptedServices: [],
    jobsQueued: 0,
  }
  let done = 0
  for (const account of listed.data.accounts) {
    options.onProgress?.(++done, listed.data.accounts.length)
    // An account marked for a service is that service's or nobody's here: the name fallbacks are only
    // for unmarked accounts (one marked for another service would be adopted and then refused).
    const match =
      account.serviceId !== undefined
        ? whmcsServices.find((s) => sameId(s.id, account.serviceId as string))
        : (whmcsServices.find(
            (s) =>
              account.username !== undefined && account.username !== '' && s.username === account.username,
          ) ??
          whmcsServices.find(
            (s) =>
              account.domain !== undefined &&
              account.domain !== '' &&
              String(s.domain ?? '').toLowerCase() === account.domain.toLowerCase(),
          ))
    if (!match) {
      report.unmatched++
      continue
    }
    const serviceId = String(match.id)
    if (await getService(store.db, serviceId)) {
      report.already++
      continue
    }
    // What a create would have been: the plan, settings and password WHMCS has for it.
    const evaluation = reverse.evaluate(match, undefined)
    const would = evaluation.intents.find((i) => i.kind === 'create')
    const product = engine.productFor(String(match.pid))
    if (!product) {
      report.unmatched++
      continue
    }
    const remote = account.status === 'suspended' ? 'suspended' : 'active'
    const now = Date.now()
    const client = await engine.whmcs.getClientsDetails({ clientid: String(match.clientid) })
    const context: Record<string, unknown> = {
      serviceId,
      clientId: String(match.clientid),
      configOptions: would?.configOptions ?? {},
      customFields: would?.customFields ?? {},
      status: match.status,
      client: {
        id: String(match.clientid),
        email: String(client.client.email),
        firstName: String(client.client.firstname ?? ''),
        lastName: String(client.client.lastname ?? ''),
      },
    }
    if (match.username) context.username = match.username
    if (match.domain) context.domain = match.domain
    const link = LINK_ACTIONS.find((name) => connector.definition.actions?.[name] !== undefined)
    if (account.serviceId === undefined && link) {
      const linked = await connector.invoke('action', {
        action: link,
        audience: 'admin',
        params: { accountId: account.accountId },
        service: {
          ...context,
          settings: settingsFor(product, would?.plan),
          server: serverInput(server),
        },
      } as never)
      if (!linked.ok) {
        app.logger.warn('import: could not link an existing account, not adopted', {
          serverId,
          serviceId,
          accountId: account.accountId,
          code: linked.error.code,
          detail: linked.error.detail,
        })
        report.unmatched++
        continue
      }
    }
    await store.tx(async (trx) => {
      await trx
        .insertInto('services')
        .values({
          service_id: serviceId,
          client_id: String(match.clientid),
          product_id: String(match.pid),
          connector: server.connector,
          server_group: product.serverGroup,
          desired: remote,
          version: 1,
          actual: remote,
          settings_json: JSON.stringify(settingsFor(product, would?.plan)),
          settings_hash: '',
          password_hash: '',
          context_json: JSON.stringify(context),
          server_id: serverId,
          account_id: account.accountId,
          username: account.username ?? null,
          ips_json: null,
          last_job_id: null,
          last_step: 'imported',
          last_error: null,
          created_at: now,
          updated_at: now,
          plan: would?.plan ?? null,
          password_fp: would?.passwordFingerprint ?? null,
          password_enc: would?.password ? store.seal(would.password, `service:${serviceId}`) : null,
          confirmed_plan: would?.plan ?? null,
          confirmed_password_fp: would?.passwordFingerprint ?? null,
          service_password_fp: would?.servicePasswordFingerprint ?? null,
          confirmed_service_password_fp: would?.servicePasswordFingerprint ?? null,
          // What the account has on the server is not known: compared on the settings above.
          confirmed_settings_json: null,
        })
        .execute()
      await trx
        .insertInto('assignments')
        .values({ service_id: serviceId, server_id: serverId, updated_at: now })
        .onConflict((oc) => oc.column('service_id').doUpdateSet({ server_id: serverId, updated_at: now }))
        .execute()
    })
    report.adopted++
    report.adoptedServices.push(serviceId)
    // Anything WHMCS wants beyond what exists (a suspension, a termination) becomes a job as usual.
    const follow = await engine.sync({ serviceId })
    report.jobsQueued += follow.jobsCreated
  }
  app.logger.info('import finished', { serverId, ...report })
  return report
}
