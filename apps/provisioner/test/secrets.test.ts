import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, SqliteDialect } from 'kysely'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { startDemoWorld } from '../src/demo/world.ts'
import { listJobs } from '../src/engine/jobs.ts'
import { listServices } from '../src/engine/services.ts'
import { createSecretBox, generateSecretKey, parseSecretKey } from '../src/secrets.ts'
import { migrations } from '../src/store/migrations.ts'
import { Store } from '../src/store/store.ts'
import { dropSchema, PG_URL, STORE_KINDS, TEST_KEY_BYTES, uniqueSchema } from './helpers.ts'

describe('sealed secrets', () => {
  it('AES-256-GCM round trip, bound to its record and its key', () => {
    const box = createSecretBox(TEST_KEY_BYTES)
    const sealed = box.seal('S3cret-pw', 'service:7')
    expect(sealed).toMatch(/^pk1:/)
    expect(sealed).not.toContain('S3cret')
    expect(box.open(sealed, 'service:7')).toBe('S3cret-pw')
    // Two seals of one value differ (a fresh IV each time).
    expect(box.seal('S3cret-pw', 'service:7')).not.toBe(sealed)
    expect(() => box.open(sealed, 'service:8')).toThrow(/cannot be decrypted/)
    const other = createSecretBox(parseSecretKey(generateSecretKey()) as Buffer)
    expect(() => other.open(sealed, 'service:7')).toThrow(/cannot be decrypted/)
    expect(parseSecretKey('00'.repeat(32))?.length).toBe(32)
    expect(parseSecretKey('too short')).toBeUndefined()
  })

  it('migration 0002 seals passwords an earlier version kept in plain text, and refuses without a key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-migrate-'))
    try {
      const sqlite = new BetterSqlite3(join(dir, 'provisioner.sqlite'))
      const db = new Kysely<never>({ dialect: new SqliteDialect({ database: sqlite }) })
      const all = migrations('sqlite')
      const first = new Migrator({
        db,
        provider: { getMigrations: async () => ({ '0001_initial': all['0001_initial'] as never }) },
      })
      expect((await first.migrateToLatest()).error).toBeUndefined()
      sqlite
        .prepare(
          `insert into services (service_id, client_id, product_id, connector, server_group, desired, version,
           actual, settings_json, settings_hash, password_hash, context_json, created_at, updated_at)
           values ('9', '1', '1', 'x', 'g', 'active', 1, 'active', '{}', '', '', ?, 0, 0)`,
        )
        .run(JSON.stringify({ serviceId: '9', password: 'Old-Plain-Pw' }))
      await db.destroy()
      await expect(Store.open({ dataDir: dir })).rejects.toThrow(/set store.encryptionKey/)
      const store = await Store.open({ dataDir: dir, encryptionKey: TEST_KEY_BYTES })
      const row = await store.db
        .selectFrom('services')
        .select(['context_json', 'password_enc'])
        .executeTakeFirstOrThrow()
      expect(row.context_json).not.toContain('Old-Plain-Pw')
      expect(store.open(row.password_enc as string, 'service:9')).toBe('Old-Plain-Pw')
      await store.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe.each(STORE_KINDS)('no service password is readable at rest (%s)', (kind) => {
  it('not in the database file or rows, nor in status, the API view or the module log', {
    timeout: 60_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'provisioner-rest-'))
    const schema = uniqueSchema()
    const world = await startDemoWorld({
      store: kind === 'postgres' ? { postgres: { url: PG_URL as string, schema } } : { dataDir: dir },
    })
    const { whmcs, sid, app } = world
    const passwords = [
      'Postmaster-Pw-1',
      'Mailbox-Pw-1',
      'Vm-Root-Pw-1!',
      'Container-Pw-1',
      'Queued-New-Pw-9',
    ]
    try {
      await app.engine.sync()
      await app.engine.runWorker({ untilIdle: true, pollMs: 5 })
      // A password change that is queued, not yet run: its job holds the new password.
      whmcs.setServicePassword(sid.mailbox, 'Queued-New-Pw-9')
      expect((await app.engine.sync()).intentsByKind).toEqual({ changePassword: 1 })
      const job = await app.store.db
        .selectFrom('jobs')
        .select(['key', 'secret_enc', 'payload_json'])
        .where('operation', '=', 'changePassword')
        .executeTakeFirstOrThrow()
      expect(job.secret_enc).toMatch(/^pk1:/)
      expect(app.store.open(job.secret_enc as string, `job:${job.key}`)).toBe('Queued-New-Pw-9')
      await app.engine.moduleLog.flush()
      // What operators see: the module log, the services and jobs (status, API), the drift report.
      const visible = JSON.stringify({
        log: await app.engine.moduleLog.query({ limit: 1000 }),
        services: await listServices(app.store.db),
        jobs: await listJobs(app.store.db, { limit: 1000 }),
        drift: await app.engine.drift(),
      })
      for (const p of passwords) expect(visible, `${p} shown`).not.toContain(p)

      let text: string
      if (kind === 'sqlite') {
        await app.close()
        // Every byte of the database, its WAL and shared memory.
        text = readdirSync(dir)
          .map((f) => readFileSync(join(dir, f)).toString('latin1'))
          .join('\n')
      } else {
        const client = new pg.Client({ connectionString: PG_URL })
        await client.connect()
        try {
          const tables = await client.query(
            'select table_name from information_schema.tables where table_schema = $1',
            [schema],
          )
          const parts: string[] = []
          for (const { table_name } of tables.rows as { table_name: string }[]) {
            const rows = await client.query(`select t::text as row from ${schema}.${table_name} t`)
            parts.push(...(rows.rows as { row: string }[]).map((r) => r.row))
          }
          text = parts.join('\n')
        } finally {
          await client.end()
        }
        expect(text).toContain('pk1:')
      }
      expect(text.length).toBeGreaterThan(1000)
      for (const p of passwords) expect(text, `${p} at rest`).not.toContain(p)
    } finally {
      await world.close()
      rmSync(dir, { recursive: true, force: true })
      if (kind === 'postgres') await dropSchema(schema)
    }
  })
})
