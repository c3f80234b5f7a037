import { describe, expect, it } from 'vitest'
import { roundDecimal } from '../../src/decimal.ts'
import { buildAccountEmail, emailDomainFor, isAccountEmail } from '../../src/email.ts'

const base = { clientEmail: 'jane.doe@example.com', clientId: 3, serviceId: 10, serverHost: 'cs.example.com' }

describe('account emails', () => {
  it("accepts what Devise's default email_regexp accepts, and no control characters", () => {
    for (const ok of [
      'a@b',
      'a=b/c@example.com',
      'x+y&z@example.com',
      'kunde@beispiel.例え',
      'u@[192.0.2.1]',
    ])
      expect(isAccountEmail(ok)).toBe(true)
    for (const bad of [
      '',
      'no-at',
      'two@@example.com',
      'a b@example.com',
      'a@b c',
      'a@b\u0000',
      '@example.com',
    ])
      expect(isAccountEmail(bad)).toBe(false)
  })

  it('uses the username as is when it is an email, else builds one per service', () => {
    expect(buildAccountEmail({ ...base, username: 'Jane@Example.com' })).toBe('Jane@Example.com')
    expect(buildAccountEmail({ ...base, username: 'jdoe' })).toBe('jdoe3-10@cs.example.com')
    expect(buildAccountEmail({ ...base, username: '' })).toBe('jane.doe3-10@cs.example.com')
    expect(buildAccountEmail({ ...base, username: 'Tom & Jerry+co' })).toBe('tom&jerry+co3-10@cs.example.com')
    expect(buildAccountEmail({ ...base, username: '...' })).toBe('user3-10@cs.example.com')
    expect(buildAccountEmail({ ...base, username: 'jdoe', emailDomain: 'Cloud.Example.NET' })).toBe(
      'jdoe3-10@cloud.example.net',
    )
  })

  it('makes IP-addressed servers into address literals', () => {
    expect(emailDomainFor('127.0.0.1')).toBe('[127.0.0.1]')
    expect(emailDomainFor('[2001:DB8::1]')).toBe('[IPv6:2001:db8::1]')
    expect(emailDomainFor('portal.example.com.')).toBe('portal.example.com')
    expect(emailDomainFor('bad_host')).toBeUndefined()
    expect(buildAccountEmail({ ...base, username: 'jdoe', serverHost: '10.0.0.5' })).toBe(
      'jdoe3-10@[10.0.0.5]',
    )
  })

  it('says which setting fixes an address it cannot build', () => {
    let error: unknown
    try {
      buildAccountEmail({ ...base, username: 'jdoe', serverHost: 'not a host' })
    } catch (e) {
      error = e
    }
    expect(error).toMatchObject({
      code: 'PANELKIT_ERR_VALIDATION',
      issues: [{ path: 'service.settings.emailDomain' }],
    })
    expect(String((error as Error).message)).toContain('emailDomain')
  })
})

describe('roundDecimal', () => {
  it('rounds half away from zero to a fixed number of places, exactly', () => {
    expect(roundDecimal('3.456')).toBe('3.46')
    expect(roundDecimal('3.455')).toBe('3.46')
    expect(roundDecimal('0')).toBe('0.00')
    expect(roundDecimal('12')).toBe('12.00')
    expect(roundDecimal('-0.004')).toBe('0.00')
    expect(roundDecimal('-1.005')).toBe('-1.01')
    expect(roundDecimal('99999999999999999.995')).toBe('100000000000000000.00')
  })
})
