import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import type {
  AssignmentStore,
  Checkpoint,
  CheckpointStore,
  ModuleLogEntry,
  ModuleLogSink,
  Redactor,
} from '@panelkit/core'
import BetterSqlite3 from 'better-sqlite3'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql, type Transaction } from 'kysely'
import pg from 'pg'
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
  private readonly sqlite: BetterSqlite3.Database | undefined

  private constructor(db: Db, dialect: DialectName, location: string, sqlite?: BetterSqlite3.Database) {
    this.db = db
    this.dialect = dialect
    this.location = location
    this.sqlite = sqlite
    this.checkpoints = new DurableCheckpointStore(this)
    this.assignments = new DurableAssignmentStore(this)
  }

  static async open(options: StoreOptions = {}): Promise<Store> {
    let store: Store
    if (options.url) {
      const schema = options.schema
      if (schema !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) {
        throw new Error(
          `PostgreSQL schema name ${JSON.stringify(schema)} must be lower-case letters, digits, _`,
        )
      }
      if (schema) {
        const admin = new pg.Client({ connectionString: options.url })
        await admin.connect()
        try {
          await admin.query(`create schema if not exists ${schema}`)
        } finally {
          await admin.end()
        }
      }
      const pool = new pg.Pool({
        connectionString: options.url,
        max: options.poolSize ?? 10,
        ...(schema ? { options: `-c search_path=${schema}` } : {}),
        // bigint columns hold millisecond times and ids: numbers, not strings.
        types: {
          getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
            oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as never,
        },
      })
      const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
      const url = new URL(options.url)
      store = new Store(
        db,
        'postgres',
        `postgresql://${url.host}${url.pathname}${schema ? `#${schema}` : ''}`,
      )
    } else {
      const file = options.file ?? 'provisioner.sqlite'
      let path = file
      if (file !== ':memory:') {
        const dir = options.dataDir ?? '.data'
        mkdirSync(dir, { recursive: true })
        path = join(dir, file)
      }
      const sqlite = new BetterSqlite3(path)
      sqlite.pragma('journal_mode = WAL')
      // NORMAL in WAL mode survives a killed process (the WAL is synced at checkpoints); FULL only adds
      // protection against power loss at a large cost per commit.
      sqlite.pragma('synchronous = NORMAL')
      sqlite.pragma('busy_timeout = 10000')
      sqlite.pragma('foreign_keys = ON')
      const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
      store = new Store(db, 'sqlite', path, sqlite)
    }
    await store.migrate()
    return store
  }

  async migrate(): Promise<string[]> {
    const migrator = new Migrator({
      db: this.db,
      provider: { getMigrations: async () => migrations(this.dialect) },
    })
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

  /** The store's raw commit: one small upsert in its own transaction (the benchmark's baseline). */
  async rawCommit(key: string, value: string): Promise<void> {
    await this.tx((trx) =>
      trx
        .insertInto('meta')
        .values({ key, value })
        .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
        .execute(),
    )
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

  ledger(kind: 'usage' | 'credit'): DurableLedger {
    return new DurableLedger(this, kind)
  }

  async close(): Promise<void> {
    await this.db.destroy()
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
  /** Only entries with an id greater than this (for paging forward). */
  after?: number
  limit?: number
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
    this.buffer.push(this.redactor ? this.redactor.redact(entry) : entry)
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
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return
      await this.store.db
        .insertInto('module_log')
        .values(
          batch.map((e) => ({
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
          })),
        )
        .execute()
    })
    return this.flushing
  }

  async query(q: ModuleLogQuery = {}): Promise<(ModuleLogEntry & { seq: number })[]> {
    await this.flush()
    let query = this.store.db.selectFrom('module_log').select(['id', 'entry_json'])
    if (q.serviceId !== undefined) query = query.where('service_id', '=', q.serviceId)
    if (q.connector !== undefined) query = query.where('connector', '=', q.connector)
    if (q.operation !== undefined) query = query.where('operation', '=', q.operation)
    if (q.outcome !== undefined) query = query.where('outcome', '=', q.outcome)
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

export interface LedgerEntry {
  key: string
  serviceId: string
  amount: string
  description: string
  /** reserved: not sent; sending: a push started (outcome unknown until pushed); pushed: confirmed. */
  status: 'reserved' | 'sending' | 'pushed'
  remoteId: string | null
}

/**
 * The usage and credit ledgers: an item is reserved under its idempotency key before it is pushed to
 * billing and marked pushed after. A crash in between leaves it `reserved`, and the next attempt asks
 * billing whether the item exists before pushing — so an item is pushed exactly once.
 */
export class DurableLedger {
  private readonly store: Store
  readonly kind: 'usage' | 'credit'
  constructor(store: Store, kind: 'usage' | 'credit') {
    this.store = store
    this.kind = kind
  }

  async reserve(entry: Omit<LedgerEntry, 'status' | 'remoteId'>): Promise<LedgerEntry> {
    await this.store.db
      .insertInto('ledger')
      .values({
        kind: this.kind,
        key: entry.key,
        service_id: entry.serviceId,
        amount: entry.amount,
        description: entry.description,
        status: 'reserved',
        remote_id: null,
        created_at: Date.now(),
        pushed_at: null,
      })
      .onConflict((oc) => oc.columns(['kind', 'key']).doNothing())
      .execute()
    return (await this.get(entry.key)) as LedgerEntry
  }

  async get(key: string): Promise<LedgerEntry | undefined> {
    const row = await this.store.db
      .selectFrom('ledger')
      .selectAll()
      .where('kind', '=', this.kind)
      .where('key', '=', key)
      .executeTakeFirst()
    if (!row) return undefined
    return {
      key: row.key,
      serviceId: row.service_id,
      amount: row.amount,
      description: row.description,
      status: row.status as LedgerEntry['status'],
      remoteId: row.remote_id,
    }
  }

  async markSending(key: string): Promise<void> {
    await this.store.db
      .updateTable('ledger')
      .set({ status: 'sending' })
      .where('kind', '=', this.kind)
      .where('key', '=', key)
      .where('status', '=', 'reserved')
      .execute()
  }

  async markPushed(key: string, remoteId: string | null): Promise<void> {
    await this.store.db
      .updateTable('ledger')
      .set({ status: 'pushed', remote_id: remoteId, pushed_at: Date.now() })
      .where('kind', '=', this.kind)
      .where('key', '=', key)
      .execute()
  }

  async list(serviceId?: string): Promise<LedgerEntry[]> {
    let q = this.store.db.selectFrom('ledger').selectAll().where('kind', '=', this.kind)
    if (serviceId !== undefined) q = q.where('service_id', '=', serviceId)
    const rows = await q.orderBy('created_at').execute()
    return rows.map((row) => ({
      key: row.key,
      serviceId: row.service_id,
      amount: row.amount,
      description: row.description,
      status: row.status as LedgerEntry['status'],
      remoteId: row.remote_id,
    }))
  }
}
