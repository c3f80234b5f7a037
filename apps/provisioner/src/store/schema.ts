import type { Generated } from 'kysely'

/**
 * The tables, as Kysely sees them. One schema for SQLite and PostgreSQL: times are integer
 * milliseconds, JSON is text, booleans are 0/1 integers, so both dialects read the same values.
 */

export interface ServicesTable {
  service_id: string
  client_id: string
  product_id: string
  connector: string
  server_group: string
  /** What billing last asked for: none | active | suspended | terminated. */
  desired: string
  /** Bumped whenever the intended state changes; part of each job's idempotency key. */
  version: number
  /** What the connector last confirmed: none | active | suspended | terminated. */
  actual: string
  settings_json: string
  settings_hash: string
  /** Unused since migration 0002 (kept: migrations only add). */
  password_hash: string
  /** The service context the connector gets (client, options, fields); never the password. */
  context_json: string
  server_id: string | null
  account_id: string | null
  username: string | null
  ips_json: string | null
  last_job_id: number | null
  last_step: string | null
  last_error: string | null
  created_at: number
  updated_at: number
  /** The plan last queued (the reverse sync's provisioned view, intended). */
  plan: string | null
  /** `fingerprintPassword()` (HMAC) of the WHMCS password last queued; never the password. */
  password_fp: string | null
  /** The service's current password, AES-256-GCM sealed under `store.encryptionKey`. */
  password_enc: string | null
  /** The plan and password fingerprint a connector confirmed (the view for the drift report). */
  confirmed_plan: string | null
  confirmed_password_fp: string | null
  /**
   * `fingerprintPassword()` of WHMCS's service password (not the mapped first-password field) last
   * queued, and the one a connector confirmed (0004). Null until a create or changePassword carries it.
   */
  service_password_fp: string | null
  confirmed_service_password_fp: string | null
  /** WHMCS's due date last recorded (0007): null until known, '' when the service has none. */
  next_due_date: string | null
  /**
   * The settings the service was provisioned with, as JSON (secret settings as fingerprints), from
   * its last successful create or changePackage (0010): what a config change is compared against.
   */
  confirmed_settings_json: string | null
}

export interface JobsTable {
  id: Generated<number>
  key: string
  service_id: string
  /** create | suspend | … | writeBack | pushUsage */
  operation: string
  payload_json: string
  /** queued | running | done | parked | cancelled */
  status: string
  attempts: number
  run_after: number
  lease_owner: string | null
  lease_until: number | null
  last_error: string | null
  result_json: string | null
  steps_json: string | null
  source: string
  created_at: number
  updated_at: number
  finished_at: number | null
  /** The password a create or changePassword job sets, sealed. */
  secret_enc: string | null
}

export interface CheckpointsTable {
  key: string
  data: string
  updated_at: number
}

export interface AssignmentsTable {
  service_id: string
  server_id: string
  updated_at: number
}

export interface CursorsTable {
  group_id: string
  value: number
}

export interface ModuleLogTable {
  id: Generated<number>
  entry_id: string
  time: string
  connector: string
  operation: string | null
  service_id: string | null
  system: string
  action: string
  access: string
  outcome: string
  duration_ms: number
  error_code: string | null
  entry_json: string
  /** Who caused the call (`whmcs-module`, `sync`, `api`, `cli`, `engine`); migration 0009. */
  source: string | null
}

export interface IpAddressesTable {
  pool_id: string
  address: string
  service_id: string | null
  allocated_at: number | null
}

export interface VmidReservationsTable {
  vmid: number
  service_id: string
  reserved_at: number
}

/** `@panelkit/whmcs`'s exactly-once ledger (usage pushes, deposit credits). */
export interface LedgerEntriesTable {
  /** The library's key: `whmcs:usage:<service>:<period>:<metric>`, `whmcs:credit:<deposit>`. */
  key: string
  /** `usage` or `credit`. */
  kind: string
  service_id: string | null
  client_id: string | null
  /**
   * claimed (held by a job attempt; nothing sent) | sending (the request may be out) | sent (WHMCS
   * answered success; `result` holds its answer) | done | uncertain (outcome unknown: an operator
   * decides) | pending (a claim without a holder, from before 0003 or a caller outside the engine:
   * treated like sending).
   */
  state: string
  /** The job attempt holding a claimed or sending entry (0003). */
  holder: string | null
  result: string | null
  reason: string | null
  created_at: number
  updated_at: number
}

export interface MetaTable {
  key: string
  value: string
}

/**
 * Operator console sessions (src/console/session.ts): the cookie's id only as a SHA-256 digest, the
 * token's name and scopes (never the token), and the session's CSRF secret.
 */
export interface ConsoleSessionsTable {
  id_hash: string
  csrf: string
  token_name: string
  /** JSON array of the token's scopes. */
  token_scopes: string
  /** HMAC of the token under the session id: ends the session when its token leaves the config. */
  token_check: string
  /** The outcome of the last action, shown once on the next page (JSON), or null. */
  flash_json: string | null
  created_at: number
  expires_at: number
}

export interface Database {
  services: ServicesTable
  jobs: JobsTable
  checkpoints: CheckpointsTable
  assignments: AssignmentsTable
  cursors: CursorsTable
  module_log: ModuleLogTable
  ip_addresses: IpAddressesTable
  vmid_reservations: VmidReservationsTable
  ledger_entries: LedgerEntriesTable
  meta: MetaTable
  console_sessions: ConsoleSessionsTable
}
