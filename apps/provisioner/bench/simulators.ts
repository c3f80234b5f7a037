// The benchmark's simulators in a process of their own (started by bench/run.ts with an IPC channel),
// so that their CPU is measured apart from the workers', the sync's and the database's: the Axigen
// simulator (plain CLI over TCP) holding the mailboxes, and the WHMCS simulator (External API over
// HTTPS) holding the orders. The parent sends one request at a time and gets one answer.
import { startAxigenSimulator } from '@panelkit/axigen/testing'
import { startWhmcsSimulator } from '@panelkit/whmcs/testing'

export type SimRequest =
  | { op: 'order'; count: number }
  /** Sets the status of the services of the latest `order` (a warm-up's services keep theirs). */
  | { op: 'status'; status: 'Active' | 'Suspended' | 'Terminated' }
  | { op: 'cpu' }
  | { op: 'close' }

export interface SimReady {
  axigenPort: number
  whmcs: { url: string; identifier: string; secret: string; ca: string }
  productId: number
}

const send = (message: unknown) => process.send?.(message)

const axigen = await startAxigenSimulator({ admins: { admin: 'Bench-Admin-1' } })
axigen.addDomain('bench.example')
const whmcs = await startWhmcsSimulator()
const product = whmcs.createProduct({ name: 'Mailbox' })
const customer = whmcs.createClient({ email: 'bench@example.com' })
let ordered = 0
let batch: number[] = []

process.on('message', async (request: SimRequest) => {
  switch (request.op) {
    case 'order':
      batch = []
      for (let i = 0; i < request.count; i++) {
        ordered++
        const service = whmcs.createService({
          clientId: customer.id,
          pid: product.id,
          status: 'Active',
          username: `box${ordered}`,
          password: `Box-${ordered}-password`,
        })
        batch.push(service.id)
      }
      send({ ok: true })
      break
    case 'status':
      for (const id of batch) whmcs.setStatus(id, request.status)
      send({ ok: true })
      break
    case 'cpu':
      send(process.cpuUsage())
      break
    case 'close':
      await axigen.close()
      await whmcs.close()
      send({ ok: true })
      process.disconnect()
      break
  }
})

send({
  axigenPort: axigen.port,
  whmcs: {
    url: whmcs.url,
    identifier: whmcs.credential.identifier,
    secret: whmcs.credential.secret,
    ca: whmcs.ca,
  },
  productId: product.id,
} satisfies SimReady)
