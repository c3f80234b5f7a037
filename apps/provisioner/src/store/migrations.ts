import type { Kysely, Migration } from 'kysely'
import { sql } from 'kysely'

/**
 * Versioned migrations, applied in name order at start by Kysely's migrator (which takes a lock so two
 * processes starting together do not both migrate). Never edit a migration that has shipped: add one.
 */
export function migrations(dialect: 'sqlite' | 'postgres'): Record<string, Migration> {
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
  }
}
