import type { Kysely, Migration } from 'kysely'
import { sql } from 'kysely'
import type { SecretBox } from '../secrets.ts'

/**
 * Versioned migrations, applied in name order at start by Kysely's migrator (which takes a lock so two
 * processes starting together do not both migrate). Never edit a migration that has shipped: add one.
 */
export function migrations(dialect: 'sqlite' | 'postgres', box?: SecretBox): Record<string, Migration> {
  const serial = dialect === 'sqlite' ? 'integer' : 'bigserial'
  const big = dialect === 'sqlite' ? 'integer' : 'bigint'
  return {
    '0001_initial': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('services')
          .addColumn('service_id', 'text', (c) => c.primaryKey())
          .addColumn('client_id', 'text', (c) => c.notNull())
          .addColumn('product_id', 'text', (c) => c.notNull())
          .addColumn('connector', 'text', (c) => c.notNull())
          .addColumn('server_group', 'text', (c) => c.notNull())
          .addColumn('desired', 'text', (c) => c.notNull())
          .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('actual', 'text', (c) => c.notNull().defaultTo('none'))
          .addColumn('settings_json', 'text', (c) => c.notNull())
          .addColumn('settings_hash', 'text', (c) => c.notNull())
          .addColumn('password_hash', 'text', (c) => c.notNull())
          .addColumn('context_json', 'text', (c) => c.notNull())
          .addColumn('server_id', 'text')
          .addColumn('account_id', 'text')
          .addColumn('username', 'text')
          .addColumn('ips_json', 'text')
          .addColumn('last_job_id', big)
          .addColumn('last_step', 'text')
          .addColumn('last_error', 'text')
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createTable('jobs')
          .addColumn('id', serial, (c) =>
            dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
          )
          .addColumn('key', 'text', (c) => c.notNull().unique())
          .addColumn('service_id', 'text', (c) => c.notNull())
          .addColumn('operation', 'text', (c) => c.notNull())
          .addColumn('payload_json', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('run_after', big, (c) => c.notNull())
          .addColumn('lease_owner', 'text')
          .addColumn('lease_until', big)
          .addColumn('last_error', 'text')
          .addColumn('result_json', 'text')
          .addColumn('steps_json', 'text')
          .addColumn('source', 'text', (c) => c.notNull())
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .addColumn('finished_at', big)
          .execute()
        await db.schema.createIndex('jobs_open').on('jobs').columns(['status', 'run_after']).execute()
        await db.schema.createIndex('jobs_service').on('jobs').columns(['service_id', 'id']).execute()
        await db.schema
          .createTable('checkpoints')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('data', 'text', (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createTable('assignments')
          .addColumn('service_id', 'text', (c) => c.primaryKey())
          .addColumn('server_id', 'text', (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createTable('cursors')
          .addColumn('group_id', 'text', (c) => c.primaryKey())
          .addColumn('value', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createTable('module_log')
          .addColumn('id', serial, (c) =>
            dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey(),
          )
          .addColumn('entry_id', 'text', (c) => c.notNull())
          .addColumn('time', 'text', (c) => c.notNull())
          .addColumn('connector', 'text', (c) => c.notNull())
          .addColumn('operation', 'text')
          .addColumn('service_id', 'text')
          .addColumn('system', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('access', 'text', (c) => c.notNull())
          .addColumn('outcome', 'text', (c) => c.notNull())
          .addColumn('duration_ms', 'real', (c) => c.notNull())
          .addColumn('error_code', 'text')
          .addColumn('entry_json', 'text', (c) => c.notNull())
          .execute()
        await db.schema
          .createIndex('module_log_service')
          .on('module_log')
          .columns(['service_id', 'id'])
          .execute()
        await db.schema
          .createTable('ip_addresses')
          .addColumn('pool_id', 'text', (c) => c.notNull())
          .addColumn('address', 'text', (c) => c.notNull())
          .addColumn('service_id', 'text')
          .addColumn('allocated_at', big)
          .addPrimaryKeyConstraint('ip_addresses_pk', ['pool_id', 'address'])
          .execute()
        await db.schema
          .createIndex('ip_addresses_service')
          .on('ip_addresses')
          .columns(['pool_id', 'service_id'])
          .execute()
        await db.schema
          .createTable('vmid_reservations')
          .addColumn('vmid', 'integer', (c) => c.primaryKey())
          .addColumn('service_id', 'text', (c) => c.notNull().unique())
          .addColumn('reserved_at', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createTable('ledger')
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('key', 'text', (c) => c.notNull())
          .addColumn('service_id', 'text', (c) => c.notNull())
          .addColumn('amount', 'text', (c) => c.notNull())
          .addColumn('description', 'text', (c) => c.notNull())
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('remote_id', 'text')
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('pushed_at', big)
          .addPrimaryKeyConstraint('ledger_pk', ['kind', 'key'])
          .execute()
        await db.schema
          .createTable('meta')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('value', 'text', (c) => c.notNull())
          .execute()
        await sql`select 1`.execute(db)
      },
    },
    '0002_reverse_sync_ledger_sealed_secrets': {
      async up(db: Kysely<unknown>) {
        // Checked before any change: SQLite runs a migration's DDL outside a transaction, so a
        // migration that fails half-way could not simply be run again.
        const plain = await sql<{ n: number }>`select count(*) as n from services
          where context_json like '%"password":%'`.execute(db)
        if (!box && Number(plain.rows[0]?.n ?? 0) > 0)
          throw new Error(
            'The store holds service passwords in plain text from an earlier version; set store.encryptionKey so they can be encrypted',
          )
        // What the WHMCS reverse sync's provisioned view needs: the intended plan and password
        // fingerprint (what was queued) and the confirmed ones (what a connector reported done).
        for (const column of [
          'plan',
          'password_fp',
          'password_enc',
          'confirmed_plan',
          'confirmed_password_fp',
        ])
          await db.schema.alterTable('services').addColumn(column, 'text').execute()
        // A create or changePassword job carries its own password, sealed.
        await db.schema.alterTable('jobs').addColumn('secret_enc', 'text').execute()
        // The library's exactly-once ledger (claim, complete, release, uncertain).
        await db.schema
          .createTable('ledger_entries')
          .addColumn('key', 'text', (c) => c.primaryKey())
          .addColumn('kind', 'text', (c) => c.notNull())
          .addColumn('service_id', 'text')
          .addColumn('client_id', 'text')
          .addColumn('state', 'text', (c) => c.notNull())
          .addColumn('result', 'text')
          .addColumn('reason', 'text')
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('updated_at', big, (c) => c.notNull())
          .execute()
        await db.schema.createIndex('ledger_entries_state').on('ledger_entries').columns(['state']).execute()
        // Entries of the first ledger carry over: pushed → done, an interrupted push → uncertain (its
        // outcome is unknown); reserved ones were never sent and need no entry.
        const old = await sql<{
          kind: string
          key: string
          service_id: string
          status: string
          remote_id: string | null
          created_at: number
        }>`select kind, key, service_id, status, remote_id, created_at from ledger`.execute(db)
        for (const row of old.rows) {
          if (row.status === 'reserved') continue
          const m = /^usage:(.+):([^:]+)$/.exec(row.key)
          const key =
            row.kind === 'usage' && m ? `whmcs:usage:${m[1]}:${m[2]}:usage` : `whmcs:credit:${row.key}`
          const state = row.status === 'pushed' ? 'done' : 'uncertain'
          await sql`insert into ledger_entries (key, kind, service_id, client_id, state, result, reason, created_at, updated_at)
            values (${key}, ${row.kind}, ${row.service_id}, ${null}, ${state}, ${row.remote_id},
              ${state === 'uncertain' ? 'interrupted push carried over from the first ledger' : null},
              ${Number(row.created_at)}, ${Date.now()})`.execute(db)
        }
        await db.schema.dropTable('ledger').execute()
        // Service passwords leave the plain-text context and are sealed under the configured key.
        const rows = await sql<{
          service_id: string
          context_json: string
        }>`select service_id, context_json from services`.execute(db)
        for (const row of rows.rows) {
          const context = JSON.parse(row.context_json) as Record<string, unknown>
          if (!('password' in context)) continue
          const password = context.password
          delete context.password
          let sealed: string | null = null
          if (typeof password === 'string' && password !== '') {
            if (!box)
              throw new Error(
                'The store holds service passwords in plain text from an earlier version; set store.encryptionKey so they can be encrypted',
              )
            sealed = box.seal(password, `service:${row.service_id}`)
          }
          await sql`update services set context_json = ${JSON.stringify(context)}, password_enc = ${sealed}
            where service_id = ${row.service_id}`.execute(db)
        }
      },
    },
    '0003_ledger_holder': {
      async up(db: Kysely<unknown>) {
        // Who holds a claim (one attempt of one job), so a claim whose request never left can be taken
        // over by the next attempt; `claimed` (nothing sent) and `sending` (the request may be out) are
        // told apart from here on. Earlier `pending` rows keep their meaning: possibly sent.
        await db.schema.alterTable('ledger_entries').addColumn('holder', 'text').execute()
      },
    },
    '0004_service_password_fingerprint': {
      async up(db: Kysely<unknown>) {
        // The fingerprint of WHMCS's own service password, apart from the mapped first-password field:
        // queued (the sync's view) and confirmed (the drift report's). Rows from before stay null, so
        // a service is compared on it only from its next create or changePassword on.
        for (const column of ['service_password_fp', 'confirmed_service_password_fp'])
          await db.schema.alterTable('services').addColumn(column, 'text').execute()
      },
    },
    '0007_service_due_date': {
      async up(db: Kysely<unknown>) {
        // WHMCS's due date (`nextduedate`) as last recorded from a create or a due-date event: null
        // until known, '' for a service without one (one-time, free). A renewal moves it.
        await db.schema.alterTable('services').addColumn('next_due_date', 'text').execute()
      },
    },
    '0009_module_log_source': {
      async up(db: Kysely<unknown>) {
        // Who caused each external call: the WHMCS server module, the reverse sync, the API, the CLI or
        // the engine. Earlier rows stay null (their cause was not recorded).
        await db.schema.alterTable('module_log').addColumn('source', 'text').execute()
      },
    },
    '0010_confirmed_settings': {
      async up(db: Kysely<unknown>) {
        // The settings each service was provisioned with, so a plan or product changed in the config
        // shows as drift and `reconcile` can queue the changePackage. Rows from before stay null and
        // are compared on the settings last queued for them.
        await db.schema.alterTable('services').addColumn('confirmed_settings_json', 'text').execute()
      },
    },
    '0011_console_sessions': {
      async up(db: Kysely<unknown>) {
        // Console sessions in the store, so they survive a restart and work across several `serve`
        // processes: the cookie's id as a digest, the token's name and scopes (never the token).
        await db.schema
          .createTable('console_sessions')
          .addColumn('id_hash', 'text', (c) => c.primaryKey())
          .addColumn('csrf', 'text', (c) => c.notNull())
          .addColumn('token_name', 'text', (c) => c.notNull())
          .addColumn('token_scopes', 'text', (c) => c.notNull())
          .addColumn('token_check', 'text', (c) => c.notNull())
          .addColumn('flash_json', 'text')
          .addColumn('created_at', big, (c) => c.notNull())
          .addColumn('expires_at', big, (c) => c.notNull())
          .execute()
        await db.schema
          .createIndex('console_sessions_expires')
          .on('console_sessions')
          .column('expires_at')
          .execute()
      },
    },
    '0012_jobs_claimable': {
      async up(db: Kysely<unknown>) {
        // The claim takes the lowest open ids first. Walking the primary key for them passes over every
        // finished job, so a claim cost grew with the history (2.8 ms at 20,000 done jobs, measured with
        // EXPLAIN ANALYZE): this partial index holds only the jobs a claim can take, in id order.
        await sql`create index jobs_claimable on jobs (id) where status in ('queued', 'running')`.execute(db)
      },
    },
    '0013_jobs_open_service': {
      async up(db: Kysely<unknown>) {
        // A claimed job must be the lowest open job of its service. Asked through jobs_service
        // (service_id, id), that walks the service's finished jobs too, a history that grows with every
        // renewal and usage push; this partial index holds the open ones only, so the answer is its
        // first entry for the service.
        await sql`create index jobs_open_service on jobs (service_id, id) where status in ('queued', 'running', 'parked')`.execute(
          db,
        )
      },
    },
  }
}
