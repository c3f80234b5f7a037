import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CliIo, narrate, table } from '../cli/output.ts'
import { listJobs } from '../engine/jobs.ts'
import { getService } from '../engine/services.ts'
import { type DemoWorld, startDemoWorld } from './world.ts'

/**
 * The demo: every simulator in this process (WHMCS, Axigen, Proxmox VE, ComputeStacks), a WHMCS
 * order for each product type, and the provisioner's real sync, engine and store (SQLite in a temporary
 * directory) taking them through a customer's life. Exits 0 only when everything converged.
 */

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
  let world: DemoWorld | undefined
  try {
    io.out(
      'panelkit provisioner demo — WHMCS, Axigen, Proxmox VE and ComputeStacks simulators in this process',
    )
    io.out('')

    world = await startDemoWorld({
      store: options.postgres ? { postgres: options.postgres } : { dataDir },
      onEvent: narrate((block) => io.out(block.replace(/^/gm, '  '))),
    })
    const { whmcs, axigen, cs, pve, sid, app } = world
    io.out(`  WHMCS          ${whmcs.url}`)
    io.out(`  Axigen CLI     127.0.0.1:${axigen.port}`)
    io.out(`  ComputeStacks  https://127.0.0.1:${cs.port}`)
    io.out(`  Proxmox VE     https://127.0.0.1:${pve.port}`)
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
    const { live, expected } = world
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
    await world?.close()
    if (!options.keep) rmSync(dataDir, { recursive: true, force: true })
  }
}
