import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { startComputeStacksSimulator } from '@panelkit/computestacks/testing'
import { ProxmoxSimulator } from '@panelkit/proxmox/testing'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'
import { generateSecretKey } from './secrets.ts'

/**
 * `provisioner simulators`: WHMCS, Axigen, Proxmox VE and ComputeStacks simulators in one process, for
 * trying a config copied from `examples/` before pointing it at real systems. WHMCS has the products
 * the examples map (the same `pid`s: 3, 4, 5, 12 and 20) and one paid order of each; the simulators
 * take the servers' names and credentials the examples use (API identifier `provisioner-api`, Axigen
 * user `admin`, Proxmox `root@pam`, the domain `example.com`, user groups 1 and 2). What differs from
 * a real installation — addresses, ports, certificates and secrets — is printed as the config changes
 * to make, and the secrets are written to an environment file for the config's `${…}` references.
 * State lives in memory: stopping the command loses it.
 */

/** Each WHMCS product the examples map: its `pid`, its name, its plan option and the order placed. */
const CATALOGUE = [
  {
    pid: 3,
    example: 'axigen-domain.yaml',
    name: 'Mail Domain',
    plans: ['Small', 'Large'],
    order: { domain: 'lovelace-shop.example' },
  },
  {
    pid: 4,
    example: 'axigen-account.yaml',
    name: 'Mailbox',
    plans: ['Basic', 'Pro'],
    field: 'Mailbox password',
    order: { username: 'ada' },
  },
  { pid: 5, example: 'minimal-sqlite.yaml', name: 'Mailbox (one plan)', order: { username: 'grace' } },
  {
    pid: 12,
    example: 'proxmox-kvm.yaml, postgres-multi-worker.yaml',
    name: 'Cloud VM',
    plans: ['Basic', 'Pro'],
    order: {},
  },
  {
    pid: 20,
    example: 'computestacks-account.yaml',
    name: 'Container Platform',
    plans: ['Starter', 'Pro'],
    order: {},
  },
] as const

/** The mail domain the Axigen examples name (`settings.domain`). */
export const SIMULATED_MAIL_DOMAIN = 'example.com'

export interface RunningSimulators {
  /** The WHMCS services ordered, by product id. */
  services: Record<number, number>
  /** The lines to print: addresses, the environment file, the config changes. */
  lines: string[]
  close(): Promise<void>
}

/** Single-quoted for a POSIX shell's `.` (a PEM keeps its line breaks inside the quotes). */
function shellValue(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`
}

export async function startSimulators(options: {
  dir: string
  dataDir?: string
}): Promise<RunningSimulators> {
  const stoppers: (() => Promise<unknown>)[] = []
  try {
    const secret = (bytes = 18) => randomBytes(bytes).toString('base64url')
    const env: Record<string, string> = {
      WHMCS_SECRET: secret(),
      AXIGEN_PASSWORD: secret(),
      PVE_PASSWORD: secret(),
      PROVISIONER_KEY: generateSecretKey(),
    }

    const whmcs = await startWhmcsSimulator({
      credentials: [{ identifier: 'provisioner-api', secret: env.WHMCS_SECRET as string, actions: '*' }],
    })
    stoppers.push(() => whmcs.close())
    env.WHMCS_CA = whmcs.ca

    const axigen = await startAxigenSimulator({ admins: { admin: env.AXIGEN_PASSWORD as string } })
    stoppers.push(() => axigen.close())
    axigen.addDomain(SIMULATED_MAIL_DOMAIN)

    const pve = await new ProxmoxSimulator({
      users: { 'root@pam': env.PVE_PASSWORD as string },
      taskDurations: { default: 50 },
    }).start()
    stoppers.push(() => pve.close())
    env.PVE_FINGERPRINT = pve.fingerprint256

    // User groups 1 (the default) and 2, the ids the ComputeStacks example's plans name.
    const cs = await startComputeStacksSimulator({ userGroups: ['starter', 'pro'] })
    stoppers.push(() => cs.close())
    env.CS_API_KEY = cs.apiKey
    env.CS_API_SECRET = cs.apiSecret
    env.CS_CA = cs.cert

    // The catalogue: product ids as the examples map them (the ids between are other products).
    const byPid = new Map<number, (typeof CATALOGUE)[number]>(CATALOGUE.map((p) => [p.pid, p]))
    const last = Math.max(...CATALOGUE.map((p) => p.pid))
    for (let pid = 1; pid <= last; pid++) {
      const p = byPid.get(pid)
      const made = whmcs.createProduct({
        name: p?.name ?? `Other product ${pid}`,
        ...(p && 'plans' in p ? { configOptions: [{ name: 'Plan', options: [...p.plans] }] } : {}),
        ...(p && 'field' in p ? { customFields: [{ name: p.field }] } : {}),
      })
      if (made.id !== pid) throw new Error(`WHMCS simulator gave product ${made.id}, expected ${pid}`)
    }
    const client = whmcs.createClient({ email: 'ada@example.com', firstname: 'Ada', lastname: 'Lovelace' })
    const services: Record<number, number> = {}
    for (const p of CATALOGUE) {
      const { service } = whmcs.placeOrder({
        clientId: client.id,
        pid: p.pid,
        paid: true,
        ...('plans' in p ? { options: { Plan: p.plans[0] } } : {}),
        ...('field' in p ? { fields: { [p.field]: `Mailbox-${secret(6)}-1` } } : {}),
      })
      if ('domain' in p.order) service.domain = p.order.domain
      if ('username' in p.order) service.username = p.order.username
      whmcs.setServicePassword(service.id, `Order-${secret(9)}-1`)
      services[p.pid] = service.id
    }

    mkdirSync(options.dir, { recursive: true })
    const envFile = join(options.dir, 'simulators.env')
    writeFileSync(
      envFile,
      `# Secrets of the running simulators (new ones at every start): the \${NAME} references of the examples.\n${Object.entries(
        env,
      )
        .map(([k, v]) => `${k}=${shellValue(v)}`)
        .join('\n')}\n`,
      { mode: 0o600 },
    )

    const axigenServer = (c: string) => [
      `  servers[connector=${c}].hostname: 127.0.0.1`,
      `  servers[connector=${c}].port: ${axigen.port}`,
      `  servers[connector=${c}].secure: false`,
    ]
    const lines = [
      'Simulators running (Ctrl-C stops them; their state is in memory and goes with them):',
      `  WHMCS          ${whmcs.url}  (API credential provisioner-api; client ada@example.com with one paid order per product)`,
      `  Axigen         127.0.0.1:${axigen.port}  (CLI in plain text; domain ${SIMULATED_MAIL_DOMAIN})`,
      `  Proxmox VE     https://127.0.0.1:${pve.port}  (root@pam; template 9000)`,
      `  ComputeStacks  https://127.0.0.1:${cs.port}  (user groups 1 and 2)`,
      '',
      `WHMCS products (the pids the examples map): ${CATALOGUE.map((p) => `${p.pid} ${p.name} (service ${services[p.pid]}; ${p.example})`).join(', ')}`,
      '',
      `Secrets for the config's \${...} references: ${envFile}`,
      `  set -a; . ${envFile}; set +a`,
      '',
      'In your copy of an example, change these keys (servers by their connector; leave the rest):',
      `  whmcs.url: ${whmcs.url}`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      '  whmcs.ca: "${WHMCS_CA}"',
      ...axigenServer('axigen-account'),
      ...axigenServer('axigen-domain'),
      '  servers[connector=proxmox-kvm].hostname: 127.0.0.1',
      `  servers[connector=proxmox-kvm].port: ${pve.port}`,
      '  servers[connector=computestacks-account].hostname: 127.0.0.1',
      `  servers[connector=computestacks-account].port: ${cs.port}`,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      '  servers[connector=computestacks-account].options.ca: "${CS_CA}"',
      `  store.dataDir: ${options.dataDir ?? '.data/provisioner'}`,
      '',
      'simulators: ready',
    ]
    return {
      services,
      lines,
      async close() {
        for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
      },
    }
  } catch (error) {
    for (const stop of stoppers.reverse()) await stop().catch(() => undefined)
    throw error
  }
}
