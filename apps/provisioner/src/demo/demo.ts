import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { startComputeStacksSimulator } from '@panelkit/computestacks/testing'
import { SUSPENDED_TAG, serviceIdFromDescription } from '@panelkit/proxmox'
import { ProxmoxSimulator } from '@panelkit/proxmox/testing'
import { createWhmcsSimulator } from '@panelkit/whmcs/testing'
import { type App, createApp } from '../app.ts'
import { narrate, table } from '../cli/output.ts'
import type { CliIo } from '../cli.ts'
import { parseConfig } from '../config.ts'
import { listJobs } from '../engine/jobs.ts'
import { getService } from '../engine/services.ts'
import { generateSecretKey } from '../secrets.ts'

/**
 * The demo: every simulator in this process (WHMCS, Axigen, Proxmox VE, ComputeStacks), a WHMCS
 * order for each product type, and the provisioner's real sync, engine and store (SQLite in a temporary
 * directory) taking them through a customer's life. Exits 0 only when everything converged.
 */

const AXIGEN_ADMIN_PASSWORD = 'Demo-Axigen-Admin-1'
const PVE_ROOT_PASSWORD = 'sim-root-password'
const MAIL_DOMAIN = 'mail.demo.example'

type LiveState = 'active' | 'suspended' | 'missing'

export interface DemoOptions {
  io: CliIo
  /** Keep the store in `.data/demo` instead of a temporary directory. */
  keep: boolean
  /** Run on PostgreSQL instead of the embedded SQLite (the end-to-end tests do both). */
  postgres?: { url: string; schema: string }
}

export async function runDemo(options: DemoOptions): Promise<number> {
  const { io } = options
  const started = performance.now()
  const secs = () => `${((performance.now() - started) / 1000).toFixed(2)}s`
  const dataDir = options.keep ? join('.data', 'demo') : mkdtempSync(join(tmpdir(), 'panelkit-demo-'))
  const stoppers: (() => Promise<unknown>)[] = []
  let app: App | undefined
  try {
    io.out(
      'panelkit provisioner demo — WHMCS, Axigen, Proxmox VE and ComputeStacks simulators in this process',
    )
    io.out('')

    // ---- the systems -------------------------------------------------------------------------------
    const whmcs = await createWhmcsSimulator()
    stoppers.push(() => whmcs.close())
    const axigen = await startAxigenSimulator({ admins: { admin: AXIGEN_ADMIN_PASSWORD } })
    stoppers.push(() => axigen.close())
    axigen.addDomain(MAIL_DOMAIN)
    const cs = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
    stoppers.push(() => cs.close())
    const group = (name: string) => String([...cs.userGroups.values()].find((g) => g.name === name)?.id)
    const pve = await new ProxmoxSimulator({ taskDurations: { default: 2 } }).start()
    stoppers.push(() => pve.close())
    io.out(`  WHMCS          ${whmcs.url}`)
    io.out(`  Axigen CLI     127.0.0.1:${axigen.port}`)
    io.out(`  ComputeStacks  https://127.0.0.1:${cs.port}`)
    io.out(`  Proxmox VE     https://127.0.0.1:${pve.port}`)

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
            options: { fingerprint: pve.fingerprint256 },
          },
          {
            id: 'cs-1',
            connector: 'computestacks-account',
            hostname: '127.0.0.1',
            port: cs.port,
            username: cs.apiKey,
            password: env$('DEMO_CS_SECRET'),
            options: { ca: cs.cert },
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
        store: options.postgres
          ? {
              url: options.postgres.url,
              schema: options.postgres.schema,
              encryptionKey: env$('DEMO_ENCRYPTION_KEY'),
            }
          : { dataDir, encryptionKey: env$('DEMO_ENCRYPTION_KEY') },
        worker: { concurrency: 4, leaseSeconds: 30, maxAttempts: 6, backoffMs: 50, maxBackoffMs: 500 },
      },
      env,
    )
    app = await createApp({
      config,
      secrets,
      logStream: null,
      onEvent: narrate((line) => io.out(`  ${line}`)),
      builtinOptions: {
        proxmoxClient: {
          client: { tasks: { pollMs: 2, maxPollMs: 20 }, lockRetry: { initialDelayMs: 5, maxDelayMs: 50 } },
        },
      },
    })
    const engine = app.engine
    io.out(`  store          ${app.store.dialect} ${app.store.location}`)

    const phase = async (title: string, change: () => void, by: { email?: string } = {}) => {
      io.out('')
      io.out(`== ${title}`)
      change()
      const t = performance.now()
      const report = await engine.sync(by)
      const kinds = Object.entries(report.intentsByKind)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')
      io.out(
        `  reverse sync: ${report.servicesSeen} WHMCS services read, ${report.intents} intents${kinds ? ` (${kinds})` : ''}, ${report.jobsCreated} jobs queued`,
      )
      for (const e of report.errors) io.out(`  sync error: ${e.code}: ${e.message}`)
      await engine.runWorker({ untilIdle: true, pollMs: 10 })
      io.out(`  converged in ${((performance.now() - t) / 1000).toFixed(2)}s (total ${secs()})`)
    }

    await phase(
      '1. Paid orders become services (the customer logs in: an on-demand sync of her account by email)',
      () => undefined,
      { email: 'ada@example.com' },
    )
    const written = whmcs.service(sid.vm)
    io.out(`  WHMCS now knows: VM service ${sid.vm} dedicated IP ${written.dedicatedip || '(none)'}`)

    let renewal = 0
    await phase('2. The container platform is not paid: WHMCS suspends it for non-payment', () => {
      renewal = whmcs.createRenewalInvoice(sid.containers).id
      whmcs.suspendForNonPayment(sid.containers)
    })
    await phase('3. The customer pays: WHMCS unsuspends', () => whmcs.markInvoicePaid(renewal))
    await phase('4. Upgrades to Pro: the VM (CPU, memory, disk) and the mailbox (quota)', () => {
      whmcs.upgrade(sid.vm, { options: { Plan: 'Pro' } })
      whmcs.upgrade(sid.mailbox, { options: { Plan: 'Pro' } })
    })
    await phase('5. Password changes for the mailbox and the container account', () => {
      whmcs.setServicePassword(sid.mailbox, 'Mailbox-Pw-2-new')
      whmcs.setServicePassword(sid.containers, 'Container-Pw-2-new')
    })
    await phase('6. The VM is terminated (its IP goes back to the pool)', () => whmcs.terminate(sid.vm))

    // ---- the summary ----------------------------------------------------------------------------------
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
    const expected = (desired: string): LiveState =>
      desired === 'terminated' ? 'missing' : desired === 'suspended' ? 'suspended' : 'active'
    const rows = [
      ['service', 'product', 'connector', 'WHMCS', 'wanted', 'confirmed', 'on the system', 'jobs', 'ok'],
    ]
    let allGood = true
    const jobs = await listJobs(app.store.db, { limit: 10_000 })
    for (const key of Object.keys(sid) as (keyof typeof sid)[]) {
      const id = String(sid[key])
      const s = await getService(app.store.db, id)
      const onSystem = live[key]()
      const mine = jobs.filter((j) => j.serviceId === id)
      const good =
        s !== undefined &&
        s.actual === s.desired &&
        onSystem === expected(s.desired) &&
        mine.every((j) => j.status === 'done')
      allGood &&= good
      rows.push([
        id,
        whmcs.products.get(whmcs.service(sid[key]).pid)?.name ?? '?',
        s?.connector ?? '-',
        whmcs.service(sid[key]).status,
        s?.desired ?? '-',
        s?.actual ?? '-',
        onSystem,
        `${mine.filter((j) => j.status === 'done').length}/${mine.length}`,
        good ? 'yes' : 'NO',
      ])
    }
    io.out('')
    io.out('== Summary')
    for (const line of table(rows).split('\n')) io.out(`  ${line}`)
    const drift = await engine.drift()
    allGood &&= drift.complete && drift.entries.length === 0
    io.out(
      `  drift report (WHMCS against what the servers confirmed): ${drift.entries.length === 0 ? 'none' : drift.entries.map((d) => `${d.serviceId} ${d.kind}`).join(', ')}`,
    )
    const ipStats = await app.store.ipPool('main').stats()
    io.out(`  IP pool main: ${ipStats.used} of ${ipStats.total} IPv4 addresses in use after the termination`)
    const logCount = (await engine.moduleLog.query({ limit: 1000 })).length
    io.out(`  module log: ${logCount} external calls recorded (redacted); store at ${app.store.location}`)
    io.out('')
    io.out(
      allGood
        ? `demo: every service converged in ${secs()}`
        : `demo: NOT everything converged (${secs()}); see the table above`,
    )
    return allGood ? 0 : 1
  } catch (error) {
    io.err(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)
    return 1
  } finally {
    await app?.close().catch(() => undefined)
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
    if (!options.keep) rmSync(dataDir, { recursive: true, force: true })
  }
}
