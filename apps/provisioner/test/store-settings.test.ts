import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp } from '../src/app.ts'
import { ConfigError, parseConfig } from '../src/config.ts'
import { TEST_KEY } from './helpers.ts'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function synchronousOf(setting?: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'provisioner-sync-setting-'))
  dirs.push(dir)
  const raw = {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
    store: { dataDir: dir, encryptionKey: '${KEY}', ...(setting ? { synchronous: setting } : {}) },
  }
  const { config, secrets } = parseConfig(raw, { KEY: TEST_KEY })
  const app = await createApp({ config, secrets, logStream: null, builtins: false })
  try {
    const { rows } = await sql<{ synchronous: number }>`pragma synchronous`.execute(app.store.db)
    return Number(rows[0]?.synchronous)
  } finally {
    await app.close()
  }
}

describe('store.synchronous (SQLite durability)', () => {
  it('is NORMAL by default and FULL when the config asks for it', async () => {
    // SQLite's numbers: 1 = NORMAL, 2 = FULL.
    expect(await synchronousOf()).toBe(1)
    expect(await synchronousOf('normal')).toBe(1)
    expect(await synchronousOf('full')).toBe(2)
  })

  it('refuses an unknown value and names the path', () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an environment reference in the config
    const raw = { store: { dataDir: '.data', encryptionKey: '${KEY}', synchronous: 'off' } }
    let error: unknown
    try {
      parseConfig(raw, { KEY: TEST_KEY })
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).issues.map((i) => i.path)).toContain('store.synchronous')
  })
})
