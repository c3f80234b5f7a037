import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ComputeStacksSimulator, startComputeStacksSimulator } from '../../src/testing/index.ts'
import { negotiateFormat } from '../../src/testing/simulator.ts'
import { raw, visit } from './helpers.ts'

/**
 * The simulator against facts read in ComputeStacks' controller (CTL = ComputeStacks/controller 9.3.1);
 * each test names the file and method it follows.
 */
let sim: ComputeStacksSimulator
beforeAll(async () => {
  sim = await startComputeStacksSimulator()
})
afterAll(async () => {
  await sim.close()
})

const userBody = (extra: Record<string, unknown> = {}) => ({
  user: {
    fname: 'Fay',
    lname: 'Fidelity',
    email: `fay${Math.random().toString(36).slice(2, 8)}@example.com`,
    password: 'long-enough-1',
    skip_email_confirm: true,
    ...extra,
  },
})

describe('users', () => {
  it('drops merge_labels sent as an array without an error (users_controller.rb#user_params permits a hash)', async () => {
    const created = await raw(sim, '/api/admin/users', {
      method: 'POST',
      body: userBody({ merge_labels: [{ whmcs: { service_id: 5 } }] }),
    })
    expect(created.status).toBe(201)
    const user = created.json?.user as { id: number; labels: unknown }
    expect(user.labels).toEqual({})
    const patched = await raw(sim, `/api/admin/users/${user.id}`, {
      method: 'PATCH',
      body: { user: { merge_labels: ['x'], fname: 'Faye' } },
    })
    expect(patched.status).toBe(200)
    expect(sim.users.get(user.id)).toMatchObject({ fname: 'Faye', labels: {} })
  })

  it('stores and shows the address fields (user_params, show.v51.rabl)', async () => {
    const created = await raw(sim, '/api/admin/users', {
      method: 'POST',
      body: userBody({
        address1: '1 Main St',
        address2: 'Unit 2',
        city: 'Springfield',
        state: 'Oregon',
        zip: '97477',
        country: 'US',
      }),
    })
    expect(created.status).toBe(201)
    const id = (created.json?.user as { id: number } | undefined)?.id
    const shown = await raw(sim, `/api/admin/users/${id}`)
    expect(shown.json?.user).toMatchObject({
      address1: '1 Main St',
      address2: 'Unit 2',
      city: 'Springfield',
      state: 'Oregon',
      zip: '97477',
      country: 'US',
    })
  })

  it('requires the address on create when billing_address is on (user.rb#user_address)', async () => {
    const strict = await startComputeStacksSimulator({ billingAddress: true, billingPhone: true })
    try {
      const refused = await raw(strict, '/api/admin/users', { method: 'POST', body: userBody() })
      expect(refused.status).toBe(422)
      expect(refused.json).toEqual({
        errors: [
          'Country must be present',
          'Address1 must be present',
          'City must be present',
          'Phone must be present',
        ],
      })
      const us = await raw(strict, '/api/admin/users', {
        method: 'POST',
        body: userBody({ country: 'US', address1: '1 Main St', city: 'X', phone: '+1.5551234' }),
      })
      expect(us.json).toEqual({ errors: ['State must be present'] })
      const ok = await raw(strict, '/api/admin/users', {
        method: 'POST',
        body: userBody({ country: 'DE', address1: 'Hauptstr. 1', city: 'Berlin', phone: '+49.301234' }),
      })
      expect(ok.status).toBe(201)
      // on: :create only — an update without an address is fine.
      const id = (ok.json?.user as { id: number } | undefined)?.id
      expect(
        (await raw(strict, `/api/admin/users/${id}`, { method: 'PATCH', body: { user: { fname: 'Z' } } }))
          .status,
      ).toBe(200)
    } finally {
      await strict.close()
    }
    // With the setting off (the default), a blank country becomes US.
    const plain = await raw(sim, '/api/admin/users', { method: 'POST', body: userBody() })
    expect((plain.json?.user as { country: string } | undefined)?.country).toBe('US')
  })

  it('lists every user, support admins included, but hides them from single lookups (users_controller.rb#index, api_admin_find_user.rb)', async () => {
    const listed = await raw(sim, '/api/admin/users?per_page=1000')
    const emails = ((listed.json?.users ?? []) as { email: string }[]).map((u) => u.email)
    expect(emails).toEqual(expect.arrayContaining(['hello@computestacks.com', 'kris@computestacks.com']))
    expect(listed.headers.total).toBe(String(sim.users.size))
    const support = sim.userByEmail('hello@computestacks.com')
    expect((await raw(sim, `/api/admin/users/${support?.id}`)).status).toBe(404)
  })

  it('answers billing usages of an unknown user with 404 "Unknown User", by id only (subscriptions/base_controller.rb#load_parent)', async () => {
    const missing = await raw(sim, '/api/admin/users/987654/billing_usages')
    expect(missing.status).toBe(404)
    expect(missing.json).toEqual({ errors: ['Unknown User'] })
    const user = sim.addUser({ email: 'usage.owner@example.com' })
    sim.addUsage(user.id, { total: '1.25' })
    const byEmail = Buffer.from(user.email).toString('base64')
    const notById = await raw(sim, `/api/admin/users/${byEmail}/billing_usages?find_by_email=true`)
    expect(notById.json).toEqual({ errors: ['Unknown User'] })
    const found = await raw(sim, `/api/admin/users/${user.id}/billing_usages`)
    expect(found.status).toBe(200)
    expect(found.json?.billing_usages).toHaveLength(1)
  })
})

describe('formats', () => {
  it('negotiates as Rails does: JSON, XML, or nothing for HTML, a missing header and browser-like lists', () => {
    expect(negotiateFormat('application/json; api_version=80')).toBe('json')
    expect(negotiateFormat('*/*')).toBe('json')
    expect(negotiateFormat('application/xml; api_version=80')).toBe('xml')
    expect(negotiateFormat('text/xml')).toBe('xml')
    expect(negotiateFormat('text/html')).toBeUndefined()
    expect(negotiateFormat(undefined)).toBeUndefined()
    expect(negotiateFormat('application/json, text/plain, */*')).toBeUndefined()
  })

  it('answers 406 in text/html for any other Accept, after the action ran, except on the catch-all route (api_missing_route.rb)', async () => {
    for (const accept of ['text/html', 'text/plain; api_version=80', null]) {
      const answer = await raw(sim, '/api/admin/locations', { accept })
      expect(answer.status).toBe(406)
      expect(answer.headers['content-type']).toMatch(/^text\/html/)
      expect(answer.text).toBe('Unknown format. Only JSON and XML are permitted.')
    }
    const badCredential = await raw(sim, '/api/admin/locations', { accept: 'text/html', auth: 'x:y' })
    expect(badCredential.status).toBe(406)
    // The action runs before respond_to refuses the format: the user exists, the caller got a 406.
    const body = userBody()
    const created = await raw(sim, '/api/admin/users', { method: 'POST', accept: 'text/html', body })
    expect(created.status).toBe(406)
    expect(sim.userByEmail(body.user.email)).toBeDefined()
    // Only the catch-all route answers any format: a 404 in text/html.
    const unknown = await raw(sim, '/api/no/such/thing', { accept: 'text/html' })
    expect(unknown.status).toBe(404)
    expect(unknown.headers['content-type']).toMatch(/^text\/html/)
    expect(unknown.text).toBe('["Unknown API Call. Please check the documentation."]')
  })

  it('answers XML where the API gives it: RABL views by their root, rendered hashes under <hash>', async () => {
    const user = sim.addUser({
      email: 'xml.user@example.com',
      fname: 'Xena',
      labels: { whmcs: { service_id: 12 } },
    })
    const shown = await raw(sim, `/api/admin/users/${user.id}`, { accept: 'application/xml; api_version=80' })
    expect(shown.status).toBe(200)
    expect(shown.headers['content-type']).toMatch(/^application\/xml/)
    expect(shown.text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?>\n<user>\n/)
    expect(shown.text).toContain(`  <id type="integer">${user.id}</id>\n`)
    expect(shown.text).toContain('  <fname>Xena</fname>\n')
    expect(shown.text).toContain('  <active type="boolean">true</active>\n')
    expect(shown.text).toContain('  <security-keys type="array"/>\n')
    expect(shown.text).toContain('    <whmcs>\n      <service-id type="integer">12</service-id>\n')
    const denied = await raw(sim, '/api/admin/locations', { accept: 'application/xml', auth: 'x:y' })
    expect(denied.status).toBe(401)
    expect(denied.text).toBe(
      '<?xml version="1.0" encoding="UTF-8"?>\n<hash>\n  <errors type="array">\n    <error>Not Authorized</error>\n  </errors>\n</hash>\n',
    )
    const listed = await raw(sim, '/api/admin/users?per_page=2', { accept: 'application/xml' })
    expect(listed.text).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?>\n<users type="array">\n {2}<user>\n/,
    )
  })
})

describe('headers', () => {
  it('sends no API-Deprecated on a failed authentication, but does once authenticated (ApiAuth runs before ApiVersion)', async () => {
    const accept = 'application/json; api_version=60'
    const failed = await raw(sim, '/api/admin/locations', { accept, auth: `${sim.apiKey}:wrong-secret` })
    expect(failed.status).toBe(401)
    expect(failed.headers['api-deprecated']).toBeUndefined()
    sim.unlock(sim.adminUserId)
    const passed = await raw(sim, '/api/admin/locations', { accept })
    expect(passed.headers['api-deprecated']).toBe('true')
    // A non-admin is refused by ensure_admin!, which runs after include_deprecation.
    const plain = sim.addUser({ email: 'plain.api@example.com' })
    const credential = sim.addCredential(plain.id)
    const notAdmin = await raw(sim, '/api/admin/locations', {
      accept,
      auth: `${credential.apiKey}:${credential.apiSecret}`,
    })
    expect(notAdmin.status).toBe(401)
    expect(notAdmin.headers['api-deprecated']).toBe('true')
  })

  it('throttles with the body and headers of the controller responder: no Content-Type, no Retry-After (rack_attack.rb)', async () => {
    const local = await startComputeStacksSimulator({ rateLimit: { limit: 1, windowMs: 300_000 } })
    try {
      await raw(local, '/api/admin/locations')
      const throttled = await raw(local, '/api/admin/locations')
      expect(throttled.status).toBe(429)
      expect(throttled.text).toBe('Throttled\n')
      expect(throttled.headers['content-type']).toBeUndefined()
      expect(throttled.headers['retry-after']).toBeUndefined()
      expect(throttled.headers['ratelimit-limit']).toBe('1')
      expect(throttled.headers['ratelimit-remaining']).toBe('0')
      const reset = Number(throttled.headers['ratelimit-reset'])
      expect(reset % 300).toBe(0)
      expect(reset * 1000).toBeGreaterThan(Date.now())
    } finally {
      await local.close()
    }
  })
})

describe('SSO', () => {
  it('an unconfirmed user cannot sign in with a valid token (devise.rb allow_unconfirmed_access_for = 0)', async () => {
    const created = await raw(sim, '/api/admin/users', {
      method: 'POST',
      body: userBody({ skip_email_confirm: undefined }),
    })
    const user = created.json?.user as { id: number; confirmed_at: string | null }
    expect(user.confirmed_at).toBeNull()
    const token = await raw(sim, `/api/admin/users/${user.id}/user_sso`, { method: 'POST' })
    const { username, token: value } = token.json as { username: string; token: string }
    const url = `${sim.url}/?username=${encodeURIComponent(username)}&token=${encodeURIComponent(value)}`
    expect((await visit(sim, url)).location).toMatch(/^\/login/)
    expect(sim.ssoLogins.some((l) => l.userId === user.id)).toBe(false)
  })
})
