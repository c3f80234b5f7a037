import { createWhmcsClient, type WhmcsClient } from '@panelkit/whmcs'
import { startWhmcsSimulator, type WhmcsSimulator } from '@panelkit/whmcs/testing'

/**
 * A WHMCS simulator with one product (a `Plan` option with Basic and Pro, a `Password` custom field)
 * and helpers to order, change and read services, for the engine, API and process tests.
 */
export interface WhmcsWorld {
  sim: WhmcsSimulator
  pid: number
  /** The `whmcs` config section (the secret as an environment reference) and its environment. */
  config: { url: string; identifier: string; secret: string; ca: string }
  env: Record<string, string>
  client(): WhmcsClient
  order(options?: { clientId?: number; plan?: string; password?: string; field?: string }): string
  customer(email: string): number
  setField(serviceId: string, name: string, value: string): void
  close(): Promise<void>
}

export async function startWhmcs(): Promise<WhmcsWorld> {
  const sim = await startWhmcsSimulator()
  const product = sim.createProduct({
    name: 'Panel account',
    configOptions: [{ name: 'Plan', options: ['Basic', 'Pro'] }],
    customFields: [{ name: 'Password', type: 'password' }],
  })
  const clients: WhmcsClient[] = []
  let defaultClient: number | undefined
  const world: WhmcsWorld = {
    sim,
    pid: product.id,
    config: {
      url: sim.url,
      identifier: sim.credential.identifier,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      secret: '${WHMCS_SECRET}',
      ca: sim.ca,
    },
    env: { WHMCS_SECRET: sim.credential.secret },
    client() {
      const c = createWhmcsClient({
        url: sim.url,
        identifier: sim.credential.identifier,
        secret: sim.credential.secret,
        tls: { ca: sim.ca },
        retry: false,
      })
      clients.push(c)
      return c
    },
    customer(email) {
      return sim.createClient({ email, firstname: 'Ada', lastname: 'Lovelace' }).id
    },
    order(options = {}) {
      defaultClient ??= world.customer('customer@example.com')
      const service = sim.createService({
        clientId: options.clientId ?? defaultClient,
        pid: product.id,
        status: 'Active',
        password: options.password ?? '',
        options: { Plan: options.plan ?? 'Basic' },
        ...(options.field !== undefined ? { fields: { Password: options.field } } : {}),
      })
      return String(service.id)
    },
    setField(serviceId, name, value) {
      const f = product.customFields.find((x) => x.name === name)
      if (!f) throw new Error(`no field ${name}`)
      sim.service(Number(serviceId)).customFields[f.id] = value
    },
    async close() {
      for (const c of clients) await c.close().catch(() => undefined)
      await sim.close()
    },
  }
  return world
}

/**
 * The config sections of one memory-panel product sold through this WHMCS: server `s1` on the panel
 * registered as `host` (its password from the `PANEL_PW` environment reference), group `g1`, and a `Plan`
 * option whose Basic plan has the given settings and Pro is `{ plan: 'pro' }`.
 */
export function memoryPanelProduct(world: WhmcsWorld, host: string, basic: Record<string, unknown>) {
  return {
    whmcs: world.config,
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
    servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: '${PANEL_PW}' }],
    serverGroups: [{ id: 'g1', servers: ['s1'] }],
    products: [
      {
        whmcsProductId: world.pid,
        connector: 'memory-panel',
        serverGroup: 'g1',
        plans: { option: 'Plan', values: { Basic: basic, Pro: { plan: 'pro' } } },
      },
    ],
  }
}
