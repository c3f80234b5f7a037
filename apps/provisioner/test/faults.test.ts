import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serviceIdFromDescription } from '@panelkit/proxmox'
import { describe, expect, it } from 'vitest'
import { startDemoWorld } from '../src/demo/world.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { getService } from '../src/engine/services.ts'
import { dropSchema, PG_URL, STORE_KINDS, uniqueSchema } from './helpers.ts'

/**
 * Faults in every simulator while a sync and a worker run: WHMCS answers 503, drops connections and is
 * slow; Axigen closes connections in the middle of replies (after carrying out the command) and is
 * slow; Proxmox answers 503, drops requests, loses the answer to a clone and has a lock storm;
 * ComputeStacks answers 503, throttles, is slow and loses the answer to a user creation. Then the
 * faults stop, and every service converges with every external effect applied once.
 */
describe.each(STORE_KINDS)('faults in every simulator during sync and worker (%s)', (kind) => {
  it('converges once the faults stop, with every effect applied once', { timeout: 90_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-faults-'))
    const schema = uniqueSchema()
    const world = await startDemoWorld({
      store: kind === 'postgres' ? { postgres: { url: PG_URL as string, schema } } : { dataDir: dir },
    })
    const { whmcs, axigen, cs, pve, sid, app } = world
    const engine = app.engine
    try {
      const faultsOn = () => {
        whmcs.injectFault({ kind: 'status', status: 503, action: 'GetClientsProducts', times: 2 })
        whmcs.injectFault({ kind: 'drop', action: 'UpdateClientProduct', times: 2 })
        whmcs.injectFault({ kind: 'slow', action: 'GetClientsDetails', delayMs: 150, times: 2 })
        axigen.faults = {
          closeMidReply: { match: /^(CREATE|SET|UPDATE|DISABLE|ENABLE)/i, times: 2 },
          slowCommands: { match: /./, delayMs: 5 },
        }
        pve.failNext({ status: 503, count: 3 })
        pve.dropNext(2)
        pve.dropResponseNext({
          count: 1,
          match: (method, path) => method === 'POST' && /\/clone$/.test(path),
        })
        pve.lockStorm({ probability: 0.4, durationMs: 1500 })
        cs.inject({ type: 'status', status: 503, times: 2 })
        cs.inject({ type: 'throttle', retryAfterSeconds: 0, times: 1 })
        cs.inject({ type: 'delay', ms: 150, times: 2 })
        cs.inject({ type: 'drop', afterHandling: true, times: 1, match: { method: 'POST', path: /users/ } })
        cs.inject({ type: 'drop', afterHandling: true, times: 1, match: { method: 'PATCH', path: /users/ } })
      }
      const faultsOff = () => {
        whmcs.faults.length = 0
        axigen.faults = {}
        pve.clearFaults()
        cs.clearFaults()
      }
      const work = async (rounds: number) => {
        for (let i = 0; i < rounds; i++) {
          await engine.sync()
          await engine.runWorker({ untilIdle: true, pollMs: 5 })
        }
      }

      // Orders become services while everything misbehaves.
      faultsOn()
      const first = await engine.sync()
      // The first read hit WHMCS's 503s; the client's read retries absorbed them.
      expect(first.errors).toEqual([])
      await engine.runWorker({ untilIdle: true, pollMs: 5 })
      // The clone's answer was lost (and the VM adopted, not cloned again), the account creation's too.
      expect(pve.faults.dropResponses).toEqual([])
      expect(axigen.faults.closeMidReply?.times).toBe(0)
      // Then a suspension, an upgrade and a password change, again under faults.
      whmcs.suspendForNonPayment(sid.containers)
      whmcs.upgrade(sid.vm, { options: { Plan: 'Pro' } })
      whmcs.setServicePassword(sid.mailbox, 'Mailbox-Pw-after-faults')
      faultsOn()
      await work(2)

      // The faults did fire in every system.
      expect(whmcs.requests.filter((r) => r.status === 503).length).toBeGreaterThan(0)
      expect(axigen.faults.closeMidReply?.times).toBeLessThan(2)
      expect(pve.faults.drop).toBe(0)
      expect(cs.requests.filter((r) => r.status === 503 || r.status === 429).length).toBeGreaterThan(0)

      // The faults stop; a sync and a worker run must leave nothing to do.
      faultsOff()
      const parked = (await listJobs(app.store.db, { status: ['parked'] })).map(
        (j) => `${j.serviceId} ${j.operation}: ${j.lastError?.code} ${j.lastError?.detail}`,
      )
      // Every fault was transient: retried with backoff, nothing needed an operator.
      expect(parked).toEqual([])
      await work(2)
      const again = await engine.sync()
      expect(again.intents, `parked under faults: ${parked.join('; ')}`).toBe(0)

      for (const key of Object.keys(sid) as (keyof typeof sid)[]) {
        const s = await getService(app.store.db, String(sid[key]))
        expect({ key, desired: s?.desired, actual: s?.actual }).toEqual({
          key,
          desired: s?.desired,
          actual: s?.desired,
        })
        expect({ key, live: world.live[key]() }).toEqual({ key, live: world.expected(s?.desired ?? '') })
      }
      const jobs = await listJobs(app.store.db, { limit: 10_000 })
      expect(jobs.filter((j) => j.status !== 'done').map((j) => `${j.serviceId} ${j.operation}`)).toEqual([])
      expect((await engine.drift()).entries).toEqual([])

      // Every external effect once: one VM, one ComputeStacks user, one domain, one mailbox.
      const vms = [...pve.vms.values()].filter(
        (v) => serviceIdFromDescription(v.config.description) === String(sid.vm),
      )
      expect(vms).toHaveLength(1)
      expect(Number(vms[0]?.config.cores)).toBe(2)
      expect(cs.usersForService(String(sid.containers))).toHaveLength(1)
      expect(cs.usersForService(String(sid.containers))[0]?.active).toBe(false)
      expect([...axigen.domains.keys()].filter((d) => d === 'lovelace-shop.example')).toHaveLength(1)
      expect(axigen.account('mail.demo.example', 'ada')).toBeDefined()
      // One IP in use, written back to WHMCS once the connection came back.
      const ip = (await app.store.ipPool('main').stats()).used
      expect(ip).toBe(1)
      expect(whmcs.service(sid.vm).dedicatedip).toMatch(/^203\.0\.113\./)
      expect(whmcs.service(sid.containers).username).not.toBe('')
    } finally {
      await world.close()
      rmSync(dir, { recursive: true, force: true })
      if (kind === 'postgres') await dropSchema(schema)
    }
  })
})
