import { existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type {
  AssignmentStore,
  Checkpoint,
  CheckpointStore,
  ModuleLogEntry,
  ModuleLogSink,
  Redactor,
} from '@panelkit/core'
import { ConflictError, ConnectionError, isRedactedFor } from '@panelkit/core'
import type { Ledger, LedgerEntry, ProvisionedService, ProvisionedView } from '@panelkit/whmcs'
import BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely'
import pg from 'pg'
import { currentCallSource } from '../call-source.ts'
import { createSecretBox, type SecretBox } from '../secrets.ts'
import { migrations } from './migrations.ts'
import type { Database } from './schema.ts'

export type Db = Kysely<Database>
export type DialectName = 'sqlite' | 'postgres'

export interface StoreOptions {
  /** PostgreSQL connection string; SQLite is used when absent. */
  url?: string | undefined
  /** SQLite data directory (created when missing). Ignored for PostgreSQL. */
  dataDir?: string
  /** SQLite file name inside `dataDir`; `:memory:` for a throw-away database. */
  file?: string
  /** PostgreSQL schema to use (created when missing); lets test runs not collide. */
  schema?: string
  /** PostgreSQL pool size. */
  poolSize?: number
  /**
   * SQLite's `synchronous` setting. `normal` (the default): in WAL mode a commit is durable against a
   * killed process (the commit is in the WAL file the moment it returns; only the WAL's sync to disk
   * waits for a checkpoint), not against a power loss or a kernel crash, which can lose the last
   * commits. `full` syncs the WAL at every commit and survives a power loss too, at the price of one
   * disk flush per commit. Ignored for PostgreSQL (its own `synchronous_commit` applies).
   */
  synchronous?: 'normal' | 'full'
  /** The 32-byte key service passwords are sealed under (AES-256-GCM). */
  encryptionKey?: Buffer | undefined
  /**
   * Apply pending migrations at open (the default). `false` opens the store as it is: `check` and
   * `migrate --status` look without changing anything. With `false`, a SQLite file that does not
   * exist is an error instead of being created, and it is opened read-only.
   */
  migrate?: boolean
  /** With `migrate: false`: open (and create) the SQLite file for writing all the same (`migrate`). */
  writable?: boolean
}

/** One migration and whether this store has it. */
export interface MigrationState {
  name: string
  executedAt: Date | undefined
}

/**
 * The durable store: one Kysely database over SQLite (WAL, one file) or PostgreSQL, migrated at open,
 * with the durable implementations of the interfaces core and the connectors leave open.
 */
export class Store {
  readonly db: Db
  readonly dialect: DialectName
  readonly checkpoints: DurableCheckpointStore
  readonly assignments: DurableAssignmentStore
  readonly location: string
  /** Seals and opens service passwords; undefined when no key was given (then none can be stored). */
  readonly box: SecretBox | undefined
  /** The PostgreSQL schema, when one was given. */
  schema: string | undefined
  private readonly sqlite: BetterSqlite3.Database | undefined
  /**
   * PostgreSQL: the pool `prepared` runs on, apart from Kysely's, its sessions set to plan prepared
   * statements generically (`plan_cache_mode = force_generic_plan`). Left to its default, the server
   * planned a finish that claims the next job anew on every run: its generic plan is estimated dearer
   * than a plan for the actual values (the claim's `limit` is a parameter), so it never switched, and
   * planning the statement cost more than running it (1,400 finishes: 2.26 ms of server CPU each,
   * 0.99 ms with generic plans, every one counted in `pg_prepared_statements.custom_plans`). Only the
   * statements written for it run here, and their generic plans are tested (test/claim-plan.test.ts);
   * Kysely's queries keep the server's default.
   */
  private pool: pg.Pool | undefined

  private constructor(
    db: Db,
    dialect: DialectName,
    location: string,
    box: SecretBox | undefined,
    sqlite?: BetterSqlite3.Database,
  ) {
    this.db = db
    this.dialect = dialect
    this.location = location
    this.box = box
    this.sqlite = sqlite
    this.checkpoints = new DurableCheckpointStore(this)
    this.assignments = new DurableAssignmentStore(this)
  }

  static async open(options: StoreOptions = {}): Promise<Store> {
    let store: Store
    const box = options.encryptionKey ? createSecretBox(options.encryptionKey) : undefined
    if (options.url) {
      const schema = options.schema
      if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
        throw new Error(
          `PostgreSQL schema name ${JSON.stringify(schema)} must be lower-case letters, digits, _`,
        )
      }
      if (schema && (options.migrate !== false || options.writable === true)) {
        const admin = new pg.Client({ connectionString: options.url })
        await admin.connect()
        try {
          await admin.query(`create schema if not exists ${schema}`)
        } finally {
          await admin.end()
        }
      }
      const makePool = (settings: string[]) =>
        new pg.Pool({
          connectionString: options.url,
          max: options.poolSize ?? 10,
          ...(settings.length > 0 ? { options: settings.join(' ') } : {}),
          // bigint columns hold millisecond times and ids: numbers, not strings.
          types: {
            getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
              oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as never,
          },
        })
      const searchPath = schema ? [`-c search_path=${schema}`] : []
      const pool = makePool(searchPath)
      const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
      const url = new URL(options.url)
      store = new Store(
        db,
        'postgres',
        `postgresql://${url.host}${url.pathname}${schema ? `#${schema}` : ''}`,
        box,
      )
      store.schema = schema
      store.pool = makePool([...searchPath, '-c plan_cache_mode=force_generic_plan'])
    } else {
      const file = options.file ?? 'provisioner.sqlite'
      let path = file
      const look = options.migrate === false && options.writable !== true && file !== ':memory:'
      if (file !== ':memory:') {
        const dir = options.dataDir ?? '.data'
        if (!look) mkdirSync(dir, { recursive: true })
        path = join(dir, file)
      }
      if (look && !existsSync(path))
        throw new Error(`No store at ${path} yet (the first sync, worker or serve creates it)`)
      const sqlite = new BetterSqlite3(path, look ? { readonly: true, fileMustExist: true } : {})
      if (!look) sqlite.pragma('journal_mode = WAL')
      // See StoreOptions.synchronous: NORMAL in WAL mode survives a killed process, FULL a power loss.
      sqlite.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
      sqlite.pragma('busy_timeout = 10000')
      sqlite.pragma('foreign_keys = ON')
      const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
      store = new Store(db, 'sqlite', path, box, sqlite)
    }
    if (options.migrate !== false) await store.migrate()
    return store
  }

  /**
   * PostgreSQL only: runs one of the engine's hot statements (the claim, a job's finish, a create's
   * placement) straight on its own pool (see `pool`), as a statement prepared once per connection under `name` — parsed by the server once, not on
   * every run, and without building a query through Kysely each time. A name must always stand for the
   * same text (the driver refuses a different text under a known name).
   */
  async prepared<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R[]> {
    if (!this.pool) throw new Error('Store.prepared runs on PostgreSQL only')
    const result = await this.pool.query<R>({ name, text, values })
    return result.rows
  }

  private migrator(): Migrator {
    return new Migrator({
      db: this.db,
      ...(this.schema ? { migrationTableSchema: this.schema } : {}),
      provider: { getMigrations: async () => migrations(this.dialect, this.box) },
    })
  }

  /** Every migration this version knows, with when this store applied it (undefined: pending). */
  async migrationStatus(): Promise<MigrationState[]> {
    const list = await this.migrator().getMigrations()
    return list.map((m) => ({ name: m.name, executedAt: m.executedAt }))
  }

  /**
   * A consistent copy of a SQLite store in one file (`VACUUM INTO`), safe while workers run. The
   * target must not exist. PostgreSQL is backed up with its own tools (`pg_dump`).
   */
  async backup(target: string): Promise<{ bytes: number }> {
    if (this.dialect !== 'sqlite' || !this.sqlite)
      throw new Error('Backups of a PostgreSQL store are made with pg_dump (see `provisioner backup`)')
    if (existsSync(target)) throw new Error(`${target} exists already; choose a new file`)
    this.sqlite.prepare('VACUUM INTO ?').run(target)
    return { bytes: statSync(target).size }
  }

  async migrate(): Promise<string[]> {
    // Kysely looks for its bookkeeping tables across every schema unless told which one: another
    // schema's tables (a second provisioner, a parallel test) must not count as this one's.
    const migrator = this.migrator()
    const { error, results } = await migrator.migrateToLatest()
    if (error) throw new Error(`Store migration failed: ${(error as Error).message}`, { cause: error })
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
  }

  /**
   * Runs `fn` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, which takes the database's
   * write lock up front so that two processes claiming work never both read the same free job.
   */
  async tx<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    if (this.dialect === 'postgres') {
      return this.db.transaction().execute((trx: Transaction<Database>) => fn(trx))
    }
    return this.db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn)
      try {
        const out = await fn(conn)
        await sql`commit`.execute(conn)
        return out
      } catch (error) {
        await sql`rollback`.execute(conn).catch(() => undefined)
        throw error
      }
    })
  }

  /** The store's raw commit (the benchmark's baseline). */
  async rawCommit(key: string, value: string): Promise<void> {
    // The same shape as a checkpoint save: one upsert committed on its own (autocommit), so the
    // benchmark compares the engine's step commit with the cheapest durable write the store can make.
    await this.setMeta(key, value)
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('meta').select('value').where('key', '=', key).executeTakeFirst()
    return row?.value
  }

  async setMeta(key: string, value: string): Promise<void> {
    await this.db
      .insertInto('meta')
      .values({ key, value })
      .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
      .execute()
  }

  moduleLog(redactor?: Redactor): DurableModuleLog {
    return new DurableModuleLog(this, redactor)
  }

  ipPool(poolId: string): DurableIpPool {
    return new DurableIpPool(this, poolId)
  }

  get vmids(): DurableVmidReservations {
    return new DurableVmidReservations(this)
  }

  /** `@panelkit/whmcs`'s `Ledger`, durable: usage pushes and deposit credits exactly once. */
  get ledger(): DurableLedger {
    return new DurableLedger(this)
  }

  /** The ledger as one job attempt sees it (see `DurableLedger`): claims it can hand over. */
  ledgerFor(holder: string): DurableLedger {
    return new DurableLedger(this, holder)
  }

  /**
   * The reverse sync's provisioned view. `intended`: what is queued (sync plans against it, so a
   * change is queued once); `confirmed`: what the connectors reported done (the drift report).
   * `observed` receives the revision seen for each service, for the stale-intent check.
   */
  provisionedView(mode: 'intended' | 'confirmed', observed?: Map<string, number>): StoreProvisionedView {
    return new StoreProvisionedView(this, mode, observed)
  }

  /**
   * Records WHMCS's due date for a service (a renewal or another due-date event from the reverse
   * sync); `null` is a service without one. Not a state change: the version stays.
   */
  async recordDueDate(serviceId: string, nextDueDate: string | null): Promise<boolean> {
    const r = await this.db
      .updateTable('services')
      .set({ next_due_date: nextDueDate ?? '' })
      .where('service_id', '=', serviceId)
      .executeTakeFirst()
    return Number(r.numUpdatedRows) === 1
  }

  /** Seals a secret for `context`; refuses when no encryption key is configured. */
  seal(plain: string, context: string): string {
    if (!this.box)
      throw new Error('No encryption key is configured (store.encryptionKey): cannot store a password')
    return this.box.seal(plain, context)
  }

  open(sealed: string, context: string): string {
    if (!this.box)
      throw new Error('No encryption key is configured (store.encryptionKey): cannot read a password')
    return this.box.open(sealed, context)
  }

  async close(): Promise<void> {
    await this.db.destroy()
    await this.pool?.end()
    if (this.sqlite?.open) this.sqlite.close()
  }
}

/** Core's `CheckpointStore`, one row per pipeline key. */
export class DurableCheckpointStore implements CheckpointStore {
  private readonly store: Store
  constructor(store: Store) {
    this.store = store
  }
  async load(key: string): Promise<Checkpoint | undefined> {
    const row = await this.store.db
      .selectFrom('checkpoints')
      .select('data')
      .where('key', '=', key)
      .executeTakeFirst()
    return row ? (JSON.parse(row.data) as Checkpoint) : undefined
  }
  async save(checkpoint: Checkpoint): Promise<void> {
    const data = JSON.stringify(checkpoint)
    const now = Date.now()
    await this.store.db
      .insertInto('checkpoints')
      .values({ key: checkpoint.key, data, updated_at: now })
      .onConflict((oc) => oc.column('key').doUpdateSet({ data, updated_at: now }))
      .execute()
  }
  async delete(key: string): Promise<void> {
    await this.store.db.deleteFrom('checkpoints').where('key', '=', key).execute()
  }
  async list(prefix: string): Promise<Checkpoint[]> {
    const rows = await this.store.db
      .selectFrom('checkpoints')
      .select('data')
      .where('key', 'like', `${prefix.replace(/[%_]/g, (m) => `\\${m}`)}%`)
      .execute()
    return rows.map((r) => JSON.parse(r.data) as Checkpoint)
  }
}

/** Core's `AssignmentStore`: the sticky server of each service and the round-robin cursors. */
export class DurableAssignmentStore implements AssignmentStore {
  private readonly store: Store
  constructor(store: Store) {
    this.store = store
  }
  async get(serviceId: string): Promise<string | undefined> {
    const row = await this.store.db
      .selectFrom('assignments')
      .select('server_id')
      .where('service_id', '=', serviceId)
      .executeTakeFirst()
    return row?.server_id
  }
  async set(serviceId: string, serverId: string): Promise<void> {
    const now = Date.now()
    // Every create places its service: on PostgreSQL a statement prepared once (see Store.prepared).
    if (this.store.dialect === 'postgres') {
      await this.store.prepared(
        'panelkit_assign',
        `insert into assignments (service_id, server_id, updated_at) values ($1, $2, $3)
           on conflict (service_id) do update set server_id = excluded.server_id, updated_at = excluded.updated_at`,
        [serviceId, serverId, now],
      )
      return
    }
    await this.store.db
      .insertInto('assignments')
      .values({ service_id: serviceId, server_id: serverId, updated_at: now })
      .onConflict((oc) => oc.column('service_id').doUpdateSet({ server_id: serverId, updated_at: now }))
      .execute()
  }
  async release(serviceId: string): Promise<void> {
    await this.store.db.deleteFrom('assignments').where('service_id', '=', serviceId).execute()
  }
  async nextCursor(groupId: string): Promise<number> {
    return this.store.tx(async (trx) => {
      const row = await trx
        .insertInto('cursors')
        .values({ group_id: groupId, value: 1 })
        .onConflict((oc) => oc.column('group_id').doUpdateSet({ value: sql`cursors.value + 1` }))
        .returning('value')
        .executeTakeFirstOrThrow()
      return Number(row.value) - 1
    })
  }
  async count(serverId: string): Promise<number> {
    if (this.store.dialect === 'postgres') {
      const rows = await this.store.prepared<{ n: number }>(
        'panelkit_assignments_on',
        'select count(*)::int as n from assignments where server_id = $1',
        [serverId],
      )
      return Number(rows[0]?.n)
    }
    const row = await this.store.db
      .selectFrom('assignments')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('server_id', '=', serverId)
      .executeTakeFirstOrThrow()
    return Number(row.n)
  }
}

export interface ModuleLogQuery {
  serviceId?: string
  connector?: string
  operation?: string
  outcome?: string
  /** Who caused the call: `whmcs-module`, `sync`, `api`, `cli`, `engine`. */
  source?: string
  /** Only entries with an id greater than this (for paging forward). */
  after?: number
  limit?: number
}

/**
 * The `module_log` columns `moduleLogRow` fills, with their PostgreSQL types: a job's finish passes each
 * column as one array (`unnest`), so its statement text does not depend on how many entries it writes.
 */
export const MODULE_LOG_COLUMNS = [
  ['entry_id', 'text'],
  ['time', 'text'],
  ['connector', 'text'],
  ['operation', 'text'],
  ['service_id', 'text'],
  ['system', 'text'],
  ['action', 'text'],
  ['access', 'text'],
  ['outcome', 'text'],
  ['duration_ms', 'real'],
  ['error_code', 'text'],
  ['entry_json', 'text'],
  ['source', 'text'],
] as const satisfies readonly (readonly [keyof ReturnType<typeof moduleLogRow>, string])[]

/** A module-log entry as its row: the whole entry as JSON, and the columns it is searched by. */
export function moduleLogRow(e: ModuleLogEntry) {
  return {
    entry_id: e.id,
    time: e.time,
    connector: e.connector,
    operation: e.operation ?? null,
    service_id: e.serviceId ?? null,
    system: e.system,
    action: e.action,
    access: e.access,
    outcome: e.outcome,
    duration_ms: e.durationMs,
    error_code: e.error?.code ?? null,
    entry_json: JSON.stringify(e),
    source: (e as { source?: string }).source ?? null,
  }
}

/**
 * Core's `ModuleLogSink`, durable and queryable. `write` is synchronous in core's interface, so entries
 * are buffered and written in batches; `flush()` is awaited before a job is marked done, so a finished
 * job's calls are always in the log.
 */
export class DurableModuleLog implements ModuleLogSink {
  private readonly store: Store
  private readonly redactor: Redactor | undefined
  private buffer: ModuleLogEntry[] = []
  private flushing: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined

  constructor(store: Store, redactor?: Redactor) {
    this.store = store
    this.redactor = redactor
  }

  write(entry: ModuleLogEntry): void {
    // Entries arrive redacted by the recorder; the app's own secrets (config values) are masked too.
    // The call's cause (the WHMCS module, a sync, the API, the CLI) comes from the async context.
    const source = currentCallSource()
    const stamped: ModuleLogEntry = source ? ({ ...entry, source } as ModuleLogEntry) : entry
    // An entry a recorder redacted with the app's redactor (or a layer over it, as every connector
    // invocation's is) holds nothing this redactor would mask: it is not walked a second time.
    const redacted = !this.redactor || isRedactedFor(entry, this.redactor)
    this.buffer.push(redacted ? stamped : (this.redactor as Redactor).redact(stamped))
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined
        void this.flush().catch(() => undefined)
      }, 50)
      this.timer.unref()
    }
  }

  flush(): Promise<void> {
    const batch = this.buffer
    this.buffer = []
    this.flushing = this.flushing.then(() => this.insert(this.store.db, batch))
    return this.flushing
  }

  /**
   * Writes the buffered entries inside the caller's transaction (`fn` runs after them in the same
   * transaction), so a job's finish and its calls' log entries are one commit instead of two. If the
   * transaction fails, the entries go back to the buffer for the next flush.
   */
  async flushWith<T>(store: Store, fn: (trx: Db) => Promise<T>): Promise<T> {
    const batch = await this.take()
    try {
      return await store.tx(async (trx) => {
        await this.insert(trx, batch)
        return fn(trx)
      })
    } catch (error) {
      this.restore(batch)
      throw error
    }
  }

  /**
   * Takes the buffered entries for the caller to write with its own statement (`moduleLogRow` gives
   * each its row; the finish of a job on PostgreSQL); `restore` puts them back when that fails.
   */
  async take(): Promise<ModuleLogEntry[]> {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = undefined
    }
    const batch = this.buffer
    this.buffer = []
    // Entries an earlier flush is still writing keep their order ahead of these.
    await this.flushing.catch(() => undefined)
    return batch
  }

  restore(batch: ModuleLogEntry[]): void {
    this.buffer = [...batch, ...this.buffer]
  }

  private async insert(db: Db, batch: ModuleLogEntry[]): Promise<void> {
    if (batch.length === 0) return
    await db.insertInto('module_log').values(batch.map(moduleLogRow)).execute()
  }

  async query(q: ModuleLogQuery = {}): Promise<(ModuleLogEntry & { seq: number })[]> {
    await this.flush()
    let query = this.store.db.selectFrom('module_log').select(['id', 'entry_json'])
    if (q.serviceId !== undefined) query = query.where('service_id', '=', q.serviceId)
    if (q.connector !== undefined) query = query.where('connector', '=', q.connector)
    if (q.operation !== undefined) query = query.where('operation', '=', q.operation)
    if (q.outcome !== undefined) query = query.where('outcome', '=', q.outcome)
    if (q.source !== undefined) query = query.where('source', '=', q.source)
    if (q.after !== undefined) query = query.where('id', '>', q.after)
    const rows = await query
      .orderBy('id', 'desc')
      .limit(Math.min(q.limit ?? 100, 1000))
      .execute()
    return rows.reverse().map((r) => ({ ...(JSON.parse(r.entry_json) as ModuleLogEntry), seq: Number(r.id) }))
  }
}

/** Expands `10.0.0.10-20` into single addresses; other entries are taken as they are. */
export function expandAddresses(entries: readonly string[]): string[] {
  const out: string[] = []
  for (const entry of entries) {
    const m = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(entry)
    if (!m) {
      out.push(entry)
      continue
    }
    const from = Number(m[2])
    const to = Number(m[3])
    if (to < from || to > 255) throw new Error(`Bad address range ${entry}`)
    for (let i = from; i <= to; i++) out.push(`${m[1]}${i}`)
  }
  return out
}

/**
 * A durable IP pool. Allocation is per service and idempotent: asking again for the same service
 * returns the same address, so a retried or resumed deploy never takes a second IP.
 */
export class DurableIpPool {
  private readonly store: Store
  readonly poolId: string
  constructor(store: Store, poolId: string) {
    this.store = store
    this.poolId = poolId
  }

  /** Adds addresses that are not there yet (allocations are kept). */
  async seed(addresses: readonly string[]): Promise<void> {
    const all = expandAddresses(addresses)
    for (let i = 0; i < all.length; i += 200) {
      await this.store.db
        .insertInto('ip_addresses')
        .values(
          all
            .slice(i, i + 200)
            .map((address) => ({ pool_id: this.poolId, address, service_id: null, allocated_at: null })),
        )
        .onConflict((oc) => oc.columns(['pool_id', 'address']).doNothing())
        .execute()
    }
  }

  async allocate(serviceId: string): Promise<string | undefined> {
    return this.store.tx(async (trx) => {
      const existing = await trx
        .selectFrom('ip_addresses')
        .select('address')
        .where('pool_id', '=', this.poolId)
        .where('service_id', '=', serviceId)
        .executeTakeFirst()
      if (existing) return existing.address
      let free = trx
        .selectFrom('ip_addresses')
        .select('address')
        .where('pool_id', '=', this.poolId)
        .where('service_id', 'is', null)
        .orderBy('allocated_at', (ob) =>
          this.store.dialect === 'postgres' ? ob.asc().nullsFirst() : ob.asc(),
        )
        .orderBy('address')
        .limit(1)
      if (this.store.dialect === 'postgres') free = free.forUpdate().skipLocked()
      const row = await free.executeTakeFirst()
      if (!row) return undefined
      await trx
        .updateTable('ip_addresses')
        .set({ service_id: serviceId, allocated_at: Date.now() })
        .where('pool_id', '=', this.poolId)
        .where('address', '=', row.address)
        .execute()
      return row.address
    })
  }

  async addressOf(serviceId: string): Promise<string | undefined> {
    const row = await this.store.db
      .selectFrom('ip_addresses')
      .select('address')
      .where('pool_id', '=', this.poolId)
      .where('service_id', '=', serviceId)
      .executeTakeFirst()
    return row?.address
  }

  /** Returns the service's address to the pool; releasing twice is fine. */
  async release(serviceId: string): Promise<void> {
    await this.store.db
      .updateTable('ip_addresses')
      .set({ service_id: null })
      .where('pool_id', '=', this.poolId)
      .where('service_id', '=', serviceId)
      .execute()
  }

  async stats(): Promise<{ total: number; used: number }> {
    const rows = await this.store.db
      .selectFrom('ip_addresses')
      .select(['service_id'])
      .where('pool_id', '=', this.poolId)
      .execute()
    return { total: rows.length, used: rows.filter((r) => r.service_id !== null).length }
  }
}

/**
 * VMID reservations: a VMID is held for one service from the moment it is chosen, so two parallel
 * creates can never get the same one (Proxmox's own `nextid` is not a reservation).
 */
export class DurableVmidReservations {
  private readonly store: Store
  constructor(store: Store) {
    this.store = store
  }

  /**
   * Reserves a VMID for the service (the same one again if it has one). `isFree` is asked about each
   * candidate (e.g. against the cluster's resources) so IDs taken outside panelkit are skipped.
   */
  async reserve(
    serviceId: string,
    range: { min: number; max: number },
    isFree: (vmid: number) => boolean | Promise<boolean> = () => true,
  ): Promise<number> {
    const existing = await this.vmidOf(serviceId)
    if (existing !== undefined) return existing
    for (let vmid = range.min; vmid <= range.max; vmid++) {
      const taken = await this.store.db
        .selectFrom('vmid_reservations')
        .select('vmid')
        .where('vmid', '=', vmid)
        .executeTakeFirst()
      if (taken || !(await isFree(vmid))) continue
      const inserted = await this.store.db
        .insertInto('vmid_reservations')
        .values({ vmid, service_id: serviceId, reserved_at: Date.now() })
        .onConflict((oc) => oc.doNothing())
        .returning('vmid')
        .executeTakeFirst()
      if (inserted) return vmid
      // Lost a race: either for this VMID (try the next) or this service got one meanwhile.
      const mine = await this.vmidOf(serviceId)
      if (mine !== undefined) return mine
    }
    throw new Error(`No free VMID between ${range.min} and ${range.max}`)
  }

  async vmidOf(serviceId: string): Promise<number | undefined> {
    const row = await this.store.db
      .selectFrom('vmid_reservations')
      .select('vmid')
      .where('service_id', '=', serviceId)
      .executeTakeFirst()
    return row === undefined ? undefined : Number(row.vmid)
  }

  async release(serviceId: string): Promise<void> {
    await this.store.db.deleteFrom('vmid_reservations').where('service_id', '=', serviceId).execute()
  }
}

const STATE_OF: Record<string, ProvisionedService['state'] | undefined> = {
  active: 'active',
  suspended: 'suspended',
  terminated: 'terminated',
}

/** `@panelkit/whmcs`'s `ProvisionedView` over the services table. */
export class StoreProvisionedView implements ProvisionedView {
  private readonly store: Store
  readonly mode: 'intended' | 'confirmed'
  private readonly observed: Map<string, number> | undefined
  constructor(store: Store, mode: 'intended' | 'confirmed', observed?: Map<string, number>) {
    this.store = store
    this.mode = mode
    this.observed = observed
  }

  private toView(row: {
    service_id: string
    connector: string
    desired: string
    actual: string
    version: number
    plan: string | null
    password_fp: string | null
    confirmed_plan: string | null
    confirmed_password_fp: string | null
    service_password_fp: string | null
    confirmed_service_password_fp: string | null
    next_due_date: string | null
  }): ProvisionedService | undefined {
    this.observed?.set(row.service_id, Number(row.version))
    const intended = this.mode === 'intended'
    const state = STATE_OF[intended ? row.desired : row.actual]
    if (!state) return undefined
    const out: ProvisionedService = {
      serviceId: row.service_id,
      connector: row.connector,
      state,
      revision: Number(row.version),
    }
    const plan = intended ? row.plan : row.confirmed_plan
    const fp = intended ? row.password_fp : row.confirmed_password_fp
    if (plan !== null) out.plan = plan
    if (fp !== null) out.passwordFingerprint = fp
    const serviceFp = intended ? row.service_password_fp : row.confirmed_service_password_fp
    if (serviceFp !== null) out.servicePasswordFingerprint = serviceFp
    if (row.next_due_date !== null) out.nextDueDate = row.next_due_date === '' ? null : row.next_due_date
    return out
  }

  private query() {
    return this.store.db
      .selectFrom('services')
      .select([
        'service_id',
        'connector',
        'desired',
        'actual',
        'version',
        'plan',
        'password_fp',
        'confirmed_plan',
        'confirmed_password_fp',
        'service_password_fp',
        'confirmed_service_password_fp',
        'next_due_date',
      ])
  }

  async get(serviceId: string): Promise<ProvisionedService | undefined> {
    const row = await this.query().where('service_id', '=', serviceId).executeTakeFirst()
    return row ? this.toView(row) : undefined
  }

  async getMany(serviceIds: readonly string[]): Promise<Map<string, ProvisionedService>> {
    const out = new Map<string, ProvisionedService>()
    for (let i = 0; i < serviceIds.length; i += 500) {
      const chunk = serviceIds.slice(i, i + 500)
      if (chunk.length === 0) continue
      for (const row of await this.query().where('service_id', 'in', chunk).execute()) {
        const v = this.toView(row)
        if (v) out.set(row.service_id, v)
      }
    }
    return out
  }

  async *list(): AsyncIterable<ProvisionedService> {
    let after = ''
    for (;;) {
      const rows = await this.query()
        .where('service_id', '>', after)
        .orderBy('service_id')
        .limit(1000)
        .execute()
      for (const row of rows) {
        const v = this.toView(row)
        if (v) yield v
      }
      const last = rows.at(-1)
      if (!last || rows.length < 1000) return
      after = last.service_id
    }
  }
}

/** What a ledger key says about itself: `whmcs:usage:<service>:…` or `whmcs:credit:<deposit>`. */
function ledgerKeyParts(key: string): { kind: string; serviceId: string | null } {
  const usage = /^whmcs:usage:([^:]+):/.exec(key)
  if (usage) return { kind: 'usage', serviceId: usage[1] as string }
  if (key.startsWith('whmcs:credit:')) return { kind: 'credit', serviceId: null }
  return { kind: 'other', serviceId: null }
}

export interface LedgerRow extends LedgerEntry {
  /** The stored state: claimed, sending, sent, done, uncertain or pending (see `DurableLedger`). */
  phase: string
  kind: string
  serviceId: string | null
  createdAt: string
}

/**
 * `@panelkit/whmcs`'s `Ledger` on the `ledger_entries` table. `claim` is one insert that only one
 * caller can win (a primary key), so two workers never both send the same usage item or credit.
 *
 * Without a holder (`store.ledger`) a claim is `pending`: it may have been sent, so a claim left by a
 * killed process is uncertain. With a holder (`store.ledgerFor(attempt)`, one attempt of the one job
 * that owns the key) the entry's life is split where the request actually leaves:
 * `claimed` → `beginSend` → `sending` → answer → `sent` (with WHMCS's result) → `complete` → `done`.
 * A later attempt of the job takes a `claimed` entry over (nothing was sent: it sends, once) and
 * finishes a `sent` one without sending; only a `sending` one is uncertain. Every transition is one
 * conditional UPDATE, so an earlier attempt that is still alive cannot send after a takeover.
 */
export class DurableLedger implements Ledger {
  private readonly store: Store
  private readonly holder: string | undefined
  constructor(store: Store, holder?: string) {
    this.store = store
    this.holder = holder
  }

  async claim(key: string): Promise<LedgerEntry | undefined> {
    const now = Date.now()
    const { kind, serviceId } = ledgerKeyParts(key)
    const inserted = await this.store.db
      .insertInto('ledger_entries')
      .values({
        key,
        kind,
        service_id: serviceId,
        client_id: null,
        state: this.holder === undefined ? 'pending' : 'claimed',
        holder: this.holder ?? null,
        result: null,
        reason: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('key').doNothing())
      .returning('key')
      .executeTakeFirst()
    if (inserted) return undefined
    // Each transition below is conditional on the row being as read; a lost race reads again.
    for (let round = 0; round < 5; round++) {
      const row = await this.row(key)
      if (!row) return this.claim(key) // released meanwhile
      if (this.holder === undefined) return ledgerEntryOf(row).entry
      if (row.state === 'claimed') {
        if (row.holder === this.holder) return undefined
        // The attempt that claimed it is over (this one holds the job now) and never began sending.
        const taken = await this.store.db
          .updateTable('ledger_entries')
          .set({ holder: this.holder, updated_at: Date.now() })
          .where('key', '=', key)
          .where('state', '=', 'claimed')
          .where('holder', '=', row.holder)
          .executeTakeFirst()
        if (Number(taken.numUpdatedRows) === 1) return undefined
        continue
      }
      if (row.state === 'sent') {
        // WHMCS answered success; only the completion was not recorded.
        await this.store.db
          .updateTable('ledger_entries')
          .set({ state: 'done', updated_at: Date.now() })
          .where('key', '=', key)
          .where('state', '=', 'sent')
          .execute()
        continue
      }
      if (row.state === 'sending' || row.state === 'pending') {
        // The request may have reached WHMCS and nobody recorded the answer: an operator decides.
        // Recorded as uncertain so `status` and the API list it.
        const reason =
          row.state === 'sending'
            ? 'the worker sending it stopped after the request went out and before its answer was recorded'
            : 'claimed before it was sent by a process that stopped; whether it was sent is unknown'
        await this.store.db
          .updateTable('ledger_entries')
          .set({ state: 'uncertain', reason, updated_at: Date.now() })
          .where('key', '=', key)
          .where('state', '=', row.state)
          .execute()
        continue
      }
      return ledgerEntryOf(row).entry
    }
    const row = await this.row(key)
    return row ? ledgerEntryOf(row).entry : { key, state: 'pending', updatedAt: new Date(now).toISOString() }
  }

  /**
   * Called immediately before the request goes out: `claimed` → `sending`, only while this holder
   * still holds the claim. Throws (a not-sent error: the library frees the claim) when it does not.
   */
  async beginSend(key: string): Promise<void> {
    if (this.holder === undefined) return
    let updated: bigint
    try {
      const r = await this.store.db
        .updateTable('ledger_entries')
        .set({ state: 'sending', updated_at: Date.now() })
        .where('key', '=', key)
        .where('state', '=', 'claimed')
        .where('holder', '=', this.holder)
        .executeTakeFirst()
      updated = r.numUpdatedRows
    } catch (error) {
      throw new ConnectionError(`Not sent: recording ${key} as sending failed`, {
        cause: error,
        details: { notSent: true },
      })
    }
    if (Number(updated) !== 1)
      throw new ConflictError(`Not sent: the claim on ${key} was taken over by a later attempt`, {
        retryable: true,
        details: { notSent: true },
      })
  }

  /** Called as soon as WHMCS answered success: `sending` → `sent` with its result. Never throws. */
  async markSent(key: string, result: string): Promise<void> {
    if (this.holder === undefined) return
    await this.store.db
      .updateTable('ledger_entries')
      .set({ state: 'sent', result, updated_at: Date.now() })
      .where('key', '=', key)
      .where('state', '=', 'sending')
      .where('holder', '=', this.holder)
      .execute()
      .catch(() => undefined) // `complete` follows; if both fail the entry stays `sending`: uncertain
  }

  private async row(key: string) {
    return this.store.db.selectFrom('ledger_entries').selectAll().where('key', '=', key).executeTakeFirst()
  }

  private async set(key: string, patch: { state: string; result?: string | null; reason?: string | null }) {
    await this.store.db
      .updateTable('ledger_entries')
      .set({ ...patch, updated_at: Date.now() })
      .where('key', '=', key)
      .execute()
  }

  async complete(key: string, result: string): Promise<void> {
    await this.set(key, { state: 'done', result, reason: null })
  }

  /** Frees a claim; a holder frees only its own (never one a later attempt took over). */
  async release(key: string): Promise<void> {
    let q = this.store.db.deleteFrom('ledger_entries').where('key', '=', key)
    if (this.holder !== undefined) q = q.where('holder', '=', this.holder)
    await q.execute()
  }

  async markUncertain(key: string, reason: string): Promise<void> {
    await this.set(key, { state: 'uncertain', reason })
  }

  async get(key: string): Promise<LedgerEntry | undefined> {
    const row = await this.store.db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('key', '=', key)
      .executeTakeFirst()
    return row ? ledgerEntryOf(row).entry : undefined
  }

  /** Entries, optionally only one state (`uncertain`: what an operator must settle). */
  async list(filter: { state?: string; serviceId?: string; limit?: number } = {}): Promise<LedgerRow[]> {
    let q = this.store.db.selectFrom('ledger_entries').selectAll()
    if (filter.state !== undefined) q = q.where('state', 'in', STORED_STATES[filter.state] ?? [filter.state])
    if (filter.serviceId !== undefined) q = q.where('service_id', '=', filter.serviceId)
    const rows = await q
      .orderBy('created_at')
      .limit(filter.limit ?? 1000)
      .execute()
    return rows.map((r) => {
      const { entry } = ledgerEntryOf(r)
      return {
        ...entry,
        phase: r.state,
        kind: r.kind,
        serviceId: r.service_id,
        createdAt: new Date(Number(r.created_at)).toISOString(),
      }
    })
  }
}

/** The stored state as the library's: claimed and sending are `pending`, sent is `done`. */
const LIBRARY_STATE: Record<string, LedgerEntry['state']> = {
  claimed: 'pending',
  sending: 'pending',
  pending: 'pending',
  sent: 'done',
  done: 'done',
  uncertain: 'uncertain',
}

/** The stored states behind each library state (for filtering). */
const STORED_STATES: Record<string, string[]> = {
  pending: ['pending', 'claimed', 'sending'],
  done: ['done', 'sent'],
  uncertain: ['uncertain'],
}

function ledgerEntryOf(row: {
  key: string
  state: string
  result: string | null
  reason: string | null
  updated_at: number
}): { entry: LedgerEntry } {
  const entry: LedgerEntry = {
    key: row.key,
    state: LIBRARY_STATE[row.state] ?? 'uncertain',
    updatedAt: new Date(Number(row.updated_at)).toISOString(),
  }
  if (row.result !== null) entry.result = row.result
  if (row.reason !== null) entry.reason = row.reason
  return { entry }
}
