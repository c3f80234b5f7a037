import type { PanelkitError } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import { createWhmcsClient, type WhmcsClientOptions } from '../../src/index.ts'

/** Input refused before sending, echoing servers, and oversized answers. */

const ORIGIN = 'https://billing.example.test'
const SECRET = 'Echo-Secret-77'
let agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents) await a.close()
  agents = []
})

function mocked(
  answer: (body: string) => { status: number; data: string; type?: string },
  extra: Partial<WhmcsClientOptions> = {},
) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  agents.push(agent)
  const sent: string[] = []
  agent
    .get(ORIGIN)
    .intercept({ path: () => true, method: () => true })
    .reply((opts) => {
      const body = String(opts.body)
      sent.push(body)
      const r = answer(body)
      return {
        statusCode: r.status,
        data: r.data,
        responseOptions: { headers: { 'content-type': r.type ?? 'application/json' } },
      }
    })
    .persist()
  const client = createWhmcsClient({
    url: `${ORIGIN}/`,
    identifier: 'api-id',
    secret: SECRET,
    accessKey: 'Access-Key-55',
    dispatcher: agent,
    retry: false,
    ...extra,
  })
  return { client, sent }
}

const fail = (p: Promise<unknown>) =>
  p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e: PanelkitError) => e,
  )

describe('a server that echoes the request', () => {
  it('an HTML error page echoing the form body carries neither the secret nor the access key', async () => {
    const { client, sent } = mocked((body) => ({
      status: 500,
      data: `<pre>${body}</pre>`,
      type: 'text/html',
    }))
    const error = await fail(client.getClients({}))
    expect(sent[0]).toContain(encodeURIComponent(SECRET))
    expect(error.kind).toBe('HTTP')
    const printed = `${error.message}\n${JSON.stringify(error)}\n${JSON.stringify((error as { body?: unknown }).body)}\n${JSON.stringify(error.details)}\n${error.stack}`
    expect(printed).not.toContain(SECRET)
    expect(printed).not.toContain('Access-Key-55')
  })
})

describe('oversized answers', () => {
  it('a reply over maxResponseBytes is a typed PROTOCOL error and the client stays usable', async () => {
    let huge = true
    const { client } = mocked(
      () =>
        huge
          ? { status: 200, data: JSON.stringify({ result: 'success', pad: 'x'.repeat(200_000) }) }
          : {
              status: 200,
              data: JSON.stringify({
                result: 'success',
                whmcs: { version: '8.13.1', canonicalversion: '8.13.1-release.1' },
              }),
            },
      { maxResponseBytes: 64 * 1024 },
    )
    const error = await fail(client.whmcsDetails())
    expect(error.kind).toBe('PROTOCOL')
    expect(error.message).toMatch(/65536 bytes/)
    huge = false
    await expect(client.whmcsDetails()).resolves.toMatchObject({ version: '8.13.1' })
  })
})

describe('input refused before sending', () => {
  it('an invalid Date, a malformed email and a control character are VALIDATION errors naming the field; nothing is sent', async () => {
    const { client, sent } = mocked(() => ({ status: 200, data: '{"result":"success"}' }))
    const bad = new Date('not a date')
    const cases: [Promise<unknown>, string][] = [
      [client.addCredit({ clientid: 1, description: 'Deposit', amount: '5.00', date: bad }), 'date'],
      [
        client.addBillableItem({ clientid: 1, description: 'Usage', amount: '1.00', duedate: bad }),
        'duedate',
      ],
      [client.getClientsDetails({ email: 'not-an-email' }), 'email'],
      [
        client.addClient({
          firstname: 'Ada',
          lastname: 'L',
          email: 'ada@@example',
          address1: 'a',
          city: 'c',
          state: 's',
          postcode: 'p',
          country: 'GB',
          phonenumber: '1',
        }),
        'email',
      ],
      [client.updateClient({ clientemail: 'x y@example.test' }), 'clientemail'],
      [client.moduleChangePw(5, 'pw\u0000injected'), 'servicepassword'],
    ]
    for (const [p, field] of cases) {
      const error = await fail(p)
      expect(error.kind, field).toBe('VALIDATION')
      expect((error as { field?: string }).field, field).toBe(field)
    }
    expect(sent).toHaveLength(0)
  })
})
