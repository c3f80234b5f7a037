import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { type HttpPanel, httpPanelConnector, startHttpPanel } from '../src/testing/http-panel.ts'
import { dropSchema, PG_URL, type StoreKind, TEST_KEY, uniqueSchema } from './helpers.ts'
import { startWhmcs } from './whmcs.ts'

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const PANEL_KEY = 'panel-key-for-crash-tests-0001'

/** The HTTP panel, a config file for worker processes, and a parent app sharing their store. */
export async function processWorld(
  kind: StoreKind,
  options: { writeDelayMs?: number; concurrency?: number } = {},
) {
  const panel: HttpPanel = await startHttpPanel({
    apiKey: PANEL_KEY,
    writeDelayMs: options.writeDelayMs ?? 0,
  })
  const whmcs = await startWhmcs()
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-test-'))
  const schema = kind === 'postgres' ? uniqueSchema() : undefined
  const port = Number(new URL(panel.url).port)
  const raw = {
    whmcs: whmcs.config,
    servers: [
      {
        id: 's1',
        connector: 'http-panel',
        hostname: '127.0.0.1',
        port,
        secure: false,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        accessHash: '${PANEL_KEY}',
      },
    ],
    serverGroups: [{ id: 'g1', servers: ['s1'] }],
    products: [
      {
        whmcsProductId: whmcs.pid,
        connector: 'http-panel',
        serverGroup: 'g1',
        plans: { option: 'Plan', values: { Basic: { plan: 'basic' }, Pro: { plan: 'pro' } } },
      },
    ],
    ipPools: [{ id: 'p1', addresses: ['10.0.0.1-250'] }],
    store:
      kind === 'postgres'
        ? // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
          { url: PG_URL, schema, encryptionKey: '${KEY}' }
        : // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
          { dataDir: dir, encryptionKey: '${KEY}' },
    worker: {
      concurrency: options.concurrency ?? 4,
      leaseSeconds: 2,
      maxAttempts: 20,
      backoffMs: 20,
      maxBackoffMs: 200,
    },
  }
  const configFile = join(dir, 'provisioner.json')
  writeFileSync(configFile, JSON.stringify(raw))
  const env = { PANEL_KEY, KEY: TEST_KEY, ...whmcs.env }
  const { config, secrets } = parseConfig(raw, env)
  const app: App = await createApp({
    config,
    secrets,
    logStream: null,
    connectors: (store) => [{ definition: httpPanelConnector({ pool: store.ipPool('p1') }) }],
  })
  const children = new Set<ChildProcess>()
  const expectNonZero = new WeakSet<ChildProcess>()
  function spawnWorker(
    args: string[] = [],
  ): ChildProcess & { done: Promise<number | null>; stderrText: () => string } {
    const child = spawn(
      process.execPath,
      [
        '--conditions=@panelkit/source',
        '--import',
        'tsx',
        'test/fixtures/worker.ts',
        'worker',
        '-c',
        configFile,
        '--log-level',
        'error',
        ...args,
      ],
      { cwd: appDir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] },
    )
    let stderr = ''
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString()
    })
    children.add(child)
    const done = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => {
        children.delete(child)
        if (code !== 0 && code !== null && !expectNonZero.has(child))
          process.stderr.write(`worker exited ${code}: ${stderr}\n`)
        resolve(code)
      }),
    )
    return Object.assign(child, { done, stderrText: () => stderr })
  }
  const customers = [0, 1, 2, 3, 4, 5, 6].map((n) => whmcs.customer(`c${n}@example.com`))
  /** A paid order in WHMCS; returns the service id. */
  function order(plan = 'Basic'): string {
    const n = whmcs.sim.services.size
    return whmcs.order({ clientId: customers[n % 7] as number, plan, password: `Svc-${n}-pass-word` })
  }
  return {
    panel,
    app,
    configFile,
    env,
    /** A child whose non-zero exit the test expects (not reported on stderr). */
    expectExit: (child: ChildProcess) => expectNonZero.add(child),
    whmcs,
    spawnWorker,
    order,
    async close() {
      for (const c of children) c.kill('SIGKILL')
      await app.close()
      await panel.close()
      await whmcs.close()
      if (schema) await dropSchema(schema)
    },
  }
}
