import { startComputeStacksSimulator } from '@panelkit/computestacks/testing'
import { createRedactor } from '@panelkit/core'
import { createWhmcsClient } from '@panelkit/whmcs'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../src/config.ts'
import { builtinConnectors } from '../src/connectors.ts'
import { applyCreditProducts } from '../src/engine/deposits.ts'
import { Engine } from '../src/engine/engine.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { silentLogger } from '../src/logger.ts'
import { openTestStore, STORE_KINDS, type StoreKind, TEST_KEY } from './helpers.ts'

/**
 * Deposits as account credit (seed 001, "Apply Credit"): an order of a one-time ComputeStacks product,
 * paid in WHMCS, becomes exactly one AddCredit through the ledger, and the client area shows it.
 */
const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.()
})

async function setup(kind: StoreKind, settings: Record<string, unknown> = {}) {
  const whmcs = await startWhmcsSimulator()
  const cs = await startComputeStacksSimulator()
  const product = whmcs.createProduct({
    name: 'Cloud with deposit',
    module: 'computestacks',
    paytype: 'onetime',
    monthlyCents: 2500,
  })
  const { config } = parseConfig(
    {
      whmcs: {
        url: whmcs.url,
        identifier: whmcs.credential.identifier,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
        secret: '${WHMCS_SECRET}',
        ca: whmcs.ca,
      },
      servers: [
        {
          id: 'cs-1',
          connector: 'computestacks-account',
          hostname: '127.0.0.1',
          port: cs.port,
          username: cs.apiKey,
          // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
          password: '${CS_SECRET}',
          options: { ca: cs.ca },
        },
      ],
      serverGroups: [{ id: 'containers', servers: ['cs-1'] }],
      products: [
        {
          whmcsProductId: product.id,
          connector: 'computestacks-account',
          serverGroup: 'containers',
          settings: { emailDomain: 'cloud.example.test', ...settings },
        },
      ],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
      store: { encryptionKey: '${KEY}' },
      worker: { backoffMs: 5, maxBackoffMs: 10 },
    },
    { KEY: TEST_KEY, WHMCS_SECRET: whmcs.credential.secret, CS_SECRET: cs.apiSecret },
  )
  const { store, cleanup } = await openTestStore(kind)
  const redactor = createRedactor()
  const client = createWhmcsClient({
    url: whmcs.url,
    identifier: whmcs.credential.identifier,
    secret: whmcs.credential.secret,
    tls: { ca: whmcs.ca },
    retry: false,
  })
  const engine = new Engine({
    store,
    config,
    connectors: builtinConnectors(store, config),
    whmcs: client,
    redactor,
    logger: silentLogger(redactor),
    moduleLog: store.moduleLog(redactor),
  })
  cleanups.push(async () => {
    await engine.close() // closes the WHMCS client too
    await cleanup()
    await cs.close()
    await whmcs.close()
  })
  const clientId = whmcs.createClient({
    email: 'dora@example.com',
    firstname: 'Dora',
    lastname: 'Deposit',
  }).id
  return { whmcs, cs, engine, store, product, clientId }
}

const creditsOf = (whmcs: Awaited<ReturnType<typeof startWhmcsSimulator>>, clientId: number) =>
  [...whmcs.credits.values()].filter((c) => c.clientid === clientId)

describe.each(STORE_KINDS)('deposits as account credit (%s)', (kind) => {
  it('credits the paid one-time fee once and shows it in the client area', async () => {
    const { whmcs, cs, engine, store, product, clientId } = await setup(kind)
    expect(applyCreditProducts(engine)).toEqual([String(product.id)])
    const unpaid = whmcs.placeOrder({ clientId, pid: product.id, billingcycle: 'One Time' })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(creditsOf(whmcs, clientId)).toEqual([])

    whmcs.markInvoicePaid(unpaid.invoice.id)
    for (let pass = 0; pass < 3; pass++) {
      await engine.sync()
      await engine.runWorker({ untilIdle: true, pollMs: 5 })
    }
    const credits = creditsOf(whmcs, clientId)
    expect(credits.map((c) => [c.amountCents, c.description])).toEqual([
      [2500, `Credit for Cloud Services Order #${unpaid.order.id}`],
    ])
    const jobs = (await listJobs(store.db, {})).filter((j) => j.operation === 'creditDeposit')
    expect(jobs).toMatchObject([{ status: 'done', key: `credit:whmcs-order-${unpaid.order.id}` }])

    // The account was created by the same sync and carries the deposit for its client area.
    const account = cs.usersForService(String(unpaid.service.id))[0]
    expect(account?.labels.panelkit_deposits).toEqual({ [`whmcs-order-${unpaid.order.id}`]: '25.00' })
    const area = await engine.connector('computestacks-account')?.invoke('clientArea', {
      service: {
        serviceId: unpaid.service.id,
        clientId,
        username: account?.email,
        server: {
          hostname: '127.0.0.1',
          port: cs.port,
          username: cs.apiKey,
          password: cs.apiSecret,
          options: { ca: cs.ca },
        },
        settings: { emailDomain: 'cloud.example.test' },
        client: { email: 'dora@example.com', firstName: 'Dora', lastName: 'Deposit' },
      },
    } as never)
    expect(area?.ok).toBe(true)
    const fields = (area as { data: { fields: { key: string; value: unknown }[] } }).data.fields
    expect(fields.find((f) => f.key === 'depositCredit')?.value).toBe('$25.00')

    // Once credited and shown, the order is not read from WHMCS again.
    const reads = whmcs.callCount('GetOrders')
    await engine.sync()
    expect(whmcs.callCount('GetOrders')).toBe(reads)
  })

  it('does not wait to show a deposit on a service that was terminated before it was shown', async () => {
    const { whmcs, cs, engine, product, clientId } = await setup(kind, { terminateAction: 'delete' })
    const paid = whmcs.placeOrder({ clientId, pid: product.id, billingcycle: 'One Time', paid: true })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(creditsOf(whmcs, clientId)).toHaveLength(1)
    whmcs.terminate(paid.service.id)
    // Were the deposit still to be shown, this pass could not write it (and the account is deleted next).
    cs.inject({ type: 'status', status: 503, times: 50, match: { method: 'PATCH' } })
    await engine.sync()
    cs.clearFaults()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(cs.usersForService(String(paid.service.id))).toEqual([])
    // Nothing is left to show it on: the order is done with, not read from WHMCS on every pass.
    const clean = await engine.sync()
    expect(clean.errors).toEqual([])
    const reads = whmcs.callCount('GetOrders')
    await engine.sync()
    expect(whmcs.callCount('GetOrders')).toBe(reads)
    expect(creditsOf(whmcs, clientId)).toHaveLength(1)
  })

  it('credits nothing when the product turns Apply Credit off', async () => {
    const { whmcs, engine, product, clientId } = await setup(kind, { applyCredit: false })
    expect(applyCreditProducts(engine)).toEqual([])
    whmcs.placeOrder({ clientId, pid: product.id, billingcycle: 'One Time', paid: true })
    await engine.sync()
    await engine.runWorker({ untilIdle: true, pollMs: 5 })
    expect(creditsOf(whmcs, clientId)).toEqual([])
  })
})
