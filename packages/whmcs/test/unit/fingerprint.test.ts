import { createHmac } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fingerprintPassword } from '../../src/index.ts'

describe('password fingerprints', () => {
  it('equal HMAC-SHA256 (base64url, 32 characters), so stored fingerprints stay valid', () => {
    const hmac = (key: string, password: string) =>
      createHmac('sha256', key).update(password, 'utf8').digest('base64url').slice(0, 32)
    fc.assert(
      fc.property(
        fc.string({ maxLength: 100 }),
        fc.string({ unit: 'grapheme', maxLength: 40 }),
        (key, pw) => {
          expect(fingerprintPassword(pw, key)).toBe(hmac(key, pw))
        },
      ),
      { numRuns: 200 },
    )
    // Keys longer than a SHA-256 block are hashed first, as HMAC says.
    const long = 'k'.repeat(100)
    expect(fingerprintPassword('pw', long)).toBe(hmac(long, 'pw'))
    expect(fingerprintPassword('first')).toBe(hmac('panelkit-whmcs', 'first'))
    expect(fingerprintPassword('a')).not.toBe(fingerprintPassword('b'))
  })
})
