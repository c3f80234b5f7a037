import { createCallRecorder, hasErrorCode, MemoryLogSink, type PanelkitError } from '@panelkit/core'
import { MockAgent } from 'undici'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createWhmcsClient,
  decodePhpArray,
  GetClientsSchema,
  type WhmcsClientOptions,
} from '../../src/index.ts'
import { parseForm } from '../../src/protocol/form.ts'

/**
 * Unit tests of the HTTP layer: the client talks to an undici MockAgent passed as its dispatcher (never
 * the global one), so every byte it sends can be inspected and every odd answer WHMCS gives can be
 * produced on demand.
 */

const ORIGIN = 'https://billing.example.test'
const SECRET = 'Top-Secret-Value-9'
const ACCESS_KEY = 'acc3ss!key'

interface Sent {
  path: string
  method: string
  contentType: string
  body: string
  params: URLSearchParams
}

type Reply = { status?: number; body: unknown; contentType?: string }

let agents: MockAgent[] = []
afterEach(async () => {
  for (const a of agents) await a.close()
  agents = []
})

/** A client whose every request is answered by `answer` (called with the parsed form). */
function mocked(
  answer: (params: URLSearchParams, n: number) => Reply,
  extra: Partial<WhmcsClientOptions> = {},
) {
  const agent = new MockAgent()
  agent.disableNetConnect()
  agents.push(agent)
  const sent: Sent[] = []
  agent
    .get(ORIGIN)
    .intercept({ path: () => true, method: () => true })
    .reply((opts) => {
      const body = typeof opts.body === 'string' ? opts.body : Buffer.from(opts.body as Uint8Array).toString()
      const headers = (opts.headers ?? {}) as Record<string, string>
      const params = new URLSearchParams(body)
      sent.push({
        path: opts.path,
        method: opts.method,
        contentType: headers['content-type'] ?? '',
        body,
        params,
      })
      const r = answer(params, sent.length)
      const data = typeof r.body === 'string' ? r.body : JSON.stringify(r.body)
      return {
        statusCode: r.status ?? 200,
        data,
        responseOptions: { headers: { 'content-type': r.contentType ?? 'application/json' } },
      }
    })
    .persist()
  const sink = new MemoryLogSink()
  const client = createWhmcsClient({
    url: `${ORIGIN}/`,
    identifier: 'api-id',
    secret: SECRET,
    accessKey: ACCESS_KEY,
    dispatcher: agent,
    recorder: createCallRecorder({ connector: 'test', sink }),
    retry: { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 2 },
    ...extra,
  })
  return { client, sent, sink }
}

const ok = (extra: Record<string, unknown> = {}): Reply => ({ body: { result: 'success', ...extra } })

async function failure(p: Promise<unknown>): Promise<PanelkitError> {
  try {
    await p
  } catch (error) {
    return error as PanelkitError
  }
  throw new Error('expected a failure')
}

describe('request encoding', () => {
  it('POSTs a form to includes/api.php with credentials only in the body', async () => {
    const { client, sent, sink } = mocked(() => ok({ whmcs: { version: '8.13.1' } }))
    await client.whmcsDetails()
    const [req] = sent
    expect(req?.method).toBe('POST')
    expect(req?.path).toBe('/includes/api.php')
    expect(req?.path).not.toContain('?')
    expect(req?.contentType).toBe('application/x-www-form-urlencoded')
    expect(Object.fromEntries(req?.params ?? [])).toEqual({
      action: 'WhmcsDetails',
      responsetype: 'json',
      identifier: 'api-id',
      secret: SECRET,
      accesskey: ACCESS_KEY,
    })
    const log = JSON.stringify(sink.entries)
    expect(log).toContain('WhmcsDetails')
    expect(log).not.toContain(SECRET)
    expect(log).not.toContain(ACCESS_KEY)
  })

  it('refuses URLs with a query string or user info, and keeps a path prefix', async () => {
    expect(() => mocked(() => ok(), { url: `${ORIGIN}/?secret=x` })).toThrow(/query string/)
    expect(() => mocked(() => ok(), { url: 'https://u:p@billing.example.test/' })).toThrow(/credentials/)
    const { client, sent } = mocked(() => ok(), { url: `${ORIGIN}/billing` })
    await client.getHealthStatus()
    expect(sent[0]?.path).toBe('/billing/includes/api.php')
  })

  it('sends booleans as 1/0, never the string "false"', async () => {
    const { client, sent } = mocked(() => ok({ orderid: 1, serviceids: '5' }))
    await client.addOrder({
      clientid: 3,
      paymentmethod: 'mailin',
      items: [{ pid: 1 }],
      noinvoice: false,
      noemail: true,
    })
    const p = sent[0]?.params
    expect(p?.get('noinvoice')).toBe('0')
    expect(p?.get('noemail')).toBe('1')
    expect(sent[0]?.body).not.toMatch(/=(true|false)(&|$)/)
    await client.getHealthStatus({ fetchStatus: true })
    expect(sent[1]?.params.get('fetchStatus')).toBe('1')
  })

  it('sends arrays in bracket notation, one aligned slot per order item', async () => {
    const { client, sent } = mocked(() => ok({ orderid: '9', serviceids: '11,12' }))
    const r = await client.addOrder({
      clientid: 3,
      paymentmethod: 'mailin',
      items: [
        { pid: 1, billingcycle: 'monthly' },
        { pid: 2, domain: 'b.example' },
      ],
    })
    expect(r).toMatchObject({ orderid: '9', serviceids: ['11', '12'] })
    const keys = [...(sent[0]?.params.keys() ?? [])]
    expect(keys).toEqual(
      expect.arrayContaining([
        'pid[0]',
        'pid[1]',
        'billingcycle[0]',
        'billingcycle[1]',
        'domain[0]',
        'domain[1]',
      ]),
    )
    expect(keys).not.toContain('pid')
    const form = parseForm(sent[0]?.body ?? '')
    expect(form.pid).toEqual({ 0: '1', 1: '2' })
    expect(form.billingcycle).toEqual({ 0: 'monthly', 1: '' })
    expect(form.domain).toEqual({ 0: '', 1: 'b.example' })
  })

  it('sends custom fields and configurable options as base64 PHP-serialized arrays, masked in the log', async () => {
    const { client, sent, sink } = mocked(() => ok({ serviceid: '7' }))
    await client.updateClientProduct({
      serviceid: 7,
      customfields: { 12: 'cf-Secret-value' },
      configoptions: { 3: { optionid: 8, qty: 2 } },
      assignedips: ['192.0.2.1', '2001:db8::1'],
    })
    const p = sent[0]?.params
    expect(Buffer.from(p?.get('customfields') ?? '', 'base64').toString()).toBe(
      'a:1:{i:12;s:15:"cf-Secret-value";}',
    )
    expect(decodePhpArray(p?.get('configoptions') ?? '')).toEqual({ 3: { optionid: 8, qty: 2 } })
    expect(p?.get('assignedips')).toBe('192.0.2.1\n2001:db8::1')
    const log = JSON.stringify(sink.entries)
    expect(log).not.toContain('cf-Secret-value')
    expect(log).not.toContain(p?.get('customfields'))
    expect(log).toContain('customfields')
  })

  it('sends dates as YYYY-MM-DD and refuses other date strings before sending', async () => {
    const { client, sent } = mocked(() => ok({ billableid: 4 }))
    await client.addBillableItem({
      clientid: 1,
      description: 'Usage',
      amount: '1.50',
      duedate: new Date('2026-05-31T23:30:00Z'),
    })
    expect(sent[0]?.params.get('duedate')).toBe('2026-05-31')
    expect(sent[0]?.params.get('unit')).toBe('quantity')
    const bad = await failure(
      client.addBillableItem({ clientid: 1, description: 'Usage', amount: '1', duedate: '31/05/2026' }),
    )
    expect(hasErrorCode(bad, 'VALIDATION')).toBe(true)
    expect(sent).toHaveLength(1)
  })

  it('masks passwords sent in requests (servicepassword) in the log', async () => {
    const { client, sent, sink } = mocked(() => ok())
    await client.moduleChangePw(5, 'N3w-Service-Pw')
    expect(sent[0]?.params.get('servicepassword')).toBe('N3w-Service-Pw')
    expect(JSON.stringify(sink.entries)).not.toContain('N3w-Service-Pw')
  })

  it('refuses reserved parameters in the escape hatch', async () => {
    const { client, sent } = mocked(() => ok())
    const e = await failure(client.call('GetClients', { secret: 'x' }))
    expect(hasErrorCode(e, 'VALIDATION')).toBe(true)
    await expect(client.call('Get Clients')).rejects.toThrow(/action name/)
    expect(sent).toHaveLength(0)
  })
})

describe('error mapping', () => {
  it.each([
    ['IP Banned', /IP Access Restriction/],
    ['Invalid IP 203.0.113.9', /IP Access Restriction/],
    ['Invalid Access Key', /./],
    ['Authentication Failed', /identifier and secret/],
    ['Invalid or missing credentials', /identifier and secret/],
  ])('403 "%s" is an AUTH error, not retried, and later calls fail fast', async (message, hint) => {
    const { client, sent } = mocked(() => ({ status: 403, body: { result: 'error', message } }))
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_AUTH')
    expect(e.retryable).toBe(false)
    expect(e.message).toContain(message)
    expect(e.message).toMatch(hint)
    expect(e.details).toMatchObject({ whmcsMessage: message, status: 403 })
    expect(sent).toHaveLength(1)
    const again = await failure(client.getClients())
    expect(again.code).toBe('PANELKIT_ERR_AUTH')
    expect(again.message).toMatch(/^Not sent/)
    expect(sent).toHaveLength(1)
    client.resetAuthFailure()
    await failure(client.getClients())
    expect(sent).toHaveLength(2)
  })

  it('403 "Invalid Permissions" is an AUTH error without the fail-fast block', async () => {
    const message = 'Invalid Permissions: API action "getclients" is not allowed'
    const { client, sent } = mocked(() => ({ status: 403, body: { result: 'error', message } }))
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_AUTH')
    expect(e.message).toMatch(/API role/)
    expect(client.authBlockedUntil).toBeUndefined()
    await failure(client.getClients())
    expect(sent).toHaveLength(2)
  })

  it('403 "Invalid API Action" is UNSUPPORTED', async () => {
    const message = 'Invalid API Action: "Nope" is not a valid API action'
    const { client } = mocked(() => ({ status: 403, body: { result: 'error', message } }))
    expect((await failure(client.call('Nope'))).code).toBe('PANELKIT_ERR_UNSUPPORTED')
  })

  it.each([
    ['Client Not Found', 'PANELKIT_ERR_NOT_FOUND'],
    ['Service ID Not Found', 'PANELKIT_ERR_NOT_FOUND'],
    ['Duplicate Email Address', 'PANELKIT_ERR_CONFLICT'],
    ['A user already exists with that email address', 'PANELKIT_ERR_CONFLICT'],
    ["Invalid Date Format - Expected: 'YYYY-mm-dd'", 'PANELKIT_ERR_VALIDATION'],
    ["Expecting parameter 'pid' to be an array", 'PANELKIT_ERR_VALIDATION'],
    ['You did not enter your first name', 'PANELKIT_ERR_VALIDATION'],
    ['Module said no: disk full', 'PANELKIT_ERR_COMMAND'],
  ])('result:"error" at HTTP 200 "%s" → %s, message kept, not retried', async (message, code) => {
    const { client, sent } = mocked(() => ({ body: { result: 'error', message } }))
    const e = await failure(client.getClientsDetails({ clientid: 1 }))
    expect(e.code).toBe(code)
    expect(e.message).toContain(message)
    expect(e.details).toMatchObject({ whmcsMessage: message, action: 'GetClientsDetails' })
    expect(sent).toHaveLength(1)
  })

  it('reads `status: "error"` (the AddBillableItem docs example) like `result`', async () => {
    const { client } = mocked(() => ({ body: { status: 'error', message: 'Client ID not Found' } }))
    const e = await failure(client.addBillableItem({ clientid: 1, description: 'x', amount: '1' }))
    expect(e.code).toBe('PANELKIT_ERR_NOT_FOUND')
  })

  it('400 "Empty action request" is an HTTP error with the message', async () => {
    const { client } = mocked(() => ({
      status: 400,
      body: { result: 'error', message: 'Empty action request' },
    }))
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_HTTP')
    expect(e.retryable).toBe(false)
    expect(e.message).toContain('Empty action request')
  })

  it('retries reads on 5xx and then succeeds; never retries a write', async () => {
    const { client, sent } = mocked((p, n) =>
      p.get('action') === 'GetClients' && n < 3
        ? { status: 503, body: '<html>busy</html>', contentType: 'text/html' }
        : p.get('action') === 'AddCredit'
          ? { status: 502, body: '<html>bad gateway</html>', contentType: 'text/html' }
          : ok({ totalresults: 0, startnumber: 0, numreturned: 0 }),
    )
    await expect(client.getClients()).resolves.toMatchObject({ clients: [] })
    expect(sent.map((s) => s.params.get('action'))).toEqual(['GetClients', 'GetClients', 'GetClients'])
    const e = await failure(client.addCredit({ clientid: 1, description: 'x', amount: '2.00' }))
    expect(e.code).toBe('PANELKIT_ERR_HTTP')
    expect(e.retryable).toBe(true)
    expect((e as PanelkitError & { status?: number }).status ?? e.details?.status).toBe(502)
    expect(sent.filter((s) => s.params.get('action') === 'AddCredit')).toHaveLength(1)
  })

  it('gives up on a read after the retry budget with a retryable HTTP error', async () => {
    const { client, sent } = mocked(() => ({ status: 500, body: '' }))
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_HTTP')
    expect(e.retryable).toBe(true)
    expect(sent).toHaveLength(3)
  })

  it('429 from a proxy is RATE_LIMITED', async () => {
    const { client } = mocked(() => ({ status: 429, body: '' }), { retry: false })
    expect((await failure(client.getClients())).code).toBe('PANELKIT_ERR_RATE_LIMITED')
  })

  it.each([
    ['<!DOCTYPE html><html><body>Login</body></html>', 'text/html', /HTML instead of JSON/],
    ['<?xml version="1.0"?><whmcsapi><result>success</result></whmcsapi>', 'text/xml', /XML instead of JSON/],
    ['result=success;message=x', 'text/plain', /not JSON/],
    ['[]', 'application/json', /non-object/],
    ['{"foo":1}', 'application/json', /no result field/],
  ])('a 200 body of %s is a PROTOCOL error', async (body, contentType, why) => {
    const { client, sent } = mocked(() => ({ body, contentType }))
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_PROTOCOL')
    expect(e.message).toMatch(why)
    expect(e.retryable).toBe(false)
    expect(sent).toHaveLength(1)
  })

  it('an answer that fails the schema is a PROTOCOL error naming the field', async () => {
    const { client } = mocked(() => ok({ totalresults: 'many', products: '' }))
    const e = await failure(client.getClientsProducts())
    expect(e.code).toBe('PANELKIT_ERR_PROTOCOL')
    expect(e.message).toMatch(/totalresults/)
  })

  it('a connection error is CONNECTION and retryable', async () => {
    const agent = new MockAgent()
    agent.disableNetConnect()
    agents.push(agent)
    agent
      .get(ORIGIN)
      .intercept({ path: () => true, method: 'POST' })
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .persist()
    const client = createWhmcsClient({
      url: ORIGIN,
      identifier: 'i',
      secret: 's',
      dispatcher: agent,
      retry: false,
    })
    const e = await failure(client.getClients())
    expect(e.code).toBe('PANELKIT_ERR_CONNECTION')
    expect(e.retryable).toBe(true)
    expect(e.cause).toBeDefined()
  })

  it('a slow answer is a TIMEOUT; an aborted call is ABORTED', async () => {
    const agent = new MockAgent()
    agent.disableNetConnect()
    agents.push(agent)
    agent
      .get(ORIGIN)
      .intercept({ path: () => true, method: 'POST' })
      .reply(200, { result: 'success' })
      .delay(300)
      .persist()
    const client = createWhmcsClient({
      url: ORIGIN,
      identifier: 'i',
      secret: 's',
      dispatcher: agent,
      retry: false,
      timeoutMs: 50,
    })
    expect((await failure(client.getHealthStatus())).code).toBe('PANELKIT_ERR_TIMEOUT')
    const controller = new AbortController()
    const p = client.getHealthStatus({ signal: controller.signal })
    controller.abort()
    expect((await failure(p)).code).toBe('PANELKIT_ERR_ABORTED')
  })
})

describe('pages', () => {
  it('validate every row and refuse reserved parameters', async () => {
    const bad = mocked(() => ok({ totalresults: 1, products: { product: [{ pid: 1 }] } }))
    const e = await failure(
      (async () => {
        for await (const _ of bad.client.iterateClientsProducts()) void _
      })(),
    )
    expect(e.code).toBe('PANELKIT_ERR_PROTOCOL')
    const reserved = mocked(() => ok())
    const r = await failure(
      (async () => {
        for await (const _ of reserved.client.pages(
          'GetClients',
          { secret: 'x' },
          { key: 'clients', schema: GetClientsSchema },
        ))
          void _
      })(),
    )
    expect(r.code).toBe('PANELKIT_ERR_VALIDATION')
    expect(reserved.sent).toHaveLength(0)
  })
})

describe('normalisation of odd shapes', () => {
  const service = (extra: Record<string, unknown> = {}) => ({
    id: '12',
    clientid: '3',
    orderid: '0',
    pid: '5',
    regdate: '2026-01-02',
    name: 'Workspace',
    groupname: 'Mail',
    domain: '',
    dedicatedip: '',
    serverid: '0',
    servername: '',
    serverip: '',
    serverhostname: '',
    suspensionreason: '',
    firstpaymentamount: '10.00',
    recurringamount: 12.5,
    paymentmethod: 'mailin',
    billingcycle: 'Monthly',
    nextduedate: '0000-00-00',
    status: 'Active',
    username: 'u',
    password: 'Svc-Pw-Secret',
    overidesuspenduntil: '0000-00-00',
    assignedips: '',
    notes: '',
    lastupdate: '0000-00-00 00:00:00',
    customfields: { customfield: [{ id: '1', name: 'Password', value: 'Cf-Pw-Secret' }] },
    configoptions: { configoption: [] },
    ...extra,
  })

  it('turns string ids and counters, money, zero dates and list wrappers into plain types', async () => {
    const { client, sink } = mocked(() =>
      ok({
        totalresults: '1',
        startnumber: '0',
        numreturned: '1',
        clientid: null,
        products: { product: [service()] },
      }),
    )
    const r = await client.getClientsProducts({ clientid: 3 })
    expect(r.totalresults).toBe(1)
    const s = r.products[0]
    expect(s).toMatchObject({
      id: '12',
      pid: '5',
      orderid: null,
      serverid: null,
      firstpaymentamount: '10.00',
      recurringamount: '12.50',
      nextduedate: null,
      overidesuspenduntil: null,
      lastupdate: null,
      configoptions: [],
    })
    expect(s?.customfields).toEqual([{ id: '1', name: 'Password', value: 'Cf-Pw-Secret' }])
    const log = JSON.stringify(sink.entries)
    expect(log).not.toContain('Svc-Pw-Secret')
    expect(log).not.toContain('Cf-Pw-Secret')
  })

  it('accepts a service with fields left out (older or newer WHMCS versions)', async () => {
    const { client } = mocked(() =>
      ok({ totalresults: 1, products: { product: [{ id: 4, clientid: 2, pid: 5, status: 'Active' }] } }),
    )
    const r = await client.getClientsProducts()
    expect(r).toMatchObject({ startnumber: 0, numreturned: 0 })
    expect(r.products[0]).toMatchObject({
      id: '4',
      orderid: null,
      domain: '',
      password: '',
      recurringamount: '0.00',
      nextduedate: null,
      customfields: [],
      configoptions: [],
    })
    const missingId = mocked(() => ok({ totalresults: 1, products: { product: [{ pid: 5 }] } }))
    expect((await failure(missingId.client.getClientsProducts())).code).toBe('PANELKIT_ERR_PROTOCOL')
  })

  it('accepts a single object where a list was expected (XML-to-JSON legacy)', async () => {
    const { client } = mocked(() =>
      ok({ totalresults: 1, startnumber: 0, numreturned: 1, products: { product: service({ id: 13 }) } }),
    )
    const r = await client.getClientsProducts()
    expect(r.products.map((p) => p.id)).toEqual(['13'])
  })

  it.each([
    ['an empty string', ''],
    ['an empty array', []],
    ['an empty wrapper', { product: [] }],
    ['a missing key', undefined],
  ])('reads %s as an empty list', async (_what, products) => {
    const { client } = mocked(() =>
      ok({
        totalresults: 0,
        startnumber: 0,
        numreturned: 0,
        ...(products === undefined ? {} : { products }),
      }),
    )
    expect((await client.getClientsProducts()).products).toEqual([])
  })

  it('reads mixed booleans, money as exact decimals and client custom fields without names', async () => {
    const { client, sink } = mocked(() =>
      ok({
        client: {
          id: 3,
          owner_user_id: '0',
          firstname: 'Ada',
          lastname: 'L',
          companyname: '',
          email: 'ada@example.test',
          status: 'Active',
          credit: '0.1',
          currency: 1,
          groupid: 0,
          customfields: [{ id: 4, value: 'client-field-secret' }],
          users: { user: [{ id: '2', name: 'Ada', email: 'ada@example.test', is_owner: '1' }] },
        },
      }),
    )
    const r = await client.getClientsDetails({ email: 'ada@example.test' })
    expect(r.client).toMatchObject({ id: '3', owner_user_id: null, credit: '0.10', groupid: null })
    expect(r.client.users).toEqual([{ id: '2', name: 'Ada', email: 'ada@example.test', is_owner: true }])
    expect(r.client.customfields).toEqual([{ id: '4', value: 'client-field-secret' }])
    // Client custom fields carry no names, so every value is masked.
    expect(JSON.stringify(sink.entries)).not.toContain('client-field-secret')
  })

  it('reads the JSON that PHP writes with escaped slashes', async () => {
    const { client } = mocked(() => ({
      body: '{"result":"success","whmcs":{"version":"8.13.1","canonicalversion":"8.13.1-release.1","url":"https:\\/\\/x"}}',
    }))
    await expect(client.whmcsDetails()).resolves.toEqual({
      version: '8.13.1',
      canonicalversion: '8.13.1-release.1',
    })
  })
})
