import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { startComputeStacksSimulator } from '@panelkit/computestacks/testing'
import { SUSPENDED_TAG, serviceIdFromDescription } from '@panelkit/proxmox'
import { startProxmoxSimulator } from '@panelkit/proxmox/testing'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'
import { createApp } from '../app.ts'
import { parseConfig } from '../config.ts'
import type { EngineEvent } from '../engine/engine.ts'
import { generateSecretKey } from '../secrets.ts'

/**
 * The demo's world: the WHMCS, Axigen, Proxmox VE and ComputeStacks simulators in this process, a
 * WHMCS catalogue with one product per connector and a paid order of each, and the provisioner app
 * configured the way an operator would (secrets through environment references). The demo narrates
 * it; the fault-injection test turns faults on in every simulator while it syncs.
 */

const AXIGEN_ADMIN_PASSWORD = 'Demo-Axigen-Admin-1'
const PVE_ROOT_PASSWORD = 'sim-root-password'
export const MAIL_DOMAIN = 'mail.demo.example'

export type LiveState = 'active' | 'suspended' | 'missing'

export interface DemoWorldOptions {
  /** SQLite data directory, or a PostgreSQL URL and schema. */
  store: { dataDir: string } | { postgres: { url: string; schema: string } }
  onEvent?: (event: EngineEvent) => void
  /** Proxmox task length in ms (the demo keeps it short). */
  pveTaskMs?: number
}

export async function startDemoWorld(options: DemoWorldOptions) {
  const stoppers: (() => Promise<unknown>)[] = []
  const postgres = 'postgres' in options.store ? options.store.postgres : undefined
  const dataDir = 'dataDir' in options.store ? options.store.dataDir : ''
  try {
    // ---- the systems -------------------------------------------------------------------------------
    const whmcs = await startWhmcsSimulator()
    stoppers.push(() => whmcs.close())
    const axigen = await startAxigenSimulator({ admins: { admin: AXIGEN_ADMIN_PASSWORD } })
    stoppers.push(() => axigen.close())
    axigen.addDomain(MAIL_DOMAIN)
    const cs = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
    stoppers.push(() => cs.close())
    const group = (name: string) => String([...cs.userGroups.values()].find((g) => g.name === name)?.id)
    const pve = await startProxmoxSimulator({ taskDurations: { default: options.pveTaskMs ?? 2 } })
    stoppers.push(() => pve.close())

    // ---- the catalogue and the orders in WHMCS -------------------------------------------------------
    const plan = [{ name: 'Plan', options: ['Basic', 'Pro'] }]
    const products = {
      domain: whmcs.createProduct({ name: 'Mail Domain', configOptions: plan }),
      mailbox: whmcs.createProduct({ name: 'Mailbox', configOptions: plan }),
      vm: whmcs.createProduct({ name: 'Cloud VM', configOptions: plan }),
      containers: whmcs.createProduct({ name: 'Container Platform', configOptions: plan }),
    }
    const client = whmcs.createClient({ email: 'ada@example.com', firstname: 'Ada', lastname: 'Lovelace' })
    const order = (pid: number, init: { domain?: string; username?: string; password: string }) => {
      const { service } = whmcs.placeOrder({
        clientId: client.id,
        pid,
        options: { Plan: 'Basic' },
        paid: true,
      })
      if (init.domain) service.domain = init.domain
      if (init.username) service.username = init.username
      whmcs.setServicePassword(service.id, init.password)
      return service.id
    }
    const sid = {
      domain: order(products.domain.id, { domain: 'lovelace-shop.example', password: 'Postmaster-Pw-1' }),
      mailbox: order(products.mailbox.id, { username: 'ada', password: 'Mailbox-Pw-1' }),
      vm: order(products.vm.id, { password: 'Vm-Root-Pw-1!' }),
      containers: order(products.containers.id, { password: 'Container-Pw-1' }),
    }

    // ---- the provisioner's configuration (what an operator writes) ------------------------------------
    const env = {
      DEMO_WHMCS_SECRET: whmcs.credential.secret,
      DEMO_AXIGEN_PASSWORD: AXIGEN_ADMIN_PASSWORD,
      DEMO_PVE_PASSWORD: PVE_ROOT_PASSWORD,
      DEMO_CS_SECRET: cs.apiSecret,
      // A throwaway key: the demo's store (and the passwords sealed in it) lives only for this run.
      DEMO_ENCRYPTION_KEY: generateSecretKey(),
    }
    const env$ = (name: keyof typeof env) => `\${${name}}`
    const { config, secrets } = parseConfig(
      {
        whmcs: {
          url: whmcs.url,
          identifier: whmcs.credential.identifier,
          secret: env$('DEMO_WHMCS_SECRET'),
          ca: whmcs.ca,
        },
        servers: [
          {
            id: 'axigen-1',
            connector: 'axigen-domain',
            hostname: '127.0.0.1',
            port: axigen.port,
            secure: false,
            username: 'admin',
            password: env$('DEMO_AXIGEN_PASSWORD'),
          },
          {
            id: 'axigen-1-boxes',
            connector: 'axigen-account',
            hostname: '127.0.0.1',
            port: axigen.port,
            secure: false,
            username: 'admin',
            password: env$('DEMO_AXIGEN_PASSWORD'),
          },
          {
            id: 'pve-1',
            connector: 'proxmox-kvm',
            hostname: '127.0.0.1',
            port: pve.port,
            username: 'root@pam',
            password: env$('DEMO_PVE_PASSWORD'),
            options: { fingerprint: pve.fingerprint },
          },
          {
            id: 'cs-1',
            connector: 'computestacks-account',
            hostname: '127.0.0.1',
            port: cs.port,
            username: cs.apiKey,
            password: env$('DEMO_CS_SECRET'),
            options: { ca: cs.ca },
          },
        ],
        serverGroups: [
          { id: 'mail', servers: ['axigen-1'] },
          { id: 'mailboxes', servers: ['axigen-1-boxes'] },
          { id: 'vms', fillType: 'least-full', servers: ['pve-1'] },
          { id: 'containers', servers: ['cs-1'] },
        ],
        products: [
          {
            whmcsProductId: products.domain.id,
            connector: 'axigen-domain',
            serverGroup: 'mail',
            settings: { groupware: true, maxAccounts: 10, maxLists: 5, maxGroups: 5 },
            plans: { option: 'Plan', values: { Basic: { maxAccounts: 10 }, Pro: { maxAccounts: 100 } } },
          },
          {
            whmcsProductId: products.mailbox.id,
            connector: 'axigen-account',
            serverGroup: 'mailboxes',
            settings: { domain: MAIL_DOMAIN, mailboxSizeMb: 512, services: 'imap pop3 smtp webmail' },
            plans: {
              option: 'Plan',
              values: { Basic: { mailboxSizeMb: 512 }, Pro: { mailboxSizeMb: 4096 } },
            },
          },
          {
            whmcsProductId: products.vm.id,
            connector: 'proxmox-kvm',
            serverGroup: 'vms',
            settings: { template: '9000', ipPool: 'main', dnsZone: 'demo.example', diskGb: 20 },
            plans: {
              option: 'Plan',
              values: { Basic: { cores: 1, memoryMb: 1024 }, Pro: { cores: 2, memoryMb: 4096, diskGb: 40 } },
            },
          },
          {
            whmcsProductId: products.containers.id,
            connector: 'computestacks-account',
            serverGroup: 'containers',
            settings: { userGroup: group('starter'), emailDomain: 'containers.demo.example' },
            plans: {
              option: 'Plan',
              values: { Basic: { userGroup: group('starter') }, Pro: { userGroup: group('pro') } },
            },
          },
        ],
        ipPools: [
          {
            id: 'main',
            addresses: ['203.0.113.10-40', '2001:db8:10::10', '2001:db8:10::11'],
            gateway: '203.0.113.1',
            prefix: 24,
            gateway6: '2001:db8:10::1',
          },
        ],
        store: postgres
          ? {
              url: postgres.url,
              schema: postgres.schema,
              encryptionKey: env$('DEMO_ENCRYPTION_KEY'),
            }
          : { dataDir, encryptionKey: env$('DEMO_ENCRYPTION_KEY') },
        worker: { concurrency: 4, leaseSeconds: 30, maxAttempts: 6, backoffMs: 50, maxBackoffMs: 500 },
      },
      env,
    )
    const app = await createApp({
      config,
      secrets,
      logStream: null,
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      builtinOptions: {
        proxmoxClient: {
          client: { tasks: { pollMs: 2, maxPollMs: 20 }, lockRetry: { initialDelayMs: 5, maxDelayMs: 50 } },
        },
      },
    })

    const live: Record<keyof typeof sid, () => LiveState> = {
      domain: () => {
        const d = axigen.domains.get('lovelace-shop.example')
        return d ? (d.enabled ? 'active' : 'suspended') : 'missing'
      },
      mailbox: () => {
        const a = axigen.account(MAIL_DOMAIN, 'ada')
        return a ? (a.services !== undefined && a.services.length === 0 ? 'suspended' : 'active') : 'missing'
      },
      vm: () => {
        const vm = [...pve.vms.values()].find(
          (v) => serviceIdFromDescription(v.config.description) === String(sid.vm),
        )
        if (!vm) return 'missing'
        return (vm.config.tags ?? '').split(';').includes(SUSPENDED_TAG) ? 'suspended' : 'active'
      },
      containers: () => {
        const u = cs.usersForService(String(sid.containers))[0]
        return u ? (u.active ? 'active' : 'suspended') : 'missing'
      },
    }
    return {
      whmcs,
      axigen,
      cs,
      pve,
      sid,
      products,
      client,
      order,
      app,
      live,
      /** What a service in this intended state looks like on its system. */
      expected: (desired: string): LiveState =>
        desired === 'terminated' ? 'missing' : desired === 'suspended' ? 'suspended' : 'active',
      /** Secrets the world was set up with: none may reach any output. */
      secrets: [AXIGEN_ADMIN_PASSWORD, PVE_ROOT_PASSWORD, ...secrets],
      async close() {
        await app.close().catch(() => undefined)
        for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
      },
    }
  } catch (error) {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
    throw error
  }
}

export type DemoWorld = Awaited<ReturnType<typeof startDemoWorld>>
