import { ValidationError } from '@panelkit/core'
import type { App } from '../app.ts'
import { applyIntent, fingerprint, getService } from './services.ts'

export interface ImportReport {
  listed: number
  adopted: number
  already: number
  unmatched: number
  adoptedServices: string[]
}

/**
 * Adopts accounts that already exist on a server: each is matched to a billing service (by the service
 * id the connector reports, else by username), recorded as existing on that server — so no create runs —
 * and then reconciled like any sync (an account billing wants suspended gets a suspend job).
 */
export async function importAccounts(app: App, serverId: string): Promise<ImportReport> {
  const { engine, store } = app
  const server = engine.server(serverId)
  if (!server)
    throw new ValidationError(`No server ${serverId} in the config`, [{ path: 'server', message: 'unknown' }])
  const connector = engine.connector(server.connector)
  if (!connector) throw new ValidationError(`Connector ${server.connector} is not available`)
  if (!engine.billing) throw new ValidationError('No billing source is configured (the `whmcs` section)')
  const listed = await connector.invoke('listAccounts', {
    server: {
      id: server.id,
      hostname: server.hostname,
      secure: server.secure,
      options: server.options,
      ...(server.port ? { port: server.port } : {}),
      ...(server.username ? { username: server.username } : {}),
      ...(server.password ? { password: server.password } : {}),
      ...(server.accessHash ? { accessHash: server.accessHash } : {}),
    },
  })
  if (!listed.ok)
    throw new Error(`listAccounts on ${serverId} failed: ${listed.error.code}: ${listed.error.detail}`)
  const products = app.config.products.filter((p) => p.connector === server.connector)
  const billingServices = await engine.billing.listServices({
    productIds: products.map((p) => p.whmcsProductId),
  })
  const report: ImportReport = {
    listed: listed.data.accounts.length,
    adopted: 0,
    already: 0,
    unmatched: 0,
    adoptedServices: [],
  }
  for (const account of listed.data.accounts) {
    const match =
      billingServices.find((s) => account.serviceId !== undefined && s.serviceId === account.serviceId) ??
      billingServices.find((s) => account.username !== undefined && s.username === account.username)
    if (!match) {
      report.unmatched++
      continue
    }
    if (await getService(store.db, match.serviceId)) {
      report.already++
      continue
    }
    const intent = engine.intentFor(match, 'import')
    if (!intent) {
      report.unmatched++
      continue
    }
    const remote = account.status === 'suspended' ? 'suspended' : 'active'
    const now = Date.now()
    await store.tx(async (trx) => {
      await trx
        .insertInto('services')
        .values({
          service_id: match.serviceId,
          client_id: match.clientId,
          product_id: match.productId,
          connector: intent.connector,
          server_group: intent.serverGroup,
          desired: remote,
          version: 1,
          actual: remote,
          settings_json: JSON.stringify(intent.settings),
          settings_hash: fingerprint(intent.settings),
          password_hash: fingerprint(intent.password ?? ''),
          context_json: JSON.stringify({ ...intent.context, password: intent.password }),
          server_id: serverId,
          account_id: account.accountId,
          username: account.username ?? null,
          ips_json: null,
          last_job_id: null,
          last_step: 'imported',
          last_error: null,
          created_at: now,
          updated_at: now,
        })
        .execute()
      await trx
        .insertInto('assignments')
        .values({ service_id: match.serviceId, server_id: serverId, updated_at: now })
        .onConflict((oc) => oc.column('service_id').doUpdateSet({ server_id: serverId, updated_at: now }))
        .execute()
      // Anything billing wants beyond what exists (a suspension, a termination) becomes a job as usual.
      await applyIntent(trx, intent)
    })
    report.adopted++
    report.adoptedServices.push(match.serviceId)
  }
  app.logger.info('import finished', { serverId, ...report })
  return report
}
