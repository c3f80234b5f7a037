import { type ChildProcess, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type DemoWorld, startDemoWorld } from '../src/demo/world.ts'
import { CHROMIUM_ARGS, findChromium } from './browser.ts'

/**
 * The console in a real browser (Chromium driven by playwright-core: PANELKIT_CHROMIUM, else the
 * system's chromium, else the npm package @sparticuz/chromium; see browser.ts) against the real
 * `provisioner serve` process, configured like an operator would (secrets from the environment), with
 * the demo's WHMCS, Axigen, Proxmox VE and ComputeStacks simulators in this process.
 */

const appDir = join(dirname(fileURLToPath(import.meta.url)), '..')
const CHROMIUM = findChromium()
// Which Chromium ran the test: printed, and in the test's name in the JSON report.
console.log(`console browser test: Chromium = ${CHROMIUM.label}`)
const TOKEN = 'console-token-0123456789abcdef'
const SHOTS = join(appDir, 'test-results', 'console')

let world: DemoWorld
let dir: string
let serve: ChildProcess
let url: string
let browser: Browser
let page: Page
const served: string[] = []

async function startServe(config: string, env: Record<string, string>): Promise<string> {
  const child = spawn(
    process.execPath,
    [join(appDir, 'bin', 'provisioner.js'), 'serve', '-c', config, '--log-level', 'warn'],
    {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  serve = child
  child.stderr?.on('data', (d: Buffer) => served.push(d.toString()))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${served.join('')}`)), 60_000)
    child.stdout?.on('data', (d: Buffer) => {
      const text = d.toString()
      served.push(text)
      const m = /API on (http:\/\/\S+),/.exec(text)
      if (m) {
        clearTimeout(timer)
        resolve(m[1] as string)
      }
    })
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${served.join('')}`)))
  })
}

async function shot(name: string) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`) })
}

/** Nothing the world was configured with, nor the API token, is on the page. */
async function noSecrets() {
  const content = await page.content()
  for (const s of [...world.secrets, TOKEN]) expect(content.includes(s), 'a secret on the page').toBe(false)
}

beforeAll(async () => {
  const { executablePath, env: browserEnv } = await CHROMIUM.prepare()
  mkdirSync(SHOTS, { recursive: true })
  dir = mkdtempSync(join(tmpdir(), 'provisioner-console-'))
  world = await startDemoWorld({ store: { dataDir: join(dir, 'data') } })
  // The world's app only prepared the store; `serve` (another process) runs from here on.
  await world.app.close()
  const config = JSON.parse(JSON.stringify(world.app.config)) as Record<string, unknown> & {
    products: { connector: string; usageBilling?: unknown }[]
  }
  config.http = { listen: '127.0.0.1:0', tokens: [TOKEN] }
  config.sync = { intervalSeconds: 5, usagePeriodHours: 720 }
  config.worker = { concurrency: 4, leaseSeconds: 30, maxAttempts: 2, backoffMs: 50, maxBackoffMs: 200 }
  for (const p of config.products)
    if (p.connector === 'computestacks-account')
      p.usageBilling = { metric: 'balance', unitPrice: '1.00', description: 'Container usage' }
  // Secrets go through the environment, as an operator's would.
  let text = JSON.stringify(config, null, 2)
  const env: Record<string, string> = { CONSOLE_TEST_TOKEN: TOKEN }
  // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
  text = text.replaceAll(TOKEN, '${CONSOLE_TEST_TOKEN}')
  world.secrets.forEach((secret, i) => {
    if (text.includes(secret)) {
      env[`CONSOLE_TEST_SECRET_${i}`] = secret
      text = text.replaceAll(secret, `\${CONSOLE_TEST_SECRET_${i}}`)
    }
  })
  const file = join(dir, 'provisioner.json')
  writeFileSync(file, text, { mode: 0o600 })
  // The first usage push's answer is lost after WHMCS wrote it: an uncertain entry for the operator.
  world.whmcs.injectFault({ kind: 'drop-after', action: 'AddBillableItem', times: 1 })
  url = await startServe(file, env)
  browser = await chromium.launch({
    executablePath,
    args: CHROMIUM_ARGS,
    ...(browserEnv ? { env: browserEnv } : {}),
  })
  page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage()
}, 120_000)

afterAll(async () => {
  await browser?.close().catch(() => undefined)
  if (serve && serve.exitCode === null) {
    const exited = new Promise((r) => serve.once('exit', r))
    serve.kill('SIGTERM')
    await exited
  }
  await world?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

describe(`the console in a browser (${CHROMIUM.label}), against serve with the simulators`, () => {
  it('logs in, follows the demo to convergence, retries a parked job, settles an uncertain entry, logs out', {
    timeout: 180_000,
  }, async () => {
    // Without a session every page leads to the login form.
    await page.goto(`${url}/console`)
    await page.waitForURL(/\/console\/login$/)
    await shot('login')
    await page.fill('input[name=token]', 'not-the-token-0123456789')
    await page.click('button[type=submit]')
    await expect.poll(() => page.textContent('.flash')).toContain('not valid')
    await page.fill('input[name=token]', TOKEN)
    await page.click('button[type=submit]')
    await page.waitForURL(/\/console$/)
    expect(page.url()).not.toContain(TOKEN)
    // A message written into a link is not shown: outcomes come from the session only.
    await page.goto(`${url}/console?flash=Your+session+expired&kind=error`)
    expect(await page.locator('.flash').count()).toBe(0)

    // The overview follows the demo's orders becoming services, without a reload.
    await page.locator('[data-metric="services"]', { hasText: /^4$/ }).waitFor({ timeout: 60_000 })
    await page.goto(`${url}/console/services?state=active`)
    await expect.poll(async () => page.locator('#live tbody tr').count(), { timeout: 60_000 }).toBe(4)
    for (const c of ['axigen-domain', 'axigen-account', 'proxmox-kvm', 'computestacks-account'])
      expect(await page.textContent('#live')).toContain(c)
    await noSecrets()
    await shot('services')

    // The VM's deploy pipeline as a timeline: step, outcome, transition, duration.
    await page.click(`a[href="/console/services/${world.sid.vm}"]`)
    await page.waitForURL(new RegExp(`/console/services/${world.sid.vm}$`))
    const step = page.locator('.job .step').filter({ hasText: 'Clone' }).first()
    await step.waitFor()
    expect(await step.locator('.mark').textContent()).toBe('[+]')
    expect(await step.locator('.label').textContent()).toBe('Clone from template')
    expect(await step.locator('.outcome').textContent()).toBe('success')
    expect(await step.locator('.transition').textContent()).toMatch(/^\(\w+ -> clone\)$/)
    expect(await step.locator('.duration').textContent()).toMatch(/^\[\d+\.\d\ds\]$/)
    expect(await page.locator('.job .step-skipped').count()).toBeGreaterThan(0) // "skip — no change" steps
    expect(await page.textContent('[data-field="whmcs"]')).toBe('Active')
    // The state on the server, asked live once (outside the refreshed region), agrees.
    await page.locator('#probe[data-probe-state="active"]').waitFor({ timeout: 30_000 })
    expect(await page.locator('#probe.probe-differs').count()).toBe(0)
    await page.waitForTimeout(2500) // a refresh of the live region later, the answer is still there
    expect(await page.locator('#probe[data-probe-state="active"]').count()).toBe(1)
    expect(await page.locator('.outcome-ok').count()).toBeGreaterThan(0) // its module-log calls
    await noSecrets()
    await shot('service-timeline')
    // One of the connector's own admin actions, after a confirmation.
    await page.click('details.connector-actions summary')
    await page.click('button:has-text("Deploy status")')
    await page.click('button:has-text("Confirm")')
    await expect.poll(() => page.textContent('.flash')).toBe('deployStatus: done')
    expect(await page.textContent('pre.result')).toMatch(/ready|complete|status/i)
    await noSecrets()

    // The usage push whose answer was lost is uncertain; the operator checked WHMCS and settles it.
    await page.goto(`${url}/console/ledger`)
    const uncertainRow = page.locator('tr', { has: page.locator('.state-uncertain') })
    await uncertainRow.first().waitFor({ timeout: 60_000 })
    const billed = world.whmcs.billableItems.size
    expect(billed).toBe(1)
    await shot('ledger')
    await uncertainRow.first().locator('button', { hasText: 'settle as done' }).click()
    await page.locator('p.confirm').waitFor()
    expect(await page.textContent('p.confirm')).toContain('Settle whmcs:usage:')
    await page.click('button:has-text("Confirm")')
    await expect
      .poll(() => page.textContent('.flash'))
      .toMatch(/^Settled whmcs:usage:.* as done; its job is queued again$/)
    await expect.poll(() => page.locator('.state-uncertain').count(), { timeout: 20_000 }).toBe(0)
    expect(world.whmcs.billableItems.size).toBe(billed) // never sent twice

    // A suspension ComputeStacks keeps refusing is parked; the operator fixes it and retries.
    world.cs.inject({ type: 'status', status: 503, times: 1000, match: { path: /users/ } })
    world.whmcs.suspendForNonPayment(Number(world.sid.containers))
    await page.goto(`${url}/console/services/${world.sid.containers}`)
    await page.click('button:has-text("Sync now")')
    // One intent, unless the periodic pass (every 5 s under this config) queued it a moment before.
    await expect.poll(() => page.textContent('.flash')).toMatch(/^Synced: ([01]) intents, \1 jobs queued$/)
    const retry = page.locator('button', { hasText: /^Retry parked job \d+$/ })
    await retry.waitFor({ timeout: 60_000 }) // appears through the live region
    await page.goto(`${url}/console/parked`)
    await page.locator('tr[data-job]').first().waitFor()
    await shot('parked')
    world.cs.clearFaults()
    const row = page.locator('tr[data-job]', { hasText: 'suspend' })
    await row.locator('button', { hasText: 'Retry' }).click()
    await expect.poll(() => page.textContent('.flash')).toMatch(/queued again/)
    await page.goto(`${url}/console/services/${world.sid.containers}`)
    await page.locator('[data-field="confirmed"] .state-suspended').waitFor({ timeout: 60_000 })
    expect(world.live.containers()).toBe('suspended')
    await shot('service-converged')

    await page.goto(`${url}/console`)
    await page.locator('[data-metric="parked"]', { hasText: /^0$/ }).waitFor({ timeout: 30_000 })
    await shot('overview')
    await page.goto(`${url}/console/log?outcome=error`)
    await page.locator('#live tbody tr').first().waitFor()
    await noSecrets()
    await shot('module-log')

    // Requests without the session, or without the CSRF token, are refused and change nothing.
    const cookie = (await page.context().cookies()).find((c) => c.name === 'pk_session')
    expect(cookie?.httpOnly).toBe(true)
    expect(cookie?.sameSite).toBe('Strict')
    const form = { 'content-type': 'application/x-www-form-urlencoded' }
    const noSession = await fetch(`${url}/console/jobs/1/retry`, {
      method: 'POST',
      headers: form,
      body: '',
      redirect: 'manual',
    })
    expect(noSession.status).toBe(401)
    const noCsrf = await fetch(`${url}/console/ledger/settle`, {
      method: 'POST',
      headers: { ...form, cookie: `pk_session=${cookie?.value}` },
      body: 'key=x&outcome=done&confirm=yes',
      redirect: 'manual',
    })
    expect(noCsrf.status).toBe(403)
    const wrongCsrf = await fetch(`${url}/console/jobs/1/cancel`, {
      method: 'POST',
      headers: { ...form, cookie: `pk_session=${cookie?.value}` },
      body: '_csrf=forged',
      redirect: 'manual',
    })
    expect(wrongCsrf.status).toBe(403)

    // Log out: the session is gone, also for whoever kept the cookie.
    await page.click('button:has-text("Log out")')
    await page.waitForURL(/\/console\/login$/)
    const after = await fetch(`${url}/console`, {
      headers: { cookie: `pk_session=${cookie?.value}` },
      redirect: 'manual',
    })
    expect(after.status).toBe(303)
    expect(after.headers.get('location')).toBe('/console/login')
    expect(served.join('')).not.toContain(TOKEN)
  })
})
