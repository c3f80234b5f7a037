import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createCallRecorder, createRedactor, REDACTED } from '@panelkit/core'
import { sql } from 'kysely'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp } from '../src/app.ts'
import { ConfigError, parseConfig } from '../src/config.ts'
import { openTestStore, TEST_KEY } from './helpers.ts'

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

describe('the durable module log redacts what it is not sure of', () => {
  it("walks an entry again unless the app's redactor or a layer over it redacted it", async () => {
    const { store, cleanup } = await openTestStore('sqlite')
    try {
      const app = createRedactor({ values: ['Config-Secret-77'] })
      const log = store.moduleLog(app)
      // From a recorder over the app's redactor (as every connector invocation is): masked and marked.
      const layered = createCallRecorder({ connector: 'c', sink: log, redactor: app.child() })
      await layered.call(
        { system: 's', action: 'A', access: 'read', target: 'Config-Secret-77' },
        async () => 1,
      )
      // From a recorder with a redactor of its own, which does not know the config's secret.
      const stray = createCallRecorder({ connector: 'c', sink: log, redactor: createRedactor() })
      await stray.call(
        { system: 's', action: 'B', access: 'read', target: 'Config-Secret-77' },
        async () => 2,
      )
      // Written straight to the sink, unmarked.
      log.write({
        id: 'x1',
        time: new Date().toISOString(),
        connector: 'c',
        system: 's',
        action: 'C Config-Secret-77',
        access: 'read',
        durationMs: 0,
        outcome: 'ok',
      })
      await log.flush()
      const entries = await log.query()
      expect(entries.map((e) => e.action).sort()).toEqual(['A', 'B', `C ${REDACTED}`])
      expect(JSON.stringify(entries)).not.toContain('Config-Secret-77')
    } finally {
      await cleanup()
    }
  })
})
