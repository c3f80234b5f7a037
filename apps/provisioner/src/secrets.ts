import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto'

/**
 * Service passwords at rest: AES-256-GCM under a key the operator keeps outside the store (an
 * environment variable the config references). A sealed value is `pk1:` + base64url(iv ‖ tag ‖ text);
 * the service id it belongs to is authenticated with it, so a sealed password copied onto another
 * service's row does not open.
 */

const PREFIX = 'pk1:'
const IV_BYTES = 12
const TAG_BYTES = 16

/** Reads a 32-byte key written as base64/base64url (44/43 characters) or hex (64 characters). */
export function parseSecretKey(text: string): Buffer | undefined {
  const t = text.trim()
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64')
    return b.length === 32 ? b : undefined
  }
  return undefined
}

/** A fresh random key in the form the config takes (what `demo` uses for its throwaway store). */
export function generateSecretKey(): string {
  return randomBytes(32).toString('base64')
}

export interface SecretBox {
  /** Encrypts `plain` for the record `context` (e.g. `service:1001`). */
  seal(plain: string, context: string): string
  /** Decrypts; throws when the key, the context or the value is wrong. */
  open(sealed: string, context: string): string
  /** A 32-byte key derived for another purpose (e.g. the password-fingerprint HMAC). */
  derive(purpose: string): Buffer
}

export function isSealed(value: string): boolean {
  return value.startsWith(PREFIX)
}

export function createSecretBox(key: Buffer): SecretBox {
  if (key.length !== 32) throw new Error('The encryption key must be 32 bytes')
  const encKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'panelkit provisioner seal v1', 32))
  return {
    seal(plain, context) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', encKey, iv)
      cipher.setAAD(Buffer.from(context, 'utf8'))
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()])
      return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
    },
    open(sealed, context) {
      if (!isSealed(sealed)) throw new Error('Not a sealed value')
      const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64url')
      if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('Sealed value is truncated')
      const decipher = createDecipheriv('aes-256-gcm', encKey, raw.subarray(0, IV_BYTES))
      decipher.setAAD(Buffer.from(context, 'utf8'))
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
      try {
        return Buffer.concat([
          decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)),
          decipher.final(),
        ]).toString('utf8')
      } catch (error) {
        throw new Error(
          'A stored secret cannot be decrypted: the encryption key is not the one it was sealed with',
          { cause: error },
        )
      }
    },
    derive(purpose) {
      return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `panelkit provisioner ${purpose}`, 32))
    },
  }
}
