import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SUSPENDED_TAG, serviceIdFromDescription } from '@panelkit/proxmox'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  type HarnessResult,
  MAIL_DOMAIN,
  MODULE_ROOT,
  PHP_CHOICE,
  php,
  startWorld,
  TOKEN,
  type World,
} from './world.ts'

/**
 * The WHMCS server module, run by a real `php` through a harness standing in for WHMCS's functions,
 * against a real `provisioner serve` process and the Axigen, Proxmox VE, ComputeStacks and WHMCS
 * simulators. After a lifecycle function returns 'success', the test does what WHMCS then does (sets
 * the service's status), so the next call sees WHMCS as it would be.
 */

const PROBLEM = 'problem' in PHP_CHOICE ? PHP_CHOICE.problem : undefined
const RUNTIME = 'runtime' in PHP_CHOICE ? PHP_CHOICE.runtime : undefined
// Which PHP ran the module: printed, and kept beside the JSON report (test-results/php-runtime*.txt).
{
  const passedOver = 'passedOver' in PHP_CHOICE && PHP_CHOICE.passedOver ? ` (${PHP_CHOICE.passedOver})` : ''
  const line = `whmcs-module tests: PHP ${RUNTIME ? `= ${RUNTIME.label}${passedOver}` : `missing: ${PROBLEM}`}`
  console.log(line)
  mkdirSync(join(MODULE_ROOT, 'test-results'), { recursive: true })
  const suffix = process.env.PANELKIT_USE_NPM_RUNTIMES === '1' ? '-npm' : ''
  writeFileSync(join(MODULE_ROOT, 'test-results', `php-runtime${suffix}.txt`), `${line}\n`)
}
let world: World

beforeAll(async () => {
  if (PROBLEM) return
  world = await startWorld()
}, 120_000)

// No PHP: every test fails with the reason (none is skipped).
beforeEach(() => {
  if (PROBLEM) throw new Error(`no PHP to run the module with: ${PROBLEM}`)
})

afterAll(async () => {
  await world?.close()
})

/** A clean, customer-facing string: no stack trace, no file path, no PHP or Node error noise. */
function expectClean(text: unknown) {
  expect(typeof text).toBe('string')
  const s = text as string
  expect(s.length).toBeGreaterThan(5)
  // No absolute file path either (a space, then /dir/dir).
  expect(s).not.toMatch(
    /#\d+ |Stack trace|\.php|\.ts:|at [\w.]+ \(|Error:|Exception|(^|\s)\/[\w.-]+\/[\w.-]+/,
  )
}

/** The secrets of the world never reach what WHMCS stores (after its replace-vars scrubbing). */
function expectNoSecrets(out: HarnessResult, extra: string[] = []) {
  const text = JSON.stringify(out.log)
  for (const secret of [...world.secrets, ...extra]) expect(text).not.toContain(secret)
}

async function call(name: string, params: Record<string, unknown>, admin = true) {
  return php({ call: name, params, admin })
}

async function service(id: string) {
  return world.api(`/v1/services/${id}`)
}

const mailbox = (name: string) => world.axigen.account(MAIL_DOMAIN, name)

describe(`PHP: ${RUNTIME?.label ?? 'none'}`, () => {
  it('is there with curl (the system php, PANELKIT_PHP, or PHP.wasm from npm)', () => {
    // Fails, with the reason, rather than skipping the suite when no PHP can run the module.
    expect(PROBLEM, PROBLEM).toBeUndefined()
  })

  it('`php -l` passes on every PHP file of the module, the hooks and the harness', async () => {
    if (!RUNTIME) throw new Error(PROBLEM)
    const files: string[] = []
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (name === 'node_modules') continue
        const path = join(dir, name)
        if (statSync(path).isDirectory()) walk(path)
        else if (name.endsWith('.php')) files.push(path)
      }
    }
    for (const dir of ['modules', 'includes', 'test']) walk(join(MODULE_ROOT, dir))
    expect(files.length).toBeGreaterThanOrEqual(4)
    for (const file of files) {
      const r = await RUNTIME.run(['-l', file])
      expect(r.code, `${file}: ${r.stdout}${r.stderr}`).toBe(0)
    }
  })

  it('`php -l` refuses a file with a syntax error (the check above can fail)', async () => {
    if (!RUNTIME) throw new Error(PROBLEM)
    const dir = join(MODULE_ROOT, 'test-results')
    mkdirSync(dir, { recursive: true })
    const bad = join(dir, 'syntax-error.php')
    writeFileSync(bad, '<?php\nfunction broken( {\n')
    const r = await RUNTIME.run(['-l', bad])
    expect(r.code).not.toBe(0)
    expect(`${r.stdout}${r.stderr}`).toMatch(/syntax error/i)
  })
})

describe('the panelkit WHMCS module', () => {
  it('declares its metadata, config options (from the provisioner) and tests the connection', async () => {
    const meta = (await call('MetaData', {})).result as Record<string, unknown>
    expect(meta).toMatchObject({ APIVersion: '1.1', RequiresServer: true })
    const options = (await call('ConfigOptions', {})).result as Record<string, Record<string, unknown>>
    expect(Object.keys(options)).toEqual(['Connector product', 'Wait for completion'])
    expect(options['Connector product']).toMatchObject({
      Loader: 'panelkit_LoaderConnectorProducts',
      Default: 'auto',
    })
    const loaded = (
      await call('LoaderConnectorProducts', world.params(world.order('mailbox', { password: 'Loader-Pw-1' })))
    ).result as Record<string, string>
    expect(Object.keys(loaded)).toEqual(
      expect.arrayContaining(['auto', 'axigen-account', 'proxmox-kvm', 'computestacks-account']),
    )
    const ok = await call(
      'TestConnection',
      world.params(world.order('mailbox', { password: 'Test-Conn-Pw-1' })),
    )
    expect(ok.result).toEqual({ success: true, error: '' })
    expectNoSecrets(ok)
  })

  it('verifies TLS: a private CA given as ca=…, refused without it, and "insecure" turns the check off', async () => {
    const sid = world.order('mailbox', { password: 'Tls-Pw-1' })
    const tls = { serverhostname: `https://127.0.0.1:${world.tlsPort}` }
    const withCa = await call(
      'TestConnection',
      world.params(sid, 'Basic', { ...tls, serverusername: `ca=${world.caFile}` }),
    )
    expect(withCa.result).toEqual({ success: true, error: '' })
    const noCa = (await call('TestConnection', world.params(sid, 'Basic', tls))).result as {
      success: boolean
      error: string
    }
    expect(noCa.success).toBe(false)
    expectClean(noCa.error)
    const insecure = await call(
      'TestConnection',
      world.params(sid, 'Basic', { ...tls, serverusername: 'insecure' }),
    )
    expect(insecure.result).toEqual({ success: true, error: '' })
  })

  it('creates a mailbox once (twice pressed, then a sync: one job, one account), with the call source in the log', async () => {
    const sid = world.order('mailbox', { username: 'ada', password: 'Mailbox-Pw-1', field: 'Field-Secret-1' })
    expect(world.whmcs.service(Number(sid)).status).toBe('Pending')
    const first = await call('CreateAccount', world.params(sid))
    expect(first.result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Active') // what WHMCS does after 'success'
    expect(mailbox('ada')).toBeDefined()
    expect(mailbox('ada')?.password).toBe('Mailbox-Pw-1')
    expectNoSecrets(first, ['Mailbox-Pw-1', 'Field-Secret-1'])
    // Server password, access hash, service password and the password custom field.
    expect(first.log[0]?.replaceVarsCount).toBe(4)

    const again = await call('CreateAccount', world.params(sid))
    expect(again.result).toBe('success')
    const sync = await world.api('/v1/sync', { method: 'POST', body: { serviceId: sid } })
    expect(sync.body.report.jobsCreated).toBe(0)
    const s = await service(sid)
    expect(s.body.jobs.filter((j: { operation: string }) => j.operation === 'create')).toHaveLength(1)
    expect(s.body.jobs[0]).toMatchObject({ operation: 'create', status: 'done' })
    expect(s.body.service).toMatchObject({ actual: 'active', username: 'ada' })

    const log = await world.api(`/v1/log?serviceId=${sid}&source=whmcs-module`)
    const entries = log.body.entries as { connector: string; source: string; action: string }[]
    expect(entries.some((e) => e.connector === 'axigen-account')).toBe(true)
    expect(
      entries.some((e) => e.connector === 'whmcs-module' && e.action.endsWith(`/services/${sid}/create`)),
    ).toBe(true)
    expect(entries.every((e) => e.source === 'whmcs-module')).toBe(true)
    expect(JSON.stringify(log.body)).not.toContain('Mailbox-Pw-1')
    expect(JSON.stringify(log.body)).not.toContain('Field-Secret-1')
  })

  it('suspends, unsuspends, changes the password and the package, and terminates', async () => {
    const sid = world.order('mailbox', { username: 'grace', password: 'Grace-Pw-1' })
    expect((await call('CreateAccount', world.params(sid))).result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Active')

    expect((await call('SuspendAccount', world.params(sid))).result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Suspended')
    expect(mailbox('grace')?.services).toEqual([])
    expect((await call('SuspendAccount', world.params(sid))).result).toBe('success') // again: no change

    expect((await call('UnsuspendAccount', world.params(sid))).result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Active')
    expect(mailbox('grace')?.services).not.toEqual([])

    world.whmcs.setServicePassword(Number(sid), 'Grace-New-Pw-2') // WHMCS saves it, then calls the module
    const pw = await call('ChangePassword', world.params(sid), false)
    expect(pw.result).toBe('success')
    expect(mailbox('grace')?.password).toBe('Grace-New-Pw-2')
    expectNoSecrets(pw, ['Grace-New-Pw-2'])

    world.whmcs.upgrade(Number(sid), { options: { Plan: 'Pro' } })
    expect((await call('ChangePackage', world.params(sid, 'Pro'))).result).toBe('success')
    expect(mailbox('grace')?.quotas.totalMessageSize).toBe(4096 * 1024)

    expect((await call('TerminateAccount', world.params(sid, 'Pro'))).result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Terminated')
    expect(mailbox('grace')).toBeUndefined()
    expect((await call('TerminateAccount', world.params(sid, 'Pro'))).result).toBe('success') // gone is gone
    const jobs = (await service(sid)).body.jobs as { operation: string; status: string; key: string }[]
    expect(jobs.map((j) => j.operation)).toEqual([
      'create',
      'writeBack',
      'suspend',
      'unsuspend',
      'changePassword',
      'changePackage',
      'terminate',
    ])
    // The reverse sync's own keys: a sync pass now finds nothing to do.
    expect(
      jobs.filter((j) => j.operation !== 'writeBack').every((j) => j.key.startsWith(`whmcs:${sid}:`)),
    ).toBe(true)
    expect(
      (await world.api('/v1/sync', { method: 'POST', body: { serviceId: sid } })).body.report.jobsCreated,
    ).toBe(0)
  })

  it('signs in (client and admin), shows the client area and the admin tab for a ComputeStacks account', async () => {
    const sid = world.order('containers', { password: 'Container-Pw-1' })
    expect((await call('CreateAccount', world.params(sid))).result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Active')
    expect(world.cs.usersForService(sid)).toHaveLength(1)

    const client = (await call('ServiceSingleSignOn', world.params(sid), false)).result as Record<
      string,
      unknown
    >
    expect(client).toMatchObject({ success: true })
    expect(String(client.redirectTo)).toMatch(/^https?:\/\/127\.0\.0\.1:\d+\//)
    const admin = (await call('ServiceSingleSignOn', world.params(sid), true)).result as Record<
      string,
      unknown
    >
    expect(admin).toMatchObject({ success: true })
    expect(String(admin.redirectTo)).toMatch(/^https?:\/\//)

    const area = (await call('ClientArea', world.params(sid), false)).result as {
      templatefile: string
      vars: Record<string, unknown>
    }
    expect(area.templatefile).toBe('templates/overview')
    expect(area.vars.panelkit_state).toBe('active')
    expect((area.vars.panelkit_fields as unknown[]).length).toBeGreaterThan(0)
    expect(area.vars.panelkit_last_step).toBeTruthy()

    const tab = (await call('AdminServicesTabFields', world.params(sid))).result as Record<string, string>
    expect(tab['panelkit state']).toMatch(/^active \(wanted: active\) on cs-1/)
    expect(tab['panelkit last job']).toMatch(/create: done \(from whmcs-module, attempt 1\)/)
    expect(tab['panelkit pipeline step']).toBeTruthy()

    // Someone else's service id is not found for this client, and nothing leaks.
    const stranger = (
      await call('ServiceSingleSignOn', world.params(sid, 'Basic', { userid: String(world.other.id) }), false)
    ).result as Record<string, unknown>
    expect(stranger.success).toBe(false)
    expectClean(stranger.errorMsg)
  })

  it('accepts a VM deploy at once (durable), then runs the connector custom buttons and reports usage', async () => {
    const sid = world.order('vm', { password: 'Vm-Root-Pw-1!' })
    const accepted = await call('CreateAccount', world.params(sid, 'Basic', { configoption2: '0' }))
    expect(accepted.result).toBe('success')
    world.whmcs.setStatus(Number(sid), 'Active')
    // Accepted before done: the job is durable in the store and visible in the admin tab.
    const tab = (await call('AdminServicesTabFields', world.params(sid))).result as Record<string, string>
    expect(tab['panelkit last job']).toMatch(/create: (queued|running|done)/)
    for (let i = 0; i < 300 && (await service(sid)).body.service.actual !== 'active'; i++)
      await new Promise((r) => setTimeout(r, 100))
    expect((await service(sid)).body.service.actual).toBe('active')
    const vms = [...world.pve.vms.values()].filter(
      (v) => serviceIdFromDescription(v.config.description) === sid,
    )
    expect(vms).toHaveLength(1)
    expect((vms[0]?.config.tags ?? '').split(';')).not.toContain(SUSPENDED_TAG)

    const adminButtons = (await call('AdminCustomButtonArray', world.params(sid))).result as Record<
      string,
      string
    >
    expect(adminButtons).toMatchObject({
      'Deploy status': expect.stringMatching(/^action\d+$/),
      Reinstall: expect.any(String),
    })
    const clientButtons = (await call('ClientAreaCustomButtonArray', world.params(sid), false))
      .result as Record<string, string>
    expect(clientButtons['Deploy status']).toBe(adminButtons['Deploy status'])
    const status = await call(adminButtons['Deploy status'] as string, world.params(sid))
    expect(status.result).toBe('success')
    expect(status.log.map((l) => l.action)).toContain(`${adminButtons['Deploy status']} deployStatus`)
    // In the client area an action that answers with data gets its own page.
    const snapshots = (await call(clientButtons.Snapshots as string, world.params(sid), false)).result as {
      templatefile: string
      vars: Record<string, string>
    }
    expect(snapshots.templatefile).toBe('templates/action')
    expect(snapshots.vars.panelkit_action).toBe('Snapshots')
    expect(JSON.parse(snapshots.vars.panelkit_data as string)).toHaveProperty('snapshots')
    const reboot = await call(clientButtons.Reboot as string, world.params(sid), false)
    expect(reboot.result).toBe('success')
    // A ComputeStacks service offers no button (its one action needs input).
    const cs = world.order('containers', { password: 'Container-Pw-2' })
    expect((await call('CreateAccount', world.params(cs))).result).toBe('success')
    expect((await call('AdminCustomButtonArray', world.params(cs))).result).toEqual([])

    const usage = await call('UsageUpdate', { ...world.params(sid), serviceid: undefined, serverid: '3' })
    expect(usage.result).toBe('success')
    const vmUpdate = usage.updates.find((u) => u.where.id === Number(sid))
    expect(vmUpdate).toMatchObject({ table: 'tblhosting', where: { id: Number(sid), server: 3 } })
    expect(vmUpdate?.values).toHaveProperty('diskusage')
    expect(vmUpdate?.values).toHaveProperty('bwusage')
  })

  it('returns a clean error and changes nothing when the provisioner is down, the token is wrong, or the input is bad', async () => {
    const sid = world.order('mailbox', { username: 'nobody', password: 'Nobody-Pw-1' })
    // Down: nothing listens on the port (the API's own port, closed a moment ago).
    const down = await call('CreateAccount', world.params(sid, 'Basic', { serverport: '1' }))
    expectClean(down.result)
    expect(down.result).toMatch(/could not be reached; nothing was changed/)
    expectNoSecrets(down, ['Nobody-Pw-1'])
    const sso = (await call('ServiceSingleSignOn', world.params(sid, 'Basic', { serverport: '1' })))
      .result as Record<string, unknown>
    expect(sso.success).toBe(false)
    expectClean(sso.errorMsg)
    const area = (await call('ClientArea', world.params(sid, 'Basic', { serverport: '1' }), false))
      .result as {
      templatefile: string
      vars: { panelkit_error: string }
    }
    expect(area.templatefile).toBe('templates/error')
    expectClean(area.vars.panelkit_error)

    const wrong = await call(
      'CreateAccount',
      world.params(sid, 'Basic', { serveraccesshash: 'not-the-token-at-all-000' }),
    )
    expect(wrong.result).toBe("The provisioning service refused this WHMCS server's credentials.")
    expect(JSON.stringify(wrong.log)).not.toContain('not-the-token-at-all-000')
    const test = (
      await call(
        'TestConnection',
        world.params(sid, 'Basic', { serveraccesshash: 'not-the-token-at-all-000' }),
      )
    ).result as Record<string, unknown>
    expect(test.success).toBe(false)
    expectClean(test.error)

    const noId = await call('CreateAccount', world.params(sid, 'Basic', { serviceid: '' }))
    expect(noId.result).toBe('The request is missing the service details; nothing was changed.')
    expect(noId.log).toHaveLength(0) // refused before anything was sent
    const badWait = await call('CreateAccount', world.params(sid, 'Basic', { configoption2: 'soon' }))
    expect(badWait.result).toBe('The product is not configured correctly; nothing was changed.')

    // The module's word is checked against WHMCS: another client, another plan, an unmapped product.
    const otherClient = await call(
      'CreateAccount',
      world.params(sid, 'Basic', { userid: String(world.other.id) }),
    )
    expect(otherClient.result).toBe('This request does not match the service in WHMCS; nothing was changed.')
    const otherPlan = await call('CreateAccount', world.params(sid, 'Pro'))
    expect(otherPlan.result).toBe('This request does not match the service in WHMCS; nothing was changed.')
    const { service: unmapped } = world.whmcs.placeOrder({
      clientId: world.client.id,
      pid: world.products.unmapped.id,
      options: { Plan: 'Basic' },
    })
    const notMapped = await call('CreateAccount', world.params(String(unmapped.id)))
    expect(notMapped.result).toBe('This product is not set up in the provisioner; nothing was changed.')
    const wrongConnector = await call(
      'CreateAccount',
      world.params(sid, 'Basic', { configoption1: 'proxmox-kvm' }),
    )
    expect(wrongConnector.result).toBe('This product is not set up in the provisioner; nothing was changed.')

    // The provisioner is up but cannot ask WHMCS: it does not act on the module's word alone.
    world.whmcs.injectFault({ kind: 'status', status: 503, action: 'GetClientsProducts', times: 1000 })
    const blind = await call('CreateAccount', world.params(sid))
    world.whmcs.faults.length = 0
    expect(blind.result).toBe(
      'The provisioner could not check this service with WHMCS; nothing was changed. Try again shortly.',
    )

    // Nothing half-done: no service, no job, no mailbox, WHMCS still Pending.
    expect((await service(sid)).status).toBe(404)
    expect((await service(String(unmapped.id))).status).toBe(404)
    expect(mailbox('nobody')).toBeUndefined()
    expect(world.whmcs.service(Number(sid)).status).toBe('Pending')

    // And once the call is right, it works.
    expect((await call('CreateAccount', world.params(sid))).result).toBe('success')
    expect(mailbox('nobody')).toBeDefined()
  })

  it('a create the connector refuses is parked: the module returns the customer-safe message, the admin tab the reason', async () => {
    const sid = world.order('mailbox', { username: 'not a name!', password: 'Refused-Pw-1' })
    const out = await call('CreateAccount', world.params(sid))
    expectClean(out.result)
    expect(out.result).not.toBe('success')
    expect(out.result).not.toMatch(/mailbox name/) // the operator's detail stays in the log
    expect(out.log[0]?.processed).toMatch(/mailbox name may only hold/)
    expect(world.whmcs.service(Number(sid)).status).toBe('Pending')
    const tab = (await call('AdminServicesTabFields', world.params(sid))).result as Record<string, string>
    expect(tab['panelkit last job']).toMatch(/create: parked .*mailbox name may only hold/)
    expect(tab['panelkit jobs']).toBe('0 open, 1 parked')
    // Pressed again: the parked job is retried (and parked again, the name being still wrong), not doubled.
    expect((await call('CreateAccount', world.params(sid))).result).toBe(out.result)
    const jobs = (await service(sid)).body.jobs
    expect(jobs.filter((j) => j.operation === 'create')).toHaveLength(1)
    expect(jobs[0]?.status).toBe('parked')
    expect(jobs[0]?.attempts).toBe(1) // retried: attempts start again from 0
  })

  it("the hooks ask the provisioner to sync the client on login, payment and other modules' creates", async () => {
    const sid = world.order('mailbox', { username: 'hooked', password: 'Hooked-Pw-1' })
    world.whmcs.setStatus(Number(sid), 'Active') // a product set up by WHMCS without calling this module
    const rows = {
      tblservers: [
        {
          id: 3,
          type: 'panelkit',
          disabled: 0,
          hostname: '127.0.0.1',
          ipaddress: '127.0.0.1',
          port: world.port,
          secure: '',
          username: '',
          accesshash: TOKEN,
        },
      ],
    }
    const login = await php({ hook: 'ClientLogin', hookVars: { userid: world.client.id }, rows })
    expect(login.hooks).toEqual(
      expect.arrayContaining(['InvoicePaid', 'AfterModuleCreate', 'ClientLogin', 'UserLogin']),
    )
    expect(login.log).toHaveLength(1)
    expect(login.log[0]?.action).toBe('hook ClientLogin')
    expect(JSON.parse(login.log[0]?.processed ?? '{}').report.jobsCreated).toBeGreaterThanOrEqual(1)
    expectNoSecrets(login)
    for (let i = 0; i < 100 && !mailbox('hooked'); i++) await new Promise((r) => setTimeout(r, 100))
    expect(mailbox('hooked')).toBeDefined()

    const user = await php({ hook: 'UserLogin', hookVars: { user: { email: 'ada@example.com' } }, rows })
    expect(JSON.parse(user.log[0]?.processed ?? '{}').report.pass).toBe('client')
    const paid = await php({
      hook: 'InvoicePaid',
      hookVars: { invoiceid: 1, invoice: { userid: world.client.id } },
      rows,
    })
    expect(JSON.parse(paid.log[0]?.processed ?? '{}').report.pass).toBe('client')
    const own = await php({
      hook: 'AfterModuleCreate',
      hookVars: { params: { moduletype: 'panelkit', userid: 1 } },
      rows,
    })
    expect(own.log).toHaveLength(0) // the module's own creates went through the provisioner already
    // No panelkit server entry: the hook does nothing, and the caller goes on.
    const none = await php({
      hook: 'ClientLogin',
      hookVars: { userid: world.client.id },
      rows: { tblservers: [] },
    })
    expect(none.log).toHaveLength(0)
  })
})
