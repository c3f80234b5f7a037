import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatMarker, parseMarker } from '@panelkit/axigen'
import { serviceIdFromDescription } from '@panelkit/proxmox'
import { describe, expect, it } from 'vitest'
import { type App, createApp } from '../src/app.ts'
import { MAIL_DOMAIN, startDemoWorld } from '../src/demo/world.ts'
import { importAccounts } from '../src/engine/import.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { startApiServer } from '../src/http/server.ts'

const TOKEN = 'import-test-token-0123456789'

describe('import and single sign-on against the four simulators', () => {
  it('adopts every connector’s existing accounts without re-creating them, then manages them', {
    timeout: 60_000,
  }, async () => {
    const dirA = mkdtempSync(join(tmpdir(), 'provisioner-import-a-'))
    const dirB = mkdtempSync(join(tmpdir(), 'provisioner-import-b-'))
    const world = await startDemoWorld({ store: { dataDir: dirA } })
    const { whmcs, cs, pve, axigen, sid } = world
    let fresh: App | undefined
    try {
      // The accounts exist: provisioned by another installation (here: the world's own app).
      await world.app.engine.sync()
      await world.app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      const vmsBefore = pve.vms.size
      const csWrites = cs.writeCount
      // A new provisioner with an empty store adopts them.
      fresh = await createApp({
        config: {
          ...world.app.config,
          store: { ...world.app.config.store, dataDir: dirB },
          http: { listen: '127.0.0.1:0', tokens: [TOKEN] },
        },
        secrets: world.secrets,
        logStream: null,
      })
      const adopted: Record<string, string[]> = {}
      for (const server of fresh.config.servers) {
        const report = await importAccounts(fresh, server.id)
        adopted[server.id] = report.adoptedServices
      }
      expect(adopted).toEqual({
        'axigen-1': [String(sid.domain)],
        'axigen-1-boxes': [String(sid.mailbox)],
        'pve-1': [String(sid.vm)],
        'cs-1': [String(sid.containers)],
      })
      // Importing again adopts nothing new.
      expect((await importAccounts(fresh, 'pve-1')).already).toBe(1)
      for (const id of Object.values(sid)) {
        const s = await getService(fresh.store.db, String(id))
        expect({ id, desired: s?.desired, actual: s?.actual }).toEqual({
          id,
          desired: 'active',
          actual: 'active',
        })
      }
      // Nothing to create: a sync finds every service provisioned, and nothing was written anywhere.
      expect((await fresh.engine.sync()).intents).toBe(0)
      expect(await listJobs(fresh.store.db)).toEqual([])
      expect(pve.vms.size).toBe(vmsBefore)
      expect(cs.writeCount).toBe(csWrites)
      expect(
        [...pve.vms.values()].filter(
          (v) => serviceIdFromDescription(v.config.description) === String(sid.vm),
        ),
      ).toHaveLength(1)
      // Adopted services are managed like any other: WHMCS suspends one, the new provisioner follows.
      whmcs.suspendForNonPayment(sid.containers)
      whmcs.upgrade(sid.mailbox, { options: { Plan: 'Pro' } })
      expect((await fresh.engine.sync()).intentsByKind).toEqual({ suspend: 1, changePackage: 1 })
      await fresh.engine.runWorker({ untilIdle: true, pollMs: 5 })
      expect(cs.usersForService(String(sid.containers))[0]?.active).toBe(false)
      expect(cs.usersForService(String(sid.containers))).toHaveLength(1)
      expect(axigen.account('mail.demo.example', 'ada')).toBeDefined()

      // Single sign-on through the API: ComputeStacks has it, Axigen does not (a JSON error, not a crash).
      whmcs.unsuspend(sid.containers)
      await fresh.engine.sync()
      await fresh.engine.runWorker({ untilIdle: true, pollMs: 5 })
      const api = await startApiServer(fresh)
      try {
        const get = (path: string) =>
          fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, redirect: 'manual' })
        const client = await get(`/v1/services/${sid.containers}/sso?audience=client`)
        expect(client.status).toBe(302)
        const location = client.headers.get('location') ?? ''
        expect(location).toMatch(new RegExp(`^https://127\\.0\\.0\\.1:${cs.port}/`))
        const admin = await get(`/v1/services/${sid.containers}/sso?audience=admin&format=json`)
        expect(admin.status).toBe(200)
        expect(((await admin.json()) as { url: string }).url).toMatch(/^https:\/\//)
        const none = await get(`/v1/services/${sid.domain}/sso?audience=client`)
        expect(none.status).toBe(501)
        expect(((await none.json()) as { error: { code: string } }).error.code).toBe(
          'PANELKIT_ERR_UNSUPPORTED',
        )
      } finally {
        await api.close()
      }
    } finally {
      await fresh?.close()
      await world.close()
      rmSync(dirA, { recursive: true, force: true })
      rmSync(dirB, { recursive: true, force: true })
    }
  })

  it('links an unmarked Axigen domain and mailbox it adopts, so later operations manage them', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-import-link-'))
    const world = await startDemoWorld({ store: { dataDir: dir } })
    const { whmcs, axigen, sid, app } = world
    try {
      // Made by hand before panelkit: the WHMCS services' domain and mailbox, with no ownership marker.
      axigen.addDomain('lovelace-shop.example')
      axigen.addAccount(MAIL_DOMAIN, 'ada', 'Hand-Made-Pw-1')
      const markerOf = (account: { contact: Record<string, string | undefined> } | undefined) =>
        parseMarker(account?.contact.notes)?.serviceId
      expect(markerOf(axigen.account('lovelace-shop.example', 'postmaster'))).toBeUndefined()
      expect(markerOf(axigen.account(MAIL_DOMAIN, 'ada'))).toBeUndefined()

      // A mailbox marked for another service is not adopted by name, nor re-marked.
      const bob = world.order(world.products.mailbox.id, { username: 'bob', password: 'Mailbox-Pw-2' })
      axigen.addAccount(MAIL_DOMAIN, 'bob').contact.notes = formatMarker({ serviceId: '999999' })

      expect((await importAccounts(app, 'axigen-1')).adoptedServices).toEqual([String(sid.domain)])
      expect((await importAccounts(app, 'axigen-1-boxes')).adoptedServices).toEqual([String(sid.mailbox)])
      expect(await getService(app.store.db, String(bob))).toBeUndefined()
      expect(markerOf(axigen.account(MAIL_DOMAIN, 'bob'))).toBe('999999')
      // The import was the explicit act: both now carry their service's marker, nothing else was made.
      expect(markerOf(axigen.account('lovelace-shop.example', 'postmaster'))).toBe(String(sid.domain))
      expect(markerOf(axigen.account(MAIL_DOMAIN, 'ada'))).toBe(String(sid.mailbox))
      expect(axigen.account(MAIL_DOMAIN, 'ada')?.password).toBe('Hand-Made-Pw-1')

      // WHMCS suspends both: the jobs succeed on the adopted resources instead of a CONFLICT.
      whmcs.suspendForNonPayment(sid.domain)
      whmcs.suspendForNonPayment(sid.mailbox)
      await app.engine.sync({ serviceId: String(sid.domain) })
      await app.engine.sync({ serviceId: String(sid.mailbox) })
      await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      expect(axigen.domains.get('lovelace-shop.example')?.enabled).toBe(false)
      expect(axigen.account(MAIL_DOMAIN, 'ada')?.services).toEqual([])
      for (const id of [sid.domain, sid.mailbox]) {
        const s = await getService(app.store.db, String(id))
        expect({ id, actual: s?.actual, error: s?.lastError ?? null }).toEqual({
          id,
          actual: 'suspended',
          error: null,
        })
      }
    } finally {
      await world.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
