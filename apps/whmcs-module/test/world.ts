import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { connect, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createServer as createTlsServer } from 'node:tls'
import { fileURLToPath } from 'node:url'
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { startComputeStacksSimulator } from '@panelkit/computestacks/testing'
import { generateTestCertificate } from '@panelkit/core/testing'
import { startProxmoxSimulator } from '@panelkit/proxmox/testing'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'
import { findPhp, type PhpChoice } from './php-runtime.ts'

/** apps/whmcs-module: the folder with modules/ and includes/, as in a WHMCS root. */
export const MODULE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const HARNESS = join(MODULE_ROOT, 'test', 'php', 'harness.php')

export const TOKEN = 'module-test-token-0123456789abcdef'
export const SERVER_PASSWORD = 'Whmcs-Server-Entry-Pw-1'
const AXIGEN_ADMIN_PASSWORD = 'Module-Axigen-Admin-1'
// The Proxmox simulator's root password (its default).
const PVE_ROOT_PASSWORD = 'sim-root-password'
export const MAIL_DOMAIN = 'mail.module.example'

/**
 * The PHP that runs the module (test/php-runtime.ts: PANELKIT_PHP, then the system php with curl, then
 * PHP.wasm from npm), or why there is none. No PHP is a failure of the suite, never a quiet skip.
 */
export const PHP_CHOICE: PhpChoice = await findPhp()

export interface HarnessResult {
  result: unknown
  log: {
    module: string
    action: string
    request: string
    response: string
    processed: string
    replaceVarsCount: number
  }[]
  updates: { table: string; where: Record<string, unknown>; values: Record<string, unknown> }[]
  hooks: string[]
}

/** One module call (or hook) in a fresh PHP process, through the WHMCS stand-in harness. */
export async function php(input: {
  call?: string
  params?: Record<string, unknown>
  admin?: boolean
  hook?: string
  hookVars?: Record<string, unknown>
  rows?: Record<string, Record<string, unknown>[]>
}): Promise<HarnessResult> {
  if ('problem' in PHP_CHOICE) throw new Error(PHP_CHOICE.problem)
  const { code, stdout, stderr } = await PHP_CHOICE.runtime.run(
    ['-d', 'display_errors=stderr', HARNESS],
    JSON.stringify({ root: MODULE_ROOT, ...input }),
  )
  if (code !== 0) throw new Error(`php harness exited ${code}: ${stderr}${stdout}`)
  if (stderr.trim() !== '') throw new Error(`php wrote to stderr (a warning or notice): ${stderr}`)
  try {
    return JSON.parse(stdout) as HarnessResult
  } catch {
    throw new Error(`php harness printed no JSON: ${stdout}`)
  }
}

/** The parts of the provisioner's API answers the tests read (GET /v1/services/:id, /v1/log, POST /v1/sync). */
export interface ApiAnswer {
  report: { jobsCreated: number; pass: string }
  service: { actual: string; username: string | null }
  jobs: { id: number; key: string; operation: string; status: string; attempts: number }[]
  entries: { connector: string; source?: string; action: string }[]
}

/**
 * The simulators (WHMCS, Axigen, Proxmox VE, ComputeStacks) in this process, a WHMCS catalogue with a
 * product per connector, and a real `provisioner serve` child process configured against them.
 */
export async function startWorld() {
  const stoppers: (() => Promise<unknown>)[] = []
  const dir = mkdtempSync(join(tmpdir(), 'whmcs-module-'))
  stoppers.push(async () => rmSync(dir, { recursive: true, force: true }))
  try {
    const whmcs = await startWhmcsSimulator()
    stoppers.push(() => whmcs.close())
    const axigen = await startAxigenSimulator({ admins: { admin: AXIGEN_ADMIN_PASSWORD } })
    stoppers.push(() => axigen.close())
    axigen.addDomain(MAIL_DOMAIN)
    const cs = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
    stoppers.push(() => cs.close())
    const group = (name: string) => String([...cs.userGroups.values()].find((g) => g.name === name)?.id)
    const pve = await startProxmoxSimulator({ taskDurations: { default: 2 } })
    stoppers.push(() => pve.close())

    const plan = [{ name: 'Plan', options: ['Basic', 'Pro'] }]
    const products = {
      // A password-type custom field, as many products have: its value must never reach a log.
      mailbox: whmcs.createProduct({
        name: 'Mailbox',
        configOptions: plan,
        customFields: [{ name: 'Password', type: 'password' }],
      }),
      vm: whmcs.createProduct({ name: 'Cloud VM', configOptions: plan }),
      containers: whmcs.createProduct({ name: 'Container Platform', configOptions: plan }),
      unmapped: whmcs.createProduct({ name: 'Not in the provisioner', configOptions: plan }),
    }
    const client = whmcs.createClient({ email: 'ada@example.com', firstname: 'Ada', lastname: 'Lovelace' })
    const other = whmcs.createClient({ email: 'grace@example.com', firstname: 'Grace', lastname: 'Hopper' })

    const env: Record<string, string> = {
      MOD_WHMCS_SECRET: whmcs.credential.secret,
      MOD_AXIGEN_PASSWORD: AXIGEN_ADMIN_PASSWORD,
      MOD_PVE_PASSWORD: PVE_ROOT_PASSWORD,
      MOD_CS_SECRET: cs.apiSecret,
      MOD_KEY: 'dGVzdC1rZXktZm9yLXBhbmVsa2l0LXByb3Zpc2lvISE=',
      MOD_TOKEN: TOKEN,
    }
    const env$ = (name: string) => `\${${name}}`
    const config = {
      whmcs: {
        url: whmcs.url,
        identifier: whmcs.credential.identifier,
        secret: env$('MOD_WHMCS_SECRET'),
        ca: whmcs.ca,
      },
      servers: [
        {
          id: 'axigen-1',
          connector: 'axigen-account',
          hostname: '127.0.0.1',
          port: axigen.port,
          secure: false,
          username: 'admin',
          password: env$('MOD_AXIGEN_PASSWORD'),
        },
        {
          id: 'pve-1',
          connector: 'proxmox-kvm',
          hostname: '127.0.0.1',
          port: pve.port,
          username: 'root@pam',
          password: env$('MOD_PVE_PASSWORD'),
          options: { fingerprint: pve.fingerprint },
        },
        {
          id: 'cs-1',
          connector: 'computestacks-account',
          hostname: '127.0.0.1',
          port: cs.port,
          username: cs.apiKey,
          password: env$('MOD_CS_SECRET'),
          options: { ca: cs.ca },
        },
      ],
      serverGroups: [
        { id: 'mailboxes', servers: ['axigen-1'] },
        { id: 'vms', servers: ['pve-1'] },
        { id: 'containers', servers: ['cs-1'] },
      ],
      products: [
        {
          whmcsProductId: products.mailbox.id,
          connector: 'axigen-account',
          serverGroup: 'mailboxes',
          settings: { domain: MAIL_DOMAIN, mailboxSizeMb: 512, services: 'imap pop3 smtp webmail' },
          plans: { option: 'Plan', values: { Basic: { mailboxSizeMb: 512 }, Pro: { mailboxSizeMb: 4096 } } },
        },
        {
          whmcsProductId: products.vm.id,
          connector: 'proxmox-kvm',
          serverGroup: 'vms',
          settings: { template: '9000', ipPool: 'main', diskGb: 20 },
          plans: {
            option: 'Plan',
            values: { Basic: { cores: 1, memoryMb: 1024 }, Pro: { cores: 2, memoryMb: 4096 } },
          },
        },
        {
          whmcsProductId: products.containers.id,
          connector: 'computestacks-account',
          serverGroup: 'containers',
          settings: { userGroup: group('starter'), emailDomain: 'containers.module.example' },
          plans: {
            option: 'Plan',
            values: { Basic: { userGroup: group('starter') }, Pro: { userGroup: group('pro') } },
          },
        },
      ],
      ipPools: [{ id: 'main', addresses: ['203.0.113.10-40'], gateway: '203.0.113.1', prefix: 24 }],
      store: { dataDir: join(dir, 'data'), encryptionKey: env$('MOD_KEY') },
      sync: { intervalSeconds: 3600 },
      worker: { concurrency: 4, leaseSeconds: 30, maxAttempts: 3, backoffMs: 50, maxBackoffMs: 200 },
      http: { listen: '127.0.0.1:0', tokens: [env$('MOD_TOKEN')] },
    }
    const configFile = join(dir, 'provisioner.json')
    writeFileSync(configFile, JSON.stringify(config))

    // The real CLI, from the provisioner's source (as bin/provisioner.js runs it), as its own process.
    const provisionerDir = realpathSync(join(MODULE_ROOT, 'node_modules', '@panelkit', 'provisioner'))
    const serve: ChildProcess = spawn(
      process.execPath,
      [
        '--conditions=@panelkit/source',
        '--import',
        'tsx',
        join(provisionerDir, 'src', 'cli.ts'),
        'serve',
        '-c',
        configFile,
        '--log-level',
        'error',
      ],
      { cwd: provisionerDir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let stderr = ''
    serve.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    const exited = new Promise<void>((resolve) => serve.once('exit', () => resolve()))
    stoppers.push(async () => {
      if (serve.exitCode === null) {
        serve.kill('SIGTERM')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
        if (serve.exitCode === null) serve.kill('SIGKILL')
      }
    })
    const url = await new Promise<string>((resolve, reject) => {
      let out = ''
      const timer = setTimeout(() => reject(new Error(`provisioner serve did not start: ${stderr}`)), 60_000)
      serve.stdout?.on('data', (d: Buffer) => {
        out += d.toString()
        const m = /API on (http:\/\/[^\s,]+)/.exec(out)
        if (m) {
          clearTimeout(timer)
          resolve(m[1] as string)
        }
      })
      serve.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`provisioner serve exited ${code}: ${stderr}`))
      })
    })
    const port = Number(new URL(url).port)

    // A TLS front for the API (as an operator's reverse proxy would be), with a certificate of our own.
    const cert = await generateTestCertificate('localhost')
    const caFile = join(dir, 'provisioner-ca.pem')
    writeFileSync(caFile, cert.cert)
    const tlsFront: Server = createTlsServer({ key: cert.key, cert: cert.cert }, (socket) => {
      const upstream = connect(port, '127.0.0.1')
      socket.pipe(upstream).pipe(socket)
      socket.on('error', () => upstream.destroy())
      upstream.on('error', () => socket.destroy())
    })
    await new Promise<void>((resolve) => tlsFront.listen(0, '127.0.0.1', () => resolve()))
    stoppers.push(() => new Promise((resolve) => tlsFront.close(() => resolve(undefined))))
    const tlsPort = (tlsFront.address() as { port: number }).port

    /** An API call to the provisioner, as an operator would make it. */
    async function api(path: string, init: { method?: string; body?: unknown } = {}) {
      const r = await fetch(`${url}${path}`, {
        method: init.method ?? 'GET',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
      })
      return { status: r.status, body: (await r.json()) as ApiAnswer }
    }

    /** A checkout in WHMCS, not yet provisioned (Pending until CreateAccount succeeds). */
    function order(
      product: keyof typeof products,
      init: { password: string; username?: string; domain?: string; clientId?: number; field?: string },
    ) {
      const { service } = whmcs.placeOrder({
        clientId: init.clientId ?? client.id,
        pid: products[product].id,
        options: { Plan: 'Basic' },
        ...(init.field !== undefined ? { fields: { Password: init.field } } : {}),
      })
      if (init.username) service.username = init.username
      if (init.domain) service.domain = init.domain
      whmcs.setServicePassword(service.id, init.password)
      return String(service.id)
    }

    /**
     * The $params WHMCS gives the module for a service (module-parameters.md): the service, its
     * client, product, plan and the server entry pointing at the provisioner.
     */
    function params(
      serviceId: string,
      plan = 'Basic',
      extra: Record<string, unknown> = {},
    ): Record<string, unknown> {
      const s = whmcs.service(Number(serviceId))
      const c = whmcs.clients.get(s.clientId)
      return {
        serviceid: serviceId,
        userid: String(s.clientId),
        pid: String(s.pid),
        serverid: '3',
        domain: s.domain,
        username: s.username,
        password: s.password,
        producttype: 'other',
        moduletype: 'panelkit',
        configoption1: 'auto',
        configoption2: '20',
        configoptions: { Plan: plan },
        customfields: Object.fromEntries(
          (whmcs.products.get(s.pid)?.customFields ?? []).map((f) => [f.name, s.customFields[f.id] ?? '']),
        ),
        clientsdetails: {
          userid: s.clientId,
          email: c?.email,
          firstname: c?.firstname,
          lastname: c?.lastname,
        },
        server: true,
        serverip: '127.0.0.1',
        serverhostname: '127.0.0.1',
        serverport: String(port),
        serversecure: '',
        serverusername: '',
        serverpassword: SERVER_PASSWORD,
        serveraccesshash: TOKEN,
        ...extra,
      }
    }

    return {
      whmcs,
      axigen,
      cs,
      pve,
      products,
      client,
      other,
      url,
      port,
      tlsPort,
      caFile,
      api,
      order,
      params,
      /** Every secret of this world: none may reach a log the module writes. */
      secrets: [
        TOKEN,
        SERVER_PASSWORD,
        AXIGEN_ADMIN_PASSWORD,
        PVE_ROOT_PASSWORD,
        cs.apiSecret,
        whmcs.credential.secret,
      ],
      serveStderr: () => stderr,
      async close() {
        for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
      },
    }
  } catch (error) {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
    throw error
  }
}

export type World = Awaited<ReturnType<typeof startWorld>>
