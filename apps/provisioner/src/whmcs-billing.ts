import type { Redactor } from '@panelkit/core'
import { createWhmcsClient, type WhmcsClient } from '@panelkit/whmcs'
import type { BillableItem, BillingService, BillingSource, WriteBackFields } from './billing.ts'
import type { Config } from './config.ts'

/**
 * The billing source for a real WHMCS, through `@panelkit/whmcs`'s External API client: every page of
 * GetClientsProducts for the mapped products, client details (cached per pass) for the email and
 * currency, UpdateClientProduct for write-back and AddBillableItem for usage.
 */
export function whmcsBilling(
  config: NonNullable<Config['whmcs']>,
  redactor: Redactor,
  options: { client?: WhmcsClient } = {},
): BillingSource {
  redactor.addValue(config.secret)
  if (config.accessKey) redactor.addValue(config.accessKey)
  const client =
    options.client ??
    createWhmcsClient({
      url: config.url,
      identifier: config.identifier,
      secret: config.secret,
      ...(config.accessKey ? { accessKey: config.accessKey } : {}),
      ...(config.ca ? { ca: config.ca } : {}),
    })
  return {
    async listServices(filter = {}) {
      const clients = new Map<string, BillingService['client']>()
      const out: BillingService[] = []
      const productIds = filter.productIds ?? [undefined]
      for (const pid of productIds) {
        for await (const s of client.iterateClientsProducts({
          ...(pid !== undefined ? { pid } : {}),
          ...(filter.clientId !== undefined ? { clientid: filter.clientId } : {}),
        })) {
          const clientId = String(s.clientid)
          let details = clients.get(clientId)
          if (!details) {
            const { client: c } = await client.getClientsDetails({ clientid: clientId })
            details = {
              email: String(c.email),
              firstName: String(c.firstname ?? ''),
              lastName: String(c.lastname ?? ''),
              ...(c.currency_code ? { currency: String(c.currency_code) } : {}),
            }
            clients.set(clientId, details)
          }
          const password = s.password ? String(s.password) : undefined
          if (password) redactor.addValue(password)
          out.push({
            serviceId: String(s.id),
            clientId,
            productId: String(s.pid),
            status: String(s.status),
            username: s.username ? String(s.username) : undefined,
            password,
            domain: s.domain ? String(s.domain) : undefined,
            configOptions: Object.fromEntries(
              s.configoptions.map((o) => [String(o.option), String(o.value)]),
            ),
            customFields: Object.fromEntries(s.customfields.map((f) => [String(f.name), String(f.value)])),
            client: details,
            dueDate: s.nextduedate ? String(s.nextduedate) : undefined,
          })
        }
      }
      return out
    },
    async writeBack(serviceId: string, fields: WriteBackFields) {
      await client.updateClientProduct({
        serviceid: serviceId,
        ...(fields.username ? { serviceusername: fields.username } : {}),
        ...(fields.dedicatedIp ? { dedicatedip: fields.dedicatedIp } : {}),
        ...(fields.assignedIps && fields.assignedIps.length > 0 ? { assignedips: fields.assignedIps } : {}),
      })
    },
    async addBillableItem(item: BillableItem) {
      const out = await client.addBillableItem({
        clientid: item.clientId,
        description: `${item.description} [${item.key}]`,
        amount: item.amount,
        unit: 'quantity',
        quantity: 1,
        invoiceaction: 'nextinvoice',
      })
      return String(out.billableid)
    },
    close: () => client.close(),
  }
}
