import { ServerSchema } from '@panelkit/core'
import { describe, expect, it } from 'vitest'
import {
  credentialsFor,
  descriptionFor,
  effectiveSettings,
  hostnameFor,
  ipconfigFor,
  type KvmSettings,
  serviceIdFromDescription,
  serviceTag,
  tlsFor,
} from '../../src/index.ts'

describe('connector helpers', () => {
  it('reads token or ticket credentials and TLS choices from the server record', () => {
    const token = ServerSchema.parse({
      hostname: 'pve',
      username: 'panelkit@pve!deploy',
      accessHash: 'uuid-secret',
    })
    expect(credentialsFor(token)).toEqual({
      type: 'token',
      tokenId: 'panelkit@pve!deploy',
      secret: 'uuid-secret',
    })
    const ticket = ServerSchema.parse({
      hostname: 'pve',
      username: 'admin',
      password: 'pw',
      options: { fingerprint: 'AA', insecure: '1' },
    })
    expect(credentialsFor(ticket)).toEqual({ type: 'password', username: 'admin@pam', password: 'pw' })
    expect(tlsFor(ticket)).toEqual({ fingerprint: 'AA', insecure: true })
    expect(() => credentialsFor(ServerSchema.parse({ hostname: 'pve' }))).toThrow(/password is missing/)
  })

  it('names, tags and marks VMs so ownership survives any service id', () => {
    expect(hostnameFor('vps', '12', 'ABC:9_x')).toBe('vps-12-abc-9-x')
    expect(serviceTag('ABC:9_x')).toBe('pk-abc_9_x')
    // Cut at 63 characters right after a dash: the dash goes (a DNS label cannot end in one).
    const long = hostnameFor('vps', '12', `${'x'.repeat(55)}-tail`)
    expect(long).toBe(`vps-12-${'x'.repeat(55)}`)
    expect(long).toMatch(/^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/)
    expect(serviceIdFromDescription(descriptionFor('ABC:9_x', '12'))).toBe('ABC:9_x')
    expect(serviceIdFromDescription('hand-made')).toBeUndefined()
  })

  it('lets configurable options override package numbers, ignoring junk', () => {
    const base = { cores: 1, memoryMb: 1024, template: '9000' } as unknown as KvmSettings
    const out = effectiveSettings(base, { cores: '4', memoryMb: 'lots', template: 9001, unrelated: 7 })
    expect(out).toMatchObject({ cores: 4, memoryMb: 1024, template: '9001' })
    expect(out).not.toHaveProperty('unrelated')
  })

  it('builds ipconfig0 for static dual-stack and DHCP', () => {
    expect(
      ipconfigFor([
        { family: 4, address: '203.0.113.5', prefix: 24, gateway: '203.0.113.1', pool: 'p' },
        { family: 6, address: '2001:db8::100', prefix: 64, gateway: '2001:db8::1', pool: 'p' },
      ]),
    ).toBe('ip=203.0.113.5/24,gw=203.0.113.1,ip6=2001:db8::100/64,gw6=2001:db8::1')
    expect(ipconfigFor([])).toBe('ip=dhcp')
  })
})
