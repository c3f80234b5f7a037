import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { parseConfig } from '../src/config.ts'
import { ConsoleConfigSchema } from '../src/console/config.ts'
import { type DemoWorld, startDemoWorld } from '../src/demo/world.ts'
import { type ApiServer, startApiServer } from '../src/http/server.ts'
import { dropSchema, PG_URL, STORE_KINDS, TEST_KEY, uniqueSchema } from './helpers.ts'

/**
 * The console over plain HTTP (no browser): sessions kept in the store (they survive a restart, work
 * across several processes on one store, end at logout everywhere), and the service page's live probe
 * against the demo's simulators (the state on the server, a difference marked, errors and deadlines).
 */

const TOKEN = 'console-http-token-0123456789abcdef'
const READ_TOKEN = 'console-http-read-0123456789abcdef'

function setCookies(res: Response): Map<string, string> {
  const out = new Map<string, string>()
  for (const c of res.headers.getSetCookie()) {
    const [pair] = c.split(';')
    const i = (pair as string).indexOf('=')
    out.set((pair as string).slice(0, i), (pair as string).slice(i + 1))
  }
  return out
}

/** Logs in as a person does: the form (and its nonce cookie), then the token; returns the session cookie. */
async function login(url: string, token = TOKEN): Promise<{ status: number; session?: string }> {
  const form = await fetch(`${url}/console/login`)
  const nonce = setCookies(form).get('pk_login') as string
  expect(await form.text()).toContain(`name="_csrf" value="${nonce}"`)
  const res = await fetch(`${url}/console/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `pk_login=${nonce}` },
    body: new URLSearchParams({ _csrf: nonce, token }).toString(),
  })
  await res.text()
  const session = setCookies(res).get('pk_session')
  return { status: res.status, ...(session ? { session } : {}) }
}

async function get(url: string, path: string, session: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}${path}`, {
    redirect: 'manual',
    headers: { cookie: `pk_session=${session}`, ...headers },
  })
  return { status: res.status, location: res.headers.get('location'), text: await res.text() }
}

function csrfOf(page: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(page)
  if (!m) throw new Error('no CSRF field on the page')
  return m[1] as string
}

describe.each(STORE_KINDS)('console sessions in the store (%s)', (kind) => {
  let dir: string
  let schema: string
  const open: { app: App; api: ApiServer }[] = []

  async function start(): Promise<{ app: App; api: ApiServer }> {
    const { config, secrets } = parseConfig(
      {
        store:
          kind === 'sqlite'
            ? // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
              { dataDir: dir, encryptionKey: '${KEY}' }
            : // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
              { url: PG_URL, schema, encryptionKey: '${KEY}' },
        http: {
          listen: '127.0.0.1:0',
          tokens: [
            { name: 'ops', token: TOKEN, scopes: ['admin'] },
            { name: 'dashboards', token: READ_TOKEN, scopes: ['read'] },
          ],
        },
      },
      { KEY: TEST_KEY },
    )
    const app = await createApp({ config, secrets, logStream: null, builtins: false })
    const api = await startApiServer(app)
    const one = { app, api }
    open.push(one)
    return one
  }
  async function stop(one: { app: App; api: ApiServer }) {
    open.splice(open.indexOf(one), 1)
    await one.api.close()
    await one.app.close()
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'provisioner-console-http-'))
    schema = uniqueSchema()
  })
  afterAll(async () => {
    for (const one of [...open]) await stop(one)
    rmSync(dir, { recursive: true, force: true })
    if (kind === 'postgres') await dropSchema(schema)
  })

  it('keeps a session across a restart and across processes; logout ends it in the store', async () => {
    const first = await start()
    // A token without the admin scope does not open the console.
    expect((await login(first.api.url, READ_TOKEN)).session).toBeUndefined()
    const { status, session } = await login(first.api.url)
    expect(status).toBe(303)
    if (!session) throw new Error('no session cookie')
    expect((await get(first.api.url, '/console', session)).status).toBe(200)

    // The store has the session's digest, the token's name and scopes, and nothing to log in with.
    const rows = await first.app.store.db.selectFrom('console_sessions').selectAll().execute()
    expect(rows).toHaveLength(1)
    const row = rows[0] as (typeof rows)[number]
    expect(row.token_name).toBe('ops')
    expect(JSON.parse(row.token_scopes)).toEqual(['admin'])
    const stored = JSON.stringify(rows)
    expect(stored).not.toContain(session)
    expect(stored).not.toContain(TOKEN)
    expect(row.id_hash).not.toBe(session)
    await stop(first)

    // Restarted on the same store, twice over (two processes side by side): the cookie still works.
    const a = await start()
    const b = await start()
    const page = await get(a.api.url, '/console', session)
    expect(page.status).toBe(200)
    expect((await get(b.api.url, '/console/parked', session)).status).toBe(200)
    // The same CSRF secret in every process: an action posted to the other one is accepted.
    const csrf = csrfOf(page.text)
    const action = await fetch(`${b.api.url}/console/jobs/999/cancel`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `pk_session=${session}` },
      body: new URLSearchParams({ _csrf: csrf }).toString(),
    })
    expect(action.status).toBe(404) // past the session and CSRF checks: there is no job 999
    await action.text()

    // An expired session is refused and cleaned away; a login cleans every expired one.
    const stale = await login(a.api.url)
    await a.app.store.db
      .updateTable('console_sessions')
      .set({ expires_at: Date.now() - 1000 })
      .execute()
    expect((await get(b.api.url, '/console', stale.session as string)).location).toBe('/console/login')
    const fresh = await login(b.api.url)
    const left = await a.app.store.db.selectFrom('console_sessions').select('id_hash').execute()
    expect(left).toHaveLength(1) // the fresh one only: the expired first one went at this login
    expect((await get(a.api.url, '/console', session)).location).toBe('/console/login')

    // Logout in one process ends the session in every one.
    const before = await get(a.api.url, '/console', fresh.session as string)
    const out = await fetch(`${a.api.url}/console/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        cookie: `pk_session=${fresh.session}`,
      },
      body: new URLSearchParams({ _csrf: csrfOf(before.text) }).toString(),
    })
    expect(out.status).toBe(303)
    await out.text()
    expect((await get(b.api.url, '/console', fresh.session as string)).location).toBe('/console/login')
    expect(await a.app.store.db.selectFrom('console_sessions').selectAll().execute()).toEqual([])
  })
})

describe('the service page asks the server', () => {
  let dir: string
  let world: DemoWorld
  let api: ApiServer
  let session: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'provisioner-console-probe-'))
    world = await startDemoWorld({ store: { dataDir: dir } })
    world.app.config.http.tokens = [TOKEN]
    world.app.config.console = ConsoleConfigSchema.parse({ probeTimeoutMs: 1500 })
    await world.app.engine.sync()
    await world.app.engine.runWorker({ untilIdle: true, pollMs: 5 })
    api = await startApiServer(world.app)
    session = (await login(api.url)).session as string
  }, 120_000)

  afterAll(async () => {
    await api?.close()
    await world?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const probe = (sid: number | string, htmx = true) =>
    get(api.url, `/console/services/${sid}/probe`, session, htmx ? { 'hx-request': 'true' } : {})

  function noSecrets(text: string) {
    for (const s of [...world.secrets, TOKEN]) expect(text.includes(s), 'a secret on the page').toBe(false)
  }

  it('shows the live state next to wanted and confirmed, and marks a difference', {
    timeout: 60_000,
  }, async () => {
    // The page loads the probe lazily (htmx), outside the live region its polls replace.
    const page = await get(api.url, `/console/services/${world.sid.vm}`, session)
    const probeAt = page.text.search(/<dd id="probe"[^>]*hx-get="\/console\/services\/\d+\/probe"/)
    expect(probeAt).toBeGreaterThan(0)
    expect(probeAt).toBeLessThan(page.text.indexOf('<div id="live"'))

    for (const sid of [world.sid.vm, world.sid.domain, world.sid.mailbox, world.sid.containers]) {
      const r = await probe(sid)
      expect(r.status).toBe(200)
      expect(r.text, String(sid)).toContain('data-probe-state="active"')
      expect(r.text).not.toContain('probe-differs')
      expect(r.text.startsWith('<dd id="probe"')).toBe(true) // a fragment for htmx, not a page
      noSecrets(r.text)
    }

    // Suspended behind the provisioner's back: the server says so, and it differs from confirmed.
    const user = world.cs.usersForService(String(world.sid.containers))[0]
    if (!user) throw new Error('no ComputeStacks user for the service')
    user.active = false
    const differs = await probe(world.sid.containers, false)
    expect(differs.text).toContain('data-probe-state="suspended"')
    expect(differs.text).toContain('probe-differs')
    expect(differs.text).toContain('differs from confirmed (active)')
    expect(differs.text).toContain('<dt>Confirmed</dt>') // the full page without htmx
    user.active = true

    // A refusal is a clear message with no secret in it.
    world.cs.inject({ type: 'status', status: 403, times: 20, match: { path: /users/ } })
    const refused = await probe(world.sid.containers)
    world.cs.clearFaults()
    expect(refused.text).toContain('data-probe="error"')
    expect(refused.text).toMatch(/could not ask cs-1: [A-Z_]+: |no answer from cs-1/)
    noSecrets(refused.text)

    // A server that does not answer: the probe gives up at its deadline.
    world.cs.inject({ type: 'delay', ms: 8000, times: 20, match: { path: /users/ } })
    const started = Date.now()
    const slow = await probe(world.sid.containers)
    const took = Date.now() - started
    world.cs.clearFaults()
    expect(slow.text).toContain('no answer from cs-1 within 1.5 s')
    expect(took).toBeLessThan(7000)

    // The VM gone from Proxmox: absent on the server while confirmed active.
    const vm = [...world.pve.vms.values()].find((v) =>
      String(v.config.description ?? '').includes(String(world.sid.vm)),
    )
    if (!vm) throw new Error('no VM for the service')
    world.pve.vms.delete(vm.vmid)
    const gone = await probe(world.sid.vm)
    expect(gone.text).toContain('data-probe-state="absent"')
    expect(gone.text).toContain('differs from confirmed (active)')
  })
})
