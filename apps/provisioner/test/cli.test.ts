import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  MemoryPanel,
  memoryPanelConnector,
  registerMemoryPanel,
  unregisterMemoryPanel,
} from '@panelkit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { main } from '../src/cli.ts'
import { runCli } from './cli-runner.ts'
import { TEST_KEY } from './helpers.ts'
import { startWhmcs, type WhmcsWorld } from './whmcs.ts'

const host = `cli-panel-${process.pid}`
let whmcs: WhmcsWorld
let panel: MemoryPanel
let dir = ''
let file = ''
const saved = { ...process.env }
const TOKEN = 'cli-serve-token-0123456789'

const cli = (...argv: string[]) => runCli(file, ...argv)

beforeAll(async () => {
  panel = registerMemoryPanel(host, new MemoryPanel({ apiPassword: 'Cli-Panel-Pw-1' }))
  whmcs = await startWhmcs()
  dir = mkdtempSync(join(tmpdir(), 'provisioner-cli-'))
  file = join(dir, 'provisioner.json')
  writeFileSync(
    file,
    JSON.stringify({
      whmcs: whmcs.config,
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      servers: [{ id: 's1', connector: 'memory-panel', hostname: host, password: '${CLI_PANEL_PW}' }],
      serverGroups: [{ id: 'g1', servers: ['s1'] }],
      products: [{ whmcsProductId: whmcs.pid, connector: 'memory-panel', serverGroup: 'g1' }],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { dataDir: join(dir, 'data'), encryptionKey: '${CLI_KEY}' },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      http: { listen: '127.0.0.1:0', tokens: ['${CLI_TOKEN}'] },
    }),
  )
  Object.assign(process.env, {
    CLI_PANEL_PW: 'Cli-Panel-Pw-1',
    CLI_KEY: TEST_KEY,
    CLI_TOKEN: TOKEN,
    ...whmcs.env,
  })
})

afterAll(async () => {
  for (const k of ['CLI_PANEL_PW', 'CLI_KEY', 'CLI_TOKEN', 'WHMCS_SECRET']) {
    if (saved[k] === undefined) delete process.env[k]
    else process.env[k] = saved[k]
  }
  await whmcs.close()
  unregisterMemoryPanel(host)
  rmSync(dir, { recursive: true, force: true })
})

describe('the CLI', () => {
  it('checks, syncs, works, shows status, drift and the log, and refuses bad arguments', async () => {
    const a = whmcs.order({ password: 'Cli-Service-Pw-1' })
    const check = await cli('check')
    expect(check.code).toBe(0)
    expect(check.text).toMatch(/server s1: ok/)
    expect(check.text).toMatch(/whmcs: ok \(WHMCS [\d.]+, 1 services of the mapped products\)/)
    const sync = await cli('sync')
    expect(sync.code).toBe(0)
    expect(sync.text).toMatch(/sync \(full\): 1 WHMCS services read, 1 intents \(create 1\), 1 jobs queued/)
    expect((await cli('sync', '--email', 'customer@example.com')).text).toMatch(
      /sync \(client\): 1 WHMCS services read, 0 intents.*\n.*primary service: 1 /,
    )
    expect((await cli('worker', '--once')).code).toBe(0)
    expect(panel.find(`svc${a}`)).toBeDefined()
    const status = await cli('status')
    expect(status.text).toMatch(new RegExp(`${a}\\s+memory-panel\\s+s1\\s+active\\s+active`))
    const json = await cli('status', '--json')
    expect(JSON.parse(json.text).services[0]).toMatchObject({
      serviceId: a,
      actual: 'active',
      hasPassword: true,
    })
    whmcs.sim.setStatus(Number(a), 'Suspended')
    expect((await cli('drift')).text).toMatch(/suspended-in-whmcs-active-on-server/)
    expect((await cli('log', '--service', a)).text).toMatch(/memory-panel create/)
    for (const out of [check, sync, status, json])
      expect(out.text).not.toMatch(/Cli-Service-Pw-1|Cli-Panel-Pw-1/)
    expect((await cli('settle', '--key', 'whmcs:usage:1:x:usage', '--as', 'done')).code).toBe(1)
    expect((await cli('settle', '--key', 'k')).code).toBe(2)
    expect((await cli('credit', '--client', '1', '--deposit', 'd', '--amount', 'lots')).code).toBe(2)
    expect((await cli('import')).code).toBe(2)
    expect((await cli('frobnicate')).code).toBe(2)
  })

  it('`serve` runs the API, the periodic sync and a worker in one process, and stops on SIGTERM', async () => {
    const b = whmcs.order({ password: 'Cli-Service-Pw-2' })
    const lines: string[] = []
    let listening: (url: string) => void = () => undefined
    const url = new Promise<string>((resolve) => {
      listening = resolve
    })
    const served = main(
      ['serve', '-c', file, '--log-level', 'error'],
      { connectors: [{ definition: memoryPanelConnector }] },
      {
        out: (l) => {
          lines.push(l)
          const m = /API on (http:\/\/\S+),/.exec(l)
          if (m) listening(m[1] as string)
        },
        err: (l) => lines.push(l),
      },
    )
    const base = await url
    const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
    // The start-up pass has already picked up the new order; the worker provisions it.
    let actual = ''
    for (let i = 0; i < 100 && actual !== 'active'; i++) {
      const r = await fetch(`${base}/v1/services/${b}`, { headers })
      actual = r.status === 200 ? ((await r.json()) as { service: { actual: string } }).service.actual : ''
      if (actual !== 'active') await new Promise((r) => setTimeout(r, 50))
    }
    expect(actual).toBe('active')
    // The login hook: a sync for one client through the API, while the worker keeps running.
    whmcs.sim.setStatus(Number(b), 'Suspended')
    const sync = await fetch(`${base}/v1/sync`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ email: 'customer@example.com' }),
    })
    expect(((await sync.json()) as { report: { jobsCreated: number } }).report.jobsCreated).toBe(1)
    for (let i = 0; i < 100 && !panel.find(`svc${b}`)?.suspended; i++)
      await new Promise((r) => setTimeout(r, 50))
    expect(panel.find(`svc${b}`)?.suspended).toBe(true)
    process.emit('SIGTERM')
    expect(await served).toBe(0)
    expect(lines.join('\n')).toMatch(/--- Suspend complete: service=/)
  })

  it('`cancel --sync` supersedes a parked job: cancelled, planned again from WHMCS, and run', async () => {
    // The panel's password in the environment is wrong: the create parks (AUTH).
    process.env.CLI_PANEL_PW = 'Not-The-Panel-Pw'
    const c = whmcs.order({ password: 'Cli-Service-Pw-3' })
    try {
      expect((await cli('sync', '--service', c)).code).toBe(0)
      expect((await cli('worker', '--once')).code).toBe(0)
    } finally {
      process.env.CLI_PANEL_PW = 'Cli-Panel-Pw-1'
    }
    const status = await cli('status', '--json')
    const parked = (
      JSON.parse(status.text) as { openJobs: { id: number; serviceId: string; status: string }[] }
    ).openJobs
    expect(parked).toEqual([expect.objectContaining({ serviceId: c, status: 'parked' })])
    const id = String(parked[0]?.id)
    const out = await cli('cancel', '--job', id, '--sync', '--reason', 'wrong panel password')
    expect(out.code).toBe(0)
    expect(out.text).toMatch(new RegExp(`cancelled job ${id} \\(create, service ${c}\\)`))
    expect(out.text).toMatch(new RegExp(`sync of service ${c}: 1 intents, 1 jobs queued`))
    expect(out.text).toMatch(/1 job\(s\) cancelled and superseded/)
    expect((await cli('worker', '--once')).code).toBe(0)
    expect(panel.find(`svc${c}`)).toMatchObject({ suspended: false })
    expect((await cli('status')).text).toMatch(
      new RegExp(`^${c}\\s+memory-panel\\s+s1\\s+active\\s+active`, 'm'),
    )
    // Nothing left to cancel; and cancel needs a job or a service.
    expect((await cli('cancel', '--service', c)).text).toMatch(/cancel: no open job/)
    expect((await cli('cancel')).code).toBe(2)
  })
})
